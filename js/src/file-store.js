// FileStore (Node): one JSON file per thread holding awaken's background_task_state value, plus
// what lets several managers, in one process or many, share the folder without losing a task:
//
//   <thread>.json   the thread's snapshot (the thread id URI-encoded; the empty thread is `.json`)
//   <thread>.owner  who owns the thread: {"epoch": N, "owner": "...", "pid": ..., "at": ms}
//   .ids            the task-number high-water mark: {"next": N}; blocks are reserved from it
//
// Every file is replaced atomically (written to a temp file, fsynced, renamed, folder fsynced), so
// a crash leaves the previous version readable, never a torn file. Read-modify-write steps (the id
// counter, a claim, a fenced save's epoch check and rename) run under a cross-process lock from
// proper-lockfile: a `<file>.lock` folder whose mtime it refreshes while held, so a lock left by a
// killed process goes stale after LOCK_STALE_MS and the next writer takes it. Locks are held only
// around those short steps: a snapshot is written and fsynced before its lock is taken.
import { mkdir, open, readFile, readdir, rename, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import lockfile from 'proper-lockfile';
import { checkString } from './arguments.js';
import { BgTasksError } from './errors.js';

const LOCK_STALE_MS = 3000; // proper-lockfile's floor is 2000
const LOCK_RETRIES = { retries: 400, factor: 1.2, minTimeout: 2, maxTimeout: 50 }; // waits up to ~20 s
const MAX_BLOCK = 2 ** 32;
const BG_ID = /^bg_(0|[1-9][0-9]*)$/;

let tempCounter = 0;
const utf8 = new TextDecoder('utf-8', { fatal: true });

// Saves of one file made in this process, in call order: a save waits for the one before it, so
// overlapping saves land in the order they were made (the newest last). Module-wide, so two
// FileStore objects on one folder share it.
const saveTails = new Map(); // absolute path → promise of the last save queued

async function writeAtomic(path, text) {
  const temp = await writeTemp(path, text);
  try {
    await rename(temp, path);
  } catch (e) {
    await unlink(temp).catch(() => {});
    throw e;
  }
}

async function writeTemp(path, text) {
  const temp = `${path}.${process.pid}.${++tempCounter}.tmp`;
  const file = await open(temp, 'w');
  try {
    await file.writeFile(text, 'utf8');
    await file.sync();
  } catch (e) {
    await file.close().catch(() => {});
    await unlink(temp).catch(() => {});
    throw e;
  }
  await file.close();
  return temp;
}

async function readJsonFile(path) {
  let bytes;
  try {
    bytes = await readFile(path);
  } catch (e) {
    if (e.code === 'ENOENT') return null;
    throw e;
  }
  let text;
  try {
    text = utf8.decode(bytes); // fatal: a corrupt file is refused, not patched with U+FFFD
  } catch {
    throw new BgTasksError('InvalidSnapshot', `${path}: not valid UTF-8`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new BgTasksError('InvalidSnapshot', `${path}: not valid JSON (${e.message})`);
  }
}

// The largest N of the snapshot's bg_N ids, or -1.
function highestNumber(snapshot) {
  let highest = -1;
  const tasks = snapshot && typeof snapshot === 'object' ? snapshot.tasks : null;
  if (!tasks || typeof tasks !== 'object') return highest;
  for (const id of Object.keys(tasks)) {
    const m = BG_ID.exec(id);
    if (m) highest = Math.max(highest, Number(m[1]));
  }
  return highest;
}

function failure(what, e) {
  if (e instanceof BgTasksError) return e;
  return new Error(`FileStore: ${what} failed: ${e?.message ?? e}`, { cause: e });
}

export class FileStore {
  #dir;

  /** @param {string} dir folder for the snapshot files (created on first write) */
  constructor(dir) {
    this.#dir = resolve(checkString(dir, 'dir', { nonEmpty: true }));
  }

  get dir() {
    return this.#dir;
  }

  /** The file a thread's snapshot lives in (the empty thread's is `.json`). */
  pathFor(thread) {
    checkString(thread, 'thread');
    return join(this.#dir, `${encodeURIComponent(thread)}.json`);
  }

  #ownerPath(thread) {
    return join(this.#dir, `${encodeURIComponent(thread)}.owner`);
  }

  async #locked(path, fn) {
    await mkdir(this.#dir, { recursive: true });
    const release = await lockfile.lock(path, {
      realpath: false,
      stale: LOCK_STALE_MS,
      retries: LOCK_RETRIES,
      // The lock was taken over as stale while held (this process stalled for seconds): the epoch
      // check already ran, and the next claim or fenced save re-checks. Never throw from a timer.
      onCompromised: () => {},
    });
    try {
      return await fn();
    } finally {
      await release().catch(() => {});
    }
  }

  async #syncDir() {
    const dir = await open(this.#dir, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }

  /**
   * Atomically replaces the thread's snapshot. With `epoch` (an owner's save), the write happens
   * only if the thread is still owned with that epoch; otherwise it is refused with StaleOwner and
   * nothing changes. Saves of one thread made in this process land in call order.
   */
  async save(thread, snapshot, options = {}) {
    const text = JSON.stringify(snapshot);
    if (typeof text !== 'string') throw new TypeError('snapshot must be JSON-serializable');
    return this.saveText(thread, text, options);
  }

  /** save() for a snapshot that is already JSON text (an attached manager's writes: no parse and re-stringify). */
  async saveText(thread, text, options = {}) {
    const path = this.pathFor(thread);
    if (typeof text !== 'string') throw new TypeError('text must be a string of JSON');
    const epoch = options?.epoch;
    if (epoch !== undefined && !(Number.isSafeInteger(epoch) && epoch > 0))
      throw new TypeError(`options.epoch must be a positive integer (got ${typeof epoch === 'number' ? epoch : typeof epoch})`);
    const before = saveTails.get(path);
    const mine = (async () => {
      if (before) await before.catch(() => {});
      await this.#write(thread, path, text, epoch);
    })();
    saveTails.set(path, mine);
    try {
      await mine;
    } finally {
      if (saveTails.get(path) === mine) saveTails.delete(path);
    }
  }

  async #write(thread, path, text, epoch) {
    try {
      await mkdir(this.#dir, { recursive: true });
      if (epoch === undefined) {
        await writeAtomic(path, text);
      } else {
        const temp = await writeTemp(path, text);
        try {
          await this.#locked(path, async () => {
            const owner = await readJsonFile(this.#ownerPath(thread));
            const current = owner?.epoch ?? 0;
            if (current !== epoch)
              throw new BgTasksError(
                'StaleOwner',
                `thread '${thread}' was taken over by another owner (epoch ${current}; this writer holds epoch ${epoch}): the write was refused`,
              );
            await rename(temp, path);
          });
        } finally {
          await unlink(temp).catch(() => {}); // gone after a rename; removed after a refusal
        }
      }
      await this.#syncDir(); // make the rename itself durable
    } catch (e) {
      throw failure(`saving thread '${thread}' to ${path}`, e);
    }
  }

  /** The thread's snapshot, or null when none was saved. A corrupt file is an InvalidSnapshot error. */
  async load(thread) {
    return readJsonFile(this.pathFor(thread));
  }

  /**
   * Takes the thread over: its owner epoch goes up by one and is returned. From then on a save
   * with an older epoch is refused (StaleOwner). The previous owner is not told until it writes.
   */
  async claim(thread, options = {}) {
    const owner = options?.owner === undefined ? '' : checkString(options.owner, 'options.owner');
    const path = this.pathFor(thread);
    try {
      return await this.#locked(path, async () => {
        const ownerPath = this.#ownerPath(thread);
        const current = (await readJsonFile(ownerPath))?.epoch ?? 0;
        const epoch = current + 1;
        await writeAtomic(ownerPath, JSON.stringify({ epoch, owner, pid: process.pid, at: Date.now() }));
        await this.#syncDir();
        return { epoch };
      });
    } catch (e) {
      throw failure(`claiming thread '${thread}'`, e);
    }
  }

  /** Who owns the thread: {epoch, owner, pid, at}, or null when nobody claimed it. */
  async owner(thread) {
    return readJsonFile(this.#ownerPath(thread));
  }

  /** Ownership in a FileStore ends only by another claim; nothing to release. */
  async release(thread) {
    checkString(thread, 'thread');
  }

  /**
   * Reserves `count` task numbers: returns `first` of the block [first, first + count), which no
   * caller of this folder got before and which lies above every bg_N id saved in it.
   */
  async reserveIds(count) {
    if (!Number.isSafeInteger(count) || count < 1 || count > MAX_BLOCK)
      throw new TypeError(`count must be an integer from 1 to ${MAX_BLOCK} (got ${count})`);
    return this.#bumpIds((next) => ({ first: next, next: next + count }));
  }

  /** Later blocks start at or above `next` (ids that entered a thread from outside the store). */
  async raiseIdFloor(next) {
    if (!Number.isSafeInteger(next) || next < 0) throw new TypeError(`next must be a non-negative integer (got ${next})`);
    await this.#bumpIds((current) => ({ first: current, next: Math.max(current, next) }));
  }

  async #bumpIds(step) {
    const path = join(this.#dir, '.ids');
    try {
      return await this.#locked(path, async () => {
        const stored = (await readJsonFile(path))?.next;
        const next = Number.isSafeInteger(stored) ? stored : await this.#scanFloor();
        const r = step(next);
        if (!Number.isSafeInteger(r.next)) throw new RangeError('task numbers beyond 2^53 cannot be reserved');
        if (r.next !== stored) {
          await writeAtomic(path, JSON.stringify({ next: r.next }));
          await this.#syncDir();
        }
        return r.first;
      });
    } catch (e) {
      throw failure(`reserving task ids in ${this.#dir}`, e);
    }
  }

  // The first free number when the counter does not exist yet: above every saved id (snapshots
  // written before the counter, or by awaken).
  async #scanFloor() {
    let floor = 0;
    for (const thread of await this.threads()) {
      const snapshot = await this.load(thread).catch(() => null);
      floor = Math.max(floor, highestNumber(snapshot) + 1);
    }
    return floor;
  }

  /** Thread ids that have a saved snapshot. */
  async threads() {
    let names;
    try {
      names = await readdir(this.#dir);
    } catch (e) {
      if (e.code === 'ENOENT') return [];
      throw e;
    }
    return names.filter((n) => n.endsWith('.json')).map((n) => decodeURIComponent(n.slice(0, -5)));
  }

  /** Removes the thread's snapshot and owner record. */
  async delete(thread) {
    for (const path of [this.pathFor(thread), this.#ownerPath(thread)])
      await unlink(path).catch((e) => {
        if (e.code !== 'ENOENT') throw e;
      });
  }

  /** Nothing is held open between calls. */
  close() {}
}
