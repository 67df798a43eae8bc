// One peer of the agent workload in its own worker thread (its own V8 isolate: heap, GC and
// compiled code), driven by run.mjs. Run in one heap, the peers taxed each other: Effection's
// garbage and the collections it triggers aged the others' compiled code (V8 flushes the bytecode
// of functions idle across several GCs), so whoever ran after it paid for compiling again inside
// its timed region. And with its own heap, a peer needs no forced collection before a repetition
// (run.mjs did one, which also shrank V8's young generation: the first batches of every run then
// promoted more and scavenged more often, a fixed cost that made 2e4-task runs dearer per task
// than 1e5-task ones). bench/js/README.md, "Isolation".
import { parentPort, workerData } from 'node:worker_threads';
import { PEERS } from './peers.mjs';

const run = PEERS[workerData.peer];
if (!run) throw new Error(`peer-worker: unknown peer ${workerData.peer}`);

parentPort.on('message', async ({ n, batch }) => {
  try {
    parentPort.postMessage({ ok: true, result: await run(n, batch) });
  } catch (e) {
    parentPort.postMessage({ ok: false, error: e?.stack ?? String(e) });
  }
});
