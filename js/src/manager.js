// The public API: createTaskManager and TaskManager, the JS face of one core manager. Each method
// checks its arguments and hands over: to the bodies (bodies.js: spawning, settling, waits,
// cancellation, events, the pump), to the core through its marshal (marshal.js: queries,
// snapshots), to the attached store (store-link.js). The core owns ids, records, lineage, order,
// cancellation and events (docs/js-api.md says who decides what).
import {
  checkConcurrency,
  checkCount,
  checkFunction,
  checkMs,
  checkOptions,
  checkSnapshot,
  checkStoreMethod,
  checkString,
  managerConfig,
  shutdownOptions,
  waitOptions,
} from './arguments.js';
import { Bodies } from './bodies.js';
import { BgTasksError } from './errors.js';
import { Marshal, getModule } from './marshal.js';
import { ManualSaves } from './persist.js';
import { Shutdown } from './shutdown.js';
import { StoreLink } from './store-link.js';

/**
 * createTaskManager for one way of loading the wasm module: each entry point (index.js for Node,
 * browser.js) passes its loader, so the browser's module graph has only relative imports.
 *
 * createTaskManager creates a task manager (one WasmRuntime of the binding). Options: clock ('system' | 'manual'),
 * now (manual start, ms), retainFinished, agentInboxCapacity/agentInboxOverflow,
 * ownerInboxCapacity/ownerInboxOverflow; store (attach: ids from the store, threads claimed and
 * saved automatically), onStoreError (error, thread) and idBlockSize (ids reserved at a time,
 * default 65536) with it.
 */
export function managerFactory(loadModule) {
  return async function createTaskManager(options = {}) {
    const config = managerConfig(options);
    const manager = new TaskManager(await getModule(loadModule), config);
    try {
      await startStore(manager);
    } catch (e) {
      manager.dispose();
      throw e;
    }
    return manager;
  };
}

let startStore; // TaskManager's own: reserves the first id block of an attached store

export class TaskManager {
  #core; // Marshal: the core in JS values
  #bodies; // Bodies: the tasks' bodies and the pump
  #manual;
  #link = null; // StoreLink of an attached store
  #shutdown = null; // the Shutdown in progress
  #saves = new ManualSaves(); // persist() into stores that are not attached

  static {
    startStore = (manager) => manager.#link?.start();
  }

