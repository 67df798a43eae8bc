// bgtasks JS/wasm benchmarks: every figure next to its
// peer, measured in the same run, repetitions interleaved, medians reported.
//
//   npm ci (at the top) && cd bench/js && node run.mjs  # full run (a few minutes)
//   node run.mjs --smoke                             # tiny sizes, 1 repetition (CI: proves it runs)
//   node run.mjs --reps=7 --only=workload,drain      # sections: workload, drain, snapshot, autosave, cancel
//   node run.mjs --shared-heap                       # workload peers on one thread (no workers)
//
// Writes build/bench/results/js.json (relative to the repo root) and prints a table.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Worker } from 'node:worker_threads';
import { createTaskManager } from '../../js/src/index.js';
import { EMITS, PEERS } from './peers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../..');
const args = process.argv.slice(2);
const flag = (name) => args.find((a) => a === `--${name}` || a.startsWith(`--${name}=`));
const value = (name, dflt) => {
  const a = flag(name);
  return a && a.includes('=') ? a.slice(a.indexOf('=') + 1) : dflt;
};
const SMOKE = Boolean(flag('smoke'));
const REPS = Number(value('reps', SMOKE ? 1 : 5));
const ONLY = value('only', 'workload,drain,snapshot,autosave,cancel').split(',');
const OUT = path.resolve(repoRoot, value('out', 'build/bench/results/js.json'));
const SHARED_HEAP = Boolean(flag('shared-heap'));
const SIZES = SMOKE
  ? { workload: [200, 100], batch: 50, drainEvents: 200, snapshotTasks: 200, autosaveTasks: 200, cancel: [100, 1000] }
  : { workload: [100000, 20000], batch: 1000, drainEvents: 10000, snapshotTasks: 100000, autosaveTasks: 10000, cancel: [1000, 10000, 100000] };

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const round = (x, d = 3) => Number(x.toFixed(d));
function check(cond, message) {
  if (!cond) throw new Error(`benchmark check failed: ${message}`);
}

// ---- 1. the agent workload -------------------------------------------------------------------
// Each peer runs in its own worker thread (peer-worker.mjs: its own heap, GC and compiled code);
// the repetitions still alternate between them, one at a time. --shared-heap runs them all on
// this thread instead, as before (README.md, "Isolation").
function peerRunner(name) {
  if (SHARED_HEAP) {
    return {
      run: (n, batch) => {
        gc();
        return PEERS[name](n, batch);
      },
      close: async () => {},
    };
  }
  const worker = new Worker(new URL('./peer-worker.mjs', import.meta.url), { workerData: { peer: name } });
  let pending = null;
  worker.on('message', (m) => {
    const p = pending;
    pending = null;
    if (m.ok) p.resolve(m.result);
    else p.reject(new Error(`${name}: ${m.error}`));
  });
  worker.on('error', (e) => pending?.reject(e));
  return {
    run: (n, batch) =>
      new Promise((resolve, reject) => {
        pending = { resolve, reject };
        worker.postMessage({ n, batch });
      }),
    close: () => worker.terminate(),
  };
}

