#!/usr/bin/env bash
# Tests the ways a C++ project takes bgtasks in (docs/cpp-install.md), end to end:
#   1. plugin:      a shared library (add_library(plugin SHARED)) linking the installed *static*
#                   bgtasks::core, loaded with dlopen by an executable (g++): the static library
#                   must be position-independent code;
#   2. pkg-config:  consumer.cpp compiled and linked with `pkg-config --cflags --libs bgtasks`
#                   alone, by g++ and by clang++ (14), and run;
#   3. FetchContent: a project building bgtasks' source inside its own build (clang++), with its own
#                   warning flags and BUILD_SHARED_LIBS=ON: no -Werror, nor any other flag of
#                   bgtasks', in its compile commands; consumer.cpp built and run;
#   4. shared:      that build's libbgtasks.so, installed (cmake --install): its SONAME carries the
#                   SOVERSION; consumer.cpp (g++) found it through find_package(bgtasks 0.1) and
#                   runs; find_package refuses the next minor version.
# Exits non-zero on any failure. Needs g++ and clang++ (C++20), cmake >= 3.22, pkg-config,
# nlohmann-json3-dev, readelf (binutils); Ninja if present.
#
# BGTASKS_PREFIX=<dir>: a static bgtasks already installed there (by examples/native/test.sh) is
# used for 1 and 2; otherwise the core is built and installed into a temp dir first.
# BGTASKS_PACKAGING_KEEP=1: keep the temp dir (printed) for a look afterwards.
# Step 3 builds the core (once, without optimization: it tests packaging, and -O0 builds fastest).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/bgtasks-packaging.XXXXXX")"
if [ "${BGTASKS_PACKAGING_KEEP:-0}" = 1 ]; then echo "(keeping $work)"; else trap 'rm -rf "$work"' EXIT; fi
gen=()
command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
jobs="$(nproc 2>/dev/null || echo 2)"
CXX_GNU="${CXX_GNU:-g++}"
CXX_CLANG="${CXX_CLANG:-$(command -v clang++-14 || command -v clang++ || echo clang++)}"
for tool in "$CXX_GNU" "$CXX_CLANG" cmake pkg-config readelf; do
  command -v "$tool" >/dev/null 2>&1 || { echo "FAIL: $tool not found" >&2; exit 1; }
done

fail=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1" >&2; fail=1; }
# Runs a command quietly, printing its log only when it fails: quiet <log name> <command...>
quiet() {
  local log="$work/$1.log"
  shift
  "$@" >"$log" 2>&1 || { cat "$log" >&2; echo "FAIL: $* (log above)" >&2; exit 1; }
}
# check_consumer <name> <program> [env...]: runs consumer.cpp's build, checks what it prints.
check_consumer() {
  local name="$1" program="$2" out="$work/$1.out" status=0
  shift 2
  env "$@" timeout 20 "$program" >"$out" 2>&1 || status=$?
  if [ "$status" -ne 0 ]; then bad "$name: exited with $status"; cat "$out" >&2; return; fi
  if grep -Eq '^bgtasks [0-9]+\.[0-9]+\.[0-9]+$' "$out" \
    && grep -Fqx '{"event_type":"progress","kind":"custom","payload":{"pct":50},"task_id":"bg_0"}' "$out" \
    && grep -Fqx '{"kind":"completed","result":{"ok":true},"task_id":"bg_0"}' "$out" \
    && grep -Fqx 'consumer: bg_0 completed' "$out"; then
    ok "$name: runs and prints what it should"
  else
    bad "$name: unexpected output"; cat "$out" >&2
  fi
}
seconds() { echo "$(( $(date +%s) - $1 )) s"; }

# ---- the static install ------------------------------------------------------------------------
prefix="${BGTASKS_PREFIX:-}"
if [ -n "$prefix" ] && [ -f "$prefix/lib/cmake/bgtasks/bgtasksConfig.cmake" ]; then
  echo "== using the bgtasks installed in $prefix"
