// IndexedDbStore (browsers): one record per thread holding awaken's background_task_state value.
// Every save is one transaction; its abort (quota exceeded, tab closing) rejects the save with a
// clear error instead of hanging (a quota error arrives as the transaction's abort event, not as
// an error event).
//
// Ownership across tabs: claim() bumps the thread's epoch in an `owners` object store, and a
// save that carries an older epoch is refused (StaleOwner) in the same transaction that would
// write it, so a tab that was taken over cannot overwrite the new owner's state. A Web Lock per
// thread, stolen by each claim, tells the previous holder at once (onLost) instead of at its
// next write. Task ids come in blocks from a counter in a `meta` object store.
import { openDb } from './idb-requests.js';
import { checkCount, checkFunction, checkOptionalString, checkOptions, checkString } from './arguments.js';
import { BgTasksError } from './errors.js';

// 1: the snapshots store only; 2: + owners and meta.
const SCHEMA_VERSION = 2;
const NEXT_ID = 'nextId';
const LAST_EPOCH = 'lastEpoch';
const MAX_BLOCK = 2 ** 32;
const TASK_KEY = /^bg_(\d+)$/;
// The default store's companions are `owners` and `meta`; any other store's are `<name>.owners`
// and `<name>.meta`, so a snapshots store may not be named like one of them.
const RESERVED_STORE_NAME = /^(?:owners|meta)$|\.(?:owners|meta)$/;

/** The largest N of the `bg_N` keys of the snapshot's tasks, or -1. */
function largestTaskNumber(snapshot) {
  const tasks = snapshot?.tasks;
  if (tasks === null || typeof tasks !== 'object') return -1;
  let max = -1;
  for (const key of Object.keys(tasks)) {
    const m = TASK_KEY.exec(key);
    if (m === null) continue;
    const n = Number(m[1]);
    if (Number.isSafeInteger(n) && n > max) max = n;
  }
  return max;
}

function checkEpoch(value, name) {
  if (!Number.isSafeInteger(value) || value < 1) throw new TypeError(`${name} must be an epoch returned by claim() (an integer >= 1), got ${String(value).slice(0, 40)}`);
  return value;
}

/** The error an aborted or failed transaction is reported with. */
function storeError(doing, e) {
  const what = e?.name ?? 'Error';
  const detail = e?.message || (what === 'QuotaExceededError' ? 'storage quota exceeded' : '');
  return new Error(`IndexedDbStore: ${doing} failed: ${what}${detail ? `: ${detail}` : ''}`, { cause: e });
}

function abortQuietly(tx) {
  try {
    tx.abort();
  } catch {
    // already committed or aborted
  }
}

export class IndexedDbStore {
  #dbName;
  #storeName;
  #ownersName;
  #metaName;
  #durability;
  #db = null;
  #opening = null;
  /** thread → the Web Lock this store holds for it: {epoch, onLost, released, release, settled}. */
  #holds = new Map();