async function workload() {
  const out = {};
  const names = Object.keys(PEERS);
  const runners = Object.fromEntries(names.map((k) => [k, peerRunner(k)]));
  // Warm-up (JIT, wasm tier-up): one small untimed run of each.
  for (const name of names) await runners[name].run(Math.min(2000, SIZES.workload[0]), SIZES.batch);
  for (const n of SIZES.workload) {
    const samples = Object.fromEntries(names.map((k) => [k, []]));
    for (let r = 0; r < REPS; r++) {
      for (const name of names) {
        const res = await runners[name].run(n, SIZES.batch);
        check(res.completed === n, `${name}: ${res.completed} of ${n} tasks completed`);
        check(res.events === n * (EMITS + 1), `${name}: ${res.events} events, expected ${n * (EMITS + 1)}`);
        samples[name].push((res.ms * 1000) / n);
      }
    }
    const med = Object.fromEntries(names.map((k) => [k, median(samples[k])]));
    out[n] = {
      tasks: n,
      emits_per_task: EMITS,
      drain_every: SIZES.batch,
      us_per_task: Object.fromEntries(names.map((k) => [k, round(med[k])])),
      samples_us_per_task: Object.fromEntries(names.map((k) => [k, samples[k].map((x) => round(x))])),
      ratios: {
        bgtasks_vs_floor: round(med.bgtasks / med.floor, 2),
        bgtasks_vs_pqueue: round(med.bgtasks / med['p-queue'], 2),
        bgtasks_vs_effection: round(med.bgtasks / med.effection, 2),
        // Not targets: what copying payloads and results (events carry JSON values) costs plain JS, and
        // bgtasks against a floor that pays it too (README.md, "The floor with value copies").
        floor_values_vs_floor: round(med['floor-values'] / med.floor, 2),
        bgtasks_vs_floor_values: round(med.bgtasks / med['floor-values'], 2),
      },
      // Per repetition (peers ran back to back): steadier than the ratio of medians when the
      // machine's load drifts.
      paired_ratio_medians: {
        bgtasks_vs_floor: round(median(samples.bgtasks.map((x, r) => x / samples.floor[r])), 2),
        bgtasks_vs_pqueue: round(median(samples.bgtasks.map((x, r) => x / samples['p-queue'][r])), 2),
        bgtasks_vs_effection: round(median(samples.bgtasks.map((x, r) => x / samples.effection[r])), 2),
        floor_values_vs_floor: round(median(samples['floor-values'].map((x, r) => x / samples.floor[r])), 2),
      },
      targets: { bgtasks_vs_floor: '<= 1.5', bgtasks_vs_pqueue: '< 1', bgtasks_vs_effection: '< 1' },
      peers_isolated: !SHARED_HEAP,
    };
  }
  for (const r of Object.values(runners)) await r.close();
  return out;
}

// ---- 2. drain of 1e4 events vs JSON.parse of the same text -----------------------------------
async function drain() {
  const n = SIZES.drainEvents;
  const mgr = await createTaskManager({ clock: 'manual' });
  let ctx;
  mgr.spawn({ thread: 'agent-thread', type: 'tool_call' }, (c) => {
    ctx = c;
    return new Promise(() => {});
  });
  await mgr.runUntilIdle();
  const fill = () => {
    for (let k = 0; k < n; k++) ctx.emit('progress', { step: k, pct: k % 100, note: 'working' });
  };
  fill();
  const text = JSON.stringify(mgr.drain());
  const drainMs = [];
  const parseMs = [];
  for (let r = 0; r < Math.max(REPS, 3) * 3; r++) {
    fill();
    gc();
    let t0 = performance.now();
    const events = mgr.drain();
    drainMs.push(performance.now() - t0);
    check(events.length === n, `drain returned ${events.length} of ${n}`);
    gc();
    t0 = performance.now();
    const parsed = JSON.parse(text);
    parseMs.push(performance.now() - t0);
    check(parsed.length === n, 'parse');
  }
  mgr.dispose();
  const d = median(drainMs);
  const p = median(parseMs);
  return {
    events: n,
    json_bytes: Buffer.byteLength(text),
    drain_ms: round(d),
    json_parse_ms: round(p),
    drain_us_per_event: round((d * 1000) / n),
    json_parse_us_per_event: round((p * 1000) / n),
    ratio_drain_vs_parse: round(d / p, 2),
    target: '<= 1.5',
  };
}

// ---- 3. snapshot + restore of 1e5 tasks vs JSON.stringify + JSON.parse -----------------------
// restore() is first timed at n/20 and n/10 entries: if that scaling projects the full size past
// RESTORE_BUDGET_MS (a superlinear restore), the full-size restore is reported as a projection
// instead of being run (restore_measured: false), so a full bench run stays within minutes.
const RESTORE_BUDGET_MS = Number(value('restore-budget-ms', 60000));

function snapshotOf(snap, size) {
  const ids = Object.keys(snap.tasks).slice(0, size);
  const tasks = {};
  for (const id of ids) tasks[id] = snap.tasks[id];
  return { tasks };
}

async function timeRestore(snap, expected) {
  const dst = await createTaskManager({ clock: 'manual' });
  gc();
  const t0 = performance.now();
  const { added } = dst.restore('t', snap);
  const ms = performance.now() - t0;
  check(added === expected, `restore added ${added} of ${expected}`);
  dst.dispose();
  return ms;
}

