// The agent workload under `node --cpu-prof` on the npm package as built (js/src + js/build):
//   node --cpu-prof --cpu-prof-dir=DIR experiments/profile-package.mjs [tasks]
//   node experiments/summarize-profile.mjs DIR/<file>.cpuprofile
import { bgtasksWorkload } from '../peers.mjs';

const n = Number(process.argv[2] ?? 20000);
await bgtasksWorkload(2000, 1000);
const r = await bgtasksWorkload(n, 1000);
console.log(`${n} tasks: ${((r.ms * 1000) / n).toFixed(2)} us/task (package)`);
