// The bodies of one manager and the loop that runs them: a spawn makes the task's record and
// context; the pump starts bodies, runs the core's poll loop and delivers timers; a body's
// settle goes into the core (a host task's result or error); what the core does on its own
// (starts of queued tasks, cancel requests, forced ends) reaches the bodies as aborted signals,
// ended waits and started bodies. The core decides every rule: this module only runs JS code
// when the core says so and tells the core what that code did (docs/js-api.md).
import { AGENT_OPTIONS, SPAWN_OPTIONS, checkFunction, checkMs, checkOptions, checkParent, checkSignal, checkString } from './arguments.js';
import { FailureCauses } from './causes.js';
import { AgentInbox, CancelState, TaskContext } from './context.js';
import { payloadValue } from './copy.js';
import { BgTasksError } from './errors.js';
import { FanOut } from './fan-out.js';
import { CODE_INVALID_ARGUMENT, HANDLE_NOT_TAKEN } from './marshal.js';
import { PayloadTable } from './payload-table.js';
import { abortError, cancelReason, failureText } from './reasons.js';

// The body whose synchronous part runs now: its manager's core (a Marshal) and its handle.
// Module-wide, as the core's ambient task is (a body of one manager spawning on another gives
// that child a parent, as natively; docs/behaviour.md, "Lineage"); the core is told only when
// such a body spawns.
let runningCore = null;
let runningHandle = 0;

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

export class Bodies {
  #core; // Marshal
  #link; // StoreLink of an attached store, or null
  #manual;
  #disposed = false;
  #payloads;
  #payloadLimits;
  #causes;
  #fanOut;
  #live = new Map(); // id → rec { id, h, cancel, ctx, body, recvWaiters, … } for bodies that have not settled
  #pendingStarts = []; // records whose bodies start at the next pump (spawn never runs a body)
  #endWaiters = new Map(); // id → [resolve]
  #timers = new Map(); // timer number → { resolve, reject }
  #eventWaiters = [];
  #activity = 0;
  #pumpQueued = false;
  #wakeTimer = null;
  #wakeDeadline = -1;
  #runForTail = Promise.resolve(); // the last runFor() queued
  // Set once the core may start or end tasks on its own (limits, deadlines, grace, shutdown): the
  // pump then asks it what it did. Unset, the plain path makes none of those calls.
  #scheduled;
  #shutdown = null; // the Shutdown in progress

  /**
   * @param core the manager's Marshal
   * @param config createTaskManager's checked options (manual, ownerDropOldest, ownerInboxCapacity)
   * @param link the StoreLink of an attached store, or null
   * @param scheduled whether the core may already start or end tasks on its own
   */
  constructor(core, config, link, scheduled) {
    this.#core = core;
    this.#link = link;
    this.#manual = config.manual;
    this.#scheduled = scheduled;
    this.#payloadLimits = core.payloadLimits;
    this.#payloads = new PayloadTable(config.ownerDropOldest ? config.ownerInboxCapacity : 0);
    this.#causes = new FailureCauses((id) => core.has(id));
    this.#fanOut = new FanOut(core, this.#payloads, this.#causes, this);
  }

  get disposed() {
    return this.#disposed;
  }

