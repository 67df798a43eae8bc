#!/usr/bin/env bash
# The one bench command. From the repository root or anywhere:
#   bash bench/run.sh            full run: several minutes on 2 cores
#   bash bench/run.sh --smoke    tiny sizes, 1 repetition: proves everything builds and runs (CI)
# Builds the native benchmarks (build/bench), the wasm driver (build/bench/wasm), runs
#   bgtasks_bench  (Google Benchmark; bgtasks vs asio vs the bare floor)  -> results/native.json
#   memory_probe   (bytes and allocations per task)                       -> results/memory.json
#   bench_driver natively and driver.js under Node, alternated            -> results/driver.json
#   bench_driver under callgrind (instructions per task/event)            -> results/icount.*
#   node bench/js/run.mjs, when it exists                                 -> results/js.json
# and combines them into build/bench/results/summary.json (each figure, its peer, the ratio, the
# target) with a table on stdout. Figures are never pass/fail for the exit status: a run that
# completes exits 0 whatever the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SMOKE=0
for a in "$@"; do
  case "$a" in
    --smoke) SMOKE=1 ;;
    *) echo "usage: bench/run.sh [--smoke]" >&2; exit 2 ;;
  esac
done

BUILD=$ROOT/build/bench
RESULTS=$BUILD/results
mkdir -p "$RESULTS"
# Emscripten's optimised links need Debian's acorn (docs/toolchain.md); EM_CACHE stays unset (Debian's cache is frozen).
export NODE_PATH=${NODE_PATH:-/usr/share/nodejs}
unset EM_CACHE

echo "== native build (Release, g++) -> $BUILD"
cmake -S . -B "$BUILD" -DBGTASKS_BUILD_BENCH=ON -DBGTASKS_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=Release -G Ninja >/dev/null
cmake --build "$BUILD"

echo "== wasm build of the driver (em++ -O3 -fno-exceptions) -> $BUILD/wasm"
cmake -S bench/wasm -B "$BUILD/wasm" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_TOOLCHAIN_FILE=/usr/share/emscripten/cmake/Modules/Platform/Emscripten.cmake >/dev/null
cmake --build "$BUILD/wasm"

if [ "$SMOKE" = 1 ]; then
  GB_ARGS=(--smoke --benchmark_repetitions=1 --benchmark_min_time=0.01)
  PROBE_N=2000
  DRIVER_ARGS=(2000 2000 1)
  DRIVER_ROUNDS=1
  ICOUNT_N=500
else
  # Repetitions of all benchmarks are interleaved in random order, so that the machine's load drifts
  # (these machines are shared) hit bgtasks and its peers alike.
  GB_ARGS=(--benchmark_repetitions=5 --benchmark_report_aggregates_only=true --benchmark_enable_random_interleaving=true)
  PROBE_N=100000
  DRIVER_ARGS=(100000 100000 7)
  DRIVER_ROUNDS=3
  ICOUNT_N=20000
fi

echo "== Google Benchmark: bgtasks vs asio vs bare floor"
echo "   (JSON into $RESULTS/native.json; the table follows in the summary)"
"$BUILD/bench/bgtasks_bench" "${GB_ARGS[@]}" --benchmark_format=json >"$RESULTS/native.json"

echo "== memory probe ($PROBE_N tasks)"
"$BUILD/bench/memory_probe" "$PROBE_N" | tee "$RESULTS/memory.json"

echo "== the same driver, native vs wasm ($DRIVER_ROUNDS alternated rounds: tasks events reps = ${DRIVER_ARGS[*]})"
{
  echo "["
  for r in $(seq 1 "$DRIVER_ROUNDS"); do
    "$BUILD/bench/bench_driver" "${DRIVER_ARGS[@]}"
    echo ","
    (cd "$BUILD/wasm" && node driver.js "${DRIVER_ARGS[@]}")
    if [ "$r" -lt "$DRIVER_ROUNDS" ]; then echo ","; fi
  done
  echo "]"
} >"$RESULTS/driver.json"
cat "$RESULTS/driver.json"

echo "== instruction counts (callgrind; repeatable where wall and CPU time are not): driver, $ICOUNT_N tasks/events"
# Inclusive instructions of the driver's work_* functions, 2 runs each (warm-up + 1 repetition).
valgrind --tool=callgrind --callgrind-out-file="$RESULTS/callgrind.driver.out" \
  "$BUILD/bench/bench_driver" "$ICOUNT_N" "$ICOUNT_N" 1 >/dev/null 2>"$RESULTS/callgrind.driver.log"
callgrind_annotate --inclusive=yes --auto=no --threshold=100 "$RESULTS/callgrind.driver.out" 2>/dev/null |
  grep -E 'work_[a-z_]+' >"$RESULTS/icount.txt" || true
echo "{\"n\": $ICOUNT_N, \"runs\": 2, \"annotate\": \"icount.txt\"}" >"$RESULTS/icount.json"
grep -oE '^ *[0-9,]+ .*work_[a-z_]+' "$RESULTS/icount.txt" | sed -E 's/\(anonymous namespace\):://' || true

if [ -f bench/js/run.mjs ]; then
  echo "== JS/wasm benchmarks (bench/js/run.mjs)"
  # The JS bench drives the npm package, i.e. the Embind module in js/build (the wasm preset).
  cmake --preset wasm >/dev/null
  cmake --build --preset wasm
  # p-queue and Effection come from the npm workspace at the top level.
  if [ ! -d node_modules/p-queue ] || [ ! -d node_modules/effection ]; then
    npm ci --no-audit --no-fund
  fi
  JS_ARGS=()
  [ "$SMOKE" = 1 ] && JS_ARGS+=(--smoke)
  node bench/js/run.mjs "${JS_ARGS[@]}"
else
  echo "== bench/js/run.mjs not present: JS figures skipped"
  rm -f "$RESULTS/js.json"
fi

echo "== summary"
node bench/summarize.mjs --results "$RESULTS" --mode "$([ "$SMOKE" = 1 ] && echo smoke || echo full)"
