#!/usr/bin/env bash
# Tests the install rules and the native example end to end:
#   1. configure + build the repo's core into a temp build dir (tests off),
#   2. `cmake --install` it into a temp prefix,
#   3. configure examples/native against that prefix (find_package(bgtasks) via CMAKE_PREFIX_PATH),
#   4. build it (warnings are errors: the installed headers must compile cleanly in a user's build),
#   5. run it and check its output.
# Exits non-zero on any failure. Needs g++ (C++20), cmake >= 3.22, nlohmann-json3-dev; Ninja if present.
#
# BGTASKS_PREFIX=<dir>: install into <dir> and keep it (examples/readme/check.mjs reuses it);
# otherwise everything lives in a temp dir removed on exit.
# BGTASKS_BUILD_TYPE: the core's build type (default RelWithDebInfo, as the repo's presets).
set -euo pipefail
example_name=native
source "$(dirname "$0")/../example-test-lib.sh"

install_core
targets="$prefix/lib/cmake/bgtasks/bgtasksTargets.cmake"
[ -f "$targets" ] || { echo "FAIL: cmake --install wrote no $targets" >&2; exit 1; }
if ! grep -qF 'INTERFACE_INCLUDE_DIRECTORIES "${_IMPORT_PREFIX}/include' "$targets"; then
  echo "FAIL: the installed bgtasks::core has no include directory (in $targets); in core/CMakeLists.txt," \
    "include(GNUInstallDirs) must come before the \$<INSTALL_INTERFACE:\${CMAKE_INSTALL_INCLUDEDIR}> that uses it" >&2
  exit 1
fi

build_and_run native-agent

expect "ids in spawn order" '^spawned build=bg_0 download=bg_1 watch=bg_2 package=bg_3 checksum=bg_4$'
expect "streamed output lines" '"event_type":"line","kind":"custom","payload":\{"text":"cc -c main\.c"\},"task_id":"bg_0"'
expect "last output line" '"payload":\{"text":"ld -o app main\.o util\.o"\},"task_id":"bg_0"'
expect "download progress 100" '"event_type":"progress","kind":"custom","payload":\{"pct":100\},"task_id":"bg_1"'
expect "build completed" '\{"kind":"completed","result":\{"exit_code":0\},"task_id":"bg_0"\}'
expect "download completed" '\{"kind":"completed","result":\{"bytes":4096\},"task_id":"bg_1"\}'
expect "cancel answered true" '^cancel\(bg_2\) -> true$'
expect "watch cancelled event" '\{"kind":"cancelled","task_id":"bg_2"\}'
expect "package waited for the build" '"text":"build ended completed, packaging"'
expect "host task completed via post" '\{"kind":"completed","result":\{"sha256":"9f86d081884c7d65"\},"task_id":"bg_4"\}'
expect "final: bg_2 cancelled" '^  bg_2 watch cancelled$'
expect "final: bg_4 completed" '^  bg_4 host completed$'
expect "stats" '^stats .*"cancelled":1,"completed":4,"failed":0,.*"live_bodies":0,.*"running":0\}$'
expect "snapshot lineage" '^snapshot .*"parent_context":\{"task_id":"bg_0"\}'
# Every event precedes the final report, and the run stays short.
expect_below "run time" '^elapsed \([0-9]*\) ms$' 2000 ms
finish
