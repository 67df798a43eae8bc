# Shared steps of the C++ example tests (examples/native/test.sh, examples/asio/test.sh), sourced
# after `set -euo pipefail`: build and install the core, build an example against the installed
# package as a user would (find_package(bgtasks), warnings as errors), run it, check its output.
#
# In:  example_name (the directory under examples/), optionally BGTASKS_PREFIX (install there and
#      keep it; otherwise a temp prefix) and BGTASKS_BUILD_TYPE (default RelWithDebInfo).
# Out: here, repo, work (a temp dir removed on exit), prefix, out (the example's output file).

here="$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/bgtasks-${example_name}-example.XXXXXX")"
trap 'rm -rf "$work"' EXIT
prefix="${BGTASKS_PREFIX:-$work/prefix}"
build_type="${BGTASKS_BUILD_TYPE:-RelWithDebInfo}"
out="$work/out.txt"
gen=()
command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
jobs="$(nproc 2>/dev/null || echo 2)"
fail=0

# Configures, builds and `cmake --install`s the repo's core into $prefix (tests and benchmarks off).
install_core() {
  echo "== core: configure + build ($build_type) in $work/core, cmake --install → $prefix"
  cmake -S "$repo" -B "$work/core" "${gen[@]}" -DCMAKE_BUILD_TYPE="$build_type" \
    -DBGTASKS_BUILD_TESTS=OFF -DBGTASKS_BUILD_BENCH=OFF >"$work/core-configure.log" \
    || { cat "$work/core-configure.log"; exit 1; }
  cmake --build "$work/core" -j"$jobs"
  cmake --install "$work/core" --prefix "$prefix"
}

# The core installed in $prefix when a test before this one put it there; otherwise install_core.
use_installed_core() {
  if [ -f "$prefix/lib/cmake/bgtasks/bgtasksConfig.cmake" ]; then
    echo "== core: using the bgtasks installed in $prefix"
  else
    install_core
  fi
}

# build_and_run <executable>: configures examples/$example_name against $prefix, builds it with
# -Werror (the installed headers must compile cleanly in a user's build), runs it into $out.
build_and_run() {
  echo "== examples/$example_name: configure against the installed package, build"
  cmake -S "$here" -B "$work/example" "${gen[@]}" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_CXX_FLAGS="-Wall -Wextra -Werror" >"$work/example-configure.log" \
    || { cat "$work/example-configure.log"; exit 1; }
  cmake --build "$work/example"
  echo "== examples/$example_name: run"
  local status=0
  timeout 20 "$work/example/$1" >"$out" 2>&1 || status=$?
  cat "$out"
  [ "$status" -eq 0 ] || { echo "FAIL: $1 exited with $status" >&2; exit 1; }
}

expect() {  # expect <description> <grep -E pattern>: some output line matches
  if grep -Eq -- "$2" "$out"; then echo "ok   $1"; else echo "FAIL $1 (no line matches: $2)" >&2; fail=1; fi
}

# expect_below <label> <sed pattern capturing a number> <limit> <unit>: a reported figure is small.
expect_below() {
  local value
  value="$(sed -n "s/$2/\\1/p" "$out")"
  if [ -n "$value" ] && [ "$value" -lt "$3" ]; then
    echo "ok   $1: $value $4"
  else
    echo "FAIL $1: '$value' $4 (want < $3)" >&2; fail=1
  fi
}

finish() {
  [ "$fail" -eq 0 ] || exit 1
  echo "== examples/$example_name: passed"
}
