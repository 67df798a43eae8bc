// What each piece of today's crossing costs, one operation at a time (ns/op, median of REPS runs
// of K operations): Embind calls with string vs int arguments, the JSON text round trip of a
// payload, AbortController, the argument checks, drain per event (JSON text vs records), spawn
// and complete with and without the per-completion summary dump. Needs build-wasm.sh (the module
// holds both the repo's Core and the prototype ProtoCore).
//   node experiments/micro.mjs [--json]
import v8 from 'node:v8';
import vm from 'node:vm';
import { checkOptions, checkString, toJson } from '../../../js/src/errors.js';
import { loadProtoModule } from './proto-manager.mjs';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');
const REPS = 7;
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const M = await loadProtoModule();
const results = {};

function bench(label, k, fn, { setup, teardown } = {}) {
  const xs = [];
  for (let r = 0; r < REPS + 1; r++) {
    const state = setup?.();
    gc();
    const t0 = performance.now();
    fn(k, state);
    const t = performance.now() - t0;
    teardown?.(state);
    if (r > 0) xs.push((t * 1e6) / k); // first run: warm-up
  }
  results[label] = Number(median(xs).toFixed(1));
  console.log(`${median(xs).toFixed(1).padStart(9)} ns/op  ${label}`);
}

const manual = () => new M.Core(true, 0, -1, 0, false, 0, false);
const payload = { step: 3, pct: 30 };
const payloadText = JSON.stringify(payload);
const K = 20000;

// A core with one live host task (bg_0) that can emit; events are drained outside the timing.
function emitterCore() {
  const core = manual();
  core.spawn('agent-thread', 'tool_call', '', false, '', '', false);
  return core;
}
function emitterProto() {
  const core = new M.ProtoCore(true);
  const th = core.intern('agent-thread');
  const ty = core.intern('tool_call');
  core.intern('progress');
  core.spawnI(th, ty);
  return core;
}
const free = (core) => core.delete();

console.log(`micro costs (Node ${process.version}; ns per operation, median of ${REPS})`);
console.log('-- Embind calls');
{
  const core = manual();
  bench('Core.now(): no argument, double back', K * 5, (k) => {
    for (let i = 0; i < k; i++) core.now();
  });
  bench("Core.hasRunning('agent-thread'): 1 string argument", K * 5, (k) => {
    for (let i = 0; i < k; i++) core.hasRunning('agent-thread');
  });
  bench('Core.isCancelRequested(id): 1 string (map lookup)', K * 5, (k) => {
    for (let i = 0; i < k; i++) core.isCancelRequested('bg_0');
  });
  bench('Core.enterTask(id) + leaveTask()', K * 5, (k) => {
    for (let i = 0; i < k; i++) {
      core.enterTask('bg_0');
      core.leaveTask();
    }
  });
  core.delete();
}
console.log('-- emit (into the core; drained untimed)');
bench("Core.emit('bg_0', 'progress', text): today, 3 strings + wasm JSON parse", K, (k, core) => {
  for (let i = 0; i < k; i++) core.emit('bg_0', 'progress', payloadText);
}, { setup: emitterCore, teardown: free });
bench('ProtoCore.emitT(n, ty, text): ints + 1 string + wasm JSON parse', K, (k, core) => {
  for (let i = 0; i < k; i++) core.emitT(0, 2, payloadText);
}, { setup: emitterProto, teardown: free });
bench('ProtoCore.emitH(n, ty, handle): ints only (payload kept in JS)', K, (k, core) => {
  for (let i = 0; i < k; i++) core.emitH(0, 2, i);
}, { setup: emitterProto, teardown: free });
bench('ProtoCore.flushOps: one emit of a batched call (shared buffer)', K, (k, core) => {
  const heap = M.HEAPF64;
  for (let done = 0; done < k; ) {
    const m = Math.min(4096, k - done);
    let base = core.sharedPtr() / 8;
    for (let i = 0; i < m; i++, base += 4) {
      heap[base] = 0;
      heap[base + 1] = 0;
      heap[base + 2] = 2;
      heap[base + 3] = done + i;
    }
    core.flushOps(m, '');
    done += m;
  }
}, { setup: emitterProto, teardown: free });
console.log('-- JS-side pieces of one emit');
bench('toJson(payload) (JSON.stringify + surrogate check)', K * 5, (k) => {
  for (let i = 0; i < k; i++) toJson({ step: i, pct: 30 }, 'payload');
});
bench('JSON.parse(payload text)', K * 5, (k) => {
  for (let i = 0; i < k; i++) JSON.parse(payloadText);
});
bench('structuredClone(payload)', K, (k) => {
  for (let i = 0; i < k; i++) structuredClone(payload);
});
bench("checkString('progress', ...) (typeof + lone-surrogate regex)", K * 5, (k) => {
  for (let i = 0; i < k; i++) checkString('progress', 'eventType');
});
bench('checkOptions(spawn options)', K * 5, (k) => {
  const allowed = ['thread', 'type', 'name', 'description', 'parent'];
  for (let i = 0; i < k; i++) checkOptions({ thread: 't', type: 'x' }, 'spawn options', allowed);
});
bench('new AbortController() (+ its signal)', K, (k) => {
  const keep = [];
  for (let i = 0; i < k; i++) keep.push(new AbortController());
});
bench('{} record + Map.set (what a lazy controller leaves)', K, (k) => {
  const m = new Map();
  for (let i = 0; i < k; i++) m.set(i, { controller: null, body: null });
});

