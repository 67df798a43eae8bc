// Fan-out (subscribe): every event handed to the listeners as it is produced, in order, without
// taking it from the owner inbox that drain() and events() read. The core keeps a copy of each
// event for them while at least one listener is subscribed (its tap).

function reportListenerError(e) {
  if (typeof globalThis.reportError === 'function') globalThis.reportError(e);
  else console.error('bgtasks: an event listener threw:', e);
}

export class FanOut {
  #core; // Marshal
  #payloads;
  #causes;
  #bodies; // the manager's Bodies: disposed, and the records of live tasks
  #listeners = []; // { listener, thread }
  #dispatching = false;
  #ended = new Map(); // id → rec of tasks that ended since the last dispatch (their thread)
  #threadOf = (id) => {
    const rec = this.#bodies.record(id) ?? this.#ended.get(id);
    if (rec !== undefined) return rec.thread;
    return this.#core.get(id)?.owner_thread_id;
  };

  constructor(core, payloads, causes, bodies) {
    this.#core = core;
    this.#payloads = payloads;
    this.#causes = causes;
    this.#bodies = bodies;
  }

  /** True while a listener is subscribed. */
  get active() {
    return this.#listeners.length > 0;
  }

  /** Subscribes `listener` to `thread`'s events (undefined: every thread's); the unsubscribe function. */
  add(listener, thread) {
    const entry = { listener, thread };
    if (this.#listeners.length === 0) this.#core.setTap(true);
    this.#listeners = [...this.#listeners, entry]; // a copy: a dispatch in progress keeps its list
    return () => {
      const at = this.#listeners.indexOf(entry);
      if (at < 0) return;
      this.#listeners = this.#listeners.filter((e) => e !== entry);
      if (this.#listeners.length === 0 && !this.#bodies.disposed) {
        this.dispatch(); // what was produced before the last unsubscribe goes nowhere
        this.#core.setTap(false);
      }
    };
  }

  /** A task that ended (listeners only): its thread stays known until the next dispatch. */
  ended(id, rec) {
    if (this.#listeners.length > 0) this.#ended.set(id, rec);
  }

  /** Drops every listener (the manager is disposed). */
  clear() {
    this.#listeners = [];
  }

  /**
   * Hands the events the core produced since the last call to the listeners, in order. A
   * listener that throws is reported and does not stop the others.
   */
  dispatch() {
    if (this.#dispatching || this.#bodies.disposed) return; // a listener's own calls: the outer loop goes on
    this.#dispatching = true;
    try {
      for (;;) {
        const events = this.#core.takeTapped(this.#payloads, this.#causes, this.#threadOf);
        if (events.length === 0) return;
        for (const event of events) {
          for (const { listener, thread } of this.#listeners) {
            if (thread !== undefined && thread !== event.thread) continue;
            try {
              listener(event.event);
            } catch (e) {
              reportListenerError(e);
            }
            if (this.#bodies.disposed) return;
          }
        }
      }
    } finally {
      this.#dispatching = false;
      this.#ended.clear();
    }
  }
}
