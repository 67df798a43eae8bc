#!/usr/bin/env bash
# Tests the asio example end to end against an installed bgtasks:
#   1. an installed bgtasks: the one in $BGTASKS_PREFIX if examples/native/test.sh put it there
#      already, otherwise the core is built and `cmake --install`ed into a temp prefix,
#   2. configure examples/asio against it (find_package(bgtasks); standalone asio from the system),
#   3. build it (warnings are errors: bgtasks/asio.hpp must compile cleanly in a user's build),
#   4. run it and check its output.
# Exits non-zero on any failure. Needs g++ (C++20), cmake >= 3.22, nlohmann-json3-dev, libasio-dev.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/bgtasks-asio-example.XXXXXX")"
trap 'rm -rf "$work"' EXIT
prefix="${BGTASKS_PREFIX:-$work/prefix}"
build_type="${BGTASKS_BUILD_TYPE:-RelWithDebInfo}"
gen=()
command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
jobs="$(nproc 2>/dev/null || echo 2)"

if [ -f "$prefix/lib/cmake/bgtasks/bgtasksConfig.cmake" ] && [ -f "$prefix/include/bgtasks/asio.hpp" ]; then
  echo "== core: using the bgtasks installed in $prefix"
else
  echo "== core: configure + build ($build_type) in $work/core, install into $prefix"
  cmake -S "$repo" -B "$work/core" "${gen[@]}" -DCMAKE_BUILD_TYPE="$build_type" \
    -DBGTASKS_BUILD_TESTS=OFF -DBGTASKS_BUILD_BENCH=OFF >"$work/core-configure.log" \
    || { cat "$work/core-configure.log"; exit 1; }
  cmake --build "$work/core" -j"$jobs"
  cmake --install "$work/core" --prefix "$prefix"
fi
[ -f "$prefix/include/bgtasks/asio.hpp" ] || { echo "FAIL: bgtasks/asio.hpp is not installed in $prefix/include" >&2; exit 1; }

echo "== examples/asio: configure against the installed package, build"
cmake -S "$here" -B "$work/example" "${gen[@]}" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_CXX_FLAGS="-Wall -Wextra -Werror" >"$work/example-configure.log" \
  || { cat "$work/example-configure.log"; exit 1; }
cmake --build "$work/example"

echo "== examples/asio: run"
status=0
timeout 20 "$work/example/asio-agent" >"$work/out.txt" 2>&1 || status=$?
cat "$work/out.txt"
[ "$status" -eq 0 ] || { echo "FAIL: asio-agent exited with $status" >&2; exit 1; }

fail=0
expect() {  # expect <description> <grep -E pattern>
  if grep -Eq -- "$2" "$work/out.txt"; then echo "ok   $1"; else echo "FAIL $1 (no line matches: $2)" >&2; fail=1; fi
}
expect "ids in spawn order" '^spawned poller=bg_0 researcher=bg_1 watch=bg_2 checksum=bg_3$'
expect "first tick" '"event_type":"tick","kind":"custom","payload":\{"n":1\},"task_id":"bg_0"'
expect "third tick" '"event_type":"tick","kind":"custom","payload":\{"n":3\},"task_id":"bg_0"'
expect "poller completed" '\{"kind":"completed","result":\{"ticks":3\},"task_id":"bg_0"\}'
expect "message delivered" '^\[\+[0-9]+ms\] asked bg_1: delivered$'
expect "sub-agent answered" '"event_type":"answer","kind":"custom","payload":\{"text":"42"\},"task_id":"bg_1"'
expect "sub-agent completed" '\{"kind":"completed","result":\{"answered":true\},"task_id":"bg_1"\}'
expect "cancel answered true" 'poller done; cancel\(bg_2\) -> true$'
expect "watch cancelled at once" '\{"kind":"cancelled","task_id":"bg_2"\}'
expect "host task completed via post" '\{"kind":"completed","result":\{"sha256":"9f86d081884c7d65"\},"task_id":"bg_3"\}'
expect "final: bg_2 cancelled" '^  bg_2 watch cancelled$'
expect "final: bg_3 completed" '^  bg_3 host completed$'
expect "stats" '^stats .*"cancelled":1,"completed":3,"failed":0,.*"running":0\}$'
# The watcher's minute-long wait was cut short, and the driver slept rather than spun.
elapsed="$(sed -n 's/^elapsed \([0-9]*\) ms$/\1/p' "$work/out.txt")"
if [ -n "$elapsed" ] && [ "$elapsed" -lt 2000 ]; then echo "ok   run took ${elapsed} ms"; else echo "FAIL run took '${elapsed}' ms (want < 2000)" >&2; fail=1; fi
polls="$(sed -n 's/^driver polls \([0-9]*\)$/\1/p' "$work/out.txt")"
if [ -n "$polls" ] && [ "$polls" -lt 100 ]; then echo "ok   driver polled $polls times"; else echo "FAIL driver polled '${polls}' times (want < 100)" >&2; fail=1; fi
[ "$fail" -eq 0 ] || exit 1
echo "== examples/asio: passed"