  /**
   * @param {string} dbName IndexedDB database name
   * @param {{storeName?: string, durability?: 'strict'|'relaxed'|'default'}} [options]
   */
  constructor(dbName, options = {}) {
    this.#dbName = checkString(dbName, 'dbName', { nonEmpty: true });
    checkOptions(options, 'options', ['storeName', 'durability']);
    this.#storeName = options.storeName === undefined ? 'snapshots' : checkString(options.storeName, 'options.storeName', { nonEmpty: true });
    if (RESERVED_STORE_NAME.test(this.#storeName))
      throw new TypeError(`options.storeName '${this.#storeName}' is reserved: 'owners', 'meta' and names ending in '.owners' or '.meta' hold owner records and the id counter`);
    const prefix = this.#storeName === 'snapshots' ? '' : `${this.#storeName}.`;
    this.#ownersName = `${prefix}owners`;
    this.#metaName = `${prefix}meta`;
    this.#durability = options.durability ?? 'strict';
    if (!['strict', 'relaxed', 'default'].includes(this.#durability))
      throw new TypeError("options.durability must be 'strict', 'relaxed' or 'default'");
  }

  #open() {
    if (this.#db) return Promise.resolve(this.#db);
    // Concurrent first calls share one connection: a second one would block the upgrade.
    this.#opening ??= this.#connect().then(
      (db) => {
        this.#opening = null;
        this.#db = db;
        return db;
      },
      (e) => {
        this.#opening = null;
        throw e;
      },
    );
    return this.#opening;
  }

  async #connect() {
    if (typeof indexedDB === 'undefined') throw new Error('IndexedDbStore needs IndexedDB (a browser, or a polyfill in Node)');
    const names = [this.#storeName, this.#ownersName, this.#metaName];
    const upgrade = (db) => {
      for (const name of names) if (!db.objectStoreNames.contains(name)) db.createObjectStore(name);
    };
    let version = SCHEMA_VERSION;
    for (let attempt = 0; ; attempt++) {
      let db;
      try {
        db = await openDb(this.#dbName, version, {
          upgrade,
          // Another tab (or store) needs a newer schema: let it upgrade; the next call reopens.
          blocking: () => this.#drop(db),
          terminated: () => this.#drop(db),
        });
      } catch (e) {
        // The database is newer than `version` (stores of another storeName were added): open
        // it as it is and add ours if they are missing.
        if (e?.name !== 'VersionError' || attempt >= 5) throw e;
        const probe = await openDb(this.#dbName);
        version = probe.version;
        const missing = names.some((name) => !probe.objectStoreNames.contains(name));
        probe.close();
        if (missing) version++;
        continue;
      }
      if (names.every((name) => db.objectStoreNames.contains(name))) return db;
      // A database made for another storeName: one more version adds this store's stores.
      version = db.version + 1;
      db.close();
      if (attempt >= 5) throw new Error(`IndexedDbStore: cannot add the object stores of '${this.#storeName}' to database '${this.#dbName}'`);
    }
  }

  #drop(db) {
    db?.close();
    if (this.#db === db) this.#db = null;
  }

  /**
   * Takes the thread over: bumps its epoch (every later save with an older epoch is refused), and
   * takes the thread's Web Lock from whoever holds it, whose `onLost(thread)` is then called.
   * @returns {Promise<{epoch: number}>}
   */
  async claim(thread, options = {}) {
    checkString(thread, 'thread');
    checkOptions(options, 'options', ['owner', 'onLost']);
    const owner = checkOptionalString(options.owner, 'options.owner');
    const onLost = options.onLost === undefined ? undefined : checkFunction(options.onLost, 'options.onLost');
    const db = await this.#open();
    const tx = db.transaction([this.#ownersName, this.#metaName], 'readwrite', { durability: this.#durability });
    const done = tx.done;
    let epoch;
    try {
      const owners = tx.objectStore(this.#ownersName);
      const meta = tx.objectStore(this.#metaName);
      const [record, last] = await Promise.all([owners.get(thread), meta.get(LAST_EPOCH)]);
      // Epochs come from one counter, so a thread deleted and claimed again never repeats one.
      epoch = Math.max(last ?? 0, record?.epoch ?? 0) + 1;
      const value = { epoch, at: Date.now() };
      if (owner !== undefined) value.owner = owner;
      await Promise.all([owners.put(value, thread), meta.put(epoch, LAST_EPOCH), done]);
    } catch (e) {
      done.catch(() => {});
      abortQuietly(tx);
      throw storeError(`claiming thread '${thread}'`, e);
    }
    // The epoch is written before the lock is stolen: a holder that finds its lock gone can
    // then tell from the epoch whether it was really taken over.
    await this.#hold(thread, epoch, onLost);
    return { epoch };
  }

  /** Takes the thread's Web Lock (stealing it); resolves once held. No-op without Web Locks. */
  #hold(thread, epoch, onLost) {
    const locks = globalThis.navigator?.locks;
    this.#letGo(thread);
    if (!locks || typeof locks.request !== 'function') return Promise.resolve();
    const hold = { epoch, onLost, released: false, release: null, settled: null };
    this.#holds.set(thread, hold);
    return new Promise((granted) => {
      hold.settled = locks
        .request(this.#lockName(thread), { steal: true }, () => {
          granted();
          if (hold.released) return undefined;
          return new Promise((resolve) => (hold.release = resolve)); // held until released
        })
        .then(
          () => {},
          (e) => {
            granted();
            if (e?.name === 'AbortError') return this.#stolen(thread, hold);
            // Locks refused here (an opaque origin): the epoch check alone still fences.
            if (this.#holds.get(thread) === hold) this.#holds.delete(thread);
            return undefined;
          },
        );
    });
  }

  #lockName(thread) {
    return `bgtasks:${JSON.stringify([this.#dbName, this.#storeName, thread])}`;
  }

  /** Our lock on the thread was stolen: lost, unless the stored epoch is still ours. */
  async #stolen(thread, hold) {
    if (hold.released || this.#holds.get(thread) !== hold) return;
    let current;
    try {
      const db = await this.#open();
      current = (await db.get(this.#ownersName, thread))?.epoch;
    } catch {
      current = undefined; // cannot tell: report the loss, a later save is fenced anyway
    }
    if (hold.released || this.#holds.get(thread) !== hold) return;
    if (current === hold.epoch) {
      // Two claims raced and the older one stole last: the newest epoch takes the lock back.
      await this.#hold(thread, hold.epoch, hold.onLost);
      return;
    }
    this.#holds.delete(thread);
    if (hold.onLost === undefined) return;
    try {
      hold.onLost(thread);
    } catch (e) {
      queueMicrotask(() => {
        throw e; // reported as uncaught, not swallowed
      });
    }
  }

  /** Ends this store's hold on the thread's lock, if any, without calling onLost. */
  #letGo(thread) {
    const hold = this.#holds.get(thread);
    if (hold === undefined) return Promise.resolve();
    this.#holds.delete(thread);
    hold.released = true;
    hold.release?.();
    return hold.settled ?? Promise.resolve();
  }

  /** Who claimed the thread last: {epoch, owner, at}, or null (never claimed, or deleted). */
  async owner(thread) {
    checkString(thread, 'thread');
    const db = await this.#open();
    const record = await db.get(this.#ownersName, thread);
    return record === undefined ? null : record;
  }

  /**
   * Gives up the thread's Web Lock. The epoch stays: saves with it still work until another
   * owner claims the thread. With `epoch`, only the claim that got that epoch is given up (a
   * late release from a disposed manager must not end a newer claim made through this store).
   */
  async release(thread, options = {}) {
    checkString(thread, 'thread');
    checkOptions(options, 'options', ['epoch']);
    const epoch = options.epoch === undefined ? undefined : checkEpoch(options.epoch, 'options.epoch');
    if (epoch !== undefined && this.#holds.get(thread)?.epoch !== epoch) return;
    await this.#letGo(thread);
  }

  /**
   * Replaces the thread's snapshot in one transaction. With `epoch` (from claim), the write is
   * refused with a StaleOwner error, nothing written, if the thread was claimed again since.
   */
  async save(thread, snapshot, options = {}) {
    checkString(thread, 'thread');
    checkOptions(options, 'options', ['epoch']);
    const epoch = options.epoch === undefined ? undefined : checkEpoch(options.epoch, 'options.epoch');
    const largest = largestTaskNumber(snapshot);
    const db = await this.#open();
    const tx = db.transaction([this.#storeName, this.#ownersName, this.#metaName], 'readwrite', { durability: this.#durability });
    const done = tx.done; // taken before any await: an early abort must not go unhandled
    let refused = null;
    try {
      if (epoch !== undefined) {
        const stored = (await tx.objectStore(this.#ownersName).get(thread))?.epoch;
        if (stored !== epoch) {
          refused = new BgTasksError(
            'StaleOwner',
            stored === undefined
              ? `thread '${thread}' has no owner on record (it was deleted; this writer holds epoch ${epoch}): the write was refused`
              : `thread '${thread}' was taken over by another owner (epoch ${stored}; this writer holds epoch ${epoch}): the write was refused`,
          );
          throw refused;
        }
      }
      const writes = [tx.objectStore(this.#storeName).put(snapshot, thread)];
      if (largest >= 0) {
        // Keeps later id blocks above the ids of every stored snapshot, however it was made.
        const meta = tx.objectStore(this.#metaName);
        const next = await meta.get(NEXT_ID);
        if (next !== undefined && next <= largest) writes.push(meta.put(largest + 1, NEXT_ID));
      }
      await Promise.all([...writes, done]);
    } catch (e) {
      done.catch(() => {});
      abortQuietly(tx); // a put that threw (DataCloneError) must not leave the rest to commit
      if (e === refused) throw refused;
      throw storeError(`saving thread '${thread}'`, e);
    }
  }

  /** The thread's snapshot, or null. */
  async load(thread) {
    checkString(thread, 'thread');
    const db = await this.#open();
    const value = await db.get(this.#storeName, thread);
    return value === undefined ? null : value;
  }

  async threads() {
    const db = await this.#open();
    return (await db.getAllKeys(this.#storeName)).map(String);
  }

  /** Removes the thread's snapshot and its owner record (a save with an old epoch is refused). */
  async delete(thread) {
    checkString(thread, 'thread');
    const db = await this.#open();
    const tx = db.transaction([this.#storeName, this.#ownersName], 'readwrite', { durability: this.#durability });
    await Promise.all([tx.objectStore(this.#storeName).delete(thread), tx.objectStore(this.#ownersName).delete(thread), tx.done]);
  }

  /**
   * The first of `count` task numbers [first, first + count) that this database never handed out
   * before, all above the `bg_N` ids of the snapshots it holds. One readwrite transaction: tabs
   * that ask at the same time get disjoint blocks.
   * @returns {Promise<number>}
   */
  async reserveIds(count) {
    if (!Number.isSafeInteger(count) || count < 1 || count > MAX_BLOCK)
      throw new TypeError(`count must be an integer from 1 to ${MAX_BLOCK}, got ${typeof count === 'number' ? count : typeof count}`);
    return this.#bumpNextId((next) => {
      if (next + count > Number.MAX_SAFE_INTEGER) throw new RangeError(`IndexedDbStore: task ids exhausted (next is ${next})`);
      return { value: next + count, result: next };
    }, 'reserving task ids');
  }

  /** Later blocks from reserveIds start at `next` or above. */
  async raiseIdFloor(next) {
    checkCount(next, 'next');
    await this.#bumpNextId((current) => ({ value: Math.max(current, next), result: undefined }), 'raising the id floor');
  }

  /** Reads 'nextId' (made from a scan of the snapshots when absent), writes step(nextId).value. */
  async #bumpNextId(step, doing) {
    const db = await this.#open();
    const tx = db.transaction([this.#metaName, this.#storeName], 'readwrite', { durability: this.#durability });
    const done = tx.done;
    let outcome;
    try {
      const meta = tx.objectStore(this.#metaName);
      let next = await meta.get(NEXT_ID);
      if (next === undefined) {
        let largest = -1;
        for (const snapshot of await tx.objectStore(this.#storeName).values()) largest = Math.max(largest, largestTaskNumber(snapshot));
        next = largest + 1;
      }
      outcome = step(next);
      await Promise.all([meta.put(outcome.value, NEXT_ID), done]);
    } catch (e) {
      done.catch(() => {});
      abortQuietly(tx);
      if (e instanceof RangeError) throw e;
      throw storeError(doing, e);
    }
    return outcome.result;
  }

  /** Closes the database connection (the next call reopens it) and releases held Web Locks. */
  close() {
    for (const thread of [...this.#holds.keys()]) void this.#letGo(thread);
    this.#db?.close();
    this.#db = null;
  }
}