else
  prefix="$work/prefix"
  t=$(date +%s)
  echo "== core (static, RelWithDebInfo): configure + build, cmake --install → $prefix"
  quiet core-configure cmake -S "$repo" -B "$work/core" "${gen[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DBGTASKS_BUILD_TESTS=OFF -DBGTASKS_BUILD_BENCH=OFF
  quiet core-build cmake --build "$work/core" -j"$jobs"
  quiet core-install cmake --install "$work/core" --prefix "$prefix"
  echo "   ($(seconds "$t"))"
fi
libdir="$prefix/lib"
[ -f "$libdir/libbgtasks.a" ] || { echo "FAIL: no static library $libdir/libbgtasks.a" >&2; exit 1; }
[ -f "$prefix/include/bgtasks/version.hpp" ] && ok "bgtasks/version.hpp is installed" \
  || bad "no $prefix/include/bgtasks/version.hpp"
if grep -q 'INTERFACE_COMPILE_OPTIONS' "$libdir/cmake/bgtasks/bgtasksTargets.cmake"; then
  bad "the installed bgtasks::core passes compile options to its users"
else
  ok "the installed bgtasks::core passes no compile options to its users"
fi

# ---- 1. a shared library with the static bgtasks in it, loaded with dlopen -------------------------
t=$(date +%s)
echo "== 1. plugin: add_library(plugin SHARED) + the static bgtasks::core, dlopen'ed ($CXX_GNU)"
quiet plugin-configure cmake -S "$here/plugin" -B "$work/plugin" "${gen[@]}" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_CXX_COMPILER="$CXX_GNU" -DCMAKE_CXX_FLAGS="-Wall -Wextra -Werror"
if cmake --build "$work/plugin" >"$work/plugin-build.log" 2>&1; then
  out="$("$work/plugin/host" "$work/plugin/libplugin.so" 2>&1)" || true
  if [ "$out" = "plugin: bg_0 completed (rc 0)" ]; then ok "plugin: $out"; else bad "plugin: host printed '$out'"; fi
else
  cat "$work/plugin-build.log" >&2
  bad "plugin: does not build (is libbgtasks.a position-independent? BGTASKS_POSITION_INDEPENDENT_CODE)"
fi
echo "   ($(seconds "$t"))"

# ---- 2. pkg-config, g++ and clang++ ------------------------------------------------------------------
t=$(date +%s)
echo "== 2. pkg-config --cflags --libs bgtasks ($CXX_GNU, $CXX_CLANG)"
export PKG_CONFIG_PATH="$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
if pc_flags="$(pkg-config --cflags --libs bgtasks)"; then
  ok "pkg-config: bgtasks $(pkg-config --modversion bgtasks): $pc_flags"
  std="$(pkg-config --variable=cxx_std bgtasks)"
  for cxx in "$CXX_GNU" "$CXX_CLANG"; do
    name="pkg-config-$(basename "$cxx")"
    # shellcheck disable=SC2086 # pkg-config's output is a list of words
    if "$cxx" -std="$std" -Wall -Wextra -Werror "$here/consumer.cpp" $pc_flags -o "$work/$name" >"$work/$name.log" 2>&1; then
      check_consumer "$name" "$work/$name"
    else
      cat "$work/$name.log" >&2; bad "$name: does not compile and link"
    fi
  done
else
  bad "pkg-config does not find bgtasks in $libdir/pkgconfig"
fi
echo "   ($(seconds "$t"))"

# ---- 3. FetchContent, clang++, the consumer's own flags, a shared bgtasks -----------------------------
t=$(date +%s)
echo "== 3. FetchContent: bgtasks built inside a consumer's build ($CXX_CLANG, no -Werror, BUILD_SHARED_LIBS=ON)"
quiet fc-configure cmake -S "$here/fetchcontent" -B "$work/fc" "${gen[@]}" -DCMAKE_CXX_COMPILER="$CXX_CLANG" \
  -DBUILD_SHARED_LIBS=ON -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
commands="$work/fc/compile_commands.json"
if grep -q -- '-Werror' "$commands"; then
  bad "FetchContent: -Werror in the consumer's compile commands:"; grep -- '-Werror' "$commands" >&2
else
  ok "FetchContent: no -Werror in any compile command (bgtasks' own included)"
fi
consumer_cmd="$(grep '"command"' "$commands" | grep 'consumer\.cpp' || true)"
if [ -z "$consumer_cmd" ]; then
  bad "FetchContent: no compile command for consumer.cpp"