console.log('-- drain, per event (10k custom events)');
const E = 10000;
const decoder = new TextDecoder();
bench('Core.drain(): wasm dump + TextDecoder + JSON.parse (today)', E, (k, core) => {
  const len = core.drain('', false, -1);
  const ptr = core.bufferPtr();
  JSON.parse(decoder.decode(M.HEAPU8.subarray(ptr, ptr + len)));
}, { setup: () => { const c = emitterCore(); for (let i = 0; i < E; i++) c.emit('bg_0', 'progress', payloadText); return c; }, teardown: free });
bench('  of which Core.drain() alone (wasm to_json + dump)', E, (k, core) => {
  core.drain('', false, -1);
}, { setup: () => { const c = emitterCore(); for (let i = 0; i < E; i++) c.emit('bg_0', 'progress', payloadText); return c; }, teardown: free });
{
  const c = emitterCore();
  for (let i = 0; i < E; i++) c.emit('bg_0', 'progress', payloadText);
  const len = c.drain('', false, -1);
  const ptr = c.bufferPtr();
  const bytes = M.HEAPU8.slice(ptr, ptr + len);
  const text = decoder.decode(bytes);
  c.delete();
  bench('  of which TextDecoder.decode', E, () => decoder.decode(bytes));
  bench('  of which JSON.parse (the peer of the drain target)', E, () => JSON.parse(text));
}
bench('ProtoCore.drainH(): records + JS objects (payload from a JS array)', E, (k, core) => {
  const payloads = core.payloads;
  const n = core.drainH();
  const heap = M.HEAPF64;
  let base = core.sharedPtr() / 8;
  const out = new Array(n);
  for (let i = 0; i < n; i++, base += 4) out[i] = { kind: 'custom', task_id: `bg_${heap[base + 1]}`, event_type: 'progress', payload: payloads[heap[base + 3]] };
}, { setup: () => { const c = emitterProto(); c.payloads = []; for (let i = 0; i < E; i++) c.emitH(0, 2, c.payloads.push({ step: i, pct: 30 }) - 1); return c; }, teardown: free });

console.log('-- spawn and complete (per task)');
bench('Core.spawn(7 args: 5 strings) (today)', K, (k, core) => {
  for (let i = 0; i < k; i++) core.spawn('agent-thread', 'tool_call', '', false, '', '', false);
}, { setup: manual, teardown: free });
bench('ProtoCore.spawnI(thread, type): interned ints', K, (k, core) => {
  for (let i = 0; i < k; i++) core.spawnI(0, 1);
}, { setup: () => { const c = new M.ProtoCore(true); c.intern('agent-thread'); c.intern('tool_call'); return c; }, teardown: free });
const spawned = (hook) => () => {
  const c = new M.ProtoCore(true);
  c.endHook(hook);
  c.intern('agent-thread');
  c.intern('tool_call');
  for (let i = 0; i < K; i++) c.spawnI(0, 1);
  return c;
};
bench("Core.complete(id, '{\"ok\":true,\"n\":1}') (today: + summary dump)", K, (k, core) => {
  for (let i = 0; i < k; i++) core.complete(`bg_${i}`, '{"ok":true,"n":1}');
}, { setup: () => { const c = manual(); for (let i = 0; i < K; i++) c.spawn('agent-thread', 'tool_call', '', false, '', '', false); return c; }, teardown: free });
bench('ProtoCore.completeI(n, text), summary dump on', K, (k, core) => {
  for (let i = 0; i < k; i++) core.completeI(i, '{"ok":true,"n":1}');
}, { setup: spawned(true), teardown: free });
bench('ProtoCore.completeI(n, text), summary dump off', K, (k, core) => {
  for (let i = 0; i < k; i++) core.completeI(i, '{"ok":true,"n":1}');
}, { setup: spawned(false), teardown: free });

if (process.argv.includes('--json')) console.log(JSON.stringify(results));