async function snapshot() {
  const n = SIZES.snapshotTasks;
  const src = await createTaskManager({ clock: 'manual' });
  for (let i = 0; i < n; i++) src.spawn({ thread: 't', type: 'tool_call', description: `task ${i}` }, async () => ({ ok: true, n: i }));
  await src.runUntilIdle();
  src.drain();
  check(src.stats().completed === n, 'snapshot source: all completed');
  const first = src.snapshot('t');
  // Scaling probe of restore.
  const probe = {};
  for (const size of [Math.max(1, Math.floor(n / 20)), Math.max(2, Math.floor(n / 10))]) probe[size] = await timeRestore(snapshotOf(first, size), size);
  const [s1, s2] = Object.keys(probe).map(Number);
  const exponent = Math.log(probe[s2] / probe[s1]) / Math.log(s2 / s1);
  const projected = probe[s2] * (n / s2) ** Math.max(1, exponent);
  const measureRestore = projected <= RESTORE_BUDGET_MS;
  const s = { snapshot: [], restore: [], stringify: [], parse: [] };
  for (let r = 0; r < REPS; r++) {
    gc();
    let t0 = performance.now();
    const snap = src.snapshot('t');
    s.snapshot.push(performance.now() - t0);
    check(Object.keys(snap.tasks).length === n, 'snapshot size');
    if (measureRestore) s.restore.push(await timeRestore(snap, n));
    gc();
    t0 = performance.now();
    const text = JSON.stringify(snap);
    s.stringify.push(performance.now() - t0);
    gc();
    t0 = performance.now();
    const back = JSON.parse(text);
    s.parse.push(performance.now() - t0);
    check(back.tasks[`bg_${n - 1}`].status === 'completed', 'parse');
  }
  src.dispose();
  const m = Object.fromEntries(Object.entries(s).map(([k, v]) => [k, v.length ? median(v) : NaN]));
  const restoreMs = measureRestore ? m.restore : projected;
  const ours = m.snapshot + restoreMs;
  const json = m.stringify + m.parse;
  return {
    tasks: n,
    snapshot_ms: round(m.snapshot, 2),
    restore_ms: round(restoreMs, 2),
    restore_measured: measureRestore,
    restore_probe_ms: Object.fromEntries(Object.entries(probe).map(([k, v]) => [k, round(v, 2)])),
    restore_scaling_exponent: round(exponent, 2),
    json_stringify_ms: round(m.stringify, 2),
    json_parse_ms: round(m.parse, 2),
    ratio_snapshot_vs_stringify: round(m.snapshot / m.stringify, 2),
    ratio_restore_vs_parse: round(restoreMs / m.parse, 2),
    ratio_total: round(ours / json, 2),
    target: '<= 2',
  };
}

// ---- auto-save: spawn → complete with a FileStore attached, against the same without a store ----
// Tasks are spawned in batches of SIZES.batch with a macrotask between batches (an agent runtime
// spawns in response to events, not in one synchronous loop), on the system clock, each body
// completing at once: the time until every task has ended, then (attached) the final flush() that
// puts every end on disk, reported on its own.
async function autosaveRun(n, attach, dir) {
  const { FileStore } = await import('../../js/src/index.js');
  let writes = 0;
  class CountingStore extends FileStore {
    async saveText(...a) {
      writes++;
      return super.saveText(...a);
    }
  }
  const store = attach ? new CountingStore(dir) : null;
  const mgr = await createTaskManager(attach ? { store } : {});
  gc();
  const t0 = performance.now();
  const ends = [];
  for (let i = 0; i < n; i += SIZES.batch) {
    for (let j = i; j < Math.min(n, i + SIZES.batch); j++) ends.push(mgr.wait(mgr.spawn({ thread: 'bench', type: 'job' }, async () => j)));
    await new Promise((resolve) => setImmediate(resolve));
  }
  await Promise.all(ends);
  const ms = performance.now() - t0;
  await mgr.flush();
  const flushMs = performance.now() - t0 - ms;
  if (attach) check(Object.keys((await store.load('bench')).tasks).length === n, 'every task saved');
  mgr.dispose();
  return { ms, flushMs, writes };
}

