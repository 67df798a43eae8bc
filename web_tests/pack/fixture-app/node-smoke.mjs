// Runs from the temp project where the packed tarball is installed: 'bgtasks' resolves to
// node_modules/bgtasks (what ships), with Node's conditions (#load-module → load-node.js).
import { createTaskManager, BgTasksError, FileStore, IndexedDbStore } from 'bgtasks';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';

const mgr = await createTaskManager({ clock: 'manual', now: 0 });
const id = mgr.spawn({ thread: 't1', type: 'shell', name: 'build', description: 'Build the app' }, async (ctx) => {
  ctx.emit('progress', { pct: 50 });
  await ctx.sleep(10);
  return { ok: true };
});
await mgr.runUntilIdle();
mgr.advance(10);
await mgr.runUntilIdle();
const events = mgr.drain();
const summary = mgr.get(id);

const dir = await mkdtemp(join(tmpdir(), 'bgtasks-pack-filestore-'));
const store = new FileStore(dir);
await mgr.persist(store, 't1');
const loaded = await store.load('t1');
await rm(dir, { recursive: true, force: true });
mgr.dispose();

let bgError = null;
const other = await createTaskManager();
try {
  other.spawn({ thread: 't', type: 'x', name: 'self' }, async () => {});
} catch (e) {
  bgError = { isBgTasksError: e instanceof BgTasksError, code: e.code };
} finally {
  other.dispose();
}

const resolved = createRequire(import.meta.url).resolve('bgtasks/package.json');
console.log(JSON.stringify({ id, events, summary, loadedIds: Object.keys(loaded.tasks), bgError,
  indexedDbStore: typeof IndexedDbStore, resolved }));
