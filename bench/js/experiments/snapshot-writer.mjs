// snapshot(thread) through the real binding (to_json DOM + dump) vs a writer specialised to the
// meta shape (ProtoCore.snapshotFast): same tasks, byte-identical text required; each timed with
// the JS side as snapshot() does it (TextDecoder + JSON.parse), next to JSON.stringify.
//   node experiments/snapshot-writer.mjs [n]
import { loadProtoModule } from './proto-manager.mjs';

const n = Number(process.argv[2] ?? 100000);
const REPS = 5;
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const M = await loadProtoModule();
const decoder = new TextDecoder();
const core = new M.Core(true, 0, -1, 0, false, 0, false);
const proto = new M.ProtoCore(true);
proto.endHook(false);
proto.intern('t');
proto.intern('tool_call');
for (let i = 0; i < n; i++) {
  core.spawn('t', 'tool_call', '', false, '', '', false);
  core.complete(`bg_${i}`, `{"ok":true,"n":${i}}`);
  proto.spawnI(0, 1);
  proto.completeI(i, `{"ok":true,"n":${i}}`);
}
const read = (c, len) => decoder.decode(M.HEAPU8.subarray(c.bufferPtr(), c.bufferPtr() + len));
const a = read(core, core.snapshot('t', true));
const b = read(proto, proto.snapshotFast('t'));
if (a !== b) {
  let i = 0;
  while (a[i] === b[i]) i++;
  throw new Error(`texts differ at ${i}: ${a.slice(i - 40, i + 40)} | ${b.slice(i - 40, i + 40)}`);
}
const t = { dom: [], domWasm: [], fast: [], fastWasm: [], stringify: [] };
let obj;
for (let r = 0; r < REPS; r++) {
  let t0 = performance.now();
  let len = core.snapshot('t', true);
  t.domWasm.push(performance.now() - t0);
  obj = JSON.parse(read(core, len));
  t.dom.push(performance.now() - t0);
  t0 = performance.now();
  len = proto.snapshotFast('t');
  t.fastWasm.push(performance.now() - t0);
  JSON.parse(read(proto, len));
  t.fast.push(performance.now() - t0);
  t0 = performance.now();
  JSON.stringify(obj);
  t.stringify.push(performance.now() - t0);
}
const m = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, median(v)]));
console.log(`snapshot of ${n} tasks (${a.length} B, byte-identical), medians of ${REPS}:`);
console.log(`  today (to_json DOM + dump):   ${m.dom.toFixed(1)} ms  (wasm ${m.domWasm.toFixed(1)} ms)  ${(m.dom / m.stringify).toFixed(2)}x JSON.stringify`);
console.log(`  specialised writer:           ${m.fast.toFixed(1)} ms  (wasm ${m.fastWasm.toFixed(1)} ms)  ${(m.fast / m.stringify).toFixed(2)}x JSON.stringify`);
console.log(`  JSON.stringify of the result: ${m.stringify.toFixed(1)} ms`);
