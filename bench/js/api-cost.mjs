// Per-task cost of the public JS API in Node (manual clock, so only the core and the wrapper are
// measured): spawn → complete, and emit → drain. Median of REPS runs; prints JSON.
import { performance } from 'node:perf_hooks';
import { createTaskManager } from '../../js/src/index.js';

const TASKS = Number(process.env.TASKS ?? 20000);
const EVENTS = Number(process.env.EVENTS ?? 100000);
const REPS = Number(process.env.REPS ?? 5);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function spawnComplete() {
  const mgr = await createTaskManager({ clock: 'manual' });
  const t0 = performance.now();
  for (let i = 0; i < TASKS; i++) mgr.spawn({ thread: 't', type: 'job' }, async () => i);
  await mgr.runUntilIdle();
  const t1 = performance.now();
  if (mgr.stats().completed !== TASKS) throw new Error('not all tasks completed');
  mgr.dispose();
  return ((t1 - t0) * 1000) / TASKS;
}

async function emitDrain() {
  const mgr = await createTaskManager({ clock: 'manual' });
  let ctx;
  mgr.spawn({ thread: 't', type: 'job' }, (c) => {
    ctx = c;
    return new Promise(() => {});
  });
  await mgr.runUntilIdle();
  const payload = { pct: 50 };
  const t0 = performance.now();
  for (let i = 0; i < EVENTS; i++) ctx.emit('progress', payload);
  const events = mgr.drain();
  const t1 = performance.now();
  if (events.length !== EVENTS) throw new Error('lost events');
  mgr.dispose();
  return ((t1 - t0) * 1000) / EVENTS;
}

const spawn = [];
const emit = [];
for (let r = 0; r < REPS; r++) {
  spawn.push(await spawnComplete());
  emit.push(await emitDrain());
}
console.log(JSON.stringify({ node: process.version, tasks: TASKS, events: EVENTS, reps: REPS,
  spawn_complete_us_per_task: +median(spawn).toFixed(3), emit_drain_us_per_event: +median(emit).toFixed(3) }));
