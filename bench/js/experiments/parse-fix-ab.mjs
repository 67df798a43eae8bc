// A/B of parse-json-linear.patch: the repo's Core on the prototype module built from core/src as
// is vs with the patch (build-wasm.sh and build-wasm.sh --patched), interleaved, medians.
// emit (payload parse), complete (result parse) per call; restore of 5e3 and 1e4 entries.
import { PATCHED_DIR, PROTO_DIR, loadProtoModule } from './proto-manager.mjs';

const REPS = 5;
const K = 20000;
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const mods = { asis: await loadProtoModule(PROTO_DIR), patched: await loadProtoModule(PATCHED_DIR) };
const core = (M) => new M.Core(true, 0, -1, 0, false, 0, false);
const snapText = (n) => {
  const tasks = {};
  for (let i = 0; i < n; i++)
    tasks[`bg_${i}`] = { task_id: `bg_${i}`, owner_thread_id: 't', task_type: 'tool_call', description: `task ${i}`, status: 'completed', result: { ok: true, n: i }, created_at_ms: 0, completed_at_ms: 0, parent_context: {} };
  return JSON.stringify({ tasks });
};
const cases = {
  'emit (ns/call)': (M) => {
    const c = core(M);
    c.spawn('agent-thread', 'tool_call', '', false, '', '', false);
    const t0 = performance.now();
    for (let i = 0; i < K; i++) c.emit('bg_0', 'progress', '{"pct":30,"step":3}');
    const ns = ((performance.now() - t0) * 1e6) / K;
    c.delete();
    return ns;
  },
  'complete (ns/call)': (M) => {
    const c = core(M);
    for (let i = 0; i < K; i++) c.spawn('agent-thread', 'tool_call', '', false, '', '', false);
    const t0 = performance.now();
    for (let i = 0; i < K; i++) c.complete(`bg_${i}`, '{"ok":true,"n":1}');
    const ns = ((performance.now() - t0) * 1e6) / K;
    c.delete();
    return ns;
  },
};
for (const n of [5000, 10000]) {
  const text = snapText(n);
  cases[`restore ${n} entries (ms)`] = (M) => {
    const c = core(M);
    const t0 = performance.now();
    const added = c.restore('t', text);
    const ms = performance.now() - t0;
    if (added !== n) throw new Error(`restore: ${added}`);
    c.delete();
    return ms;
  };
}
for (const [name, fn] of Object.entries(cases)) {
  const s = { asis: [], patched: [] };
  for (let r = 0; r < REPS; r++) for (const k of ['asis', 'patched']) s[k].push(fn(mods[k]));
  const a = median(s.asis);
  const p = median(s.patched);
  console.log(`${name.padEnd(28)} as is ${a.toFixed(1).padStart(9)}  patched ${p.toFixed(1).padStart(9)}  ${(a / p).toFixed(2)}x`);
}
