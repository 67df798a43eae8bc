// The JS face of one core manager. The core (C++, in wasm) owns ids, records, lineage, order,
// cancellation and events; this class adapts: it runs async bodies, settles them into the core,
// aborts signals when the core says a cancel was requested, and pumps the core's poll loop.
//
// The crossing (wasm/bindings.cpp explains the binding's side): a live task is a number (its
// handle), thread/type/event-type strings are interned ints, text going in is written into wasm
// memory with TextEncoder.encodeInto, and an emitted payload stays here — the core's event holds
// the payload's handle, so the core still sees, orders, counts, refuses or evicts every event,
// and drain() puts the payload back into the event the core hands out. A completed task's result
// is kept the same way (its JSON text still crosses, for the core's stored meta).
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
  payloadValue,
  toJson,
  toWellFormed,
} from './errors.js';
import { StoreLink, checkStore } from './store-link.js';

const MANAGER_OPTIONS = [
  'clock',
  'now',
  'retainFinished',
  'agentInboxCapacity',
  'agentInboxOverflow',
  'ownerInboxCapacity',
  'ownerInboxOverflow',
  'store',
  'onStoreError',
  'idBlockSize',
  'concurrency',
  'cancelGraceMs',
];
// Ids are plentiful (2^53 before they stop being exact JS numbers): a big block keeps a burst of
// spawns from outrunning the store's reservation of the next one.
const DEFAULT_ID_BLOCK = 65536;
const SPAWN_OPTIONS = ['thread', 'type', 'name', 'description', 'parent', 'signal', 'timeoutMs'];
const AGENT_OPTIONS = ['thread', 'name', 'description', 'parent', 'signal', 'timeoutMs'];
const PARENT_FIELDS = ['task_id', 'run_id', 'call_id', 'agent_id'];
const CODE_INVALID_ARGUMENT = 13; // ERROR_CODES index: the core refused a JSON text
const HANDLE_NOT_TAKEN = -1; // Core::complete: settled, but no queued event holds the result's handle
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
const encoder = new TextEncoder();
// wasm/bindings.cpp: the header's slots (doubles) and the event kinds of drain records.
const HDR_RECORDS = 0;
const HDR_TEXT_PTR = 1;
const HDR_TEXT_LEN = 2;
const HDR_QUEUED = 3; // 1 when the last spawn was queued behind a concurrency limit
const KIND_CUSTOM = 0;
const KIND_COMPLETED = 1;
const KIND_FAILED = 2;
const KIND_CANCELLED = 3;

// The body whose synchronous part runs now (DECISIONS.md §6): its manager's core and its handle.
// Module-wide, as the core's ambient task is (a body of one manager spawning on another gives
// that child a parent, as natively); the core is told only when such a body spawns.
let runningCore = null;
let runningHandle = 0;

// Short ASCII text (a result, a description) is copied unit by unit: about half the cost of
// TextEncoder.encodeInto and the subarray it needs (measured 85 vs 170 ns for 18 characters).
const SHORT_TEXT = 256;
function writeAscii(s, heap, at) {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return false; // the caller encodes it all again
    heap[at + i] = c;
  }
  return true;
}

function abortError(message = 'The task was cancelled') {
  return new DOMException(message, 'AbortError');
}

// The error text of a task whose body threw `e`: an Error's message (its name when empty), a
// string as it is, any other value as JSON (String() when JSON has none). Nobody can be handed a
// TypeError here and the task must still fail, so the text is made well-formed instead of being
// refused: a lone surrogate becomes U+FFFD. A getter or toString that throws leaves the value's tag.
function failureText(e) {
  let text;
  try {
    if (e instanceof Error) text = String(e.message || e.name);
    else if (typeof e === 'string') text = e;
    else {
      try {
        text = JSON.stringify(e);
      } catch {
        // BigInt, a cycle, a throwing toJSON: String() below
      }
      text ??= String(e);
    }
  } catch {
    try {
      text = Object.prototype.toString.call(e);
    } catch {
      text = '[object Unknown]'; // a revoked Proxy
    }
  }
  return toWellFormed(text);
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
 * ms), retainFinished, agentInboxCapacity/agentInboxOverflow, ownerInboxCapacity/ownerInboxOverflow;
 * store (attach: ids from the store, threads claimed and saved automatically), onStoreError
 * (error, thread) and idBlockSize (ids reserved at a time, default 65536) with it.
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
    store: options.store === undefined ? null : checkStore(options.store),
    onStoreError: options.onStoreError === undefined ? null : checkFunction(options.onStoreError, 'options.onStoreError'),
    idBlockSize: options.idBlockSize === undefined ? DEFAULT_ID_BLOCK : checkCount(options.idBlockSize, 'options.idBlockSize', 1 << 20),
    concurrency: options.concurrency === undefined ? null : checkConcurrency(options.concurrency),
    cancelGraceMs: options.cancelGraceMs === undefined ? -1 : checkMs(options.cancelGraceMs, 'options.cancelGraceMs'),
  };
  if (config.store === null && (options.onStoreError !== undefined || options.idBlockSize !== undefined))
    throw new TypeError('options.onStoreError and options.idBlockSize need options.store');
  if (config.idBlockSize === 0) throw new TypeError('options.idBlockSize must be at least 1');
  const manager = new TaskManager(await getModule(), config);
  try {
    await startStore(manager);
  } catch (e) {
    manager.dispose();
    throw e;
  }
  return manager;
}

let startStore; // TaskManager's own: reserves the first id block of an attached store

