// The crossing between JS values and the binding: the one module that calls the Embind class's
// raw methods (wasm/bindings.cpp explains the binding's side). Everyone else talks to a Marshal,
// in JS values: strings, ids, parsed JSON, events.
//
// How values cross: a live task is a number (its handle; its id is `bg_<handle>`, or text the
// core is asked for once when the handle is negative), thread/type/event-type strings are
// interned ints, text going in is written into wasm memory (the input buffer), and bulk results
// come back as JSON text in wasm memory, located by the binding's header (doubles in HEAPF64). An
// emitted payload stays on the JS side (PayloadTable): the core's event holds its handle, so the
// core still sees, orders, counts, refuses or evicts every event, and drain() puts the payload
// back into the event the core hands out. A completed task's result is kept the same way (its
// JSON text still crosses, for the core's stored meta).
import { toJson } from './copy.js';
import { BgTasksError, ERROR_CODES } from './errors.js';

let modulePromise;
/** The wasm module, loaded once per realm by the entry point's loader (load-node.js, load-browser.js). */
export function getModule(loadModule) {
  modulePromise ??= loadModule();
  return modulePromise;
}

// The safety net for managers never disposed: a core is deleted once its Marshal, the only way
// to reach it, is collected.
const finalizer =
  typeof FinalizationRegistry === 'function'
    ? new FinalizationRegistry((core) => {
        if (!core.isDeleted()) core.delete();
      })
    : null;

const decoder = new TextDecoder();
const encoder = new TextEncoder();
// The header's slots (doubles) and the event kinds of drain records (wasm/bindings.cpp).
const HDR_RECORDS = 0;
const HDR_TEXT_PTR = 1;
const HDR_TEXT_LEN = 2;
const HDR_QUEUED = 3; // 1 when the last spawn was queued behind a concurrency limit
const KIND_CUSTOM = 0;
const KIND_COMPLETED = 1;
const KIND_FAILED = 2;
const KIND_CANCELLED = 3;
const STATUSES = ['running', 'completed', 'failed', 'cancelled'];
const NONE = Object.freeze([]); // what a take…() call that found nothing returns

/** complete()'s code: the core refused the result's JSON text (ERROR_CODES index). */
export const CODE_INVALID_ARGUMENT = 13;
/** complete()'s code: settled, but no queued event holds the result's handle. */
export const HANDLE_NOT_TAKEN = -1;

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

/** The binding's WasmRuntime (one executor, manager and owner inbox) in JS values. */
export class Marshal {
  #module;
  #runtime;
  #header; // index of the binding's header in HEAPF64
  #inputPtr = 0;
  #inputCap = 0;
  #interned = new Map(); // string → the core's number for it
  #strings = []; // number → string
  #internFull = false;
  #otherIds = new Map(); // negative handle → id text (ids that are not bg_N with N <= 2^53)
  /** The core's limits on a JSON value, enforced on the JS side for the payloads kept there. */
  payloadLimits;

  constructor(module, config) {
    this.#module = module;
    this.payloadLimits = { depth: module.kMaxJsonDepth, bytes: module.kMaxSnapshotBytes };
    this.#runtime = new module.WasmRuntime(
      config.manual,
      config.now,
      config.retainFinished,
      config.agentInboxCapacity,
      config.agentDropOldest,
      config.ownerInboxCapacity,
      config.ownerDropOldest,
    );
    finalizer?.register(this, this.#runtime, this);
    this.#header = this.#runtime.headerPtr() / 8;
  }

  isDeleted() {
    return this.#runtime.isDeleted();
  }

  /** Frees the core. */
  delete() {
    finalizer?.unregister(this);
    this.#runtime.delete();
  }

