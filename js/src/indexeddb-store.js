// IndexedDbStore (browsers): one record per thread holding awaken's background_task_state value.
// Every save is one transaction; its abort (quota exceeded, tab closing) rejects the save with a
// clear error instead of hanging (idb-keyval#26: quota errors arrive as abort, not error).
import { openDB } from 'idb';
import { checkOptions, checkString } from './errors.js';

export class IndexedDbStore {
  #dbName;
  #storeName;
  #durability;
  #db = null;

  /**
   * @param {string} dbName IndexedDB database name
   * @param {{storeName?: string, durability?: 'strict'|'relaxed'|'default'}} [options]
   */
  constructor(dbName, options = {}) {
    this.#dbName = checkString(dbName, 'dbName', { nonEmpty: true });
    checkOptions(options, 'options', ['storeName', 'durability']);
    this.#storeName = options.storeName === undefined ? 'snapshots' : checkString(options.storeName, 'options.storeName', { nonEmpty: true });
    this.#durability = options.durability ?? 'strict';
    if (!['strict', 'relaxed', 'default'].includes(this.#durability))
      throw new TypeError("options.durability must be 'strict', 'relaxed' or 'default'");
  }

  async #open() {
    if (this.#db) return this.#db;
    if (typeof indexedDB === 'undefined') throw new Error('IndexedDbStore needs IndexedDB (a browser, or a polyfill in Node)');
    const storeName = this.#storeName;
    this.#db = await openDB(this.#dbName, 1, {
      upgrade(db) {
        if (!db.objectStoreNames.contains(storeName)) db.createObjectStore(storeName);
      },
    });
    return this.#db;
  }

  /** Replaces the thread's snapshot in one transaction. */
  async save(thread, snapshot) {
    checkString(thread, 'thread');
    const db = await this.#open();
    const tx = db.transaction(this.#storeName, 'readwrite', { durability: this.#durability });
    const done = tx.done; // taken before any await: an early abort must not go unhandled
    try {
      await Promise.all([tx.store.put(snapshot, thread), done]);
    } catch (e) {
      done.catch(() => {});
      const what = e?.name ?? 'Error';
      const detail = e?.message || (what === 'QuotaExceededError' ? 'storage quota exceeded' : '');
      throw new Error(`IndexedDbStore: saving thread '${thread}' failed: ${what}${detail ? `: ${detail}` : ''}`, { cause: e });
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

  async delete(thread) {
    checkString(thread, 'thread');
    const db = await this.#open();
    await db.delete(this.#storeName, thread);
  }

  close() {
    this.#db?.close();
    this.#db = null;
  }
}
