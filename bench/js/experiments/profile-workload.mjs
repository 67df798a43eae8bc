// The agent workload under `node --cpu-prof`, today's js/src manager on the prototype module
// (same core and binding, built with --profiling-funcs so wasm frames carry C++ names):
//   node --cpu-prof --cpu-prof-dir=../../build/bench-js/prof experiments/profile-workload.mjs [tasks] [variant-json]
//   node experiments/summarize-profile.mjs ../../build/bench-js/prof/<file>.cpuprofile
import { TaskManager } from '../../../js/src/index.js';
import { bgtasksWorkload } from '../peers.mjs';
import { loadProtoModule, protoFactory } from './proto-manager.mjs';

const n = Number(process.argv[2] ?? 20000);
const variant = process.argv[3] ? JSON.parse(process.argv[3]) : null;
const module = await loadProtoModule();
const factory = variant
  ? protoFactory(variant)
  : async () => new TaskManager(module, { manual: true, now: 0, retainFinished: -1, agentInboxCapacity: 0, agentDropOldest: false, ownerInboxCapacity: 0, ownerDropOldest: false });
await bgtasksWorkload(2000, 1000, factory);
const r = await bgtasksWorkload(n, 1000, factory);
console.log(`${n} tasks: ${((r.ms * 1000) / n).toFixed(2)} us/task (${variant ? JSON.stringify(variant) : 'today'})`);
