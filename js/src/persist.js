// Saving a thread into a store by hand (TaskManager.persist into a store that is not attached):
// one save in flight per store and thread, the snapshot taken when the save starts; calls made
// while one is in flight are folded into a single follow-up save of the newest state.

export class ManualSaves {
  #byStore = new WeakMap(); // store → thread → { running, queued }

  /** Saves `snapshot(thread)` into `store`; resolves once a save that started after the call is done. */
  save(store, thread, snapshot) {
    let byThread = this.#byStore.get(store);
    if (byThread === undefined) this.#byStore.set(store, (byThread = new Map()));
    let slot = byThread.get(thread);
    if (slot === undefined) byThread.set(thread, (slot = { running: null, queued: null }));
    if (slot.running === null) return this.#run(store, thread, byThread, slot, snapshot, snapshot(thread));
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

  async #run(store, thread, byThread, slot, snapshot, value) {
    const run = Promise.resolve().then(() => store.save(thread, value));
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
          snap = snapshot(thread);
        } catch (e) {
          next.reject(e);
        }
        if (snap !== undefined) this.#run(store, thread, byThread, slot, snapshot, snap).then(next.resolve, next.reject);
      } else byThread.delete(thread);
    }
  }
}
