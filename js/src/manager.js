// The JS face of one core manager. The core (C++, in wasm) owns ids, records, lineage, order,
// cancellation and events; this class adapts: it runs async bodies, settles them into the core,
// aborts signals when the core says a cancel was requested, and pumps the core's poll loop.
import { loadModule } from '#load-module';
import { AgentInbox, CancelState, TaskContext } from './context.js';
import {
  BgTasksError,
  checkCount,
  checkFunction,
  checkMs,
  checkOptions,
  checkString,
  coreError,
  toJson,
} from './errors.js';

const MANAGER_OPTIONS = ['clock', 'now', 'retainFinished', 'agentInboxCapacity', 'agentInboxOverflow', 'ownerInboxCapacity', 'ownerInboxOverflow'];
const SPAWN_OPTIONS = ['thread', 'type', 'name', 'description', 'parent'];
const AGENT_OPTIONS = ['thread', 'name', 'description', 'parent'];
const PARENT_FIELDS = ['task_id', 'run_id', 'call_id', 'agent_id'];
const CODE_INVALID_ARGUMENT = 13; // ERROR_CODES index: the core refused a JSON text
const INT32_MAX = 2 ** 31 - 1; // the binding takes these counts as int

let modulePromise;
function getModule() {
  modulePromise ??= loadModule();
  return modulePromise;
}

// The safety net for managers never disposed: their Core is deleted when they are collected.
const finalizer =
  typeof FinalizationRegistry === 'function'
    ? new FinalizationRegistry((core) => {
        if (!core.isDeleted()) core.delete();
      })
    : null;

const decoder = new TextDecoder();

function abortError(message = 'The task was cancelled') {
  return new DOMException(message, 'AbortError');
}

function errorMessage(e) {
  if (e instanceof Error) return e.message || e.name;
  if (typeof e === 'string') return e;
  try {
    return JSON.stringify(e) ?? String(e);
  } catch {
    return String(e);
  }
}

// One macrotask turn: every settled promise has delivered by then.
const nextTurn =
  typeof setImmediate === 'function'
    ? () => new Promise((resolve) => setImmediate(resolve))
    : (() => {
        const channel = new MessageChannel();
        const queue = [];
        channel.port1.onmessage = () => queue.shift()?.();
        return () =>
          new Promise((resolve) => {
            queue.push(resolve);
            channel.port2.postMessage(0);
          });
      })();

function overflowPolicy(value, name) {
  if (value === undefined || value === 'reject') return false;
  if (value === 'dropOldest') return true;
  throw new TypeError(`${name} must be 'reject' or 'dropOldest'`);
}

/**
 * Creates a task manager (one wasm Core). Options: clock ('system' | 'manual'), now (manual start,
 * ms), retainFinished, agentInboxCapacity/agentInboxOverflow, ownerInboxCapacity/ownerInboxOverflow.
 */
export async function createTaskManager(options = {}) {
  checkOptions(options, 'options', MANAGER_OPTIONS);
  const clock = options.clock ?? 'system';
  if (clock !== 'system' && clock !== 'manual') throw new TypeError(`options.clock must be 'system' or 'manual'`);
  if (options.now !== undefined && clock !== 'manual') throw new TypeError('options.now needs clock: "manual"');
  const config = {
    manual: clock === 'manual',
    now: options.now === undefined ? 0 : checkMs(options.now, 'options.now'),
    retainFinished: options.retainFinished === undefined ? -1 : checkCount(options.retainFinished, 'options.retainFinished', INT32_MAX),
    agentInboxCapacity: options.agentInboxCapacity === undefined ? 0 : checkCount(options.agentInboxCapacity, 'options.agentInboxCapacity', INT32_MAX),
    agentDropOldest: overflowPolicy(options.agentInboxOverflow, 'options.agentInboxOverflow'),
    ownerInboxCapacity: options.ownerInboxCapacity === undefined ? 0 : checkCount(options.ownerInboxCapacity, 'options.ownerInboxCapacity', INT32_MAX),
    ownerDropOldest: overflowPolicy(options.ownerInboxOverflow, 'options.ownerInboxOverflow'),
  };
  return new TaskManager(await getModule(), config);
}

