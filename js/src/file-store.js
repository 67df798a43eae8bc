// FileStore (Node): one JSON file per thread holding awaken's background_task_state value.
// Writes go to a temp file that is fsynced and renamed over the old one, so a crash mid-write
// leaves the previous snapshot readable, never a torn file.
import { mkdir, open, readFile, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { BgTasksError, checkString } from './errors.js';

let tempCounter = 0;
const utf8 = new TextDecoder('utf-8', { fatal: true });

export class FileStore {
  #dir;

  /** @param {string} dir folder for the snapshot files (created on first save) */
  constructor(dir) {
    this.#dir = checkString(dir, 'dir', { nonEmpty: true });
  }

  get dir() {
    return this.#dir;
  }

  /** The file a thread's snapshot lives in (the empty thread's is `.json`). */
  pathFor(thread) {
    checkString(thread, 'thread');
    return join(this.#dir, `${encodeURIComponent(thread)}.json`);
  }

  /** Atomically replaces the thread's snapshot. */
  async save(thread, snapshot) {
    const path = this.pathFor(thread);
    const text = JSON.stringify(snapshot);
    if (typeof text !== 'string') throw new TypeError('snapshot must be JSON-serializable');
    await mkdir(this.#dir, { recursive: true });
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
    try {
      await rename(temp, path);
    } catch (e) {
      await unlink(temp).catch(() => {});
      throw e;
    }
    // Make the rename itself durable.
    const dir = await open(this.#dir, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }

  /** The thread's snapshot, or null when none was saved. A corrupt file is an InvalidSnapshot error. */
  async load(thread) {
    const path = this.pathFor(thread);
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

  async delete(thread) {
    await unlink(this.pathFor(thread)).catch((e) => {
      if (e.code !== 'ENOENT') throw e;
    });
  }
}
