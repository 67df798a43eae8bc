// What a body receives: ctx.taskId, ctx.emit, ctx.signal, ctx.isCancelled(), ctx.sleep(ms),
// ctx.spawn / ctx.spawnAgent (children of this task), and for sub-agents ctx.inbox.

/** The context handed to a task body. */
export class TaskContext {
  #manager;
  #signal;

  constructor(manager, taskId, signal, inbox) {
    this.#manager = manager;
    this.#signal = signal;
    /** This task's id ('bg_N'). */
    this.taskId = taskId;
    /** Sub-agents only: their inbox of agent_message events. */
    if (inbox) this.inbox = inbox;
    Object.freeze(this);
  }

  /** Aborted when the task's cancel is requested. */
  get signal() {
    return this.#signal;
  }

  isCancelled() {
    return this.#signal.aborted;
  }

  /** A custom event to the owner inbox: `{kind:'custom', task_id, event_type, payload}`. */
  emit(eventType, payload) {
    return this.#manager._emit(this.taskId, eventType, payload);
  }

  /** Resolves after `ms` on the manager's clock; rejects with an AbortError on cancel. */
  sleep(ms) {
    return this.#manager._sleep(this.taskId, ms);
  }

  /** Spawns a child of this task (its parent task_id is this task unless given). */
  spawn(options, body) {
    return this.#manager._spawnChild(this.taskId, options, body, false);
  }

  /** Spawns a sub-agent child of this task. */
  spawnAgent(options, body) {
    return this.#manager._spawnChild(this.taskId, options, body, true);
  }
}

/** A sub-agent's inbox: recv(), tryRecv(), and async iteration (ends on cancel or task end). */
export class AgentInbox {
  #manager;
  #taskId;

  constructor(manager, taskId) {
    this.#manager = manager;
    this.#taskId = taskId;
  }

  /** The next message, or null once the task is cancelled or has ended. */
  recv() {
    return this.#manager._recv(this.#taskId);
  }

  /** The next message if one is waiting, else null. */
  tryRecv() {
    return this.#manager._tryRecv(this.#taskId);
  }

  async *[Symbol.asyncIterator]() {
    for (;;) {
      const msg = await this.recv();
      if (msg === null) return;
      yield msg;
    }
  }
}
