// A manager attached to a store (createTaskManager({ store })): task ids come from the store in
// blocks, each thread the manager touches is claimed and its saved state taken in before the
// manager's first write of it, and every change is saved without being asked.
//
// Saving, per thread: a change bumps the thread's generation; a write takes the newest snapshot
// when it starts and records the generation it covers; at most one write is in flight, and changes
// made meanwhile are covered by one follow-up write. So writes coalesce under load, and a slow
// earlier write can never land after a later one. flush() waits until every generation that
// existed when it was called is written.
//
// The core holds the rules (which ids are free, which threads changed, how a restore merges);
// this module only moves data between the core and the store.
import { BgTasksError } from './errors.js';

const MAX_BLOCK = 1 << 20;

function ownerName() {
  const random =
    typeof crypto !== 'undefined' && typeof crypto.randomUUID === 'function'
      ? crypto.randomUUID()
      : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  const pid = typeof process !== 'undefined' && process?.pid ? `pid ${process.pid} ` : '';
  return `${pid}${random}`;
}

const nextMacrotask =
  typeof setImmediate === 'function' ? (fn) => setImmediate(fn) : (fn) => setTimeout(fn, 0);

export class StoreLink {
  #store;
  #core; // { takeChanged, snapshot, restore, grantIds, idsLeft }
  #onError;
  #blockSize;
  #owner = ownerName();
  #threads = new Map(); // thread → ThreadState
  #refill = null; // the id reservation in flight
  #grantedEnd = 0; // end of the highest block granted (floor raises below it are not needed)
  #usedSinceRefill = 0;
  #lastBlock = 0; // size of the last block reserved in the background (the low-water mark is half)
  #leftEstimate = 0; // ids left, counted down per spawn between looks at the core's count
  #collectQueued = false;
  #floor = Promise.resolve(); // raises of the store's id floor, awaited before the next write
  #closed = false;

  /**
   * @param store the attached store
   * @param core  the manager's core operations (closures over its private state)
   * @param options { onStoreError, idBlockSize }
   */
  constructor(store, core, options) {
    this.#store = store;
    this.#core = core;
    this.#onError = options.onStoreError ?? null;
    this.#blockSize = options.idBlockSize;
  }

  get store() {
    return this.#store;
  }

  /** The first block of ids, before the manager is handed out. */
  async start() {
    await this.#reserve(this.#blockSize);
  }

