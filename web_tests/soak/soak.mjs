// Load and soak of the wasm build through the public JS API (memory stays
// flat with retention on). The counterpart of native_tests/soak/load_soak.cpp.
//
//   node soak/soak.mjs            short mode (CI): 2e4 soak cycles
//   node soak/soak.mjs --long     1e6 soak cycles
//   options: --cycles N, --load-tasks N, --load-emits K (default 1e4 × 100 in both modes)
//
// Soak: cycles of spawn → settle → drain on a manual-clock manager with retainFinished: 100, in
// batches of 100 cycles (mostly bodies that emit and complete; some fail, some sleep and are
// cancelled, some are forgotten explicitly). After warm-up (10% of the cycles) and at the end it
// samples
//   - the wasm memory size: HEAPU8.length of the manager's own module instance. js/src does not
//     expose the module, so the WebAssembly.Memory is picked up when the module is instantiated
//     (WebAssembly.instantiate is wrapped until then); its buffer.byteLength is HEAPU8.length;
//   - live objects: stats() (live_bodies, running, retained finished tasks, inbox depth) and the
//     number of tasks list() gives per thread;
//   - the JS heap after a forced GC (for the JS wrapper's own maps and closures).
// It fails when the wasm memory grows > 5% after warm-up, when any live-object count grows, or when
// the JS heap grows by more than 5% and 4 MB.
//
// Load: N tasks × K emits of {seq: k}, interleaved with ctx.sleep() and awaits, drained between
// pumps; checks no event lost, none reordered per task_id, and exactly one terminal event per task
// after its customs.
//
// Prints one JSON line; the process exits 1 on failure. `runSoak()` is the same as a function
// (node/soak-short.test.mjs uses it); call it before any other manager is created in the process.
import { pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createTaskManager } from 'bgtasks';

// ---- the wasm memory of the managers' module --------------------------------------------------
const memories = [];
let instantiateHooked = false;

function hookInstantiate() {
  if (instantiateHooked) return;
  instantiateHooked = true;
  const collect = (imports, result) => {
    const instance = result instanceof WebAssembly.Instance ? result : result?.instance;
    for (const v of Object.values(instance?.exports ?? {})) if (v instanceof WebAssembly.Memory) memories.push(v);
    for (const ns of Object.values(imports ?? {}))
      for (const v of Object.values(ns ?? {})) if (v instanceof WebAssembly.Memory) memories.push(v);
  };
  const { instantiate, instantiateStreaming } = WebAssembly;
  WebAssembly.instantiate = async function hooked(source, imports, ...rest) {
    const result = await instantiate.call(this, source, imports, ...rest);
    collect(imports, result);
    return result;
  };
  if (instantiateStreaming) {
    WebAssembly.instantiateStreaming = async function hooked(source, imports, ...rest) {
      const result = await instantiateStreaming.call(this, source, imports, ...rest);
      collect(imports, result);
      return result;
    };
  }
}

/** HEAPU8.length of the bgtasks module (the one every manager of this process shares). */
function heapBytes() {
  if (memories.length !== 1)
    throw new Error(
      `soak: expected to capture exactly one WebAssembly.Memory, got ${memories.length} ` +
        '(was a manager created before runSoak()?)',
    );
  return memories[0].buffer.byteLength;
}

// ---- a forced GC for the JS heap figure -----------------------------------------------------
function getGc() {
  if (typeof globalThis.gc === 'function') return globalThis.gc;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc');
}

