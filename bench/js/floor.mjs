// The floor: a plain-JS task manager with the semantics the agent workload uses (docs/behaviour.md:
// tasks, running, cancelling, events): ids bg_N, one record per task (awaken's meta fields, status, result), spawn never runs
// the body (it starts at the next pump), one owner event queue of {kind, task_id, ...} objects in
// order, cancel flags (a task whose cancel was requested ends 'cancelled'), drain(thread?), and an
// async runUntilIdle() that returns once every settled promise has delivered. No wasm, no JSON,
// no AbortController: what any implementation of these rules has to pay at least.
// Payloads are kept by reference (bgtasks copies them through JSON; see run.mjs "payload copy").
// `copyValues: true` (the `floor-values` peer) copies each payload and result as bgtasks
// does (the package's own payloadValue: a sorted, checked copy), to price those semantics in plain JS.
import { payloadValue } from '../../js/src/copy.js';

const VALUE_LIMITS = { depth: 128, bytes: 64 * 1024 * 1024 };

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

class FloorContext {
  constructor(mgr, rec) {
    this.taskId = rec.task_id;
    this._mgr = mgr;
    this._rec = rec;
  }
  emit(eventType, payload) {
    return this._mgr._emit(this._rec, eventType, payload);
  }
  isCancelled() {
    return this._rec.cancel;
  }
}

export class FloorManager {
  constructor({ now = 0, copyValues = false } = {}) {
    this.copyValues = copyValues;
    this.counter = 0;
    this.time = now;
    this.tasks = new Map(); // id → record
    this.events = []; // owner inbox, FIFO: the event objects drain() returns
    this.eventThreads = []; // each event's owner thread, for drain(thread)
    this.pending = []; // records whose bodies start at the next pump
    this.activity = 0;
  }

  spawn({ thread, type, description = '' }, body) {
    if (typeof thread !== 'string' || thread === '') throw new TypeError('options.thread must be a non-empty string');
    if (typeof type !== 'string' || type === '') throw new TypeError('options.type must be a non-empty string');
    if (typeof body !== 'function') throw new TypeError('body must be a function');
    const id = `bg_${this.counter++}`;
    const rec = {
      task_id: id,
      owner_thread_id: thread,
      task_type: type,
      description,
      status: 'running',
      created_at_ms: this.time,
      completed_at_ms: undefined,
      result: undefined,
      error: undefined,
      parent_context: {},
      cancel: false,
      body,
    };
    this.tasks.set(id, rec);
    this.pending.push(rec);
    this.activity++;
    return id;
  }

  _emit(rec, eventType, payload) {
    if (rec.status !== 'running') return false;
    if (this.copyValues) payload = payloadValue(payload, 'payload', VALUE_LIMITS);
    this.events.push({ kind: 'custom', task_id: rec.task_id, event_type: eventType, payload: payload ?? null });
    this.eventThreads.push(rec.owner_thread_id);
    this.activity++;
    return true;
  }

  #start(rec) {
    const body = rec.body;
    rec.body = null;
    let promise;
    try {
      promise = Promise.resolve(body(new FloorContext(this, rec)));
    } catch (e) {
      promise = Promise.reject(e);
    }
    promise.then(
      (value) => this.#settle(rec, true, value),
      (error) => this.#settle(rec, false, error),
    );
  }

  #settle(rec, ok, value) {
    if (ok && this.copyValues) {
      try {
        value = payloadValue(value, 'result', VALUE_LIMITS);
      } catch (e) {
        ok = false;
        value = e;
      }
    }
    rec.completed_at_ms = this.time;
    this.eventThreads.push(rec.owner_thread_id);
    if (rec.cancel) {
      rec.status = 'cancelled';
      this.events.push({ kind: 'cancelled', task_id: rec.task_id });
    } else if (ok) {
      rec.status = 'completed';
      rec.result = value ?? null;
      this.events.push({ kind: 'completed', task_id: rec.task_id, result: rec.result });
    } else {
      rec.status = 'failed';
      rec.error = value instanceof Error ? value.message : String(value);
      this.events.push({ kind: 'failed', task_id: rec.task_id, error: rec.error });
    }
    this.activity++;
  }

  cancel(id) {
    const rec = this.tasks.get(id);
    if (!rec || rec.status !== 'running') return false;
    rec.cancel = true;
    return true;
  }

  get(id) {
    return this.tasks.get(id) ?? null;
  }

  /** Every pending event, or only `thread`'s, leaving the rest in order. */
  drain(thread) {
    if (thread === undefined) {
      const all = this.events;
      this.events = [];
      this.eventThreads = [];
      return all;
    }
    const out = [];
    const keep = [];
    const keepThreads = [];
    for (let i = 0; i < this.events.length; i++) {
      if (this.eventThreads[i] === thread) out.push(this.events[i]);
      else {
        keep.push(this.events[i]);
        keepThreads.push(this.eventThreads[i]);
      }
    }
    this.events = keep;
    this.eventThreads = keepThreads;
    return out;
  }

  async runUntilIdle() {
    for (;;) {
      const before = this.activity;
      while (this.pending.length > 0) {
        const batch = this.pending;
        this.pending = [];
        for (const rec of batch) this.#start(rec);
      }
      await nextTurn();
      if (this.activity === before && this.pending.length === 0) return;
    }
  }

  stats() {
    const s = { running: 0, completed: 0, failed: 0, cancelled: 0 };
    for (const rec of this.tasks.values()) s[rec.status]++;
    return s;
  }
}
