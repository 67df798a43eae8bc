#!/usr/bin/env bash
# Builds the libFuzzer targets with Debian's clang (clang 14 has libFuzzer; docs/toolchain.md):
#   clang++ -std=c++20 -fsanitize=fuzzer,address,undefined -g -O1
# Every core source (core/src/*.cpp) is compiled with the same flags, so the whole core is
# instrumented (coverage + ASan + UBSan), and linked into each target. UBSan does not recover: a
# finding aborts, and libFuzzer reports it with the input.
#
#   fuzz/build.sh [target...]     default: every fuzz/fuzz_*.cpp
#
# Outputs under build/fuzz/ only (objects in obj/, binaries in bin/). Incremental: a file is
# recompiled when it or a header it includes changed. CXX_FUZZ overrides the compiler.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# FUZZ_FLAVOR=fast: coverage only, -O2, no ASan/UBSan (several times the executions per second, for
# long local runs; every invariant is still checked) -> build/fuzz-fast/. Default: the sanitized
# build CI runs -> build/fuzz/.
FLAVOR=${FUZZ_FLAVOR:-asan}
case "$FLAVOR" in
  asan) OUT="$ROOT/build/fuzz" ;;
  fast) OUT="$ROOT/build/fuzz-fast" ;;
  *) echo "fuzz/build.sh: FUZZ_FLAVOR must be asan or fast" >&2; exit 2 ;;
esac
CXX_FUZZ=${CXX_FUZZ:-clang++}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}

if ! command -v "$CXX_FUZZ" >/dev/null; then
  echo "fuzz/build.sh: $CXX_FUZZ not found (apt-get install -y clang)" >&2
  exit 2
fi
if [ ! -f /usr/include/nlohmann/json.hpp ]; then
  echo "fuzz/build.sh: nlohmann/json not found (apt-get install -y nlohmann-json3-dev)" >&2
  exit 2
fi

# -fno-sanitize=function: clang 14 cannot emit UBSan's function-type prologue for coroutine
# frames split under sanitizer coverage ("error: Cannot represent a difference across sections",
# seen here on every file with a coroutine); every other UBSan check stays on.
if [ "$FLAVOR" = fast ]; then
  FLAGS=(-std=c++20 -g -O2 -fsanitize=fuzzer -I"$ROOT/core/include" -Wall -Wextra -Werror)
else
  FLAGS=(-std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize=function -fno-sanitize-recover=all
         -fno-omit-frame-pointer -I"$ROOT/core/include" -Wall -Wextra -Werror)
fi

mkdir -p "$OUT/obj" "$OUT/bin"
# A change of compiler or flags rebuilds everything.
stamp="$CXX_FUZZ ${FLAGS[*]}"
if [ "$(cat "$OUT/obj/flags.txt" 2>/dev/null)" != "$stamp" ]; then
  rm -f "$OUT"/obj/*.o "$OUT"/obj/*.d "$OUT"/bin/*
  printf '%s' "$stamp" >"$OUT/obj/flags.txt"
fi

# stale OBJ DEPFILE: true when OBJ is missing or older than anything its depfile lists.
stale() {
  local obj=$1 dep=$2 f
  [ -f "$obj" ] && [ -f "$dep" ] || return 0
  for f in $(sed -e 's/^[^:]*://' -e 's/\\$//' "$dep"); do
    [ "$f" -nt "$obj" ] && return 0
  done
  return 1
}

compile() {
  local src=$1 obj=$2
  if stale "$obj" "${obj%.o}.d"; then
    echo "  CXX $(realpath --relative-to="$ROOT" "$src")"
    "$CXX_FUZZ" "${FLAGS[@]}" -MMD -MF "${obj%.o}.d" -c "$src" -o "$obj"
  fi
}

if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for f in "$ROOT"/fuzz/fuzz_*.cpp; do targets+=("$(basename "$f" .cpp)"); done
fi

# Compile the core and the targets, JOBS at a time.
units=()
for src in "$ROOT"/core/src/*.cpp; do units+=("$src:$OUT/obj/core_$(basename "$src" .cpp).o"); done
for t in "${targets[@]}"; do units+=("$ROOT/fuzz/$t.cpp:$OUT/obj/$t.o"); done
pids=()
for u in "${units[@]}"; do
  compile "${u%%:*}" "${u#*:}" &
  pids+=($!)
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
done
fail=0
for p in "${pids[@]}"; do wait "$p" || fail=1; done
[ "$fail" -eq 0 ] || { echo "fuzz/build.sh: compilation failed" >&2; exit 1; }

core_objs=("$OUT"/obj/core_*.o)
for t in "${targets[@]}"; do
  bin="$OUT/bin/$t"
  relink=0
  [ -f "$bin" ] || relink=1
  for o in "$OUT/obj/$t.o" "${core_objs[@]}"; do [ "$o" -nt "$bin" ] && relink=1; done
  if [ "$relink" -eq 1 ]; then
    echo "  LINK $(realpath --relative-to="$ROOT" "$bin")"
    "$CXX_FUZZ" "${FLAGS[@]}" "$OUT/obj/$t.o" "${core_objs[@]}" -o "$bin" ||
      { echo "fuzz/build.sh: link failed (libFuzzer's runtime is in libclang-rt-14-dev)" >&2; exit 1; }
  fi
done
