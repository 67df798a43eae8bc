// The crossing alternatives, end to end on the agent workload (run build-wasm.sh first):
// today's manager.js on the repo's module and on the prototype module (same code, names kept:
// shows the two builds are equivalent), then the prototype manager with one alternative added at
// a time, each next to the floor. Interleaved repetitions, medians.
//   node experiments/crossing.mjs [--tasks=20000] [--reps=5]
import v8 from 'node:v8';
import vm from 'node:vm';
import { TaskManager, createTaskManager } from '../../../js/src/index.js';
import { bgtasksWorkload, floorWorkload } from '../peers.mjs';
import { PATCHED_DIR, loadProtoModule, protoFactory } from './proto-manager.mjs';

const arg = (name, dflt) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt);
const N = arg('tasks', 20000);
const REPS = arg('reps', 5);
const BATCH = 1000;
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

const protoModule = await loadProtoModule();
const patchedModule = await loadProtoModule(PATCHED_DIR);
const config = { manual: true, now: 0, retainFinished: -1, agentInboxCapacity: 0, agentDropOldest: false, ownerInboxCapacity: 0, ownerDropOldest: false };
const todayOnProto = async () => new TaskManager(protoModule, config);
const todayOnPatched = async () => new TaskManager(patchedModule, config);

const variants = [
  ['floor (plain JS)', (n) => floorWorkload(n, BATCH)],
  ['today: js/src + repo wasm', (n) => bgtasksWorkload(n, BATCH, createTaskManager)],
  ['today: js/src + proto wasm', (n) => bgtasksWorkload(n, BATCH, todayOnProto)],
  ['today: js/src + proto wasm with *.patch (linear parse_json)', (n) => bgtasksWorkload(n, BATCH, todayOnPatched)],
  ['A ints for ids/thread/type (payload JSON text)', (n) => bgtasksWorkload(n, BATCH, protoFactory({ emit: 'text' }))],
  ['B = A + no per-completion summary dump', (n) => bgtasksWorkload(n, BATCH, protoFactory({ emit: 'text', endHook: false }))],
  ['C = B + lazy AbortController', (n) => bgtasksWorkload(n, BATCH, protoFactory({ emit: 'text', endHook: false, lazyAbort: true }))],
  ['D = C + payload handles, records drain (stringify kept)', (n) => bgtasksWorkload(n, BATCH, protoFactory({ emit: 'handle', endHook: false, lazyAbort: true, validate: true }))],
  ['E = D without JSON.stringify of payloads', (n) => bgtasksWorkload(n, BATCH, protoFactory({ emit: 'handle', endHook: false, lazyAbort: true }))],
  ['F = E + batched emits+completions (1 call/pump)', (n) => bgtasksWorkload(n, BATCH, protoFactory({ emit: 'batch', endHook: false, lazyAbort: true }))],
];

for (const [, run] of variants) await run(2000); // warm-up
const samples = variants.map(() => []);
for (let r = 0; r < REPS; r++) {
  for (let i = 0; i < variants.length; i++) {
    gc();
    const res = await variants[i][1](N);
    if (res.completed !== N || res.events !== N * 11) throw new Error(`${variants[i][0]}: ${res.completed} completed, ${res.events} events`);
    samples[i].push((res.ms * 1000) / N);
  }
}
const floor = median(samples[0]);
const today = median(samples[1]);
console.log(`crossing alternatives: ${N} tasks x 10 emits, drain every ${BATCH}, ${REPS} reps, medians (Node ${process.version})`);
for (let i = 0; i < variants.length; i++) {
  const m = median(samples[i]);
  console.log(`${variants[i][0].padEnd(58)} ${m.toFixed(2).padStart(8)} us/task  ${(m / floor).toFixed(2).padStart(6)}x floor  ${(today / m).toFixed(2).padStart(5)}x faster than today`);
}