elif grep -Eq -- '-Wno-restrict|-fno-semantic-interposition' <<<"$consumer_cmd"; then
  bad "FetchContent: a flag of bgtasks' reaches the consumer: $consumer_cmd"
else
  ok "FetchContent: consumer.cpp compiles with its own flags only"
fi
quiet fc-build cmake --build "$work/fc" -j"$jobs"
check_consumer fetchcontent "$work/fc/consumer"
echo "   ($(seconds "$t"))"

# ---- 4. the shared library, installed -----------------------------------------------------------------
# The shared libbgtasks built in step 3, installed from that build (FetchContent keeps bgtasks'
# install rules), then used through find_package by a program built with the other compiler.
t=$(date +%s)
echo "== 4. shared: cmake --install of step 3's build, SONAME, a consumer through find_package ($CXX_GNU)"
quiet shared-install cmake --install "$work/fc" --prefix "$work/shared-prefix"
macro() { sed -n "s/^#define BGTASKS_VERSION_$1 \\(.*\\)$/\\1/p" "$work/shared-prefix/include/bgtasks/version.hpp"; }
major="$(macro MAJOR)" minor="$(macro MINOR)" patch="$(macro PATCH)"
if [ "$major" = 0 ]; then soversion="$major.$minor"; else soversion="$major"; fi
real="$work/shared-prefix/lib/libbgtasks.so.$major.$minor.$patch"
if [ -f "$real" ]; then
  soname="$(readelf -d "$real" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')"
  [ "$soname" = "libbgtasks.so.$soversion" ] && ok "shared: SONAME $soname" \
    || bad "shared: SONAME '$soname', want libbgtasks.so.$soversion"
  [ -L "$work/shared-prefix/lib/libbgtasks.so.$soversion" ] && [ -L "$work/shared-prefix/lib/libbgtasks.so" ] \
    && ok "shared: links libbgtasks.so → libbgtasks.so.$soversion → $(basename "$real")" \
    || bad "shared: the libbgtasks.so / libbgtasks.so.$soversion links are missing"
  exported="$(readelf --dyn-syms -W "$real" | grep -c ' GLOBAL *DEFAULT *[0-9].*_ZN7bgtasks' || true)"
  [ "$exported" -gt 100 ] && ok "shared: exports $exported bgtasks symbols" \
    || bad "shared: exports only $exported bgtasks symbols"
else
  bad "shared: no $real"; ls -l "$work/shared-prefix/lib" >&2
fi
quiet shared-consumer-configure cmake -S "$here" -B "$work/shared-consumer" "${gen[@]}" \
  -DCMAKE_CXX_COMPILER="$CXX_GNU" -DCMAKE_PREFIX_PATH="$work/shared-prefix" -DCMAKE_CXX_FLAGS="-Wall -Wextra -Werror"
quiet shared-consumer-build cmake --build "$work/shared-consumer"
if readelf -d "$work/shared-consumer/consumer" | grep -Fq "Shared library: [libbgtasks.so.$soversion]"; then
  ok "shared: the consumer needs libbgtasks.so.$soversion"
else
  bad "shared: the consumer does not name libbgtasks.so.$soversion"; readelf -d "$work/shared-consumer/consumer" >&2
fi
check_consumer shared "$work/shared-consumer/consumer"
# find_package(bgtasks) refuses the next minor: 0.x minors are not compatible with each other.
next="$major.$((minor + 1))"
mkdir -p "$work/next"
printf 'cmake_minimum_required(VERSION 3.22)\nproject(next LANGUAGES CXX)\nfind_package(bgtasks %s REQUIRED)\n' "$next" \
  >"$work/next/CMakeLists.txt"
if cmake -S "$work/next" -B "$work/next/build" -DCMAKE_PREFIX_PATH="$work/shared-prefix" >"$work/next.log" 2>&1; then
  bad "find_package(bgtasks $next) accepted bgtasks $major.$minor.$patch"
else
  ok "find_package(bgtasks $next) refuses bgtasks $major.$minor.$patch"
fi
echo "   ($(seconds "$t"))"

[ "$fail" -eq 0 ] || { echo "== examples/packaging: FAILED" >&2; exit 1; }
echo "== examples/packaging: passed"
