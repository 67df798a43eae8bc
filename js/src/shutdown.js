// A host-style stop of one manager (TaskManager.shutdown): new spawns are refused, every live
// task's signal aborts with a shutdown reason, bodies get a grace period (on the manager's clock)
// to settle, then the core ends the rest; then the attached store is flushed and, unless told
// not to, the manager disposed (docs/scheduling.md, "Shutdown").

export class Shutdown {
  /** The promise shutdown() returns (every call during this shutdown returns it). */
  promise = null;
  /** Set once the grace is over (a later shutdown() call just returns `promise`). */
  finished = false;
  #drained;
  #settled = new Promise((resolve) => (this.#drained = resolve));
  #shorten = () => {};

  /** Every body has settled or been ended (the grace need not run out). */
  drained() {
    this.#drained();
  }

  /** A second shutdown() while the grace runs: it ends no later than `graceMs` from now. */
  shorten(graceMs) {
    this.#shorten(graceMs);
  }

  /**
   * Begins: `bodies` (the manager's Bodies) tells the core, then the grace, the forced end, the
   * flush of `link` (a StoreLink or null) and `manager.dispose()` when `dispose`. Sets `promise`.
   */
  start(bodies, link, manager, graceMs, dispose) {
    bodies.beginShutdown(this);
    this.promise = this.#finish(bodies, link, manager, graceMs, dispose);
    return this.promise;
  }

  async #finish(bodies, link, manager, graceMs, dispose) {
    if (bodies.liveCount > 0) {
      let graceOver;
      const over = new Promise((resolve) => (graceOver = resolve));
      const timers = [];
      const arm = (ms) => {
        if (ms === 0) {
          graceOver(); // no grace: nothing to wait for, not even a poll
          return;
        }
        timers.push(bodies.armPlainTimer(ms, graceOver, graceOver));
      };
      arm(graceMs);
      this.#shorten = arm;
      await Promise.race([this.#settled, over]);
      for (const timer of timers) bodies.dropTimer(timer);
    }
    this.finished = true;
    if (bodies.disposed) return;
    bodies.finishShutdown();
    link?.collect();
    try {
      if (link !== null) await link.flush();
    } finally {
      if (dispose) manager.dispose();
    }
  }
}
