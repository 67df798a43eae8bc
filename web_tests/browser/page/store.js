// The store test page: drives IndexedDbStore (the manager is never created here) for
// tests that open it in several tabs of one origin. Everything returns plain JSON; errors come
// back as {error: {name, code, message}} so the test can assert on them.
import { IndexedDbStore, BgTasksError } from 'bgtasks';

const stores = new Map(); // key → IndexedDbStore
const lost = new Map(); // key → threads whose onLost fired, in order
const log = document.getElementById('log');

function note(text) {
  log.textContent += `${text}\n`;
}

const errorInfo = (e) => ({ name: e?.name, code: e?.code, message: e?.message, isBgTasksError: e instanceof BgTasksError });

function storeFor(key) {
  const store = stores.get(key);
  if (!store) throw new Error(`no store '${key}' on this page`);
  return store;
}

async function settle(fn) {
  try {
    return { value: await fn() };
  } catch (e) {
    return { error: errorInfo(e) };
  }
}

let release = null;
let reserving = null;
let claiming = null;

window.storeTest = {
  open(key, dbName, options) {
    return settle(() => {
      stores.set(key, new IndexedDbStore(dbName, options));
      lost.set(key, []);
      return true;
    });
  },
  /** Any store method by name; claim() records onLost calls for lost(key). */
  call(key, method, ...args) {
    return settle(async () => {
      const store = storeFor(key);
      if (method === 'claim' && args.length === 2 && args[1]?.recordLost) {
        const { owner } = args[1];
        return store.claim(args[0], {
          owner,
          onLost: (thread) => {
            lost.get(key).push(thread);
            note(`${key}: lost ${thread}`);
          },
        });
      }
      const value = await store[method](...args);
      return value === undefined ? null : value;
    });
  },
  lost: (key) => lost.get(key) ?? [],
  close(key) {
    storeFor(key).close();
    return true;
  },
  /** Held and pending Web Locks of this origin, by name. */
  async locks() {
    const { held, pending } = await navigator.locks.query();
    return { held: held.map((l) => l.name), pending: pending.map((l) => l.name) };
  },
  /** Holds back this tab's Web Lock requests until openLocks(): a lock request that comes late. */
  gateLocks() {
    const locks = navigator.locks;
    const request = locks.request.bind(locks);
    let open;
    const gate = new Promise((resolve) => (open = resolve));
    locks.request = (...args) => gate.then(() => request(...args));
    window.storeTest.openLocks = () => {
      locks.request = request;
      open();
      return true;
    };
    return true;
  },
  /** Starts a claim and returns at once; claimed(key) waits for it. */
  startClaim(key, thread, owner) {
    claiming = window.storeTest.call(key, 'claim', thread, { owner, recordLost: true });
    return true;
  },
  claimed: () => claiming,
  hideLocks() {
    Object.defineProperty(navigator, 'locks', { value: undefined, configurable: true });
    return navigator.locks === undefined;
  },
  /** A database as version 1 of the store left it: the snapshots object store only. */
  makeV1(dbName, records) {
    return new Promise((resolve, reject) => {
      const req = indexedDB.open(dbName, 1);
      req.onupgradeneeded = () => req.result.createObjectStore('snapshots');
      req.onerror = () => reject(req.error);
      req.onsuccess = () => {
        const db = req.result;
        const tx = db.transaction('snapshots', 'readwrite');
        for (const [thread, snapshot] of Object.entries(records)) tx.objectStore('snapshots').put(snapshot, thread);
        tx.oncomplete = () => {
          db.close();
          resolve(true);
        };
        tx.onerror = () => reject(tx.error);
      };
    });
  },
  /** The database's version, object stores and every record of them. */
  inspect(dbName) {
    return new Promise((resolve, reject) => {
      const req = indexedDB.open(dbName);
      req.onerror = () => reject(req.error);
      req.onsuccess = () => {
        const db = req.result;
        const names = [...db.objectStoreNames];
        const out = { version: db.version, stores: names, records: {} };
        if (names.length === 0) {
          db.close();
          resolve(out);
          return;
        }
        const tx = db.transaction(names, 'readonly');
        for (const name of names) {
          const records = {};
          out.records[name] = records;
          const cursorReq = tx.objectStore(name).openCursor();
          cursorReq.onsuccess = () => {
            const cursor = cursorReq.result;
            if (!cursor) return;
            records[String(cursor.key)] = cursor.value;
            cursor.continue();
          };
        }
        tx.oncomplete = () => {
          db.close();
          resolve(out);
        };
        tx.onerror = () => reject(tx.error);
      };
    });
  },
  /**
   * Arms `counts.length` concurrent reserveIds calls that start on go() in any page of the origin
   * (a BroadcastChannel reaches the other pages; the caller's own page starts directly).
   */
  armReserve(key, counts) {
    const store = storeFor(key);
    const start = new Promise((resolve) => {
      release = resolve;
      const channel = new BroadcastChannel('bgtasks-store-test');
      channel.onmessage = () => {
        channel.close();
        resolve();
      };
    });
    reserving = start.then(() => Promise.all(counts.map(async (count) => ({ first: await store.reserveIds(count), count }))));
    return true;
  },
  go() {
    new BroadcastChannel('bgtasks-store-test').postMessage('go');
    release();
    return true;
  },
  reserved: () => settle(() => reserving),
  markStatus(text) {
    document.getElementById('status').textContent = text;
    return true;
  },
};

document.getElementById('who').textContent = new URL(location.href).searchParams.get('tab') ?? '';
window.storeTest.markStatus('ready');
window.storeTestReady = true;