export class TaskManager {
  #module;
  #core;
  #manual;
  #disposed = false;
  #live = new Map(); // id → { cancel, ctx, body, recvWaiters } for bodies that have not settled
  #pendingStarts = []; // ids whose bodies start at the next pump (spawn never runs a body)
  #endWaiters = new Map(); // id → [resolve]
  #timers = new Map(); // timer number → { resolve, reject }
  #eventWaiters = [];
  #activity = 0;
  #pumpQueued = false;
  #wakeTimer = null;
  #wakeDeadline = -1;

  /** @internal use createTaskManager */
  constructor(module, config) {
    this.#module = module;
    this.#manual = config.manual;
    this.#core = new module.Core(
      config.manual,
      config.now,
      config.retainFinished,
      config.agentInboxCapacity,
      config.agentDropOldest,
      config.ownerInboxCapacity,
      config.ownerDropOldest,
    );
    finalizer?.register(this, this.#core, this);
  }

  // ---- marshalling: bulk results are JSON text in wasm memory ----
  #readJson(length) {
    const ptr = this.#core.bufferPtr();
    return JSON.parse(decoder.decode(this.#module.HEAPU8.subarray(ptr, ptr + length)));
  }

  #alive() {
    if (this.#disposed) throw new Error('TaskManager is disposed');
  }

  #thread(value, name = 'thread') {
    return checkString(value, name, { nonEmpty: true });
  }

