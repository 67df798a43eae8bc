#!/usr/bin/env bash
# Every test of bgtasks, from a fresh Debian 12 machine: installs what is missing, builds, runs.
# README.md gives this command; .ci/run calls it. Build outputs stay under build/.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "== apt: toolchain and libraries"
$SUDO apt-get update -q
$SUDO DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  g++ cmake ninja-build libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev

echo "== native build + GoogleTest (RelWithDebInfo)"
cmake --preset native
cmake --build --preset native
ctest --preset native -j2

echo "== native build + GoogleTest under AddressSanitizer, LeakSanitizer and UBSan"
cmake --preset native-asan
cmake --build --preset native-asan
ctest --preset native-asan -j2

echo "== all tests passed"
