// What a body receives: ctx.taskId, ctx.emit, ctx.signal, ctx.isCancelled(), ctx.sleep(ms),
// ctx.spawn / ctx.spawnAgent (children of this task), and for sub-agents ctx.inbox.

/**
 * Cancellation state shared by a task's context and its manager. The AbortController is made on
 * first use of ctx.signal (most bodies never look), already aborted if cancel came first.
 */
export class CancelState {
  cancelled = false;
  reason = undefined;
  #controller = null;

  get signal() {
    if (this.#controller === null) {
      this.#controller = new AbortController();
      if (this.cancelled) this.#controller.abort(this.reason);
    }
    return this.#controller.signal;
  }

  abort(reason) {
    if (this.cancelled) return;
    this.cancelled = true;
    this.reason = reason;
    this.#controller?.abort(reason);
  }
}

/** The context handed to a task body. */
export class TaskContext {
  #bodies;
  #cancel;

  #rec;

  /** @internal bodies: the manager's Bodies; rec: its record of the task ({ id, h, cancel, … }) */
  constructor(bodies, rec, inbox) {
    this.#bodies = bodies;
    this.#rec = rec;
    this.#cancel = rec.cancel;
    /** This task's id ('bg_N'). */
    this.taskId = rec.id;
    /** Sub-agents only: their inbox of agent_message events. */
    if (inbox) this.inbox = inbox;
    Object.freeze(this);
  }

  /** Aborted when the task's cancel is requested. */
  get signal() {
    return this.#cancel.signal;
  }

  isCancelled() {
    return this.#cancel.cancelled;
  }

  /** A custom event to the owner inbox: `{kind:'custom', task_id, event_type, payload}`. */
  emit(eventType, payload) {
    return this.#bodies.emit(this.#rec, eventType, payload);
  }

  /** Resolves after `ms` on the manager's clock; rejects with an AbortError on cancel. */
  sleep(ms) {
    return this.#bodies.sleep(this.#rec, ms);
  }

  /** Spawns a child of this task (its parent task_id is this task unless given). */
  spawn(options, body) {
    return this.#bodies.spawnChild(this.#rec, options, body, false);
  }

  /** Spawns a sub-agent child of this task. */
  spawnAgent(options, body) {
    return this.#bodies.spawnChild(this.#rec, options, body, true);
  }
}

/** A sub-agent's inbox: recv(), tryRecv(), and async iteration (ends on cancel or task end). */
export class AgentInbox {
  #bodies;
  #rec;

  /** @internal */
  constructor(bodies, rec) {
    this.#bodies = bodies;
    this.#rec = rec;
  }

  /** The next message, or null once the task is cancelled or has ended. */
  recv() {
    return this.#bodies.recv(this.#rec);
  }

  /** The next message if one is waiting, else null. */
  tryRecv() {
    return this.#bodies.tryRecv(this.#rec);
  }

  async *[Symbol.asyncIterator]() {
    for (;;) {
      const msg = await this.recv();
      if (msg === null) return;
      yield msg;
    }
  }
}
