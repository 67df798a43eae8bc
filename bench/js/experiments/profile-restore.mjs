// restore() alone under --cpu-prof (C++ names): where the time of a snapshot restore goes.
//   node --cpu-prof --cpu-prof-dir=../../build/bench-js/prof-restore experiments/profile-restore.mjs [entries]
import { TaskManager } from '../../../js/src/index.js';
import { loadProtoModule } from './proto-manager.mjs';

const n = Number(process.argv[2] ?? 5000);
const module = await loadProtoModule();
const make = () => new TaskManager(module, { manual: true, now: 0, retainFinished: -1, agentInboxCapacity: 0, agentDropOldest: false, ownerInboxCapacity: 0, ownerDropOldest: false });
const tasks = {};
for (let i = 0; i < n; i++)
  tasks[`bg_${i}`] = { task_id: `bg_${i}`, owner_thread_id: 't', task_type: 'tool_call', description: `task ${i}`, status: 'completed', result: { ok: true, n: i }, created_at_ms: 0, completed_at_ms: 0, parent_context: {} };
const dst = make();
const t0 = performance.now();
dst.restore('t', { tasks });
console.log(`restore ${n}: ${(performance.now() - t0).toFixed(1)} ms`);
