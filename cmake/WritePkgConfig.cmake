# Writes bgtasks.pc at install time (core/CMakeLists.txt runs it through install(CODE)), so its
# prefix is the one actually installed into: `cmake --install <dir> --prefix <p>` included.
# In: BGTASKS_PC_IN, BGTASKS_PC_OUT, BGTASKS_PC_VERSION, BGTASKS_PC_LIBDIR_REL,
#     BGTASKS_PC_INCLUDEDIR_REL (CMAKE_INSTALL_LIBDIR / _INCLUDEDIR: relative or absolute).
set(BGTASKS_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
foreach(kind LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${BGTASKS_PC_${kind}_REL}")
    set(BGTASKS_PC_${kind} "${BGTASKS_PC_${kind}_REL}")
  else()
    set(BGTASKS_PC_${kind} "\${prefix}/${BGTASKS_PC_${kind}_REL}")
  endif()
endforeach()
configure_file("${BGTASKS_PC_IN}" "${BGTASKS_PC_OUT}" @ONLY)