async function autosave() {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const n = SIZES.autosaveTasks;
  const s = { plain: [], attached: [], flush: [], writes: [] };
  for (let r = 0; r < REPS; r++) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bgtasks-bench-autosave-'));
    try {
      const order = r % 2 ? [true, false] : [false, true];
      for (const attach of order) {
        const run = await autosaveRun(n, attach, dir);
        if (attach) {
          s.attached.push(run.ms);
          s.flush.push(run.flushMs);
          s.writes.push(run.writes);
        } else s.plain.push(run.ms);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const plain = median(s.plain);
  const attached = median(s.attached);
  return {
    tasks: n,
    batch: SIZES.batch,
    plain_ms: round(plain, 2),
    attached_ms: round(attached, 2),
    ratio_attached_vs_plain: round(attached / plain, 2),
    final_flush_ms: round(median(s.flush), 2),
    writes: median(s.writes),
    writes_per_task: round(median(s.writes) / n, 4),
  };
}

// ---- cancelAll over n live tasks, then every body settling, against AbortController -------------
// Each body waits on its signal and rejects with the reason; the peer is the same with n plain
// AbortControllers aborted in a loop. Both measured from the cancel to the last settle.
async function cancelRun(n) {
  const mgr = await createTaskManager({ clock: 'manual' });
  for (let i = 0; i < n; i++)
    mgr.spawn({ thread: 't', type: 'x' }, (ctx) => new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))));
  await mgr.runUntilIdle();
  gc();
  const t0 = performance.now();
  mgr.cancelAll('t');
  await mgr.runUntilIdle();
  const ms = performance.now() - t0;
  check(mgr.stats().cancelled === n, 'every task cancelled');
  mgr.dispose();
  return ms;
}

async function plainCancelRun(n) {
  const controllers = [];
  const ends = [];
  for (let i = 0; i < n; i++) {
    const c = new AbortController();
    controllers.push(c);
    ends.push(new Promise((_, reject) => c.signal.addEventListener('abort', () => reject(c.signal.reason))).catch(() => 'cancelled'));
  }
  gc();
  const t0 = performance.now();
  for (const c of controllers) c.abort();
  await Promise.all(ends);
  return performance.now() - t0;
}

async function cancel() {
  const out = {};
  for (const n of SIZES.cancel) {
    const ours = [];
    const plain = [];
    for (let r = 0; r < REPS; r++) {
      if (r % 2) {
        plain.push(await plainCancelRun(n));
        ours.push(await cancelRun(n));
      } else {
        ours.push(await cancelRun(n));
        plain.push(await plainCancelRun(n));
      }
    }
    out[n] = { tasks: n, us_per_task: round((median(ours) * 1000) / n, 3), plain_us_per_task: round((median(plain) * 1000) / n, 3) };
    out[n].ratio = round(out[n].us_per_task / out[n].plain_us_per_task, 2);
  }
  const sizes = Object.values(out);
  const flat = round(sizes.at(-1).us_per_task / sizes[0].us_per_task, 2);
  return { sizes, flatness_largest_vs_smallest: flat };
}

