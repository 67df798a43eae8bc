// A lower bound for the crossing as designed: today's js/src TaskManager over a stub Core written
// in JS that does the least any core must (hand out ids, keep events in order, keep each result's
// text, write the drain records) and nothing else: no wasm, no meta records, no store, no
// validation. Its gap to the floor is the cost of the package's JS side alone. The stub speaks the
// binding's protocol of its commit (wasm/bindings.cpp): update it with the binding.
//   node experiments/zero-core.mjs [--tasks=20000,100000] [--reps=5]
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { TaskManager, createTaskManager } from '../../../js/src/index.js';
import { bgtasksWorkload, floorWorkload } from '../peers.mjs';

const arg = (name, dflt) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt;
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const BATCH = 1000;

const HEADER = 0; // 4 doubles
const INPUT = 1 << 10; // input buffer: up to RECORDS
const RECORDS = 4 << 20; // drain records (doubles)
const TEXT = 40 << 20; // extras text
const SIZE = 48 << 20;

export function stubModule() {
  const HEAPU8 = new Uint8Array(SIZE);
  const HEAPF64 = new Float64Array(HEAPU8.buffer);
  class Core {
    #next = 0;
    #strings = [];
    #ev = new Float64Array(1 << 16); // [kind, handle, type, payload or result index]
    #n = 0;
    #results = new Uint8Array(1 << 20); // result texts back to back
    #resultEnd = 0;
    #completed = 0;
    #deleted = false;
    headerPtr() { return HEADER; }
    inputPtr(cap) {
      if (INPUT + cap > RECORDS) throw new Error('stub: input too big');
      return INPUT;
    }
    intern(s) { return this.#strings.push(s) - 1; }
    spawn() { return this.#next++; }
    #push(kind, h, t, x) {
      if (this.#n * 4 + 4 > this.#ev.length) {
        const grown = new Float64Array(this.#ev.length * 2);
        grown.set(this.#ev);
        this.#ev = grown;
      }
      const at = this.#n++ * 4;
      this.#ev[at] = kind;
      this.#ev[at + 1] = h;
      this.#ev[at + 2] = t;
      this.#ev[at + 3] = x;
    }
    emit(h, ty, _tyLen, payload) {
      this.#push(0, h, ty, payload);
      return 1;
    }
    // The result's text is kept (a core stores it); its completed event carries the JS copy's handle.
    complete(h, len, _want, handle) {
      while (this.#resultEnd + len > this.#results.length) {
        const grown = new Uint8Array(this.#results.length * 2);
        grown.set(this.#results);
        this.#results = grown;
      }
      for (let i = 0; i < len; i++) this.#results[this.#resultEnd + i] = HEAPU8[INPUT + i];
      this.#resultEnd += len;
      this.#push(1, h, -1, handle);
      this.#completed++;
      return 0;
    }
    runUntilIdle() { return 0; }
    nextDeadline() { return -1; }
    now() { return 0; }
    drain() {
      const n = this.#n;
      HEAPF64.set(this.#ev.subarray(0, 4 * n), RECORDS / 8);
      HEAPF64[HEADER] = RECORDS;
      HEAPF64[HEADER + 1] = TEXT;
      HEAPF64[HEADER + 2] = 0; // no extras: results and payloads are JS-side handles
      this.#n = 0;
      this.#resultEnd = 0;
      return n;
    }
    pendingEvents() { return this.#n; }
    stats() {
      const text = JSON.stringify({ completed: this.#completed });
      const w = new TextEncoder().encodeInto(text, HEAPU8.subarray(TEXT));
      HEAPF64[HEADER + 1] = TEXT;
      HEAPF64[HEADER + 2] = w.written;
      return w.written;
    }
    isDeleted() { return this.#deleted; }
    delete() { this.#deleted = true; }
  }
  return { HEAPU8, HEAPF64, Core, kMaxJsonDepth: 128, kMaxSnapshotBytes: 64 << 20 };
}

let stub = null; // one stub module per worker, as one wasm module
const CONFIG = { manual: true, now: 0, retainFinished: -1, agentInboxCapacity: 0, agentDropOldest: false, ownerInboxCapacity: 0, ownerDropOldest: false };
const VARIANTS = {
  'floor (plain JS)': (n) => floorWorkload(n, BATCH),
  'floor + bgtasks value copies': (n) => floorWorkload(n, BATCH, { copyValues: true }),
  'js/src over the stub core': (n) => {
    stub ??= stubModule();
    return bgtasksWorkload(n, BATCH, async () => new TaskManager(stub, CONFIG));
  },
  'js/src over the wasm core': (n) => bgtasksWorkload(n, BATCH, createTaskManager),
};

if (!isMainThread) {
  // One variant per worker (its own heap and compiled code), as run.mjs runs the peers.
  const run = VARIANTS[workerData.variant];
  parentPort.on('message', async (n) => parentPort.postMessage(await run(n)));
} else if (process.argv[1]?.endsWith('zero-core.mjs')) {
  const sizes = arg('tasks', '20000,100000').split(',').map(Number);
  const reps = Number(arg('reps', 5));
  const names = Object.keys(VARIANTS);
  const workers = names.map((variant) => {
    const w = new Worker(new URL(import.meta.url), { workerData: { variant } });
    return { w, run: (n) => new Promise((resolve) => { w.once('message', resolve); w.postMessage(n); }) };
  });
  for (const { run } of workers) await run(2000); // warm-up
  for (const n of sizes) {
    const times = names.map(() => []);
    for (let r = 0; r < reps; r++)
      for (let v = 0; v < names.length; v++) {
        const res = await workers[v].run(n);
        if (res.completed !== n || res.events !== n * 11) throw new Error(`${names[v]}: ${res.completed} completed, ${res.events} events`);
        times[v].push((res.ms * 1000) / n);
      }
    const floor = median(times[0]);
    console.log(`${n} tasks x 10 emits, median of ${reps} (us/task, ratio to the floor):`);
    for (let v = 0; v < names.length; v++) console.log(`  ${names[v].padEnd(30)} ${median(times[v]).toFixed(2).padStart(7)}  ${(median(times[v]) / floor).toFixed(2)}x`);
  }
  for (const { w } of workers) await w.terminate();
}
