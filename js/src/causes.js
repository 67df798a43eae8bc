// What the bodies of failed tasks threw (an Error keeps its name, stack, cause, errors), by task
// id, while the task exists: the core stores awaken's error string, and the thrown value rides
// along on that task's failed event and summaries as a non-enumerable `cause` (so JSON and
// deep-equality views stay awaken's).

export class FailureCauses {
  #thrown = new Map(); // id → what the body threw
  #pruneAt = 64;
  #exists; // (id) => whether the core still has the task

  /** @param exists (id) => true while the core still has the task (retention drops tasks in the core) */
  constructor(exists) {
    this.#exists = exists;
  }

  /** Keeps what the body of failed task `id` threw. */
  keep(id, thrown) {
    this.#thrown.set(id, thrown);
    if (this.#thrown.size < this.#pruneAt) return;
    // Retention drops tasks inside the core: forget the throws of tasks that are gone.
    for (const known of this.#thrown.keys()) if (!this.#exists(known)) this.#thrown.delete(known);
    this.#pruneAt = Math.max(64, this.#thrown.size * 2);
  }

  forget(id) {
    this.#thrown.delete(id);
  }

  /** A failed task's summary or event (null passes) with what its body threw as `cause`. */
  attach(record) {
    if (record !== null && record.status !== 'running' && this.#thrown.size > 0) {
      const thrown = this.#thrown.get(record.task_id);
      if (thrown !== undefined && (record.status === 'failed' || record.kind === 'failed'))
        Object.defineProperty(record, 'cause', { value: thrown, configurable: true, writable: true });
    }
    return record;
  }
}
