// restore of n entries with parse-json-linear.patch applied, and what moving the snapshot text
// into wasm costs: Embind's std::string argument (a JS UTF-8 loop) vs TextEncoder.encodeInto into
// wasm memory (what a restore(ptr, len) binding would do).
//   node experiments/restore-transfer.mjs [n]
import { PATCHED_DIR, loadProtoModule } from './proto-manager.mjs';

const n = Number(process.argv[2] ?? 100000);
const M = await loadProtoModule(PATCHED_DIR);
const tasks = {};
for (let i = 0; i < n; i++)
  tasks[`bg_${i}`] = { task_id: `bg_${i}`, owner_thread_id: 't', task_type: 'tool_call', description: '', status: 'completed', result: { ok: true, n: i }, created_at_ms: 0, completed_at_ms: 0, parent_context: {} };
const snap = { tasks };
let t0 = performance.now();
const text = JSON.stringify(snap);
const stringifyMs = performance.now() - t0;
t0 = performance.now();
JSON.parse(text);
const parseMs = performance.now() - t0;
const probe = new M.Core(true, 0, -1, 0, false, 0, false);
t0 = performance.now();
probe.hasRunning(text); // one std::string argument of text.length bytes, nothing else to do
const embindMs = performance.now() - t0;
const bytes = new TextEncoder();
const buf = new Uint8Array(text.length * 3);
t0 = performance.now();
bytes.encodeInto(text, buf);
const encodeMs = performance.now() - t0;
const core = new M.Core(true, 0, -1, 0, false, 0, false);
t0 = performance.now();
const added = core.restore('t', text);
const restoreMs = performance.now() - t0;
if (added !== n) throw new Error(`restore added ${added}`);
console.log(`${n} entries, ${text.length} B: JSON.stringify ${stringifyMs.toFixed(0)} ms, JSON.parse ${parseMs.toFixed(0)} ms`);
console.log(`  Core.restore(text) with the patch: ${restoreMs.toFixed(0)} ms (${(restoreMs / parseMs).toFixed(2)}x JSON.parse)`);
console.log(`  of which the text as an Embind std::string: ~${embindMs.toFixed(0)} ms; TextEncoder.encodeInto of it: ${encodeMs.toFixed(0)} ms`);
