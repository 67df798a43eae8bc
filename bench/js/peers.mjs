// The agent workload: N tasks, each emits 10 custom events and resolves with a small
// result; every BATCH spawned tasks the driver lets them run to completion and drains the owner
// inbox. One function per implementation, same body, same batching; each returns what it saw so
// run.mjs can check that every task completed and every event (10 custom + 1 terminal) arrived.
import { EventEmitter } from 'node:events';
import { createSignal, run, spawn } from 'effection';
import PQueue from 'p-queue';
import { createTaskManager } from '../../js/src/index.js';
import { FloorManager } from './floor.mjs';

export const EMITS = 10;

// The body every peer runs (Effection's is the generator twin below).
function makeBody(i) {
  return async (ctx) => {
    for (let k = 0; k < EMITS; k++) ctx.emit('progress', { step: k, pct: k * 10 });
    return { ok: true, n: i };
  };
}

/** bgtasks through its public API (manual clock). `createManager` lets an A/B run swap in another build. */
export async function bgtasksWorkload(n, batch, createManager = createTaskManager) {
  const mgr = await createManager({ clock: 'manual' });
  const t0 = performance.now();
  let events = 0;
  for (let b = 0; b < n; b += batch) {
    const end = Math.min(n, b + batch);
    for (let i = b; i < end; i++) mgr.spawn({ thread: 'agent-thread', type: 'tool_call' }, makeBody(i));
    await mgr.runUntilIdle();
    events += mgr.drain().length;
  }
  const ms = performance.now() - t0;
  const completed = mgr.stats().completed;
  mgr.dispose();
  return { ms, events, completed };
}

/**
 * The plain-JS floor (floor.mjs). `{ copyValues: true }`: the same floor copying each payload and
 * result as bgtasks does (the `floor-values` peer: what bgtasks' value semantics cost in plain JS).
 */
export async function floorWorkload(n, batch, options = {}) {
  const mgr = new FloorManager(options);
  const t0 = performance.now();
  let events = 0;
  for (let b = 0; b < n; b += batch) {
    const end = Math.min(n, b + batch);
    for (let i = b; i < end; i++) mgr.spawn({ thread: 'agent-thread', type: 'tool_call' }, makeBody(i));
    await mgr.runUntilIdle();
    events += mgr.drain().length;
  }
  const ms = performance.now() - t0;
  return { ms, events, completed: mgr.stats().completed };
}

/** p-queue (concurrency Infinity) runs the bodies; an EventEmitter carries the events to the owner. */
export async function pqueueWorkload(n, batch) {
  const queue = new PQueue({ concurrency: Infinity });
  const bus = new EventEmitter();
  let inbox = [];
  bus.on('event', (e) => inbox.push(e));
  const records = new Map();
  let counter = 0;
  let completed = 0;
  const spawnTask = (body) => {
    const id = `bg_${counter++}`;
    const controller = new AbortController();
    const rec = { task_id: id, status: 'running', result: undefined, error: undefined, controller };
    records.set(id, rec);
    const ctx = { taskId: id, signal: controller.signal, emit: (type, payload) => bus.emit('event', { kind: 'custom', task_id: id, event_type: type, payload }) };
    queue.add(async () => {
      try {
        const result = await body(ctx);
        rec.status = controller.signal.aborted ? 'cancelled' : 'completed';
        rec.result = result;
        completed++;
        bus.emit('event', { kind: 'completed', task_id: id, result });
      } catch (e) {
        rec.status = 'failed';
        rec.error = e.message;
        bus.emit('event', { kind: 'failed', task_id: id, error: e.message });
      }
    });
    return id;
  };
  const t0 = performance.now();
  let events = 0;
  for (let b = 0; b < n; b += batch) {
    const end = Math.min(n, b + batch);
    for (let i = b; i < end; i++) spawnTask(makeBody(i));
    await queue.onIdle();
    const drained = inbox;
    inbox = [];
    events += drained.length;
  }
  const ms = performance.now() - t0;
  return { ms, events, completed };
}

/**
 * Effection 4: each task is a spawned operation that sends its events on one Signal; the owner is
 * subscribed to it and drains the batch by reading the subscription until every task of the batch
 * has reported its terminal event. Records keep status/result like the others.
 */
export async function effectionWorkload(n, batch) {
  const t0 = performance.now();
  const { events, completed } = await run(function* () {
    const signal = createSignal();
    const sub = yield* signal;
    const records = new Map();
    let counter = 0;
    let events = 0;
    let completed = 0;
    for (let b = 0; b < n; b += batch) {
      const end = Math.min(n, b + batch);
      for (let i = b; i < end; i++) {
        const id = `bg_${counter++}`;
        const rec = { task_id: id, status: 'running', result: undefined };
        records.set(id, rec);
        // eslint-disable-next-line require-yield -- an Effection task that never suspends
        yield* spawn(function* () {
          for (let k = 0; k < EMITS; k++) signal.send({ kind: 'custom', task_id: id, event_type: 'progress', payload: { step: k, pct: k * 10 } });
          const result = { ok: true, n: i };
          rec.status = 'completed';
          rec.result = result;
          signal.send({ kind: 'completed', task_id: id, result });
        });
      }
      let done = 0;
      while (done < end - b) {
        const next = yield* sub.next();
        events++;
        if (next.value.kind === 'completed') done++;
      }
      completed += done;
    }
    return { events, completed };
  });
  return { ms: performance.now() - t0, events, completed };
}

export const PEERS = {
  bgtasks: bgtasksWorkload,
  floor: floorWorkload,
  'floor-values': (n, batch) => floorWorkload(n, batch, { copyValues: true }),
  'p-queue': pqueueWorkload,
  effection: effectionWorkload,
};
