#!/usr/bin/env bash
# Lint: every tracked C++ file is laid out as .clang-format says (clang-format 14), and every
# JavaScript file passes ESLint (eslint.config.mjs; needs `npm ci` at the top level first).
# Exits non-zero on a finding; `clang-format -i FILE` and `npx eslint --fix` fix most.
set -euo pipefail
cd "$(dirname "$0")/.."

clang_format="$(command -v clang-format-14 || command -v clang-format || true)"
[ -n "$clang_format" ] || { echo "check-format: clang-format not found (Debian: clang-format)" >&2; exit 1; }
mapfile -t cpp < <(git ls-files "*.cpp" "*.hpp" "*.h" "*.cc")
if ! "$clang_format" --dry-run --Werror "${cpp[@]}"; then
  echo "check-format: the C++ above is not as .clang-format lays it out; run: $clang_format -i <file>" >&2
  exit 1
fi
echo "ok   clang-format: ${#cpp[@]} C++ files"
npx --no-install eslint .
echo "ok   eslint"
