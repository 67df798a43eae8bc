#!/usr/bin/env bash
# Instruction profiles of the bench driver's measured sections under callgrind (repeatable on a
# noisy machine, unlike wall time). Builds -O3 -g into build/bench-prof, then for each section runs
#   valgrind --tool=callgrind --toggle-collect=<the section's work function> bench_driver TASKS EVENTS 1
# and prints the instruction count per task/event and the top functions by inclusive and self cost.
#   bash bench/profile.sh [spawn|host|emit|floor|asio|binding|limited|deadline ...]   (default: spawn host emit)
# limited / deadline: spawn -> complete under a per-thread limit of 64 / with a deadline per spawn.
# binding: the JS agent workload's calls into wasm/bindings.cpp made natively (binding_path), per task.
# Env: TASKS (default 20000), EVENTS (default 20000), TOP (default 25).
# Outputs: build/bench-prof/callgrind.<section>.out (open with callgrind_annotate or kcachegrind).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=build/bench-prof
TASKS=${TASKS:-20000}
EVENTS=${EVENTS:-20000}
TOP=${TOP:-25}
SECTIONS=("$@")
[ ${#SECTIONS[@]} -eq 0 ] && SECTIONS=(spawn host emit)

cmake -S . -B "$BUILD" -DBGTASKS_BUILD_BENCH=ON -DBGTASKS_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_FLAGS="-g -fno-omit-frame-pointer" -G Ninja >/dev/null
cmake --build "$BUILD" --target bench_driver binding_path

set +o pipefail  # head closes the pipe early: not an error
for s in "${SECTIONS[@]}"; do
  case "$s" in
    spawn) fn='*work_spawn_complete*'; per=$TASKS; unit=task ;;
    host) fn='*work_host_spawn_complete*'; per=$TASKS; unit=task ;;
    limited) fn='*work_limited_spawn_complete*'; per=$TASKS; unit=task ;;
    deadline) fn='*work_deadline_spawn_complete*'; per=$TASKS; unit=task ;;
    emit) fn='*work_emit_drain*'; per=$EVENTS; unit=event ;;
    floor) fn='*work_bare_floor*'; per=$TASKS; unit=task ;;
    asio) fn='*work_asio*'; per=$TASKS; unit=task ;;
    binding) fn='*work_binding*'; per=$TASKS; unit=task ;;
    *) echo "unknown section $s" >&2; exit 2 ;;
  esac
  out=$BUILD/callgrind.$s.out
  # The driver runs a warm-up round and 1 repetition: the section runs twice. So does binding_path.
  if [ "$s" = binding ]; then
    valgrind --tool=callgrind --toggle-collect="$fn" --callgrind-out-file="$out" \
      "$BUILD/bench/binding_path" "$TASKS" 2 >/dev/null 2>"$out.log"
  else
    valgrind --tool=callgrind --toggle-collect="$fn" --callgrind-out-file="$out" \
      "$BUILD/bench/bench_driver" "$TASKS" "$EVENTS" 1 >/dev/null 2>"$out.log"
  fi
  total=$(grep -E '^(summary|totals):' "$out" | head -1 | awk '{print $2}')
  echo
  echo "=== $s: $total instructions, $((total / (2 * per))) per $unit ($per per run, 2 runs)"
  # Short names: drop argument lists and the long nlohmann template prefix.
  shorten() { sed -E 's/nlohmann::json_abi_v3_11_2::basic_json<[^ ]*[^)]*>/json/g; s/\(([^()]|\([^()]*\))*\)( const)?//g; s/\[abi:cxx11\]//g' | cut -c1-200; }
  echo "--- inclusive (top $TOP)"
  callgrind_annotate --inclusive=yes --auto=no "$out" 2>/dev/null | grep -E '^ *[0-9,]+ \(' | grep -v 'PROGRAM TOTALS' | head -n "$TOP" | shorten
  echo "--- self (top $TOP)"
  callgrind_annotate --auto=no "$out" 2>/dev/null | grep -E '^ *[0-9,]+ \(' | grep -v 'PROGRAM TOTALS' | head -n "$TOP" | shorten
done