function jsHeap(gc) {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

// ---- helpers ------------------------------------------------------------------------------------
const THREADS = ['thread-a', 'thread-b'];
const RETAIN = 100;

function cpuSeconds(since) {
  const { user, system } = process.cpuUsage(since);
  return Number(((user + system) / 1e6).toFixed(2));
}

function isAbort(e) {
  return e?.name === 'AbortError';
}

function liveObjects(mgr) {
  const st = mgr.stats();
  return {
    live_bodies: st.live_bodies,
    running: st.running,
    retained: st.completed + st.failed + st.cancelled,
    owner_inbox_depth: st.owner_inbox_depth,
    listed: THREADS.reduce((n, t) => n + mgr.list(t).length, 0),
  };
}

// ---- soak -----------------------------------------------------------------------------------------
async function soak(cycles, gc) {
  const mgr = await createTaskManager({ clock: 'manual', retainFinished: RETAIN });
  const batch = 100;
  const warmupAt = Math.max(20 * RETAIN, Math.floor(cycles / 10));
  const errors = [];
  const err = (c, what) => {
    if (errors.length < 5) errors.push(`cycle ${c}: ${what}`);
  };
  let events = 0;
  let expectedEvents = 0;
  let warm = null;
  let maxHeapAfterWarmup = 0;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  try {
    let c = 0;
    while (c < cycles) {
      const end = Math.min(cycles, c + batch);
      const sleepers = [];
      const toForget = [];
      for (; c < end; c++) {
        const thread = THREADS[c % 2];
        const cycle = c;
        switch (c % 10) {
          case 6: // fails
            mgr.spawn({ thread, type: 'soak' }, async (ctx) => {
              ctx.emit('tick', { seq: 0 });
              throw new Error(`soak failure ${cycle}`);
            });
            break;
          case 7: // sleeps on the manual clock, completes after advance()
            mgr.spawn({ thread, type: 'soak' }, async (ctx) => {
              ctx.emit('tick', { seq: 0 });
              await ctx.sleep(1);
              return { cycle };
            });
            break;
          case 8: // cancelled while asleep
            sleepers.push(
              mgr.spawn({ thread, type: 'soak' }, async (ctx) => {
                ctx.emit('tick', { seq: 0 });
                try {
                  await ctx.sleep(60_000);
                } catch (e) {
                  if (!isAbort(e)) throw e;
                  return 'late value, discarded';
                }
                throw new Error('sleep was not cancelled');
              }),
            );
            break;
          default: {
            const id = mgr.spawn({ thread, type: 'soak' }, async (ctx) => {
              ctx.emit('tick', { seq: 0 });
              return { cycle };
            });
            if (c % 10 === 5) toForget.push(id);
          }
        }
        expectedEvents += 2;
      }
      await mgr.runUntilIdle(); // bodies start; sleepers sleep
      for (const id of sleepers) if (!mgr.cancel(id)) err(c, `cancel(${id}) said false`);
      mgr.advance(1);
      await mgr.runUntilIdle();
      for (const id of toForget) if (!mgr.forget(id) && mgr.get(id) !== null) err(c, `forget(${id}) said false`);
      const drained = mgr.drain();
      events += drained.length;
      for (const e of drained) if (typeof e.task_id !== 'string') err(c, 'event without task_id');
      const live = liveObjects(mgr);
      if (live.live_bodies !== 0 || live.running !== 0) err(c, `tasks still running: ${JSON.stringify(live)}`);
      if (live.retained > THREADS.length * RETAIN || live.listed > THREADS.length * RETAIN)
        err(c, `retention kept too many: ${JSON.stringify(live)}`);
      if (live.owner_inbox_depth !== 0) err(c, 'owner inbox not empty after drain');
      if (warm === null && c >= warmupAt) {
        warm = { heap: heapBytes(), js_heap: jsHeap(gc), live, cycle: c };
      }
      if (warm !== null) maxHeapAfterWarmup = Math.max(maxHeapAfterWarmup, heapBytes());
    }
    const end = { heap: heapBytes(), js_heap: jsHeap(gc), live: liveObjects(mgr) };
    const seconds = (performance.now() - t0) / 1000;
    const cpu = cpuSeconds(cpu0);
    warm ??= end;
    const growthPct = (100 * (end.heap - warm.heap)) / warm.heap;
    const jsGrowth = end.js_heap - warm.js_heap;
    const liveGrew = Object.keys(end.live).filter((k) => end.live[k] > warm.live[k]);
    if (events !== expectedEvents) err(cycles, `drained ${events} events, expected ${expectedEvents}`);
    if (growthPct > 5) err(cycles, `wasm memory grew ${growthPct.toFixed(2)}% after warm-up`);
    if (liveGrew.length > 0) err(cycles, `live objects grew: ${liveGrew.join(', ')}`);
    if (jsGrowth > 4 * 2 ** 20 && jsGrowth > 0.05 * warm.js_heap)
      err(cycles, `JS heap grew ${(jsGrowth / 2 ** 20).toFixed(1)} MB after warm-up`);
    return {
      cycles,
      retain_finished: RETAIN,
      batch,
      events,
      events_expected: expectedEvents,
      warmup_cycle: warm.cycle ?? cycles,
      heapu8_warmup: warm.heap,
      heapu8_end: end.heap,
      heapu8_max_after_warmup: maxHeapAfterWarmup,
      growth_pct: Number(growthPct.toFixed(3)),
      live_warmup: warm.live,
      live_end: end.live,
      js_heap_warmup: warm.js_heap,
      js_heap_end: end.js_heap,
      js_heap_growth_pct: Number(((100 * jsGrowth) / warm.js_heap).toFixed(2)),
      seconds: Number(seconds.toFixed(2)),
      cpu_seconds: cpu,
      errors,
      ok: errors.length === 0,
    };
  } finally {
    mgr.dispose();
  }
}

// ---- load -----------------------------------------------------------------------------------------
async function load(tasks, emits) {
  const mgr = await createTaskManager({ clock: 'manual' });
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const next = new Map(); // task_id → next expected seq
  const terminal = new Map(); // task_id → terminal events seen
  let events = 0;
  let lost = 0;
  let reordered = 0;
  let terminalEarly = 0;
  let terminalDuplicate = 0;
  let bad = 0;
  let maxBatch = 0;
  let rounds = 0;
  const check = (batch) => {
    maxBatch = Math.max(maxBatch, batch.length);
    for (const e of batch) {
      const id = e.task_id;
      if (!next.has(id)) {
        bad++;
        continue;
      }
      if (e.kind === 'custom') {
        events++;
        const seq = e.payload?.seq;
        if (e.event_type !== 'tick' || typeof seq !== 'number') bad++;
        if (terminal.get(id) > 0) reordered++;
        if (seq !== next.get(id)) reordered++;
        next.set(id, Math.max(next.get(id), seq + 1));
      } else if (e.kind === 'completed') {
        const n = terminal.get(id) + 1;
        terminal.set(id, n);
        if (n > 1) terminalDuplicate++;
        else if (next.get(id) !== emits) terminalEarly++;
        if (e.result?.emitted !== emits) bad++;
      } else {
        bad++;
        terminal.set(id, terminal.get(id) + 1);
      }
    }
  };
  try {
    for (let i = 0; i < tasks; i++) {
      const id = mgr.spawn({ thread: THREADS[i % 2], type: 'load' }, async (ctx) => {
        for (let k = 0; k < emits; k++) {
          if (!ctx.emit('tick', { seq: k })) throw new Error('emit refused');
          const h = (i * 131 + k * 7) % 16;
          if (h < 2) await ctx.sleep(1 + (h % 3)); // timers on the manual clock
          else if (h < 6) await null; // a microtask hop: other bodies interleave
        }
        return { emitted: emits };
      });
      next.set(id, 0);
      terminal.set(id, 0);
    }
    let finished = 0;
    while (finished < tasks) {
      await mgr.runUntilIdle();
      check(mgr.drain());
      mgr.advance(1);
      finished = 0;
      for (const n of terminal.values()) if (n > 0) finished++;
      if (++rounds > 100_000) break; // never: bodies sleep at most 3 ms at a time
    }
    await mgr.runUntilIdle();
    check(mgr.drain());
    let terminalMissing = 0;
    for (const [id, n] of next) {
      if (n < emits) lost += emits - n;
      if (terminal.get(id) === 0) terminalMissing++;
    }
    const st = mgr.stats();
    const ok =
      lost === 0 &&
      reordered === 0 &&
      terminalEarly === 0 &&
      terminalDuplicate === 0 &&
      terminalMissing === 0 &&
      bad === 0 &&
      events === tasks * emits &&
      st.live_bodies === 0;
    return {
      tasks,
      emits_per_task: emits,
      events,
      events_expected: tasks * emits,
      lost,
      reordered,
      terminal_missing: terminalMissing,
      terminal_duplicate: terminalDuplicate,
      terminal_early: terminalEarly,
      bad_events: bad,
      rounds,
      max_drain_batch: maxBatch,
      heapu8_after: heapBytes(),
      seconds: Number(((performance.now() - t0) / 1000).toFixed(2)),
      cpu_seconds: cpuSeconds(cpu0),
      ok,
    };
  } finally {
    mgr.dispose();
  }
}

// ---- entry points -------------------------------------------------------------------------------------
/**
 * Runs the soak then the load check; resolves with the figures (`ok` false on failure). Must run
 * before any other manager of this process loads the wasm module.
 */
export async function runSoak({ mode = 'short', cycles, loadTasks = 10_000, loadEmits = 100 } = {}) {
  hookInstantiate();
  const gc = getGc();
  const soakCycles = cycles ?? (mode === 'long' ? 1_000_000 : 20_000);
  const s = await soak(soakCycles, gc);
  const l = await load(loadTasks, loadEmits);
  return { target: 'wasm', mode, ok: s.ok && l.ok, soak: s, load: l, node: process.version };
}

function parseArgs(argv) {
  const opts = { mode: 'short' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v < 0) throw new Error(`${a} needs a number`);
      return Math.floor(v);
    };
    if (a === '--short' || a === '--long') opts.mode = a.slice(2);
    else if (a === '--cycles') opts.cycles = num();
    else if (a === '--load-tasks') opts.loadTasks = num();
    else if (a === '--load-emits') opts.loadEmits = num();
    else throw new Error(`usage: node soak/soak.mjs [--short|--long] [--cycles N] [--load-tasks N] [--load-emits K]`);
  }
  return opts;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const figures = await runSoak(parseArgs(process.argv.slice(2)));
  console.log(JSON.stringify(figures));
  if (!figures.ok) {
    console.error('soak: FAILED', figures.soak.errors.join('; '));
    process.exitCode = 1;
  }
}