export class TaskManager {
  #module;
  #payloadLimits; // the core's limits on a JSON value, enforced here for payloads kept on the JS side
  #core;
  #manual;
  #disposed = false;
  #live = new Map(); // id → { id, h, cancel, ctx, body, recvWaiters } for bodies that have not settled
  #pendingStarts = []; // ids whose bodies start at the next pump (spawn never runs a body)
  #endWaiters = new Map(); // id → [resolve]
  #timers = new Map(); // timer number → { resolve, reject }
  #eventWaiters = [];
  #activity = 0;
  #pumpQueued = false;
  #wakeTimer = null;
  #wakeDeadline = -1;
  #header; // index of the binding's header in HEAPF64
  #inputPtr = 0;
  #inputCap = 0;
  #interned = new Map(); // string → the core's number for it
  #strings = []; // number → string
  #internFull = false;
  #otherIds = new Map(); // negative handle → id text (ids that are not bg_N with N <= 2^53)
  // Emitted payloads waiting in the owner inbox: slot i holds handle #payBase + i (undefined: taken).
  #pay = [];
  #payHead = 0;
  #payBase = 0;
  #payLive = 0;
  #dropOldestCap = 0; // the owner inbox's capacity when it evicts (dropOldest), else 0
  #link = null; // StoreLink of an attached store
  #runForTail = Promise.resolve(); // the last runFor() queued
  // Set once the core may start or end tasks on its own (limits, deadlines, grace, shutdown): the
  // pump then asks it what it did. Unset, the plain path makes none of those calls.
  #scheduled = false;
  #shutdown = null; // the shutdown() in progress
  #listeners = []; // subscribe(): { listener, thread }
  #dispatching = false;
  #endedThreads = new Map(); // id → rec of tasks that ended since the last dispatch (listeners only)
  // What the bodies of failed tasks threw (an Error keeps its name, stack, cause, errors), by id,
  // while the task exists: the stored error is awaken's string, these ride along as `cause`.
  #failures = new Map();
  #failuresPruneAt = 64;
  #persists = new WeakMap(); // store → thread → the explicit persist in flight and the one queued

  static {
    startStore = (manager) => manager.#link?.start();
  }