  /** @internal use createTaskManager */
  constructor(module, config) {
    const core = new Marshal(module, config);
    this.#core = core;
    this.#manual = config.manual;
    let scheduled = false; // the core may start or end tasks on its own
    if (config.concurrency !== null) {
      const { perThread, perType } = config.concurrency;
      const code = core.setConcurrency(perThread, perType);
      if (code !== 0) {
        const error = core.error(code);
        core.delete();
        throw new TypeError(`options.concurrency: ${error.message}`);
      }
      scheduled = true;
    }
    if (config.cancelGraceMs >= 0) {
      core.setCancelGraceMs(config.cancelGraceMs);
      scheduled = true;
    }
    if (config.store !== null) {
      core.trackChanges(true);
      this.#link = new StoreLink(
        config.store,
        {
          takeChanged: () => core.takeChangedThreads(),
          snapshot: (thread) => this.snapshot(thread),
          snapshotText: (thread) => core.snapshotText(thread),
          restore: (thread, snapshot) => this.restore(thread, snapshot),
          grantIds: (first, count) => core.grantIds(first, count),
          idsLeft: () => core.idsLeft(),
        },
        { onStoreError: config.onStoreError, idBlockSize: config.idBlockSize },
      );
    }
    this.#bodies = new Bodies(core, config, this.#link, scheduled);
  }

  #alive() {
    this.#bodies.alive();
  }

  // ---- spawning ----
  /** Spawns a task whose body is an async function of its context; returns its id at once. */
  spawn(options, body) {
    return this.#bodies.spawn(options, body, false, null);
  }

  /** Spawns a sub-agent (task_type 'sub_agent') with its own inbox (ctx.inbox). */
  spawnAgent(options, body) {
    return this.#bodies.spawn(options, body, true, null);
  }

  // ---- queries ----
  /** awaken's TaskSummary, or null for an unknown id. */
  get(id) {
    this.#alive();
    return this.#bodies.summary(checkString(id, 'id'));
  }

  /** The thread's tasks in id order. */
  list(thread) {
    this.#alive();
    return this.#core.list(checkString(thread, 'thread'));
  }

  hasRunning(thread) {
    this.#alive();
    return this.#core.hasRunning(checkString(thread, 'thread'));
  }

  /** Resolves with the terminal summary once the task's body has ended (null for an unknown id). */
  wait(id, options) {
    this.#alive();
    checkString(id, 'id');
    const { timeoutMs, signal } = waitOptions(options);
    return this.#bodies.wait(id, timeoutMs, signal);
  }

  /** Drops a finished task; true if something was removed. */
  forget(id) {
    this.#alive();
    return this.#bodies.forget(checkString(id, 'id'));
  }

  // ---- cancellation ----
  cancel(id) {
    this.#alive();
    return this.#bodies.cancel(checkString(id, 'id'));
  }

  cancelTree(id) {
    this.#alive();
    return this.#bodies.cancelTree(checkString(id, 'id'));
  }

  cancelAll(thread) {
    this.#alive();
    return this.#bodies.cancelAll(checkString(thread, 'thread'));
  }

  // ---- messages ----
  /** Sends awaken's agent_message to a sub-agent; throws BgTasksError (TaskNotFound, NotOwner, …). */
  sendMessage(taskId, thread, from, content) {
    this.#alive();
    const code = this.#core.sendMessage(checkString(taskId, 'taskId'), checkString(thread, 'thread'), checkString(from, 'from'), checkString(content, 'content'));
    if (code !== 0) throw this.#core.error(code);
    this.#bodies.messageSent(taskId);
  }

  // ---- events ----
  /** Takes the pending owner-inbox events, in order: all, or only `thread`'s. */
  drain(thread) {
    this.#alive();
    return this.#bodies.drain(thread === undefined ? undefined : checkString(thread, 'thread'), -1);
  }

  /** The same queue as an async iterator (it consumes, like drain); ends on dispose. */
  events(thread) {
    this.#alive();
    if (thread !== undefined) checkString(thread, 'thread');
    return this.#bodies.events(thread);
  }

  // ---- limits ----
  /**
   * Replaces the concurrency limits ({perThread?, perType?}; {} removes them). Queued tasks that
   * now fit start at the next poll.
   */
  setConcurrency(limits) {
    this.#alive();
    const { perThread, perType } = checkConcurrency(limits, 'limits');
    const code = this.#core.setConcurrency(perThread, perType);
    if (code !== 0) throw this.#core.error(code);
    this.#bodies.limitsChanged();
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
      if (options.thread !== undefined) thread = checkString(options.thread, 'options.thread');
    }
    return this.#bodies.subscribe(listener, thread);
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
      const { graceMs, dispose } = shutdownOptions(options);
      if (this.#shutdown !== null) {
        this.#shutdown.shorten(graceMs);
        return this.#shutdown.promise;
      }
      this.#shutdown = new Shutdown();
      return this.#shutdown.start(this.#bodies, this.#link, this, graceMs, dispose);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  // ---- persistence ----
  /** awaken's background_task_state value: {tasks: {id: meta}}, one thread's or every thread's. */
  snapshot(thread) {
    this.#alive();
    const has = thread !== undefined;
    return this.#core.snapshot(has ? checkString(thread, 'thread') : '', has);
  }

  /**
   * Claims the snapshot's entries for `thread`, all or nothing: {added, skipped}. An id this
   * thread already has is kept as it is and listed in `skipped`; an id another thread holds refuses
   * the whole restore (IdConflict) and changes nothing.
   */
  restore(thread, snapshot) {
    this.#alive();
    checkString(thread, 'thread');
    const report = this.#core.restore(thread, checkSnapshot(snapshot));
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
    checkString(thread, 'thread');
    if (this.#link !== null && store === this.#link.store) return this.#link.flushThread(thread);
    checkStoreMethod(store, 'save', 'save(thread, snapshot)');
    return this.#saves.save(store, thread, (t) => this.snapshot(t));
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
    checkString(thread, 'thread');
    if (this.#link !== null && store === this.#link.store) return this.#link.resume(thread);
    checkStoreMethod(store, 'load', 'load(thread)');
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
    return this.#link === null ? 'none' : this.#link.ownership(checkString(thread, 'thread'));
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
   * on the way and runs what that woke (runUntilIdle) before moving on. Calls queue: one made
   * while another runs starts when that one ends.
   */
  runFor(ms) {
    try {
      this.#alive();
      const delta = checkMs(ms, 'ms');
      if (!this.#manual) throw new BgTasksError('InvalidArgument', 'runFor() needs a manager created with clock: "manual"');
      return this.#bodies.runFor(delta);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** The manager's clock, in ms. */
  now() {
    this.#alive();
    return this.#core.now();
  }

  /** Runs until nothing is ready and every settled promise has delivered; never moves time. */
  runUntilIdle() {
    try {
      this.#alive();
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#bodies.runUntilIdle();
  }

  // ---- introspection ----
  /** Counts by status, live bodies, cancel-requested-but-running, inbox depth and drops. */
  stats() {
    this.#alive();
    return this.#core.stats();
  }

  /** The task forest: {task_id, task_type, description, status, name?, children: [...]}. */
  taskTree(thread) {
    this.#alive();
    const has = thread !== undefined;
    return this.#core.taskTree(has ? checkString(thread, 'thread') : '', has);
  }

  get disposed() {
    return this.#bodies.disposed;
  }

  /** Frees the core. Live bodies' signals abort; pending sleeps reject; iterators end. */
  dispose() {
    this.#bodies.dispose();
  }
}

if (typeof Symbol.dispose === 'symbol') {
  TaskManager.prototype[Symbol.dispose] = function dispose() {
    this.dispose();
  };
}
