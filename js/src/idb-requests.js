// IndexedDB requests as promises: the few calls IndexedDbStore makes, on the bare API. No
// dependency, so the browser entry's module graph has no bare specifier at all: a Web Worker or an
// extension (which have no import maps) loads the package from its files as they are.
//
// A transaction stays active while each request is made from the previous one's completion:
// promise reactions run as microtasks before the transaction commits, so `await store.get(k)` then
// `store.put(…)` stays in one transaction, as with a callback.

/** The request's result once it succeeds; its error (a DOMException) once it fails. */
function settle(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/** Resolves when the transaction commits; rejects with its error (or an AbortError) when it aborts. */
function completion(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new DOMException('the transaction was aborted', 'AbortError'));
  });
}

/**
 * Opens the database. `upgrade(db)` runs in a version change; `blocking()` when another
 * connection needs a newer version (this one should close); `terminated()` when the browser
 * closed the connection. Resolves with a Db.
 */
export function openDb(name, version, { upgrade, blocking, terminated } = {}) {
  const request = version === undefined ? indexedDB.open(name) : indexedDB.open(name, version);
  if (upgrade) request.onupgradeneeded = () => upgrade(request.result);
  return settle(request).then((raw) => {
    if (blocking) raw.onversionchange = () => blocking();
    if (terminated) raw.onclose = () => terminated();
    return new Db(raw);
  });
}

class Db {
  #raw;

  constructor(raw) {
    this.#raw = raw;
  }

  get version() {
    return this.#raw.version;
  }

  get objectStoreNames() {
    return this.#raw.objectStoreNames;
  }

  close() {
    this.#raw.close();
  }

  get(storeName, key) {
    return settle(this.#raw.transaction(storeName, 'readonly').objectStore(storeName).get(key));
  }

  getAllKeys(storeName) {
    return settle(this.#raw.transaction(storeName, 'readonly').objectStore(storeName).getAllKeys());
  }

  /** A transaction whose `done` settles with its outcome. */
  transaction(storeNames, mode, options) {
    return new Tx(this.#raw.transaction(storeNames, mode, options));
  }
}

class Tx {
  #raw;

  constructor(raw) {
    this.#raw = raw;
    this.done = completion(raw);
  }

  objectStore(name) {
    return new Store(this.#raw.objectStore(name));
  }

  abort() {
    this.#raw.abort();
  }
}

class Store {
  #raw;

  constructor(raw) {
    this.#raw = raw;
  }

  get(key) {
    return settle(this.#raw.get(key));
  }

  put(value, key) {
    return settle(this.#raw.put(value, key));
  }

  delete(key) {
    return settle(this.#raw.delete(key));
  }

  /** The values of every record, in key order, read with one cursor. */
  values() {
    const out = [];
    const request = this.#raw.openCursor();
    return new Promise((resolve, reject) => {
      request.onsuccess = () => {
        const cursor = request.result;
        if (cursor === null) {
          resolve(out);
        } else {
          out.push(cursor.value);
          cursor.continue();
        }
      };
      request.onerror = () => reject(request.error);
    });
  }
}
