#!/usr/bin/env bash
# Builds, outside the repo's build, one Embind module with the repo's binding (Core) and the
# prototype binding (ProtoCore, proto-binding.cpp), with the flags of wasm/CMakeLists.txt plus
# --profiling-funcs (wasm function names in --cpu-prof). Output: build/bench-js/wasm-proto/.
# With --patched: core/src copied with experiments/*.patch applied (proposed core fixes, measured
# before they land), output build/bench-js/wasm-proto-patched/.
set -euo pipefail
export NODE_PATH=/usr/share/nodejs  # acorn for the JS optimizer (as the wasm preset)
root="$(cd "$(dirname "$0")/../../.." && pwd)"
out="$root/build/bench-js/wasm-proto"
coresrc="$root/core/src"
if [[ "${1:-}" == "--patched" ]]; then
  out="$root/build/bench-js/wasm-proto-patched"
  rm -rf "$out/src" && mkdir -p "$out/src/core" && cp -r "$root/core/src" "$out/src/core/"
  for p in "$root"/bench/js/experiments/*.patch; do patch -s -d "$out/src" -p1 < "$p"; done
  coresrc="$out/src/core/src"
fi
mkdir -p "$out/obj" "$out/include"
ln -sfn /usr/include/nlohmann "$out/include/nlohmann"
cxx=(em++ -I"$root/core/include" -isystem "$out/include" -O3 -DNDEBUG -fno-exceptions -std=c++20
     -Wno-deprecated-experimental-coroutine)
objs=()
for src in "$coresrc"/*.cpp "$root/wasm/bindings.cpp" "$root/bench/js/experiments/proto-binding.cpp"; do
  obj="$out/obj/$(basename "${src%.cpp}").o"
  [[ "$src" == */wasm/bindings.cpp ]] && obj="$out/obj/bindings.o"
  if [[ ! -f "$obj" || "$src" -nt "$obj" ]]; then "${cxx[@]}" -c "$src" -o "$obj" & fi
  objs+=("$obj")
  while (( $(jobs -r | wc -l) >= $(nproc) )); do wait -n; done
done
wait
em++ -O3 -fno-exceptions --profiling-funcs "${objs[@]}" -o "$out/bgtasks.mjs" \
  -lembind -sMODULARIZE=1 -sEXPORT_ES6=1 -sEXPORT_NAME=createBgTasksModule -sENVIRONMENT=web,worker \
  -sALLOW_MEMORY_GROWTH=1 -sFILESYSTEM=0 '-sINCOMING_MODULE_JS_API=[wasmBinary,locateFile,instantiateWasm]'
echo "built $out/bgtasks.mjs + bgtasks.wasm"
