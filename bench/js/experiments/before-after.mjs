// The agent workload and drain with two builds of the package in one run (interleaved reps,
// medians, and the median of the per-repetition after/before ratios), next to the plain-JS floor,
// p-queue and Effection: the crossing before and after.
//   node experiments/before-after.mjs --before=/path/to/old/js/src/index.js [--tasks=20000,100000] [--reps=3] [--quick]
// --quick: the workload only, without Effection (the loop while changing the crossing).
// The "before" package is a checkout of js/ with its own js/build (bgtasks.mjs + .wasm).
import v8 from 'node:v8';
import vm from 'node:vm';
import { createTaskManager } from '../../../js/src/index.js';
import { EMITS, PEERS, bgtasksWorkload } from '../peers.mjs';

const arg = (name, dflt) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt;
const before = await import(arg('before'));
const SIZES = arg('tasks', '20000,100000').split(',').map(Number);
const REPS = Number(arg('reps', 3));
const QUICK = process.argv.includes('--quick');
const BATCH = 1000;
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

const runs = {
  'bgtasks before': (n) => bgtasksWorkload(n, BATCH, before.createTaskManager),
  'bgtasks after': (n) => bgtasksWorkload(n, BATCH, createTaskManager),
  floor: (n) => PEERS.floor(n, BATCH),
  'p-queue': (n) => PEERS['p-queue'](n, BATCH),
};
if (!QUICK) runs.effection = (n) => PEERS.effection(n, BATCH);
for (const run of Object.values(runs)) await run(2000);
console.log(`Node ${process.version}, ${REPS} reps, medians; workload: N tasks x ${EMITS} emits, drain every ${BATCH}`);
for (const n of SIZES) {
  const samples = Object.fromEntries(Object.keys(runs).map((k) => [k, []]));
  for (let r = 0; r < REPS; r++)
    for (const [name, run] of Object.entries(runs)) {
      gc();
      const res = await run(n);
      if (res.completed !== n || res.events !== n * (EMITS + 1)) throw new Error(`${name}: ${res.completed} completed, ${res.events} events`);
      samples[name].push((res.ms * 1000) / n);
    }
  const m = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
  const paired = median(samples['bgtasks after'].map((x, r) => x / samples['bgtasks before'][r]));
  console.log(`-- ${n} tasks (us/task; ratio to floor, p-queue${QUICK ? '' : ', Effection'}); after/before per repetition: ${paired.toFixed(2)}`);
  for (const k of Object.keys(runs)) {
    const vsEffection = QUICK ? '' : ` ${(m[k] / m.effection).toFixed(2).padStart(6)}x effection`;
    console.log(`${k.padEnd(16)} ${m[k].toFixed(2).padStart(8)}  ${(m[k] / m.floor).toFixed(2).padStart(6)}x floor ${(m[k] / m['p-queue']).toFixed(2).padStart(6)}x p-queue${vsEffection}`);
  }
}
if (QUICK) process.exit(0);

// drain of 1e4 events vs JSON.parse of the same events' JSON text
async function drainRatio(create) {
  const n = 10000;
  const mgr = await create({ clock: 'manual' });
  let ctx;
  mgr.spawn({ thread: 'agent-thread', type: 'tool_call' }, (c) => ((ctx = c), new Promise(() => {})));
  await mgr.runUntilIdle();
  const fill = () => {
    for (let k = 0; k < n; k++) ctx.emit('progress', { step: k, pct: k % 100, note: 'working' });
  };
  fill();
  const text = JSON.stringify(mgr.drain());
  const d = [];
  const p = [];
  for (let r = 0; r < 9; r++) {
    fill();
    gc();
    let t0 = performance.now();
    mgr.drain();
    d.push(performance.now() - t0);
    gc();
    t0 = performance.now();
    JSON.parse(text);
    p.push(performance.now() - t0);
  }
  mgr.dispose();
  return { drain: median(d), parse: median(p) };
}
for (const [name, create] of [['before', before.createTaskManager], ['after', createTaskManager]]) {
  const r = await drainRatio(create);
  console.log(`drain 1e4 events ${name.padEnd(6)}: ${r.drain.toFixed(2)} ms vs JSON.parse ${r.parse.toFixed(2)} ms = ${(r.drain / r.parse).toFixed(2)}x`);
}
