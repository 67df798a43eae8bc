// snapshot('t') of n finished tasks, today's js/src manager on the prototype module (C++ names
// under --cpu-prof); prints the time at n/4, n/2 and n (scaling).
//   node --cpu-prof --cpu-prof-dir=../../build/bench-js/prof-snap experiments/profile-snapshot.mjs [n]
import { TaskManager } from '../../../js/src/index.js';
import { loadProtoModule } from './proto-manager.mjs';

const n = Number(process.argv[2] ?? 20000);
const module = await loadProtoModule();
const make = () => new TaskManager(module, { manual: true, now: 0, retainFinished: -1, agentInboxCapacity: 0, agentDropOldest: false, ownerInboxCapacity: 0, ownerDropOldest: false });
const src = make();
let done = 0;
for (const size of [n / 4, n / 2, n]) {
  for (; done < size; done++) src.spawn({ thread: 't', type: 'tool_call', description: `task ${done}` }, async () => ({ ok: true }));
  await src.runUntilIdle();
  src.drain();
  const t0 = performance.now();
  const snap = src.snapshot('t');
  const ms = performance.now() - t0;
  const t1 = performance.now();
  JSON.parse(JSON.stringify(snap));
  console.log(`snapshot of ${size}: ${ms.toFixed(1)} ms (${((ms * 1000) / size).toFixed(2)} us/task); stringify+parse ${(performance.now() - t1).toFixed(1)} ms`);
}
