#!/usr/bin/env bash
# The bgtasks demo in one command, from a fresh clone on Debian 12:
#   bash demo/run.sh            (PORT=8080 bash demo/run.sh for another port)
# Installs what is missing (Emscripten and the other wasm build tools from Debian, the npm
# workspace at the top of the repository), builds the wasm module if js/build/bgtasks.wasm is
# missing, then serves the demo with Vite's dev server on http://127.0.0.1:$PORT/ (Ctrl-C stops it).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${PORT:-5173}"
cd "$ROOT"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "Node.js >= 20.19 with npm is required (https://nodejs.org or your distribution's package)." >&2
  exit 1
fi
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' || {
  echo "Node.js >= 20.19 is required by Vite 8 (found $(node --version))." >&2
  exit 1
}

# Debian packages the wasm build needs: em++ (emscripten), cmake, ninja, nlohmann/json headers.
missing=()
command -v em++ >/dev/null 2>&1 || missing+=(emscripten)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v ninja >/dev/null 2>&1 || missing+=(ninja-build)
[ -f /usr/include/nlohmann/json.hpp ] || missing+=(nlohmann-json3-dev)
if [ ! -f js/build/bgtasks.wasm ] && [ "${#missing[@]}" -gt 0 ]; then
  echo "== apt-get install ${missing[*]}"
  $SUDO apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

if [ ! -f js/build/bgtasks.wasm ] || [ ! -f js/build/bgtasks.mjs ]; then
  echo "== building the wasm module (cmake --preset wasm) → js/build/"
  cmake --preset wasm
  cmake --build --preset wasm
fi

# One npm workspace at the top level installs js/'s dependencies, vite and the bgtasks link.
if [ ! -d node_modules/proper-lockfile ] || [ ! -x node_modules/.bin/vite ] || [ ! -e node_modules/bgtasks ]; then
  echo "== npm ci (the workspace at the top level)"
  npm ci --no-audit --no-fund
fi

echo
echo "  bgtasks demo: http://127.0.0.1:${PORT}/"
echo
cd demo
exec npx vite --host 127.0.0.1 --port "$PORT" --strictPort