  #id(value, name = 'id') {
    return checkString(value, name);
  }

  // ---- spawning ----
  /** Spawns a task whose body is an async function of its context; returns its id at once. */
  spawn(options, body) {
    return this.#spawn(options, body, false, null);
  }

  /** Spawns a sub-agent (task_type 'sub_agent') with its own inbox (ctx.inbox). */
  spawnAgent(options, body) {
    return this.#spawn(options, body, true, null);
  }

  /** @internal ctx.spawn / ctx.spawnAgent */
  _spawnChild(parentTaskId, options, body, agent) {
    return this.#spawn(options, body, agent, parentTaskId);
  }

  #spawn(options, body, agent, parentTaskId) {
    this.#alive();
    const method = agent ? 'spawnAgent' : 'spawn';
    checkOptions(options, `${method} options`, agent ? AGENT_OPTIONS : SPAWN_OPTIONS);
    const thread = this.#thread(options.thread, 'options.thread');
    const type = agent ? 'sub_agent' : checkString(options.type, 'options.type', { nonEmpty: true });
    const hasName = options.name !== undefined && options.name !== null;
    const name = hasName ? checkString(options.name, 'options.name') : '';
    const description = options.description === undefined ? '' : checkString(options.description, 'options.description');
    const parent = options.parent === undefined ? '' : parentJson(options.parent);
    checkFunction(body, 'body');

    const core = this.#core;
    if (parentTaskId !== null) core.enterTask(parentTaskId);
    let id;
    try {
      id = core.spawn(thread, type, name, hasName, description, parent, agent);
    } finally {
      if (parentTaskId !== null) core.leaveTask();
    }
    if (id === '') throw coreError(core, core.lastErrorCode());
    const cancel = new CancelState();
    const ctx = new TaskContext(this, id, cancel, agent ? new AgentInbox(this, id) : undefined);
    this.#live.set(id, { cancel, ctx, body, recvWaiters: [] });
    this.#pendingStarts.push(id);
    this.#touch();
    return id;
  }

  // Runs the synchronous part of each pending body with the task as ambient parent
  // (DECISIONS.md §6), then lets its promise settle the task.
  #startPending() {
    while (this.#pendingStarts.length > 0) {
      const batch = this.#pendingStarts;
      this.#pendingStarts = [];
      for (const id of batch) this.#start(id);
    }
  }

  #start(id) {
    const rec = this.#live.get(id);
    if (!rec || rec.body === null) return;
    const body = rec.body;
    rec.body = null;
    let promise;
    this.#core.enterTask(id);
    try {
      promise = Promise.resolve(body(rec.ctx));
    } catch (e) {
      promise = Promise.reject(e);
    } finally {
      this.#core.leaveTask();
    }
    promise.then(
      (value) => this.#settle(id, true, value),
      (error) => this.#settle(id, false, error),
    );
  }

  #settle(id, ok, value) {
    if (this.#disposed) return;
    const core = this.#core;
    let code = 0;
    if (ok) {
      let text;
      try {
        text = toJson(value, 'result');
      } catch (e) {
        ok = false;
        value = e;
      }
      if (ok) {
        code = core.complete(id, text);
        if (code === CODE_INVALID_ARGUMENT) code = core.failTask(id, `result refused: ${core.lastErrorMessage()}`);
      }
    }
    if (!ok) code = core.failTask(id, errorMessage(value));
    void code; // TaskTerminated only if the core already settled it (cannot happen for a live body)
    const rec = this.#live.get(id);
    this.#live.delete(id);
    if (rec) for (const wake of rec.recvWaiters.splice(0)) wake(null);
    const waiters = this.#endWaiters.get(id);
    if (waiters) {
      this.#endWaiters.delete(id);
      const summary = this.#readJson(core.lastEnded()); // retention may already have dropped the task
      for (const resolve of waiters) resolve(summary);
    }
    this.#wakeEventWaiters();
    this.#touch();
  }

  // ---- bodies' calls (through TaskContext) ----
  /** @internal */
  _emit(id, eventType, payload) {
    this.#alive();
    checkString(eventType, 'eventType');
    const text = toJson(payload, 'payload');
    const r = this.#core.emit(id, eventType, text);
    if (r < 0) throw new TypeError(this.#core.lastErrorMessage());
    if (r === 1) this.#wakeEventWaiters();
    this.#activity++;
    return r === 1;
  }

  /** @internal */
  _sleep(id, ms) {
    if (this.#disposed) return Promise.reject(abortError('The task manager was disposed'));
    let delay;
    try {
      delay = checkMs(ms, 'ms');
    } catch (e) {
      return Promise.reject(e);
    }
    const n = this.#core.armTimer(id, delay);
    if (n < 0) return Promise.reject(coreError(this.#core, -n));
    const promise = new Promise((resolve, reject) => this.#timers.set(n, { resolve, reject }));
    this.#touch();
    return promise;
  }

  #deliverTimers() {
    if (this.#timers.size === 0) return 0;
    const fired = this.#readJson(this.#core.takeFiredTimers());
    for (const [n, slept] of fired) {
      const t = this.#timers.get(n);
      if (!t) continue;
      this.#timers.delete(n);
      if (slept) t.resolve();
      else t.reject(abortError());
    }
    this.#activity += fired.length;
    return fired.length;
  }

  /** @internal */
  _tryRecv(id) {
    if (this.#disposed) return null;
    const messages = this.#readJson(this.#core.takeAgentMessages(id, 1));
    return messages.length > 0 ? messages[0] : null;
  }

  /** @internal */
  _recv(id) {
    const msg = this._tryRecv(id);
    if (msg !== null) return Promise.resolve(msg);
    const rec = this.#live.get(id);
    if (!rec || rec.cancel.cancelled) return Promise.resolve(null);
    return new Promise((resolve) => rec.recvWaiters.push(resolve));
  }

  // ---- queries ----
  /** awaken's TaskSummary, or null for an unknown id. */
  get(id) {
    this.#alive();
    return this.#getSummary(this.#id(id));
  }

  #getSummary(id) {
    const len = this.#core.get(id);
    return len === 0 ? null : this.#readJson(len);
  }

  /** The thread's tasks in id order. */
  list(thread) {
    this.#alive();
    return this.#readJson(this.#core.list(this.#thread(thread)));
  }

  hasRunning(thread) {
    this.#alive();
    return this.#core.hasRunning(this.#thread(thread));
  }

  /** Resolves with the terminal summary once the task's body has ended (null for an unknown id). */
  wait(id) {
    this.#alive();
    this.#id(id);
    const summary = this.#getSummary(id);
    if (summary === null || !this.#live.has(id)) return Promise.resolve(summary);
    return new Promise((resolve) => {
      const list = this.#endWaiters.get(id);
      if (list) list.push(resolve);
      else this.#endWaiters.set(id, [resolve]);
    });
  }

  /** Drops a finished task; true if something was removed. */
  forget(id) {
    this.#alive();
    return this.#core.forget(this.#id(id));
  }

  // ---- cancellation ----
  cancel(id) {
    this.#alive();
    const r = this.#core.cancel(this.#id(id));
    this.#afterCancel();
    return r;
  }

  cancelTree(id) {
    this.#alive();
    const n = this.#core.cancelTree(this.#id(id));
    this.#afterCancel();
    return n;
  }

  cancelAll(thread) {
    this.#alive();
    const n = this.#core.cancelAll(this.#thread(thread));
    this.#afterCancel();
    return n;
  }

  // The core lists whose cancel was just requested; their signals abort and inbox waits end.
  #afterCancel() {
    const ids = this.#readJson(this.#core.takeCancelRequests());
    for (const id of ids) {
      const rec = this.#live.get(id);
      if (!rec) continue;
      rec.cancel.abort(abortError());
      for (const wake of rec.recvWaiters.splice(0)) wake(null);
    }
    if (ids.length > 0) this.#touch();
  }

  // ---- messages ----
  /** Sends awaken's agent_message to a sub-agent; throws BgTasksError (TaskNotFound, NotOwner, …). */
  sendMessage(taskId, thread, from, content) {
    this.#alive();
    const code = this.#core.sendMessage(this.#id(taskId, 'taskId'), this.#thread(thread), checkString(from, 'from'), checkString(content, 'content'));
    if (code !== 0) throw coreError(this.#core, code);
    const rec = this.#live.get(taskId);
    if (rec) {
      while (rec.recvWaiters.length > 0) {
        const msg = this._tryRecv(taskId);
        if (msg === null) break;
        rec.recvWaiters.shift()(msg);
      }
    }
    this.#touch();
  }

  // ---- events ----
  /** Takes the pending owner-inbox events, in order: all, or only `thread`'s. */
  drain(thread) {
    this.#alive();
    const has = thread !== undefined;
    return this.#readJson(this.#core.drain(has ? this.#thread(thread) : '', has, -1));
  }

  /** The same queue as an async iterator (it consumes, like drain); ends on dispose. */
  events(thread) {
    this.#alive();
    const has = thread !== undefined;
    if (has) this.#thread(thread);
    const self = this;
    return (async function* events() {
      for (;;) {
        if (self.#disposed) return;
        const batch = self.#readJson(self.#core.drain(has ? thread : '', has, 1));
        if (batch.length > 0) {
          yield batch[0];
          continue;
        }
        await new Promise((resolve) => self.#eventWaiters.push(resolve));
      }
    })();
  }

  #wakeEventWaiters() {
    if (this.#eventWaiters.length === 0) return;
    for (const wake of this.#eventWaiters.splice(0)) wake();
  }

  // ---- persistence ----
  /** awaken's background_task_state value: {tasks: {id: meta}}, one thread's or every thread's. */
  snapshot(thread) {
    this.#alive();
    const has = thread !== undefined;
    return this.#readJson(this.#core.snapshot(has ? this.#thread(thread) : '', has));
  }

  /** Claims every entry for `thread`, all or nothing; returns how many were added. */
  restore(thread, snapshot) {
    this.#alive();
    this.#thread(thread);
    if (snapshot === null || typeof snapshot !== 'object' || Array.isArray(snapshot))
      throw new TypeError('snapshot must be an object {tasks: {...}}');
    let text;
    try {
      text = toJson(snapshot, 'snapshot');
    } catch (e) {
      // Snapshots are untrusted data: one too deep for JSON.stringify is refused as the core would.
      if (!(e.cause instanceof RangeError)) throw e;
      throw new BgTasksError('InvalidSnapshot', `invalid snapshot: snapshot: nesting deeper than ${this.#module.kMaxSnapshotDepth} levels`);
    }
    const n = this.#core.restore(thread, text);
    if (n < 0) throw coreError(this.#core, -n);
    return n;
  }

  /** Saves snapshot(thread) into a FileStore / IndexedDbStore. */
  async persist(store, thread) {
    this.#thread(thread);
    await store.save(thread, this.snapshot(thread));
  }

  /** Restores the thread's saved snapshot, if any; returns how many tasks were added. */
  async resume(store, thread) {
    this.#thread(thread);
    const snapshot = await store.load(thread);
    return snapshot ? this.restore(thread, snapshot) : 0;
  }

  // ---- time and the poll loop ----
  /** Manual clock only: moves time; due timers become ready (nothing runs until the next poll). */
  advance(ms) {
    this.#alive();
    const delta = checkMs(ms, 'ms');
    if (!this.#manual) throw new BgTasksError('InvalidArgument', 'advance() needs a manager created with clock: "manual"');
    this.#core.advance(delta);
  }

  /** The earliest armed timer deadline (ms on the manager's clock), or null when none is armed. */
  nextDeadline() {
    this.#alive();
    const d = this.#core.nextDeadline();
    return d < 0 ? null : d;
  }

  /**
   * Manual clock only: lets `ms` pass the way real time would — it stops at every timer deadline
   * on the way and runs what that woke (runUntilIdle) before moving on.
   */
  async runFor(ms) {
    this.#alive();
    const delta = checkMs(ms, 'ms');
    if (!this.#manual) throw new BgTasksError('InvalidArgument', 'runFor() needs a manager created with clock: "manual"');
    const target = this.#core.now() + delta;
    await this.runUntilIdle();
    for (;;) {
      if (this.#disposed) return;
      const d = this.#core.nextDeadline();
      if (d < 0 || d > target) break;
      this.#core.setTime(d);
      await this.runUntilIdle();
    }
    if (this.#disposed) return;
    this.#core.setTime(target);
    await this.runUntilIdle();
  }

  /** The manager's clock, in ms. */
  now() {
    this.#alive();
    return this.#core.now();
  }

  /** Runs until nothing is ready and every settled promise has delivered; never moves time. */
  async runUntilIdle() {
    this.#alive();
    for (;;) {
      const before = this.#activity;
      this.#pump();
      await nextTurn();
      if (this.#disposed) return;
      if (this.#activity === before && this.#pendingStarts.length === 0 && !this.#hasDueWork()) return;
    }
  }

  #hasDueWork() {
    const d = this.#core.nextDeadline();
    return d >= 0 && d <= this.#core.now();
  }

  #pump() {
    do {
      this.#startPending();
      this.#core.runUntilIdle();
      this.#deliverTimers();
    } while (this.#pendingStarts.length > 0);
  }

  // Something happened: with the system clock, pump on a microtask and keep one timer for the
  // next deadline (none while idle).
  #touch() {
    this.#activity++;
    if (this.#manual || this.#pumpQueued || this.#disposed) return;
    this.#pumpQueued = true;
    queueMicrotask(() => {
      this.#pumpQueued = false;
      if (this.#disposed) return;
      this.#pump();
      this.#armWakeup();
    });
  }

  #armWakeup() {
    const deadline = this.#core.nextDeadline();
    if (deadline < 0) {
      this.#clearWakeup();
      return;
    }
    if (this.#wakeTimer !== null && this.#wakeDeadline === deadline) return;
    this.#clearWakeup();
    this.#wakeDeadline = deadline;
    this.#wakeTimer = setTimeout(() => {
      this.#wakeTimer = null;
      this.#wakeDeadline = -1;
      if (this.#disposed) return;
      this.#pump();
      this.#armWakeup();
    }, Math.max(0, deadline - this.#core.now()));
  }

  #clearWakeup() {
    if (this.#wakeTimer !== null) clearTimeout(this.#wakeTimer);
    this.#wakeTimer = null;
    this.#wakeDeadline = -1;
  }

  // ---- introspection ----
  /** Counts by status, live bodies, cancel-requested-but-running, inbox depth and drops. */
  stats() {
    this.#alive();
    return this.#readJson(this.#core.stats());
  }

  /** The task forest: {task_id, task_type, description, status, name?, children: [...]}. */
  taskTree(thread) {
    this.#alive();
    const has = thread !== undefined;
    return this.#readJson(this.#core.taskTree(has ? this.#thread(thread) : '', has));
  }

  get disposed() {
    return this.#disposed;
  }

  /** Frees the core. Live bodies' signals abort; pending sleeps reject; iterators end. */
  dispose() {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#clearWakeup();
    for (const rec of this.#live.values()) {
      rec.cancel.abort(abortError('The task manager was disposed'));
      for (const wake of rec.recvWaiters.splice(0)) wake(null);
    }
    this.#live.clear();
    for (const t of this.#timers.values()) t.reject(abortError('The task manager was disposed'));
    this.#timers.clear();
    for (const waiters of this.#endWaiters.values()) for (const resolve of waiters) resolve(null);
    this.#endWaiters.clear();
    this.#wakeEventWaiters();
    finalizer?.unregister(this);
    this.#core.delete();
  }
}

if (typeof Symbol.dispose === 'symbol') {
  TaskManager.prototype[Symbol.dispose] = function dispose() {
    this.dispose();
  };
}

function parentJson(parent) {
  checkOptions(parent, 'options.parent', PARENT_FIELDS);
  const out = {};
  for (const field of PARENT_FIELDS) {
    const v = parent[field];
    if (v === undefined || v === null) continue;
    out[field] = checkString(v, `options.parent.${field}`);
  }
  return JSON.stringify(out);
}