  /** @internal use createTaskManager */
  constructor(module, config) {
    this.#module = module;
    this.#payloadLimits = { depth: module.kMaxJsonDepth, bytes: module.kMaxSnapshotBytes };
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
    this.#header = this.#core.headerPtr() / 8;
    if (config.ownerDropOldest) this.#dropOldestCap = config.ownerInboxCapacity;
    if (config.concurrency !== null) {
      const { perThread, perType } = config.concurrency;
      const code = this.#core.setConcurrency(perThread ?? -1, perType === undefined ? '' : JSON.stringify(perType));
      if (code !== 0) {
        const error = coreError(this.#core, code);
        this.#core.delete();
        throw new TypeError(`options.concurrency: ${error.message}`);
      }
      this.#scheduled = true;
    }
    if (config.cancelGraceMs >= 0) {
      this.#core.setCancelGraceMs(config.cancelGraceMs);
      this.#scheduled = true;
    }
    if (config.store !== null) {
      const core = this.#core;
      core.trackChanges(true);
      this.#link = new StoreLink(
        config.store,
        {
          takeChanged: () => (core.takeChangedThreads() > 0 ? JSON.parse(this.#readText()) : []),
          snapshot: (thread) => this.snapshot(thread),
          snapshotText: (thread) => {
            core.snapshot(thread, true);
            return this.#readText();
          },
          restore: (thread, snapshot) => this.restore(thread, snapshot),
          grantIds: (first, count) => core.grantIds(first, count),
          idsLeft: () => core.idsLeft(),
        },
        { onStoreError: config.onStoreError, idBlockSize: config.idBlockSize },
      );
    }
  }

  // ---- marshalling: bulk results are JSON text in wasm memory ----
  #readText() {
    const hdr = this.#module.HEAPF64;
    const ptr = hdr[this.#header + HDR_TEXT_PTR];
    return decoder.decode(this.#module.HEAPU8.subarray(ptr, ptr + hdr[this.#header + HDR_TEXT_LEN]));
  }

  // The JSON text the last core call left in the text buffer (callers pass that call's result
  // for readability; the length comes from the header).
  #readJson(_filledBy) {
    return JSON.parse(this.#readText());
  }

  // Room for `bytes` of input text in wasm memory (never shrinks).
  #reserve(bytes) {
    if (bytes <= this.#inputCap) return;
    const cap = Math.max(bytes, 4096, this.#inputCap * 2);
    this.#inputPtr = this.#core.inputPtr(cap);
    this.#inputCap = cap;
  }

  // Writes `s` at `offset` of the input buffer (room reserved: 3 bytes per UTF-16 unit); its bytes.
  #encodeAt(s, offset) {
    if (s.length === 0) return 0;
    const start = this.#inputPtr + offset;
    const heap = this.#module.HEAPU8;
    if (s.length <= SHORT_TEXT && writeAscii(s, heap, start)) return s.length;
    return encoder.encodeInto(s, heap.subarray(start, this.#inputPtr + this.#inputCap)).written;
  }

  // Writes a text of any size at the start of the input buffer, growing it as needed; its bytes.
  #encodeText(text) {
    this.#reserve(text.length + 16);
    if (text.length <= SHORT_TEXT && writeAscii(text, this.#module.HEAPU8, this.#inputPtr)) return text.length;
    let read = 0;
    let written = 0;
    for (;;) {
      const rest = read === 0 ? text : text.slice(read);
      const r = encoder.encodeInto(rest, this.#module.HEAPU8.subarray(this.#inputPtr + written, this.#inputPtr + this.#inputCap));
      read += r.read;
      written += r.written;
      if (read >= text.length) return written;
      this.#reserve(written + (text.length - read) * 3);
    }
  }

  // The core's number for a (checked) string, or -1 (then it crosses as text).
  #intern(s) {
    const n = this.#interned.get(s);
    if (n !== undefined) return n;
    if (this.#internFull) return -1;
    const m = this.#core.intern(s);
    if (m < 0) {
      this.#internFull = true;
      return -1;
    }
    this.#interned.set(s, m);
    this.#strings[m] = s;
    return m;
  }

  // The id the core gave the task behind a handle.
  #idOf(h) {
    if (h >= 0) return `bg_${h}`;
    let id = this.#otherIds.get(h);
    if (id === undefined) {
      this.#core.idText(h);
      id = this.#readText();
      this.#otherIds.set(h, id);
    }
    return id;
  }

  // ---- payloads kept on the JS side ----
  #payPut(value) {
    this.#payLive++;
    return this.#payBase + this.#pay.push(value) - 1;
  }

  // The core did not take the event: forget the payload just put.
  #payUnput() {
    this.#pay.pop();
    this.#payLive--;
  }

  // Takes back the payload of an event the core hands out.
  #payTake(handle) {
    const i = handle - this.#payBase;
    const value = this.#pay[i];
    if (value === undefined) return null; // cannot happen: every custom event's handle is held
    this.#pay[i] = undefined;
    this.#payLive--;
    return value;
  }

  // The core evicted events (dropOldest): the evicted payloads are the oldest held (the core
  // evicts the oldest event; handles grow in emission order), so with at most `capacity` events
  // queued, every payload past the newest `capacity` held is gone.
  #payTrim() {
    if (this.#dropOldestCap === 0 || this.#payLive <= this.#dropOldestCap) return; // nothing evicted
    while (this.#payLive > this.#dropOldestCap) {
      while (this.#pay[this.#payHead] === undefined) this.#payHead++;
      this.#pay[this.#payHead++] = undefined;
      this.#payLive--;
    }
    this.#paySlide();
  }

  // After a drain.
  #payCompact() {
    if (this.#pay.length === 0) return;
    if (this.#core.pendingEvents() === 0) {
      // Nothing queued: no payload is referenced (also those of events the core evicted).
      this.#payBase += this.#pay.length;
      this.#pay = [];
      this.#payHead = 0;
      this.#payLive = 0;
      return;
    }
    this.#paySlide();
  }

  #paySlide() {
    while (this.#payHead < this.#pay.length && this.#pay[this.#payHead] === undefined) this.#payHead++;
    if (this.#payHead > 1024 && this.#payHead * 2 > this.#pay.length) {
      this.#pay = this.#pay.slice(this.#payHead);
      this.#payBase += this.#payHead;
      this.#payHead = 0;
    }
  }

  #alive() {
    if (this.#disposed) throw new BgTasksError('Disposed', 'TaskManager is disposed');
  }

  // Any string is a thread, "" included (awaken's owner_thread_id is a plain string).
  #thread(value, name = 'thread') {
    return checkString(value, name);
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

  /** @internal ctx.spawn / ctx.spawnAgent (rec: the parent's record) */
  _spawnChild(rec, options, body, agent) {
    return this.#spawn(options, body, agent, rec.h);
  }

  #spawn(options, body, agent, parentHandle) {
    this.#alive();
    const method = agent ? 'spawnAgent' : 'spawn';
    checkOptions(options, `${method} options`, agent ? AGENT_OPTIONS : SPAWN_OPTIONS);
    const thread = this.#thread(options.thread, 'options.thread');
    const type = agent ? 'sub_agent' : checkString(options.type, 'options.type');
    const hasName = options.name !== undefined && options.name !== null;
    const name = hasName ? checkString(options.name, 'options.name') : '';
    const description = options.description === undefined ? '' : checkString(options.description, 'options.description');
    const parent = options.parent === undefined ? '' : parentJson(options.parent);
    const signal = options.signal === undefined || options.signal === null ? null : checkSignal(options.signal, 'options.signal');
    const timeoutMs = options.timeoutMs === undefined ? -1 : checkMs(options.timeoutMs, 'options.timeoutMs');
    checkFunction(body, 'body');

    const core = this.#core;
    // Interned strings cross as ints; the rest as text in the input buffer, in this order.
    const th = this.#intern(thread);
    const ty = this.#intern(type);
    let bytes = description.length + name.length + parent.length;
    if (th < 0) bytes += thread.length;
    if (ty < 0) bytes += type.length;
    let thLen = 0;
    let tyLen = 0;
    let nameLen = -1;
    let descLen = 0;
    let parentLen = 0;
    if (bytes > 0) {
      this.#reserve(bytes * 3);
      let at = 0;
      if (th < 0) at += thLen = this.#encodeAt(thread, at);
      if (ty < 0) at += tyLen = this.#encodeAt(type, at);
      if (hasName) at += nameLen = this.#encodeAt(name, at);
      at += descLen = this.#encodeAt(description, at);
      parentLen = this.#encodeAt(parent, at);
    } else if (hasName) nameLen = 0;
    // The core merges the lineage (DECISIONS.md §6): it is told which task is the parent, or
    // which body is running (only then: a top-level spawn crosses once). A running body's core
    // may be another manager's, or one disposed inside that body (then no body is ambient).
    let scope = null; // the core whose task scope is entered around the spawn
    if (parentHandle !== null) scope = core;
    else if (runningCore !== null && !runningCore.isDeleted()) scope = runningCore;
    if (scope !== null) scope.enterTask(parentHandle ?? runningHandle);
    let h;
    try {
      h = core.spawn(agent, th, ty, thLen, tyLen, nameLen, descLen, parentLen, timeoutMs);
    } finally {
      if (scope !== null) scope.leaveTask();
    }
    if (h !== h) {
      // NaN: refused
      const error = coreError(core, core.lastErrorCode());
      if (error.code === 'IdsUnavailable')
        error.message += ` (the store grants ${this.#link ? 'ids in blocks' : 'ids'}; await manager.reserveIds(n) before spawning more tasks at once than idBlockSize)`;
      throw error;
    }
    if (this.#link !== null) this.#link.afterSpawn();
    let id;
    if (h >= 0) id = `bg_${h}`;
    else {
      id = this.#readText();
      this.#otherIds.set(h, id);
    }
    const rec = { id, h, cancel: new CancelState(), ctx: null, body, recvWaiters: agent ? [] : null, abortReason: undefined, unlink: null, timeoutMs, thread };
    rec.ctx = new TaskContext(this, rec, agent ? new AgentInbox(this, rec) : undefined);
    this.#live.set(id, rec);
    // A task behind a concurrency limit starts when the core says so (takeStarts).
    if (this.#module.HEAPF64[this.#header + HDR_QUEUED] !== 1) this.#pendingStarts.push(rec);
    if (timeoutMs >= 0) this.#scheduled = true;
    this.#touch();
    if (signal !== null) this.#linkSignal(rec, signal);
    return id;
  }

  // An outside AbortSignal cancels the task (its reason becomes ctx.signal's reason); the link goes
  // when the task ends.
  #linkSignal(rec, signal) {
    const onAbort = () => {
      if (this.#disposed || this.#live.get(rec.id) !== rec) return;
      rec.abortReason = signal.reason;
      this.cancel(rec.id);
    };
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    rec.unlink = () => signal.removeEventListener('abort', onAbort);
  }

  // Runs the synchronous part of each pending body with the task as ambient parent
  // (DECISIONS.md §6), then lets its promise settle the task.
  #startPending() {
    while (this.#pendingStarts.length > 0) {
      const batch = this.#pendingStarts;
      this.#pendingStarts = [];
      for (const rec of batch) this.#start(rec);
    }
  }

  #start(rec) {
    if (rec.body === null || this.#live.get(rec.id) !== rec) return;
    const body = rec.body;
    rec.body = null;
    let promise;
    // A body may pump (runUntilIdle, of any manager) and so start others inside it.
    const outerCore = runningCore;
    const outerHandle = runningHandle;
    runningCore = this.#core;
    runningHandle = rec.h;
    try {
      promise = Promise.resolve(body(rec.ctx));
    } catch (e) {
      promise = Promise.reject(e);
    } finally {
      runningCore = outerCore;
      runningHandle = outerHandle;
    }
    promise.then(
      (value) => this.#settle(rec, true, value),
      (error) => this.#settle(rec, false, error),
    );
  }

  #settle(rec, ok, value) {
    if (this.#disposed || this.#live.get(rec.id) !== rec) return; // the core ended it already (deadline, grace, shutdown)
    const core = this.#core;
    const id = rec.id;
    const waiters = this.#endWaiters.get(id);
    const want = waiters !== undefined;
    let code = 0;
    if (ok) {
      // The result is kept here as a payload is (a sorted copy; its completed event carries the
      // handle), and crosses as JSON text for the core's stored meta.
      let copy;
      let text;
      try {
        copy = payloadValue(value, 'result', this.#payloadLimits);
        text = JSON.stringify(copy);
      } catch (e) {
        ok = false;
        value = e;
      }
      if (ok) {
        const handle = this.#payPut(copy);
        code = core.complete(rec.h, this.#encodeText(text), want, handle);
        if (this.#listeners.length > 0) {
          this.#dispatchTapped(); // while the result is still held
          if (this.#disposed) return; // a listener disposed the manager
        }
        if (code === HANDLE_NOT_TAKEN || code > 0) this.#payUnput(); // no event holds it, or the core refused it
        else this.#payTrim();
        if (code === CODE_INVALID_ARGUMENT) {
          ok = false;
          value = `result refused: ${core.lastErrorMessage()}`;
        }
      }
    }
    if (!ok) {
      // Once its cancel was requested the core ends the task its own way (cancelled, or as a
      // shutdown says): the body's error text would be discarded, so none is made.
      const text = rec.cancel.cancelled ? 0 : this.#encodeText(failureText(value));
      code = core.failTask(rec.h, text, want);
      if (code === 0 && value !== null && (typeof value === 'object' || typeof value === 'function')) this.#keepFailure(id, value);
    }
    void code; // TaskTerminated only if the core already settled it (cannot happen for a live body)
    this.#live.delete(id);
    if (this.#listeners.length > 0) this.#endedThreads.set(id, rec);
    rec.unlink?.();
    if (rec.recvWaiters !== null) for (const wake of rec.recvWaiters.splice(0)) wake(null);
    if (waiters) {
      this.#endWaiters.delete(id);
      const summary = this.#withCause(this.#readJson(core.lastEnded())); // retention may already have dropped the task
      for (const resolve of waiters) resolve(summary);
    }
    if (this.#listeners.length > 0) this.#dispatchTapped();
    if (this.#scheduled) this.#afterCoreMoves();
    this.#wakeEventWaiters();
    this.#touch();
  }

  // ---- what the core did on its own: starts of queued tasks, cancels, forced ends ----
  #afterCoreMoves() {
    this.#afterCancel(false);
    this.#takeForcedEnds();
    this.#takeStarts();
    if (this.#listeners.length > 0) this.#dispatchTapped();
    if (this.#shutdown !== null && this.#live.size === 0) this.#shutdown.drained();
  }

  #takeStarts() {
    const count = this.#core.takeStarts();
    if (count === 0) return;
    const heap = this.#module.HEAPF64;
    const at = heap[this.#header + HDR_RECORDS] / 8;
    for (let i = 0; i < count; i++) {
      const rec = this.#live.get(this.#idOf(heap[at + i]));
      if (rec !== undefined && rec.body !== null) this.#pendingStarts.push(rec);
    }
    this.#activity++;
  }

  // Host tasks the core ended without their body (deadline, grace, shutdown, a queued task's
  // cancel): the body's later settle is ignored; waiters get the summary now.
  #takeForcedEnds() {
    const count = this.#core.takeForcedEnds();
    if (count === 0) return;
    const heap = this.#module.HEAPF64;
    const at = heap[this.#header + HDR_RECORDS] / 8;
    const handles = [];
    for (let i = 0; i < count; i++) handles.push(heap[at + 2 * i]);
    for (const h of handles) {
      const id = this.#idOf(h);
      const rec = this.#live.get(id);
      if (rec === undefined) continue;
      this.#live.delete(id);
      if (this.#listeners.length > 0) this.#endedThreads.set(id, rec);
      rec.unlink?.();
      if (!rec.cancel.cancelled) rec.cancel.abort(abortError('The task was ended by the manager'));
      if (rec.recvWaiters !== null) for (const wake of rec.recvWaiters.splice(0)) wake(null);
      const waiters = this.#endWaiters.get(id);
      if (waiters) {
        this.#endWaiters.delete(id);
        const summary = this.#getSummary(id);
        for (const resolve of waiters) resolve(summary);
      }
    }
    this.#activity++;
    this.#wakeEventWaiters();
  }

  // ---- bodies' calls (through TaskContext) ----
  /** @internal ctx.emit: the payload stays here, the core gets its handle (and decides). */
  _emit(rec, eventType, payload) {
    this.#alive();
    let ty = this.#interned.get(eventType);
    let tyLen = 0;
    if (ty === undefined) {
      checkString(eventType, 'eventType');
      ty = this.#intern(eventType);
    }
    const value = payloadValue(payload, 'payload', this.#payloadLimits);
    if (ty < 0) {
      this.#reserve(eventType.length * 3);
      tyLen = this.#encodeAt(eventType, 0);
    }
    const handle = this.#payPut(value);
    const delivered = this.#core.emit(rec.h, ty, tyLen, handle) === 1;
    this.#activity++;
    if (this.#listeners.length > 0) this.#dispatchTapped(); // while the payload is still held
    if (!delivered) {
      this.#payUnput();
      return false;
    }
    this.#payTrim();
    if (this.#eventWaiters.length > 0) this.#wakeEventWaiters();
    return true;
  }

  /** @internal */
  _sleep(rec, ms) {
    if (this.#disposed) return Promise.reject(abortError('The task manager was disposed'));
    let delay;
    try {
      delay = checkMs(ms, 'ms');
    } catch (e) {
      return Promise.reject(e);
    }
    const n = this.#core.armTimer(rec.h, delay);
    if (n < 0) return Promise.reject(coreError(this.#core, -n));
    const promise = new Promise((resolve, reject) => this.#timers.set(n, { resolve, reject }));
    this.#touch();
    return promise;
  }

  #deliverTimers() {
    if (this.#timers.size === 0) return 0;
    const count = this.#core.takeFiredTimers();
    if (count === 0) return 0;
    const heap = this.#module.HEAPF64;
    let at = heap[this.#header + HDR_RECORDS] / 8;
    const fired = [];
    for (let i = 0; i < count; i++, at += 2) fired.push(heap[at], heap[at + 1]);
    for (let i = 0; i < fired.length; i += 2) {
      const t = this.#timers.get(fired[i]);
      if (!t) continue;
      this.#timers.delete(fired[i]);
      if (fired[i + 1] === 1) t.resolve();
      else t.reject(abortError());
    }
    this.#activity += count;
    return count;
  }

  /** @internal */
  _tryRecv(rec) {
    if (this.#disposed) return null;
    const messages = this.#readJson(this.#core.takeAgentMessages(rec.h, 1));
    return messages.length > 0 ? messages[0] : null;
  }

  /** @internal */
  _recv(rec) {
    const msg = this._tryRecv(rec);
    if (msg !== null) return Promise.resolve(msg);
    if (this.#live.get(rec.id) !== rec || rec.cancel.cancelled) return Promise.resolve(null);
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
    return len === 0 ? null : this.#withCause(this.#readJson(len));
  }

  #keepFailure(id, thrown) {
    this.#failures.set(id, thrown);
    if (this.#failures.size < this.#failuresPruneAt) return;
    // Retention drops tasks inside the core: forget the throws of tasks that are gone.
    for (const known of this.#failures.keys()) if (this.#core.get(known) === 0) this.#failures.delete(known);
    this.#failuresPruneAt = Math.max(64, this.#failures.size * 2);
  }

  // A failed task's summary or event gets what its body threw as a non-enumerable `cause` (so
  // JSON and deep-equality views stay awaken's).
  #withCause(record) {
    if (record !== null && record.status !== 'running' && this.#failures.size > 0) {
      const thrown = this.#failures.get(record.task_id);
      if (thrown !== undefined && (record.status === 'failed' || record.kind === 'failed'))
        Object.defineProperty(record, 'cause', { value: thrown, configurable: true, writable: true });
    }
    return record;
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
  wait(id, options) {
    this.#alive();
    this.#id(id);
    let timeoutMs = -1;
    let signal = null;
    if (options !== undefined) {
      checkOptions(options, 'wait options', ['timeoutMs', 'signal']);
      if (options.timeoutMs !== undefined) timeoutMs = checkMs(options.timeoutMs, 'options.timeoutMs');
      if (options.signal !== undefined && options.signal !== null) signal = checkSignal(options.signal, 'options.signal');
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    const summary = this.#getSummary(id);
    if (summary === null || !this.#live.has(id)) return Promise.resolve(summary);
    return new Promise((resolve, reject) => {
      let timer = -1;
      let onAbort = null;
      const done = (settle) => {
        const list = this.#endWaiters.get(id);
        const at = list ? list.indexOf(waiter) : -1;
        if (at >= 0) list.splice(at, 1);
        if (list && list.length === 0) this.#endWaiters.delete(id);
        if (timer >= 0) this.#timers.delete(timer);
        if (onAbort !== null) signal.removeEventListener('abort', onAbort);
        settle();
      };
      const waiter = (value) => done(() => resolve(value));
      const list = this.#endWaiters.get(id);
      if (list) list.push(waiter);
      else this.#endWaiters.set(id, [waiter]);
      if (timeoutMs >= 0) {
        // On the manager's clock, as the tasks' own deadlines.
        timer = this.#core.armPlainTimer(timeoutMs);
        this.#timers.set(timer, {
          resolve: () => done(() => reject(new DOMException(`wait(${id}) timed out after ${timeoutMs} ms`, 'TimeoutError'))),
          reject: (e) => done(() => reject(e)),
        });
        this.#touch();
      }
      if (signal !== null) {
        onAbort = () => done(() => reject(signal.reason));
        signal.addEventListener('abort', onAbort, { once: true });
      }
    });
  }

  /** Drops a finished task; true if something was removed. */
  forget(id) {
    this.#alive();
    const gone = this.#core.forget(this.#id(id));
    if (gone) this.#failures.delete(id);
    if (this.#link !== null) this.#link.collect();
    return gone;
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

  // The core lists whose cancel was just requested, and why; their signals abort with that reason
  // and inbox waits end.
  #afterCancel(touch = true) {
    const count = this.#core.takeCancelRequests();
    if (count > 0) {
      const heap = this.#module.HEAPF64;
      const at = heap[this.#header + HDR_RECORDS] / 8;
      const requests = [];
      for (let i = 0; i < count; i++) requests.push(heap[at + 2 * i], heap[at + 2 * i + 1]);
      for (let i = 0; i < requests.length; i += 2) {
        const rec = this.#live.get(this.#idOf(requests[i]));
        if (!rec) continue;
        const reason = rec.abortReason !== undefined && requests[i + 1] === 0 ? rec.abortReason : cancelReason(requests[i + 1], rec);
        rec.cancel.abort(reason);
        if (rec.recvWaiters !== null) for (const wake of rec.recvWaiters.splice(0)) wake(null);
      }
    }
    if (!touch) return;
    if (this.#scheduled || this.#listeners.length > 0) {
      // A queued task's cancel ends it at once, and frees nothing; an ended one may free a slot.
      this.#takeForcedEnds();
      this.#takeStarts();
      if (this.#listeners.length > 0) this.#dispatchTapped();
    }
    if (count > 0 || this.#scheduled) this.#touch();
  }

  // ---- messages ----
  /** Sends awaken's agent_message to a sub-agent; throws BgTasksError (TaskNotFound, NotOwner, …). */
  sendMessage(taskId, thread, from, content) {
    this.#alive();
    const code = this.#core.sendMessage(this.#id(taskId, 'taskId'), this.#thread(thread), checkString(from, 'from'), checkString(content, 'content'));
    if (code !== 0) throw coreError(this.#core, code);
    const rec = this.#live.get(taskId);
    if (rec && rec.recvWaiters !== null) {
      while (rec.recvWaiters.length > 0) {
        const msg = this._tryRecv(rec);
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
    return this.#drain(thread === undefined ? undefined : this.#thread(thread), -1);
  }

  // Events come out as records (wasm/bindings.cpp, Core::drain); payloads are the ones held here.
  #drain(thread, max) {
    let th = -1;
    let thLen = 0;
    if (thread !== undefined) {
      th = this.#intern(thread);
      if (th < 0) {
        this.#reserve(thread.length * 3);
        thLen = this.#encodeAt(thread, 0);
        th = -2;
      }
    }
    const count = this.#core.drain(th, thLen, max);
    if (count === 0) return [];
    let heap = this.#module.HEAPF64;
    const extras = heap[this.#header + HDR_TEXT_LEN] > 0 ? this.#readJson() : null;
    let at = heap[this.#header + HDR_RECORDS] / 8;
    const out = new Array(count);
    let lastH = NaN;
    let id = '';
    for (let i = 0; i < count; i++, at += 4) {
      const kind = heap[at];
      const h = heap[at + 1];
      if (h !== lastH) {
        // A task's events often come in a row: one id string for them.
        lastH = h;
        id = this.#idOf(h); // h < 0 may call into the core (and grow its memory): read the heap again
        if (h < 0) heap = this.#module.HEAPF64;
      }
      // Keys in sorted order, as the core writes them (DECISIONS.md §3).
      if (kind === KIND_CUSTOM) {
        const t = heap[at + 2];
        out[i] = { event_type: t >= 0 ? this.#strings[t] : extras[-1 - t], kind: 'custom', payload: this.#payTake(heap[at + 3]), task_id: id };
      } else if (kind === KIND_COMPLETED)
        out[i] = { kind: 'completed', result: this.#payTake(heap[at + 3]), task_id: id };
      else if (kind === KIND_FAILED) out[i] = this.#withCause({ error: extras[heap[at + 3]], kind: 'failed', task_id: id });
      else if (kind === KIND_CANCELLED) out[i] = { kind: 'cancelled', task_id: id };
      else out[i] = extras[heap[at + 3]];
    }
    this.#payCompact();
    return out;
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
        const batch = self.#drain(has ? thread : undefined, 1);
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

  // ---- limits ----
  /**
   * Replaces the concurrency limits ({perThread?, perType?}; {} removes them). Queued tasks that
   * now fit start at the next poll.
   */
  setConcurrency(limits) {
    this.#alive();
    const { perThread, perType } = checkConcurrency(limits, 'limits');
    const code = this.#core.setConcurrency(perThread ?? -1, perType === undefined ? '' : JSON.stringify(perType));
    if (code !== 0) throw coreError(this.#core, code);
    this.#scheduled = true;
    this.#afterCoreMoves();
    this.#touch();
  }

  // ---- fan-out ----
  /**
   * Calls `listener(event)` with every event of `thread` (or of every thread), in order, as it
   * happens; the owner inbox that drain() and events() read is not consumed. Returns the
   * unsubscribe function. A listener that throws is reported and does not stop the others.
   */
  subscribe(listener, options) {
    this.#alive();
    checkFunction(listener, 'listener');
    let thread;
    if (options !== undefined) {
      checkOptions(options, 'subscribe options', ['thread']);
      if (options.thread !== undefined) thread = this.#thread(options.thread, 'options.thread');
    }
    const entry = { listener, thread };
    if (this.#listeners.length === 0) this.#core.setTap(true);
    this.#listeners = [...this.#listeners, entry]; // a copy: a dispatch in progress keeps its list
    return () => {
      const at = this.#listeners.indexOf(entry);
      if (at < 0) return;
      this.#listeners = this.#listeners.filter((e) => e !== entry);
      if (this.#listeners.length === 0 && !this.#disposed) {
        this.#dispatchTapped(); // what was produced before the last unsubscribe goes nowhere
        this.#core.setTap(false);
      }
    };
  }

  // Hands the events the core produced since the last call to the listeners, in order. Payloads
  // are read where they are held, not taken: drain() still gets them.
  #dispatchTapped() {
    if (this.#dispatching || this.#disposed) return; // a listener's own calls: the outer loop goes on
    this.#dispatching = true;
    try {
      for (;;) {
        const events = this.#readTapped();
        if (events.length === 0) return;
        for (const event of events) {
          for (const { listener, thread } of this.#listeners) {
            if (thread !== undefined && thread !== event.thread) continue;
            try {
              listener(event.event);
            } catch (e) {
              reportListenerError(e);
            }
            if (this.#disposed) return;
          }
        }
      }
    } finally {
      this.#dispatching = false;
      this.#endedThreads.clear();
    }
  }

  #readTapped() {
    const count = this.#core.takeTapped();
    if (count === 0) return [];
    let heap = this.#module.HEAPF64;
    const extras = heap[this.#header + HDR_TEXT_LEN] > 0 ? this.#readJson() : null;
    let at = heap[this.#header + HDR_RECORDS] / 8;
    const records = [];
    for (let i = 0; i < count; i++, at += 4) records.push(heap[at], heap[at + 1], heap[at + 2], heap[at + 3]);
    const out = [];
    for (let i = 0; i < records.length; i += 4) {
      const kind = records[i];
      const h = records[i + 1];
      const id = h === h ? this.#idOf(h) : undefined;
      let event;
      if (kind === KIND_CUSTOM) {
        const t = records[i + 2];
        event = { event_type: t >= 0 ? this.#strings[t] : extras[-1 - t], kind: 'custom', payload: this.#payPeek(records[i + 3]), task_id: id };
      } else if (kind === KIND_COMPLETED) event = { kind: 'completed', result: this.#payPeek(records[i + 3]), task_id: id };
      else if (kind === KIND_FAILED) event = this.#withCause({ error: extras[records[i + 3]], kind: 'failed', task_id: id });
      else if (kind === KIND_CANCELLED) event = { kind: 'cancelled', task_id: id };
      else event = extras[records[i + 3]];
      const thread = id === undefined ? event.owner_thread_id : this.#threadOf(id);
      out.push({ event, thread });
    }
    return out;
  }

  // A held payload, left in place (a completed event's result when no event holds it: from the core).
  #payPeek(handle) {
    const value = this.#pay[handle - this.#payBase];
    return value === undefined ? null : value;
  }

  #threadOf(id) {
    const rec = this.#live.get(id) ?? this.#endedThreads.get(id);
    if (rec !== undefined) return rec.thread;
    const len = this.#core.get(id);
    return len === 0 ? undefined : this.#readJson(len).owner_thread_id;
  }

  // ---- shutdown ----
  /**
   * Stops the manager the way a host stops: new spawns are refused (ShuttingDown), every live
   * task's signal aborts with a shutdown reason, bodies get `graceMs` (on the manager's clock) to
   * settle, then the rest are ended; every task live when it began ends `failed` with
   * `interrupted: host shutdown` (tasks cancelled before stay cancelled). Then the attached store
   * is flushed and, unless `dispose: false`, the manager disposed (left open, it keeps answering
   * reads and drains, and refuses spawns). A second call while the grace runs ends it no later than
   * its own `graceMs` (a second Ctrl-C) and returns the same promise. Rejects with the flush's
   * error, after disposing.
   */
  shutdown(options) {
    try {
      if (this.#shutdown?.finished) return this.#shutdown.promise;
      this.#alive();
      let graceMs = 0;
      let dispose = true;
      if (options !== undefined) {
        checkOptions(options, 'shutdown options', ['graceMs', 'dispose']);
        if (options.graceMs !== undefined) graceMs = checkMs(options.graceMs, 'options.graceMs');
        if (options.dispose !== undefined) {
          if (typeof options.dispose !== 'boolean') throw new TypeError('options.dispose must be a boolean');
          dispose = options.dispose;
        }
      }
      if (this.#shutdown !== null) {
        this.#shutdown.shorten(graceMs);
        return this.#shutdown.promise;
      }
      let drained;
      const settled = new Promise((resolve) => (drained = resolve));
      this.#shutdown = { promise: null, drained, shorten: () => {}, finished: false };
      this.#scheduled = true;
      this.#core.beginShutdown();
      this.#afterCoreMoves();
      this.#shutdown.promise = this.#finishShutdown(graceMs, settled, dispose);
      return this.#shutdown.promise;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  async #finishShutdown(graceMs, settled, dispose) {
    const shutdown = this.#shutdown;
    if (this.#live.size > 0) {
      let graceOver;
      const over = new Promise((resolve) => (graceOver = resolve));
      const timers = [];
      const arm = (ms) => {
        if (ms === 0) {
          graceOver(); // no grace: nothing to wait for, not even a poll
          return;
        }
        const timer = this.#core.armPlainTimer(ms);
        timers.push(timer);
        this.#timers.set(timer, { resolve: graceOver, reject: graceOver });
        this.#touch();
      };
      arm(graceMs);
      shutdown.shorten = (ms) => arm(ms);
      await Promise.race([settled, over]);
      for (const timer of timers) this.#timers.delete(timer);
    }
    shutdown.finished = true;
    if (this.#disposed) return;
    this.#core.finishShutdown();
    this.#afterCoreMoves();
    this.#link?.collect();
    try {
      if (this.#link !== null) await this.#link.flush();
    } finally {
      if (dispose) this.dispose();
    }
  }

  // ---- persistence ----
  /** awaken's background_task_state value: {tasks: {id: meta}}, one thread's or every thread's. */
  snapshot(thread) {
    this.#alive();
    const has = thread !== undefined;
    return this.#readJson(this.#core.snapshot(has ? this.#thread(thread) : '', has));
  }

  /**
   * Claims the snapshot's entries for `thread`, all or nothing: {added, skipped}. An id this
   * thread already has is kept as it is and listed in `skipped`; an id another thread holds refuses
   * the whole restore (IdConflict) and changes nothing.
   */
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
    const n = this.#core.restore(thread, this.#encodeText(text));
    if (n < 0) throw coreError(this.#core, -n);
    const report = this.#readJson(n);
    if (this.#link !== null) {
      this.#link.noteRestored(report.highest);
      this.#link.collect();
    }
    return { added: report.added, skipped: report.skipped };
  }

  /** The attached store (createTaskManager({ store })), or null. */
  get store() {
    return this.#link?.store ?? null;
  }

  /**
   * Saves snapshot(thread) into a store. Overlapping calls end with the newest state saved: a call
   * made while a save of the thread is in flight is folded into one follow-up save. Into the
   * attached store, it is that store's owned, fenced save of the thread.
   */
  async persist(store, thread) {
    this.#alive();
    this.#thread(thread);
    if (this.#link !== null && store === this.#link.store) return this.#link.flushThread(thread);
    if (store === null || typeof store !== 'object' || typeof store.save !== 'function')
      throw new TypeError('store must have a save(thread, snapshot) method');
    let byThread = this.#persists.get(store);
    if (byThread === undefined) this.#persists.set(store, (byThread = new Map()));
    let slot = byThread.get(thread);
    if (slot === undefined) byThread.set(thread, (slot = { running: null, queued: null }));
    if (slot.running === null) return this.#runPersist(store, thread, byThread, slot, this.snapshot(thread));
    if (slot.queued === null) {
      let resolve;
      let reject;
      const promise = new Promise((res, rej) => {
        resolve = res;
        reject = rej;
      });
      slot.queued = { promise, resolve, reject };
    }
    return slot.queued.promise;
  }

  async #runPersist(store, thread, byThread, slot, snapshot) {
    const run = Promise.resolve().then(() => store.save(thread, snapshot));
    slot.running = run;
    try {
      await run;
    } finally {
      slot.running = null;
      const next = slot.queued;
      slot.queued = null;
      if (next !== null) {
        // The newest state, taken when its save starts.
        let snap;
        try {
          snap = this.snapshot(thread);
        } catch (e) {
          next.reject(e);
        }
        if (snap !== undefined) this.#runPersist(store, thread, byThread, slot, snap).then(next.resolve, next.reject);
      } else byThread.delete(thread);
    }
  }

  /**
   * Restores the thread's saved snapshot: {added, skipped}. With an attached store, resume(thread)
   * (or resume(store, thread) with that store) claims the thread and takes its saved state in.
   */
  async resume(storeOrThread, thread) {
    this.#alive();
    if (typeof storeOrThread === 'string' && thread === undefined) {
      if (this.#link === null) throw new BgTasksError('StoreNotConfigured', 'resume(thread) needs a manager created with options.store; otherwise pass resume(store, thread)');
      return this.#link.resume(storeOrThread);
    }
    const store = storeOrThread;
    this.#thread(thread);
    if (this.#link !== null && store === this.#link.store) return this.#link.resume(thread);
    if (store === null || typeof store !== 'object' || typeof store.load !== 'function')
      throw new TypeError('store must have a load(thread) method');
    const snapshot = await store.load(thread);
    this.#alive();
    return snapshot ? this.restore(thread, snapshot) : { added: 0, skipped: [] };
  }

  /** Resolves once every change made before the call is saved in the attached store (at once without one). */
  async flush() {
    this.#alive();
    if (this.#link !== null) await this.#link.flush();
  }

  /** Who owns `thread` in the attached store: 'none' | 'claiming' | 'owned' | 'lost' | 'failed'. */
  ownership(thread) {
    this.#alive();
    return this.#link === null ? 'none' : this.#link.ownership(this.#thread(thread));
  }

  /** Reserves `count` more task ids from the attached store (before a burst of spawns). */
  async reserveIds(count) {
    this.#alive();
    if (this.#link === null) throw new BgTasksError('StoreNotConfigured', 'reserveIds() needs a manager created with options.store');
    const n = checkCount(count, 'count', 1 << 30);
    if (n === 0) throw new RangeError('count must be at least 1');
    await this.#link.reserveIds(n);
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
  runFor(ms) {
    try {
      this.#alive();
      const delta = checkMs(ms, 'ms');
      if (!this.#manual) throw new BgTasksError('InvalidArgument', 'runFor() needs a manager created with clock: "manual"');
      // Calls queue: one made while another runs (a forgotten await) starts when that one ends, so
      // time moves by the sum of the two, as if they had been awaited one after the other.
      const run = this.#runForTail.then(() => this.#runFor(delta));
      this.#runForTail = run.catch(() => {});
      return run;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  async #runFor(delta) {
    if (this.#disposed) return;
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
      if (this.#disposed) return; // a body's synchronous part disposed the manager
      this.#core.runUntilIdle();
      this.#deliverTimers();
      if (this.#scheduled) this.#afterCoreMoves(); // deadlines and grace fire in the core's timers
    } while (this.#pendingStarts.length > 0);
  }

  // Something happened: with the system clock, pump on a microtask and keep one timer for the
  // next deadline (none while idle).
  #touch() {
    this.#activity++;
    if (this.#link !== null) this.#link.changed();
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
    this.#link?.close();
    this.#listeners = [];
    this.#shutdown?.drained();
    for (const rec of this.#live.values()) {
      rec.unlink?.();
      rec.cancel.abort(abortError('The task manager was disposed'));
      if (rec.recvWaiters !== null) for (const wake of rec.recvWaiters.splice(0)) wake(null);
    }
    this.#live.clear();
    for (const t of this.#timers.values()) t.reject(abortError('The task manager was disposed'));
    this.#timers.clear();
    for (const waiters of this.#endWaiters.values()) for (const resolve of waiters) resolve(null);
    this.#endWaiters.clear();
    this.#pay = []; // undrained payloads and results go with the queue
    this.#payLive = 0;
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

// The reason a task's signal aborts with, by the core's cancel reason.
const CANCEL_KINDS = ['cancel', 'cancelTree', 'cancelAll', 'run', 'timeout', 'shutdown', 'grace'];
function cancelReason(code, rec) {
  const kind = CANCEL_KINDS[code] ?? 'cancel';
  let reason;
  if (kind === 'timeout') reason = new DOMException(`task timed out after ${rec.timeoutMs} ms`, 'TimeoutError');
  else if (kind === 'shutdown') reason = new DOMException('interrupted: host shutdown', 'AbortError');
  else if (kind === 'cancelTree') reason = abortError('The task was cancelled with its tree (cancelTree)');
  else if (kind === 'cancelAll') reason = abortError("The task was cancelled with its thread's tasks (cancelAll)");
  else if (kind === 'run') reason = abortError('The task was cancelled with its run');
  else reason = abortError();
  Object.defineProperty(reason, 'kind', { value: kind, enumerable: true });
  return reason;
}

function reportListenerError(e) {
  if (typeof globalThis.reportError === 'function') globalThis.reportError(e);
  else console.error('bgtasks: an event listener threw:', e);
}

function checkConcurrency(value, name = 'options.concurrency') {
  checkOptions(value, name, ['perThread', 'perType']);
  const out = {};
  if (value.perThread !== undefined) {
    out.perThread = checkCount(value.perThread, `${name}.perThread`, INT32_MAX); // 0: the core refuses it
  }
  if (value.perType !== undefined) {
    if (value.perType === null || typeof value.perType !== 'object' || Array.isArray(value.perType))
      throw new TypeError(`${name}.perType must be an object {type: limit}`);
    out.perType = {};
    for (const [type, n] of Object.entries(value.perType)) {
      checkString(type, `${name}.perType key`);
      out.perType[type] = checkCount(n, `${name}.perType.${type}`, INT32_MAX);
    }
  }
  return out;
}

function checkSignal(value, name) {
  if (typeof value !== 'object' || typeof value.aborted !== 'boolean' || typeof value.addEventListener !== 'function')
    throw new TypeError(`${name} must be an AbortSignal`);
  return value;
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
