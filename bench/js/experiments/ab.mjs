// Two builds of the package in one run, interleaved repetitions, medians; next to the floor and
// p-queue (no Effection: this is the quick loop while changing the crossing).
//   node experiments/ab.mjs --before=/path/to/old/js/src/index.js [--tasks=20000,100000] [--reps=5]
import v8 from 'node:v8';
import vm from 'node:vm';
import { createTaskManager } from '../../../js/src/index.js';
import { EMITS, PEERS, bgtasksWorkload } from '../peers.mjs';

const arg = (name, dflt) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt;
const before = await import(arg('before'));
const SIZES = arg('tasks', '20000,100000').split(',').map(Number);
const REPS = Number(arg('reps', 5));
const BATCH = 1000;
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const runs = {
  before: (n) => bgtasksWorkload(n, BATCH, before.createTaskManager),
  after: (n) => bgtasksWorkload(n, BATCH, createTaskManager),
  floor: (n) => PEERS.floor(n, BATCH),
  'p-queue': (n) => PEERS['p-queue'](n, BATCH),
};
for (const run of Object.values(runs)) await run(2000);
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
  const paired = median(samples.after.map((x, i) => x / samples.before[i]));
  console.log(`-- ${n} tasks, us/task (x floor): ${Object.keys(runs).map((k) => `${k} ${m[k].toFixed(2)} (${(m[k] / m.floor).toFixed(2)}x)`).join(', ')}; after/before paired ${paired.toFixed(2)}`);
}
