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
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/bgtasks-native-example.XXXXXX")"
trap 'rm -rf "$work"' EXIT
prefix="${BGTASKS_PREFIX:-$work/prefix}"
build_type="${BGTASKS_BUILD_TYPE:-RelWithDebInfo}"
gen=()
command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
jobs="$(nproc 2>/dev/null || echo 2)"

echo "== core: configure + build ($build_type) in $work/core"
cmake -S "$repo" -B "$work/core" "${gen[@]}" -DCMAKE_BUILD_TYPE="$build_type" \
  -DBGTASKS_BUILD_TESTS=OFF -DBGTASKS_BUILD_BENCH=OFF >"$work/core-configure.log" \
  || { cat "$work/core-configure.log"; exit 1; }
cmake --build "$work/core" -j"$jobs"
echo "== core: cmake --install → $prefix"
cmake --install "$work/core" --prefix "$prefix"
targets="$prefix/lib/cmake/bgtasks/bgtasksTargets.cmake"
[ -f "$targets" ] || { echo "FAIL: cmake --install wrote no $targets" >&2; exit 1; }
if ! grep -qF 'INTERFACE_INCLUDE_DIRECTORIES "${_IMPORT_PREFIX}/include' "$targets"; then
  echo "FAIL: the installed bgtasks::core has no include directory (in $targets); in core/CMakeLists.txt," \
    "include(GNUInstallDirs) must come before the \$<INSTALL_INTERFACE:\${CMAKE_INSTALL_INCLUDEDIR}> that uses it" >&2
  exit 1
fi

echo "== examples/native: configure against the installed package, build"
cmake -S "$here" -B "$work/example" "${gen[@]}" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_CXX_FLAGS="-Wall -Wextra -Werror" >"$work/example-configure.log" \
  || { cat "$work/example-configure.log"; exit 1; }
cmake --build "$work/example"

echo "== examples/native: run"
status=0
timeout 20 "$work/example/native-agent" >"$work/out.txt" 2>&1 || status=$?
cat "$work/out.txt"
[ "$status" -eq 0 ] || { echo "FAIL: native-agent exited with $status" >&2; exit 1; }

fail=0
expect() {  # expect <description> <grep -E pattern>
  if grep -Eq -- "$2" "$work/out.txt"; then echo "ok   $1"; else echo "FAIL $1 (no line matches: $2)" >&2; fail=1; fi
}
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
elapsed="$(sed -n 's/^elapsed \([0-9]*\) ms$/\1/p' "$work/out.txt")"
if [ -n "$elapsed" ] && [ "$elapsed" -lt 2000 ]; then echo "ok   run took ${elapsed} ms"; else echo "FAIL run took '${elapsed}' ms (want < 2000)" >&2; fail=1; fi
[ "$fail" -eq 0 ] || exit 1
echo "== examples/native: passed"