// ---- run, write, print -----------------------------------------------------------------------
function gitCommit() {
  try {
    return execFileSync('git', ['-C', repoRoot, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return null;
  }
}

const results = {
  bench: 'bgtasks-js',
  mode: SMOKE ? 'smoke' : 'full',
  date: new Date().toISOString(),
  commit: gitCommit(),
  node: process.version,
  v8: process.versions.v8,
  machine: { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length, platform: `${os.platform()} ${os.arch()}`, mem_gb: round(os.totalmem() / 2 ** 30, 1) },
  reps: REPS,
  peers: { effection: '4.1.1', 'p-queue': '9.3.5', floor: 'bench/js/floor.mjs', 'floor-values': 'bench/js/floor.mjs, copyValues' },
};
if (ONLY.includes('workload')) results.workload = await workload();
if (ONLY.includes('drain')) results.drain = await drain();
if (ONLY.includes('snapshot')) results.snapshot = await snapshot();
if (ONLY.includes('autosave')) results.autosave = await autosave();
if (ONLY.includes('cancel')) results.cancel = await cancel();

mkdirSync(path.dirname(OUT), { recursive: true });
writeFileSync(OUT, `${JSON.stringify(results, null, 2)}\n`);

const rows = [];
const mark = (ratio, limit, strict = false) => (strict ? ratio < limit : ratio <= limit) ? 'ok' : 'MISS';
for (const w of Object.values(results.workload ?? {}).sort((a, b) => b.tasks - a.tasks)) {
  const u = w.us_per_task;
  const tag = `workload ${w.tasks} tasks x ${w.emits_per_task} emits`;
  rows.push([`${tag}: bgtasks vs floor`, `${u.bgtasks} us/task`, `${u.floor} us/task`, `${w.ratios.bgtasks_vs_floor}x`, '<= 1.5x', mark(w.ratios.bgtasks_vs_floor, 1.5)]);
  rows.push([`${tag}: bgtasks vs p-queue+EventEmitter`, `${u.bgtasks} us/task`, `${u['p-queue']} us/task`, `${w.ratios.bgtasks_vs_pqueue}x`, '< 1x', mark(w.ratios.bgtasks_vs_pqueue, 1, true)]);
  rows.push([`${tag}: bgtasks vs Effection 4`, `${u.bgtasks} us/task`, `${u.effection} us/task`, `${w.ratios.bgtasks_vs_effection}x`, '< 1x', mark(w.ratios.bgtasks_vs_effection, 1, true)]);
  rows.push([`  floor with bgtasks' value copies vs floor`, `${u['floor-values']} us/task`, `${u.floor} us/task`, `${w.ratios.floor_values_vs_floor}x`, '', '']);
  rows.push([`  bgtasks vs floor with value copies`, `${u.bgtasks} us/task`, `${u['floor-values']} us/task`, `${w.ratios.bgtasks_vs_floor_values}x`, '', '']);
}
if (results.drain) {
  const d = results.drain;
  rows.push([`drain ${d.events} events vs JSON.parse (${d.json_bytes} B)`, `${d.drain_ms} ms`, `${d.json_parse_ms} ms`, `${d.ratio_drain_vs_parse}x`, '<= 1.5x', mark(d.ratio_drain_vs_parse, 1.5)]);
}
if (results.snapshot) {
  const s = results.snapshot;
  rows.push([`snapshot+restore ${s.tasks} tasks vs stringify+parse`, `${round(s.snapshot_ms + s.restore_ms, 1)} ms`, `${round(s.json_stringify_ms + s.json_parse_ms, 1)} ms`, `${s.ratio_total}x`, '<= 2x', mark(s.ratio_total, 2)]);
  rows.push([`  snapshot vs JSON.stringify`, `${s.snapshot_ms} ms`, `${s.json_stringify_ms} ms`, `${s.ratio_snapshot_vs_stringify}x`, '', '']);
  const restoreNote = s.restore_measured ? '' : ` (projected: restore scales n^${s.restore_scaling_exponent})`;
  rows.push([`  restore vs JSON.parse${restoreNote}`, `${s.restore_ms} ms`, `${s.json_parse_ms} ms`, `${s.ratio_restore_vs_parse}x`, '', '']);
}
if (results.autosave) {
  const a = results.autosave;
  rows.push([`spawn→complete ${a.tasks} tasks, FileStore attached vs none`, `${a.attached_ms} ms`, `${a.plain_ms} ms`, `${a.ratio_attached_vs_plain}x`, '<= 1.1x', mark(a.ratio_attached_vs_plain, 1.1)]);
  rows.push([`  then flush() (every end on disk)`, `${a.final_flush_ms} ms`, '', '', '', '']);
  rows.push([`  writes per task (coalesced)`, `${a.writes_per_task}`, '', '', '', '']);
}
if (results.cancel) {
  for (const c of results.cancel.sizes)
    rows.push([`cancelAll ${c.tasks} live tasks + settle vs AbortController loop`, `${c.us_per_task} us/task`, `${c.plain_us_per_task} us/task`, `${c.ratio}x`, '<= 2x', mark(c.ratio, 2)]);
  rows.push([`  per-task cost, largest vs smallest size`, `${results.cancel.flatness_largest_vs_smallest}x`, '', '', '<= 1.3x', mark(results.cancel.flatness_largest_vs_smallest, 1.3)]);
}
const head = ['figure', 'bgtasks', 'peer', 'ratio', 'target', ''];
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
const line = (r) => r.map((c, i) => String(c).padEnd(widths[i])).join('  ').trimEnd();
console.log(`bgtasks JS/wasm bench (${results.mode}, ${REPS} reps, medians) — Node ${results.node}, ${results.machine.cpu} x${results.machine.cores}, commit ${results.commit}`);
console.log(line(head));
console.log(widths.map((w) => '-'.repeat(w)).join('  '));
for (const r of rows) console.log(line(r));
if (results.workload) {
  for (const w of Object.values(results.workload)) console.log(`  ${w.tasks} tasks, us/task: ${Object.entries(w.us_per_task).map(([k, v]) => `${k} ${v}`).join(', ')}`);
}
console.log(`results: ${path.relative(repoRoot, OUT)}`);