  // ---- ids ----
  /** After each spawn: keep a block ahead, so that spawns never wait for the store. */
  afterSpawn() {
    this.#usedSinceRefill++;
    // A countdown spares a crossing per spawn; the core's own count decides (it may have skipped
    // numbers a restore took).
    if (--this.#leftEstimate >= this.#lastBlock / 2) return;
    this.#leftEstimate = this.#core.idsLeft();
    if (this.#refill === null && this.#leftEstimate < this.#lastBlock / 2) {
      // Blocks grow with the spawn rate: the next one lasts four times as long as the last did.
      const size = Math.min(MAX_BLOCK, Math.max(this.#blockSize, 4 * this.#usedSinceRefill));
      this.#usedSinceRefill = 0;
      this.#reserve(size).catch((e) => this.#report(e, undefined));
    }
  }

  /** Reserves `count` more ids now (a burst of spawns bigger than the block in hand). */
  reserveIds(count) {
    return this.#reserve(count, true);
  }

  async #reserve(count, extra = false) {
    if (!extra && this.#refill) return this.#refill;
    const run = (async () => {
      const first = await this.#store.reserveIds(count);
      if (!Number.isSafeInteger(first) || first < 0) throw new TypeError(`store.reserveIds() returned ${first}, not a task number`);
      if (this.#closed) return;
      this.#core.grantIds(first, count);
      this.#leftEstimate = this.#core.idsLeft();
      this.#grantedEnd = Math.max(this.#grantedEnd, first + count);
    })();
    if (extra) return run;
    this.#lastBlock = count;
    this.#refill = run;
    try {
      await run;
    } finally {
      this.#refill = null;
    }
  }

  /** A restore put ids into a thread: later blocks must start above them. */
  noteRestored(highest) {
    if (highest < 0 || highest + 1 <= this.#grantedEnd) return;
    const next = highest + 1;
    this.#grantedEnd = next;
    const previous = this.#floor;
    this.#floor = (async () => {
      await previous.catch(() => {});
      await this.#store.raiseIdFloor(next);
    })();
    this.#floor.catch((e) => this.#report(e, undefined));
  }

  // ---- changes and writes ----
  /** Something may have changed: collect once this turn's synchronous work is done. */
  changed() {
    if (this.#collectQueued) return;
    this.#collectQueued = true;
    queueMicrotask(() => {
      this.#collectQueued = false;
      if (!this.#closed) this.collect();
    });
  }

  /** Takes the threads the core changed and schedules their writes. */
  collect() {
    for (const thread of this.#core.takeChanged()) {
      const st = this.#thread(thread);
      st.gen++;
      this.#schedule(st);
    }
  }

  #thread(thread) {
    let st = this.#threads.get(thread);
    if (st === undefined) {
      st = {
        thread,
        status: 'claiming', // then 'owned'; 'lost' once another owner took it; 'failed' if taking it in failed
        epoch: 0,
        ready: null,
        gen: 0,
        savedGen: 0,
        writing: false,
        scheduled: false,
        waiters: [],
        takeIn: null,
        takeInReported: false,
        error: null,
      };
      this.#threads.set(thread, st);
      st.ready = this.#takeIn(st);
    }
    return st;
  }

  // Claims the thread and restores what the store holds for it (orphans marked) before the first
  // write, so that a manager never saves a thread's state over a saved one it has not loaded.
  async #takeIn(st) {
    st.status = 'claiming';
    st.error = null;
    try {
      const lease = await this.#store.claim(st.thread, {
        owner: this.#owner,
        onLost: () => this.#lost(st, new BgTasksError('StaleOwner', `thread '${st.thread}' was taken over by another owner`)),
      });
      if (!Number.isSafeInteger(lease?.epoch)) throw new TypeError(`store.claim() returned ${JSON.stringify(lease)}, not {epoch}`);
      st.epoch = lease.epoch;
      const saved = await this.#store.load(st.thread);
      if (this.#closed) return;
      const report = saved ? this.#core.restore(st.thread, saved) : { added: 0, skipped: [], highest: -1 };
      st.takeIn = { added: report.added, skipped: report.skipped };
      if (st.status === 'claiming') st.status = 'owned';
    } catch (e) {
      st.status = 'failed';
      st.error = e;
      this.#report(e, st.thread);
      throw e;
    }
  }

  #schedule(st) {
    if (st.writing || st.scheduled || this.#closed) return;
    if (st.status === 'lost') return;
    st.scheduled = true;
    nextMacrotask(() => this.#write(st));
  }

  async #write(st) {
    st.scheduled = false;
    if (st.writing || this.#closed) return;
    st.writing = true;
    st.error = null;
    try {
      if (st.status === 'failed') st.ready = this.#takeIn(st); // a retry (flush, or a new change)
      await st.ready;
      await this.#floor;
      while (st.gen > st.savedGen && st.status === 'owned' && !this.#closed) {
        const target = st.gen;
        // A store that takes JSON text (FileStore) skips a parse and a re-stringify of the thread.
        if (typeof this.#store.saveText === 'function')
          await this.#store.saveText(st.thread, this.#core.snapshotText(st.thread), { epoch: st.epoch });
        else await this.#store.save(st.thread, this.#core.snapshot(st.thread), { epoch: st.epoch });
        st.savedGen = target;
        this.#resolveWaiters(st);
      }
    } catch (e) {
      if (e?.code === 'StaleOwner') this.#lost(st, e);
      else if (st.status !== 'failed') {
        st.error = e;
        this.#report(e, st.thread);
      }
      this.#rejectWaiters(st, st.error ?? e);
    } finally {
      st.writing = false;
    }
    // Changes that came while a write failed wait for the next change or flush(); ones that came
    // after the loop's last check are written now.
    if (st.error === null && st.gen > st.savedGen && st.status === 'owned') this.#schedule(st);
  }

  #lost(st, error) {
    if (st.status === 'lost') return;
    st.status = 'lost';
    st.error = error;
    this.#report(error, st.thread);
    this.#rejectWaiters(st, error);
  }

  #resolveWaiters(st) {
    if (st.waiters.length === 0) return;
    const keep = [];
    for (const w of st.waiters) {
      if (w.gen <= st.savedGen) w.resolve();
      else keep.push(w);
    }
    st.waiters = keep;
  }

  #rejectWaiters(st, error) {
    for (const w of st.waiters.splice(0)) w.reject(error);
  }

  #report(error, thread) {
    if (this.#onError === null || this.#closed) return;
    try {
      this.#onError(error, thread);
    } catch {
      // a throwing callback must not stop the saving
    }
  }

  /** Resolves once every change made before the call is durable; once all are settled, rejects with the first failure. */
  async flush() {
    this.collect();
    const pending = [this.#floor];
    if (this.#refill) pending.push(this.#refill);
    for (const st of this.#threads.values()) {
      if (st.status === 'lost') {
        if (st.gen > st.savedGen) pending.push(Promise.reject(st.error));
        continue;
      }
      if (st.gen > st.savedGen) {
        // Also a retry after a failed write or take-in: the failure went to the flush that saw it.
        pending.push(new Promise((resolve, reject) => st.waiters.push({ gen: st.gen, resolve, reject })));
        this.#schedule(st);
      } else if (st.status !== 'owned') {
        pending.push(this.#ready(st));
      }
    }
    // Every write is waited for, so that after a rejection the other threads are settled too.
    const outcomes = await Promise.allSettled(pending);
    const failed = outcomes.find((o) => o.status === 'rejected');
    if (failed) throw failed.reason;
  }

  // The thread taken in; a take-in that failed is tried again.
  #ready(st) {
    if (st.status === 'failed' && !st.writing) st.ready = this.#takeIn(st);
    return st.ready;
  }

  /** Takes the thread in (if not yet) and reports what its saved state added. */
  async resume(thread) {
    const st = this.#thread(thread);
    await this.#ready(st);
    if (st.takeInReported) return { added: 0, skipped: [] };
    st.takeInReported = true;
    return st.takeIn;
  }

  /** Writes the thread now (if it changed) and waits for it. */
  async flushThread(thread) {
    const st = this.#thread(thread);
    this.collect();
    await this.#ready(st);
    if (st.status === 'lost') throw st.error;
    st.gen++; // an explicit persist writes even when nothing changed
    const done = new Promise((resolve, reject) => st.waiters.push({ gen: st.gen, resolve, reject }));
    this.#schedule(st);
    await done;
  }

  /** 'none' | 'claiming' | 'owned' | 'lost' | 'failed' */
  ownership(thread) {
    return this.#threads.get(thread)?.status ?? 'none';
  }

  /** Stops saving and gives up the threads' claims (a new owner need not steal them). */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    for (const st of this.#threads.values()) {
      this.#rejectWaiters(st, new Error('TaskManager is disposed'));
      if (st.status === 'owned' && typeof this.#store.release === 'function')
        Promise.resolve()
          .then(() => this.#store.release(st.thread, { epoch: st.epoch }))
          .catch(() => {});
    }
  }
}
