#!/usr/bin/env bash
# Tests the asio example end to end against an installed bgtasks:
#   1. an installed bgtasks: the one in $BGTASKS_PREFIX if examples/native/test.sh put it there
#      already, otherwise the core is built and `cmake --install`ed into a temp prefix,
#   2. configure examples/asio against it (find_package(bgtasks); standalone asio from the system),
#   3. build it (warnings are errors: bgtasks/asio.hpp must compile cleanly in a user's build),
#   4. run it and check its output.
# Exits non-zero on any failure. Needs g++ (C++20), cmake >= 3.22, nlohmann-json3-dev, libasio-dev.
set -euo pipefail
example_name=asio
source "$(dirname "$0")/../example-test-lib.sh"

use_installed_core
[ -f "$prefix/include/bgtasks/asio.hpp" ] || { echo "FAIL: bgtasks/asio.hpp is not installed in $prefix/include" >&2; exit 1; }
build_and_run asio-agent

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
expect_below "run time" '^elapsed \([0-9]*\) ms$' 2000 ms
expect_below "driver polls" '^driver polls \([0-9]*\)$' 100 polls
finish
