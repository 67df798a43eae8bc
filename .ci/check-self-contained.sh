#!/usr/bin/env bash
# The repository explains itself: nothing tracked may point at documents outside it (a briefing
# folder beside the clone, its decision or toolchain notes), at our own issue numbers, or at a
# path on some machine. Design and reasons live in docs/. Exits non-zero on a finding.
# The npm tarball is checked the same way by web_tests/pack/.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each pattern, and what it catches:
#   \.\./shared             the briefing folder beside a clone
#   DECISIONS|TOOLCHAIN\.md  its notes
#   /work/|/home/[a-z]|/root/  absolute paths of a machine (system paths such as /usr/share are fine)
#   issue N, issue #N       the project's own issue numbers (another project's "name#N" is fine)
exact='\.\./shared|DECISIONS|TOOLCHAIN\.md|/work/|/home/[a-z]|/root/'
any_case='\bissues? #?[0-9]+\b'
skip=(':!.ci/check-self-contained.sh' ':!**/package-lock.json')
found=0
git grep -nIE "$exact" -- . "${skip[@]}" && found=1
git grep -nIiE "$any_case" -- . "${skip[@]}" && found=1
if [ "$found" -ne 0 ]; then
  echo "check-self-contained: the lines above cite something outside the repository; link into docs/ instead" >&2
  exit 1
fi
echo "ok   nothing cites outside the repository ($(git ls-files | wc -l) tracked files)"