  // ---- text in wasm memory ----
  // The JSON text the last core call left in the text buffer (the length is in the header).
  #readText() {
    const hdr = this.#module.HEAPF64;
    const ptr = hdr[this.#header + HDR_TEXT_PTR];
    return decoder.decode(this.#module.HEAPU8.subarray(ptr, ptr + hdr[this.#header + HDR_TEXT_LEN]));
  }

  // The same, parsed (callers pass the call's result for readability: the length it returned).
  #readJson(_filledBy) {
    return JSON.parse(this.#readText());
  }

  // Room for `bytes` of input text in wasm memory (never shrinks).
  #reserve(bytes) {
    if (bytes <= this.#inputCap) return;
    const cap = Math.max(bytes, 4096, this.#inputCap * 2);
    this.#inputPtr = this.#runtime.inputPtr(cap);
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

  // The records the last take…/drain call left (doubles), from their first one.
  #records() {
    return this.#module.HEAPF64[this.#header + HDR_RECORDS] / 8;
  }

  // ---- strings and ids ----
  /** The core's number for a string already interned, or undefined. */
  interned(s) {
    return this.#interned.get(s);
  }

  /** The core's number for a (checked) string, or -1 (then it crosses as text). */
  intern(s) {
    const n = this.#interned.get(s);
    if (n !== undefined) return n;
    if (this.#internFull) return -1;
    const m = this.#runtime.intern(s);
    if (m < 0) {
      this.#internFull = true;
      return -1;
    }
    this.#interned.set(s, m);
    this.#strings[m] = s;
    return m;
  }

  /** The id the core gave the task behind a handle. */
  idOf(h) {
    if (h >= 0) return `bg_${h}`;
    let id = this.#otherIds.get(h);
    if (id === undefined) {
      this.#runtime.idText(h);
      id = this.#readText();
      this.#otherIds.set(h, id);
    }
    return id;
  }

  // ---- errors ----
  /** The BgTasksError for the core's last failure, whose code is `code`. */
  error(code) {
    const status = this.#runtime.lastErrorStatus();
    return new BgTasksError(ERROR_CODES[code] ?? 'Unknown', this.#runtime.lastErrorMessage(), status >= 0 ? STATUSES[status] : undefined);
  }

  /** The BgTasksError for the core's last failure. */
  lastError() {
    return this.error(this.#runtime.lastErrorCode());
  }

  lastErrorMessage() {
    return this.#runtime.lastErrorMessage();
  }

  // ---- tasks and their bodies ----
  /**
   * Spawns; the new task's handle, NaN when the core refused (see lastError()). `name`: null for
   * none; `parent`: the checked parent fields or null. With `scope` (a Marshal, possibly another
   * manager's), the spawn happens inside that core's task `scopeHandle`: the core merges the
   * lineage (docs/behaviour.md, "Lineage").
   */
  spawn(agent, thread, type, name, description, parent, timeoutMs, scope, scopeHandle) {
    const core = this.#runtime;
    const parentText = parent === null ? '' : JSON.stringify(parent);
    const hasName = name !== null;
    if (!hasName) name = '';
    // Interned strings cross as ints; the rest as text in the input buffer, in this order.
    const th = this.intern(thread);
    const ty = this.intern(type);
    let bytes = description.length + name.length + parentText.length;
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
      parentLen = this.#encodeAt(parentText, at);
    } else if (hasName) nameLen = 0;
    if (scope !== null) scope.enterTask(scopeHandle);
    let h;
    try {
      h = core.spawn(agent, th, ty, thLen, tyLen, nameLen, descLen, parentLen, timeoutMs);
    } finally {
      if (scope !== null) scope.leaveTask();
    }
    if (h < 0) this.#otherIds.set(h, this.#readText()); // its id text is in the text buffer now
    return h;
  }

  enterTask(h) {
    this.#runtime.enterTask(h);
  }

  leaveTask() {
    this.#runtime.leaveTask();
  }

  /** True when the last spawn was queued behind a concurrency limit (it starts when takeStarts says). */
  lastSpawnQueued() {
    return this.#module.HEAPF64[this.#header + HDR_QUEUED] === 1;
  }

  /**
   * A custom event of task `h`, its payload held at `handle`; true if the core queued it. `ty`:
   * the event type's interned number, or -1 (then `eventType` crosses as text).
   */
  emit(h, ty, eventType, handle) {
    let tyLen = 0;
    if (ty < 0) {
      this.#reserve(eventType.length * 3);
      tyLen = this.#encodeAt(eventType, 0);
    }
    return this.#runtime.emit(h, ty, tyLen, handle) === 1;
  }

  /**
   * Completes task `h` with the JSON text of its result, held at `handle`; `want`: the summary is
   * wanted (lastEnded). 0, HANDLE_NOT_TAKEN, or an error code (CODE_INVALID_ARGUMENT: text refused).
   */
  complete(h, text, want, handle) {
    return this.#runtime.complete(h, this.#encodeText(text), want, handle);
  }

  /** Fails task `h` with `text` (null: none, its cancel was requested and the core ends it its way). */
  failTask(h, text, want) {
    return this.#runtime.failTask(h, text === null ? 0 : this.#encodeText(text), want);
  }

  /** The summary of the task that ended last (complete/failTask with `want`). */
  lastEnded() {
    return this.#readJson(this.#runtime.lastEnded());
  }

  /** Arms task `h`'s timer; its number, or minus an error code. */
  armTimer(h, ms) {
    return this.#runtime.armTimer(h, ms);
  }

  /** Arms a timer of no task (wait timeouts, shutdown grace); its number. */
  armPlainTimer(ms) {
    return this.#runtime.armPlainTimer(ms);
  }

  /** The timers that fired: [number, ok (1: due, 0: cancelled), …]. */
  takeFiredTimers() {
    const count = this.#runtime.takeFiredTimers();
    if (count === 0) return NONE;
    const heap = this.#module.HEAPF64;
    let at = this.#records();
    const fired = [];
    for (let i = 0; i < count; i++, at += 2) fired.push(heap[at], heap[at + 1]);
    return fired;
  }

  /** The handles of queued tasks the core started. */
  takeStarts() {
    const count = this.#runtime.takeStarts();
    if (count === 0) return NONE;
    const heap = this.#module.HEAPF64;
    const at = this.#records();
    const handles = [];
    for (let i = 0; i < count; i++) handles.push(heap[at + i]);
    return handles;
  }

  /** The handles of host tasks the core ended without their body (deadline, grace, shutdown, a queued task's cancel). */
  takeForcedEnds() {
    const count = this.#runtime.takeForcedEnds();
    if (count === 0) return NONE;
    const heap = this.#module.HEAPF64;
    const at = this.#records();
    const handles = [];
    for (let i = 0; i < count; i++) handles.push(heap[at + 2 * i]);
    return handles;
  }

  /** The tasks whose cancel was just requested: [handle, reason, …] (reasons: reasons.js). */
  takeCancelRequests() {
    const count = this.#runtime.takeCancelRequests();
    if (count === 0) return NONE;
    const heap = this.#module.HEAPF64;
    const at = this.#records();
    const requests = [];
    for (let i = 0; i < count; i++) requests.push(heap[at + 2 * i], heap[at + 2 * i + 1]);
    return requests;
  }

  /** The next message in sub-agent `h`'s inbox, or null. */
  takeAgentMessage(h) {
    const messages = this.#readJson(this.#runtime.takeAgentMessages(h, 1));
    return messages.length > 0 ? messages[0] : null;
  }

  /** Sends awaken's agent_message; 0 or an error code. */
  sendMessage(taskId, thread, from, content) {
    return this.#runtime.sendMessage(taskId, thread, from, content);
  }

  // ---- queries and cancellation ----
  /** A task's summary (parsed), or null for an unknown id. */
  get(id) {
    const len = this.#runtime.get(id);
    return len === 0 ? null : this.#readJson(len);
  }

  /** True while the core has the task. */
  has(id) {
    return this.#runtime.get(id) !== 0;
  }

  list(thread) {
    return this.#readJson(this.#runtime.list(thread));
  }

  hasRunning(thread) {
    return this.#runtime.hasRunning(thread);
  }

  forget(id) {
    return this.#runtime.forget(id);
  }

  cancel(id) {
    return this.#runtime.cancel(id);
  }

  cancelTree(id) {
    return this.#runtime.cancelTree(id);
  }

  cancelAll(thread) {
    return this.#runtime.cancelAll(thread);
  }

  stats() {
    return this.#readJson(this.#runtime.stats());
  }

  taskTree(thread, has) {
    return this.#readJson(this.#runtime.taskTree(thread, has));
  }

  // ---- events ----
  /** Events still queued in the owner inbox. */
  pendingEvents() {
    return this.#runtime.pendingEvents();
  }

  /**
   * Takes up to `max` (-1: all) owner-inbox events, all threads' or `thread`'s, as event objects:
   * the core hands out records, custom payloads and completed results are taken from `payloads`,
   * a failed event gets its cause from `causes`.
   */
  drain(thread, max, payloads, causes) {
    let th = -1;
    let thLen = 0;
    if (thread !== undefined) {
      th = this.intern(thread);
      if (th < 0) {
        this.#reserve(thread.length * 3);
        thLen = this.#encodeAt(thread, 0);
        th = -2;
      }
    }
    const count = this.#runtime.drain(th, thLen, max);
    if (count === 0) return [];
    let heap = this.#module.HEAPF64;
    const extras = heap[this.#header + HDR_TEXT_LEN] > 0 ? this.#readJson() : null;
    let at = this.#records();
    const out = new Array(count);
    let lastH = NaN;
    let id = '';
    for (let i = 0; i < count; i++, at += 4) {
      const kind = heap[at];
      const h = heap[at + 1];
      if (h !== lastH) {
        // A task's events often come in a row: one id string for them.
        lastH = h;
        id = this.idOf(h); // h < 0 may call into the core (and grow its memory): read the heap again
        if (h < 0) heap = this.#module.HEAPF64;
      }
      // Keys in sorted order, as the core writes them.
      if (kind === KIND_CUSTOM) {
        const t = heap[at + 2];
        out[i] = { event_type: t >= 0 ? this.#strings[t] : extras[-1 - t], kind: 'custom', payload: payloads.take(heap[at + 3]), task_id: id };
      } else if (kind === KIND_COMPLETED)
        out[i] = { kind: 'completed', result: payloads.take(heap[at + 3]), task_id: id };
      else if (kind === KIND_FAILED) out[i] = causes.attach({ error: extras[heap[at + 3]], kind: 'failed', task_id: id });
      else if (kind === KIND_CANCELLED) out[i] = { kind: 'cancelled', task_id: id };
      else out[i] = extras[heap[at + 3]];
    }
    if (!payloads.empty) payloads.compact(this.#runtime.pendingEvents() === 0);
    return out;
  }

  /** Turns the core's copies of events for listeners on or off. */
  setTap(on) {
    this.#runtime.setTap(on);
  }

  /**
   * The events produced since the last call (listeners are on), in order, as {event, thread}:
   * payloads are read where they are held, not taken (drain() still gets them); `threadOf(id)`
   * says a task's thread.
   */
  takeTapped(payloads, causes, threadOf) {
    const count = this.#runtime.takeTapped();
    if (count === 0) return NONE;
    const heap = this.#module.HEAPF64;
    const extras = heap[this.#header + HDR_TEXT_LEN] > 0 ? this.#readJson() : null;
    let at = this.#records();
    const records = [];
    for (let i = 0; i < count; i++, at += 4) records.push(heap[at], heap[at + 1], heap[at + 2], heap[at + 3]);
    const out = [];
    for (let i = 0; i < records.length; i += 4) {
      const kind = records[i];
      const h = records[i + 1];
      const id = h === h ? this.idOf(h) : undefined;
      let event;
      if (kind === KIND_CUSTOM) {
        const t = records[i + 2];
        event = { event_type: t >= 0 ? this.#strings[t] : extras[-1 - t], kind: 'custom', payload: payloads.peek(records[i + 3]), task_id: id };
      } else if (kind === KIND_COMPLETED) event = { kind: 'completed', result: payloads.peek(records[i + 3]), task_id: id };
      else if (kind === KIND_FAILED) event = causes.attach({ error: extras[records[i + 3]], kind: 'failed', task_id: id });
      else if (kind === KIND_CANCELLED) event = { kind: 'cancelled', task_id: id };
      else event = extras[records[i + 3]];
      const thread = id === undefined ? event.owner_thread_id : threadOf(id);
      out.push({ event, thread });
    }
    return out;
  }

  // ---- limits, deadlines, shutdown ----
  /** Replaces the concurrency limits (checked ones; undefined: none); 0 or an error code. */
  setConcurrency(perThread, perType) {
    return this.#runtime.setConcurrency(perThread ?? -1, perType === undefined ? '' : JSON.stringify(perType));
  }

  setCancelGraceMs(ms) {
    this.#runtime.setCancelGraceMs(ms);
  }

  beginShutdown() {
    this.#runtime.beginShutdown();
  }

  finishShutdown() {
    this.#runtime.finishShutdown();
  }

  // ---- snapshots and stores ----
  /** awaken's background_task_state value, one thread's (`has`) or every thread's. */
  snapshot(thread, has) {
    return this.#readJson(this.#runtime.snapshot(thread, has));
  }

  /** One thread's snapshot as JSON text. */
  snapshotText(thread) {
    this.#runtime.snapshot(thread, true);
    return this.#readText();
  }

  /** Restores `snapshot` (an object) into `thread`: the core's report {added, skipped, highest}; throws its refusal. */
  restore(thread, snapshot) {
    let text;
    try {
      text = toJson(snapshot, 'snapshot');
    } catch (e) {
      // Snapshots are untrusted data: one too deep for JSON.stringify is refused as the core would.
      if (!(e.cause instanceof RangeError)) throw e;
      throw new BgTasksError('InvalidSnapshot', `invalid snapshot: snapshot: nesting deeper than ${this.#module.kMaxSnapshotDepth} levels`);
    }
    const n = this.#runtime.restore(thread, this.#encodeText(text));
    if (n < 0) throw this.error(-n);
    return this.#readJson(n);
  }

  trackChanges(on) {
    this.#runtime.trackChanges(on);
  }

  /** The threads changed since the last call (change tracking on). */
  takeChangedThreads() {
    return this.#runtime.takeChangedThreads() > 0 ? JSON.parse(this.#readText()) : [];
  }

  grantIds(first, count) {
    return this.#runtime.grantIds(first, count);
  }

  idsLeft() {
    return this.#runtime.idsLeft();
  }

  // ---- time and the core's poll loop ----
  /** Runs the core's ready work (its own poll loop). */
  poll() {
    this.#runtime.runUntilIdle();
  }

  advance(ms) {
    this.#runtime.advance(ms);
  }

  setTime(t) {
    this.#runtime.setTime(t);
  }

  now() {
    return this.#runtime.now();
  }

  /** The earliest armed deadline, or -1. */
  nextDeadline() {
    return this.#runtime.nextDeadline();
  }
}