  /** Throws BgTasksError Disposed once the manager is disposed. */
  alive() {
    if (this.#disposed) throw new BgTasksError('Disposed', 'TaskManager is disposed');
  }

  /** The record of a task whose body has not settled, or undefined. */
  record(id) {
    return this.#live.get(id);
  }

  // ---- spawning ----
  /** Spawns a task (a sub-agent with `agent`): its id. `parentHandle`: the parent task's (ctx.spawn) or null. */
  spawn(options, body, agent, parentHandle) {
    this.alive();
    const method = agent ? 'spawnAgent' : 'spawn';
    checkOptions(options, `${method} options`, agent ? AGENT_OPTIONS : SPAWN_OPTIONS);
    // Any string is a thread, "" included (awaken's owner_thread_id is a plain string).
    const thread = checkString(options.thread, 'options.thread');
    const type = agent ? 'sub_agent' : checkString(options.type, 'options.type');
    const name = options.name !== undefined && options.name !== null ? checkString(options.name, 'options.name') : null;
    const description = options.description === undefined ? '' : checkString(options.description, 'options.description');
    const parent = options.parent === undefined ? null : checkParent(options.parent);
    const signal = options.signal === undefined || options.signal === null ? null : checkSignal(options.signal, 'options.signal');
    const timeoutMs = options.timeoutMs === undefined ? -1 : checkMs(options.timeoutMs, 'options.timeoutMs');
    checkFunction(body, 'body');

    const core = this.#core;
    // The core is told which task is the parent, or which body is running (only then: a top-level
    // spawn crosses once). A running body's core may be another manager's, or one disposed inside
    // that body (then no body is ambient).
    let scope = null; // the core whose task scope is entered around the spawn
    if (parentHandle !== null) scope = core;
    else if (runningCore !== null && !runningCore.isDeleted()) scope = runningCore;
    const h = core.spawn(agent, thread, type, name, description, parent, timeoutMs, scope, parentHandle ?? runningHandle);
    if (h !== h) {
      // NaN: refused
      const error = core.lastError();
      if (error.code === 'IdsUnavailable')
        error.message += ` (the store grants ${this.#link ? 'ids in blocks' : 'ids'}; await manager.reserveIds(n) before spawning more tasks at once than idBlockSize)`;
      throw error;
    }
    if (this.#link !== null) this.#link.afterSpawn();
    const id = core.idOf(h);
    const rec = { id, h, cancel: new CancelState(), ctx: null, body, recvWaiters: agent ? [] : null, abortReason: undefined, unlink: null, timeoutMs, thread };
    rec.ctx = new TaskContext(this, rec, agent ? new AgentInbox(this, rec) : undefined);
    this.#live.set(id, rec);
    // A task behind a concurrency limit starts when the core says so (takeStarts).
    if (!core.lastSpawnQueued()) this.#pendingStarts.push(rec);
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

  // Runs the synchronous part of each pending body with the task as ambient parent, then lets its
  // promise settle the task.
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
        const handle = this.#payloads.put(copy);
        code = core.complete(rec.h, text, want, handle);
        if (this.#fanOut.active) {
          this.#fanOut.dispatch(); // while the result is still held
          if (this.#disposed) return; // a listener disposed the manager
        }
        if (code === HANDLE_NOT_TAKEN || code > 0) this.#payloads.unput(); // no event holds it, or the core refused it
        else this.#payloads.trim();
        if (code === CODE_INVALID_ARGUMENT) {
          ok = false;
          value = `result refused: ${core.lastErrorMessage()}`;
        }
      }
    }
    if (!ok) {
      // Once its cancel was requested the core ends the task its own way (cancelled, or as a
      // shutdown says): the body's error text would be discarded, so none is made.
      code = core.failTask(rec.h, rec.cancel.cancelled ? null : failureText(value), want);
      if (code === 0 && value !== null && (typeof value === 'object' || typeof value === 'function')) this.#causes.keep(id, value);
    }
    void code; // TaskTerminated only if the core already settled it (cannot happen for a live body)
    this.#live.delete(id);
    this.#fanOut.ended(id, rec);
    rec.unlink?.();
    if (rec.recvWaiters !== null) for (const wake of rec.recvWaiters.splice(0)) wake(null);
    if (waiters) {
      this.#endWaiters.delete(id);
      const summary = this.#causes.attach(core.lastEnded()); // retention may already have dropped the task
      for (const resolve of waiters) resolve(summary);
    }
    if (this.#fanOut.active) this.#fanOut.dispatch();
    if (this.#scheduled) this.#afterCoreMoves();
    this.#wakeEventWaiters();
    this.#touch();
  }

  // ---- what the core did on its own: starts of queued tasks, cancels, forced ends ----
  #afterCoreMoves() {
    this.#afterCancel(false);
    this.#takeForcedEnds();
    this.#takeStarts();
    if (this.#fanOut.active) this.#fanOut.dispatch();
    if (this.#shutdown !== null && this.#live.size === 0) this.#shutdown.drained();
  }

  #takeStarts() {
    const handles = this.#core.takeStarts();
    if (handles.length === 0) return;
    for (let i = 0; i < handles.length; i++) {
      const rec = this.#live.get(this.#core.idOf(handles[i]));
      if (rec !== undefined && rec.body !== null) this.#pendingStarts.push(rec);
    }
    this.#activity++;
  }

  // Host tasks the core ended without their body (deadline, grace, shutdown, a queued task's
  // cancel): the body's later settle is ignored; waiters get the summary now.
  #takeForcedEnds() {
    const handles = this.#core.takeForcedEnds();
    if (handles.length === 0) return;
    for (const h of handles) {
      const id = this.#core.idOf(h);
      const rec = this.#live.get(id);
      if (rec === undefined) continue;
      this.#live.delete(id);
      this.#fanOut.ended(id, rec);
      rec.unlink?.();
      if (!rec.cancel.cancelled) rec.cancel.abort(abortError('The task was ended by the manager'));
      if (rec.recvWaiters !== null) for (const wake of rec.recvWaiters.splice(0)) wake(null);
      const waiters = this.#endWaiters.get(id);
      if (waiters) {
        this.#endWaiters.delete(id);
        const summary = this.summary(id);
        for (const resolve of waiters) resolve(summary);
      }
    }
    this.#activity++;
    this.#wakeEventWaiters();
  }

  // ---- bodies' calls (through TaskContext and AgentInbox) ----
  /** ctx.spawn / ctx.spawnAgent: a child of `rec`'s task. */
  spawnChild(rec, options, body, agent) {
    return this.spawn(options, body, agent, rec.h);
  }

  /** ctx.emit: the payload stays here, the core gets its handle (and decides). */
  emit(rec, eventType, payload) {
    this.alive();
    const core = this.#core;
    let ty = core.interned(eventType);
    if (ty === undefined) {
      checkString(eventType, 'eventType');
      ty = core.intern(eventType);
    }
    const value = payloadValue(payload, 'payload', this.#payloadLimits);
    const handle = this.#payloads.put(value);
    const delivered = core.emit(rec.h, ty, eventType, handle);
    this.#activity++;
    if (this.#fanOut.active) this.#fanOut.dispatch(); // while the payload is still held
    if (!delivered) {
      this.#payloads.unput();
      return false;
    }
    this.#payloads.trim();
    if (this.#eventWaiters.length > 0) this.#wakeEventWaiters();
    return true;
  }

  /** ctx.sleep */
  sleep(rec, ms) {
    if (this.#disposed) return Promise.reject(abortError('The task manager was disposed'));
    let delay;
    try {
      delay = checkMs(ms, 'ms');
    } catch (e) {
      return Promise.reject(e);
    }
    const n = this.#core.armTimer(rec.h, delay);
    if (n < 0) return Promise.reject(this.#core.error(-n));
    const promise = new Promise((resolve, reject) => this.#timers.set(n, { resolve, reject }));
    this.#touch();
    return promise;
  }

  /** ctx.inbox.tryRecv */
  tryRecv(rec) {
    if (this.#disposed) return null;
    return this.#core.takeAgentMessage(rec.h);
  }

  /** ctx.inbox.recv */
  recv(rec) {
    const msg = this.tryRecv(rec);
    if (msg !== null) return Promise.resolve(msg);
    if (this.#live.get(rec.id) !== rec || rec.cancel.cancelled) return Promise.resolve(null);
    return new Promise((resolve) => rec.recvWaiters.push(resolve));
  }

  /** After sendMessage to `taskId`: hands waiting recv() calls their messages. */
  messageSent(taskId) {
    const rec = this.#live.get(taskId);
    if (rec && rec.recvWaiters !== null) {
      while (rec.recvWaiters.length > 0) {
        const msg = this.tryRecv(rec);
        if (msg === null) break;
        rec.recvWaiters.shift()(msg);
      }
    }
    this.#touch();
  }

  #deliverTimers() {
    if (this.#timers.size === 0) return 0;
    const fired = this.#core.takeFiredTimers();
    if (fired.length === 0) return 0;
    for (let i = 0; i < fired.length; i += 2) {
      const t = this.#timers.get(fired[i]);
      if (!t) continue;
      this.#timers.delete(fired[i]);
      if (fired[i + 1] === 1) t.resolve();
      else t.reject(abortError());
    }
    const count = fired.length / 2;
    this.#activity += count;
    return count;
  }

  /**
   * Arms a timer of no task on the manager's clock (wait timeouts, shutdown grace): `resolve` runs
   * when it fires, `reject` when it is cancelled or the manager disposed. Its number.
   */
  armPlainTimer(ms, resolve, reject) {
    const timer = this.#core.armPlainTimer(ms);
    this.#timers.set(timer, { resolve, reject });
    this.#touch();
    return timer;
  }

  /** Forgets a timer armed with armPlainTimer (it may still fire in the core: nothing runs). */
  dropTimer(timer) {
    this.#timers.delete(timer);
  }

  // ---- summaries and waits ----
  /** awaken's TaskSummary (with the body's throw as `cause`), or null for an unknown id. */
  summary(id) {
    return this.#causes.attach(this.#core.get(id));
  }

  /** Drops a finished task; true if something was removed. */
  forget(id) {
    const gone = this.#core.forget(id);
    if (gone) this.#causes.forget(id);
    if (this.#link !== null) this.#link.collect();
    return gone;
  }

  /** Resolves with the terminal summary once the task's body has ended (null for an unknown id). */
  wait(id, timeoutMs, signal) {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const summary = this.summary(id);
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
        timer = this.armPlainTimer(
          timeoutMs,
          () => done(() => reject(new DOMException(`wait(${id}) timed out after ${timeoutMs} ms`, 'TimeoutError'))),
          (e) => done(() => reject(e)),
        );
      }
      if (signal !== null) {
        onAbort = () => done(() => reject(signal.reason));
        signal.addEventListener('abort', onAbort, { once: true });
      }
    });
  }

  // ---- cancellation ----
  cancel(id) {
    const r = this.#core.cancel(id);
    this.#afterCancel();
    return r;
  }

  cancelTree(id) {
    const n = this.#core.cancelTree(id);
    this.#afterCancel();
    return n;
  }

  cancelAll(thread) {
    const n = this.#core.cancelAll(thread);
    this.#afterCancel();
    return n;
  }

  // The core lists whose cancel was just requested, and why; their signals abort with that reason
  // and inbox waits end.
  #afterCancel(touch = true) {
    const requests = this.#core.takeCancelRequests();
    const count = requests.length / 2;
    for (let i = 0; i < requests.length; i += 2) {
      const rec = this.#live.get(this.#core.idOf(requests[i]));
      if (!rec) continue;
      const reason = rec.abortReason !== undefined && requests[i + 1] === 0 ? rec.abortReason : cancelReason(requests[i + 1], rec);
      rec.cancel.abort(reason);
      if (rec.recvWaiters !== null) for (const wake of rec.recvWaiters.splice(0)) wake(null);
    }
    if (!touch) return;
    if (this.#scheduled || this.#fanOut.active) {
      // A queued task's cancel ends it at once, and frees nothing; an ended one may free a slot.
      this.#takeForcedEnds();
      this.#takeStarts();
      if (this.#fanOut.active) this.#fanOut.dispatch();
    }
    if (count > 0 || this.#scheduled) this.#touch();
  }

  // ---- limits and shutdown ----
  /** After the core's concurrency limits changed: queued tasks that now fit start at the next poll. */
  limitsChanged() {
    this.#scheduled = true;
    this.#afterCoreMoves();
    this.#touch();
  }

  /** The number of tasks whose bodies have not settled. */
  get liveCount() {
    return this.#live.size;
  }

  /** Starts `shutdown` (a Shutdown): the core refuses spawns and cancels every live task. */
  beginShutdown(shutdown) {
    this.#shutdown = shutdown;
    this.#scheduled = true;
    this.#core.beginShutdown();
    this.#afterCoreMoves();
  }

  /** Ends the shutdown's grace: the core ends every task still live. */
  finishShutdown() {
    this.#core.finishShutdown();
    this.#afterCoreMoves();
  }

  // ---- events ----
  /** Takes up to `max` (-1: all) owner-inbox events, all threads' or `thread`'s. */
  drain(thread, max) {
    return this.#core.drain(thread, max, this.#payloads, this.#causes);
  }

  /** The owner inbox as an async iterator (it consumes, like drain); ends on dispose. */
  events(thread) {
    const self = this;
    return (async function* events() {
      for (;;) {
        if (self.#disposed) return;
        const batch = self.drain(thread, 1);
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

  /** subscribe(): the unsubscribe function. */
  subscribe(listener, thread) {
    return this.#fanOut.add(listener, thread);
  }

  // ---- time and the poll loop ----
  /** Manual clock: lets `delta` ms pass, stopping at every deadline on the way; calls queue. */
  runFor(delta) {
    // One made while another runs (a forgotten await) starts when that one ends, so time moves by
    // the sum of the two, as if they had been awaited one after the other.
    const run = this.#runForTail.then(() => this.#runFor(delta));
    this.#runForTail = run.catch(() => {});
    return run;
  }

  async #runFor(delta) {
    if (this.#disposed) return;
    const core = this.#core;
    const target = core.now() + delta;
    await this.runUntilIdle();
    for (;;) {
      if (this.#disposed) return;
      const d = core.nextDeadline();
      if (d < 0 || d > target) break;
      core.setTime(d);
      await this.runUntilIdle();
    }
    if (this.#disposed) return;
    core.setTime(target);
    await this.runUntilIdle();
  }

  /** Runs until nothing is ready and every settled promise has delivered; never moves time. */
  async runUntilIdle() {
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
      this.#core.poll();
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

  /** Frees the core. Live bodies' signals abort; pending sleeps reject; waits resolve null; iterators end. */
  dispose() {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#clearWakeup();
    this.#link?.close();
    this.#fanOut.clear();
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
    this.#payloads.clear(); // undrained payloads and results go with the queue
    this.#wakeEventWaiters();
    this.#core.delete();
  }
}
