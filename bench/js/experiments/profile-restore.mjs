// snapshot() and restore() of the npm package as built (js/src + js/build), next to
// JSON.stringify + JSON.parse of the same object, under --cpu-prof:
//   node --cpu-prof --cpu-prof-dir=DIR experiments/profile-restore.mjs [tasks] [reps]
//   node experiments/summarize-profile.mjs DIR/<file>.cpuprofile
// For C++ names in the profile, link the module with --profiling-funcs, e.g.
//   cmake -S . -B build/wasm-prof -G Ninja -DCMAKE_BUILD_TYPE=Release \
//     -DCMAKE_TOOLCHAIN_FILE=/usr/share/emscripten/cmake/Modules/Platform/Emscripten.cmake \
//     -DCMAKE_EXE_LINKER_FLAGS=--profiling-funcs && cmake --build build/wasm-prof --target bgtasks_wasm
// (it copies into js/build; `cmake --build --preset wasm` after touching wasm/bindings.cpp puts the
// release module back).
import v8 from 'node:v8';
import vm from 'node:vm';
import { createTaskManager } from '../../../js/src/index.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');
const n = Number(process.argv[2] ?? 100000);
const reps = Number(process.argv[3] ?? 5);

const src = await createTaskManager({ clock: 'manual' });
for (let i = 0; i < n; i++) src.spawn({ thread: 't', type: 'tool_call', description: `task ${i}` }, async () => ({ ok: true, n: i }));
await src.runUntilIdle();
src.drain();
for (let rep = 0; rep < reps; rep++) {
  gc();
  let t0 = performance.now();
  const snap = src.snapshot('t');
  const snapshotMs = performance.now() - t0;
  const dst = await createTaskManager({ clock: 'manual' });
  gc();
  t0 = performance.now();
  const { added } = dst.restore('t', snap);
  const restoreMs = performance.now() - t0;
  dst.dispose();
  if (added !== n) throw new Error(`restore added ${added} of ${n}`);
  gc();
  t0 = performance.now();
  const text = JSON.stringify(snap);
  const stringifyMs = performance.now() - t0;
  gc();
  t0 = performance.now();
  JSON.parse(text);
  const parseMs = performance.now() - t0;
  const ratio = (snapshotMs + restoreMs) / (stringifyMs + parseMs);
  console.log(`${n} tasks: snapshot ${snapshotMs.toFixed(0)} ms, restore ${restoreMs.toFixed(0)} ms; ` +
    `stringify ${stringifyMs.toFixed(0)} ms, parse ${parseMs.toFixed(0)} ms; ratio ${ratio.toFixed(2)}x`);
}
src.dispose();
