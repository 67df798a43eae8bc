// Durable state in one process: ids from the store, take-in before the first write, auto-save with
// coalescing and flush(), overlapping persists, fenced ownership (StaleOwner), failed saves.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTaskManager, FileStore } from 'bgtasks';
import { bgError, blocker, manual, untilCancelled } from './_helpers.mjs';

const ORPHANED = 'task orphaned: runtime restarted while running';

async function tempDir(t) {
  const dir = await mkdtemp(join(tmpdir(), 'bgtasks-durable-'));
  t.after(() => rm(dir, { recursive: true, force: true, maxRetries: 10 })); // a write may still be landing
  return dir;
}

/** A manual-clock manager attached to `store`, disposed after the test. */
async function attached(t, store, options = {}) {
  const mgr = await createTaskManager({ clock: 'manual', store, ...options });
  t.after(() => mgr.dispose());
  return mgr;
}

async function onDisk(store, thread) {
  return JSON.parse(await readFile(store.pathFor(thread), 'utf8'));
}

/** A FileStore that counts its writes (save() writes through saveText()). */
class CountingStore extends FileStore {
  saves = 0;
  async saveText(thread, text, options) {
    this.saves++;
    return super.saveText(thread, text, options);
  }
}

test('spawn, then resume on a fresh manager: both the new task and the orphan are kept', async (t) => {
  const store = new FileStore(await tempDir(t));
  const first = await attached(t, store);
  const build = first.spawn({ thread: 't', type: 'shell', description: 'long build' }, untilCancelled);
  await first.flush();
  first.dispose(); // the crash: nothing more is written

  const second = await attached(t, store);
  const housekeeping = second.spawn({ thread: 't', type: 'shell', description: 'housekeeping' }, untilCancelled);
  assert.notEqual(housekeeping, build, 'the store hands out ids: no collision with the saved task');
  assert.deepEqual(await second.resume('t'), { added: 1, skipped: [] });
  assert.deepEqual(await second.resume('t'), { added: 0, skipped: [] }, 'taken in once');
  const tasks = second.list('t');
  assert.deepEqual(tasks.map((s) => s.task_id).sort(), [build, housekeeping].sort());
  assert.equal(second.get(build).status, 'failed');
  assert.equal(second.get(build).error, ORPHANED);
  assert.equal(second.get(housekeeping).status, 'running');
  await second.flush();
  assert.deepEqual(Object.keys((await onDisk(store, 't')).tasks).sort(), [build, housekeeping].sort());
});

test('the take-in happens before the first write even without resume()', async (t) => {
  const store = new FileStore(await tempDir(t));
  const first = await attached(t, store);
  const old = first.spawn({ thread: 't', type: 'x' }, untilCancelled);
  await first.flush();
  first.dispose();

  const second = await attached(t, store);
  const fresh = second.spawn({ thread: 't', type: 'x' }, async () => 'done');
  await second.runUntilIdle();
  await second.flush();
  const saved = (await onDisk(store, 't')).tasks;
  assert.equal(saved[old].status, 'failed', 'the saved task was taken in (orphaned), not overwritten');
  assert.equal(saved[fresh].status, 'completed');
});

test('without an attached store, resume reports the ids it skipped', async (t) => {
  const store = new FileStore(await tempDir(t));
  const first = await manual(t);
  first.spawn({ thread: 't', type: 'shell', description: 'long build' }, untilCancelled);
  await first.persist(store, 't');

  const second = await manual(t);
  const mine = second.spawn({ thread: 't', type: 'shell', description: 'housekeeping' }, untilCancelled);
  assert.equal(mine, 'bg_0');
  assert.deepEqual(await second.resume(store, 't'), { added: 0, skipped: ['bg_0'] }, 'the live task is kept and the skip is said');
  assert.equal(second.get('bg_0').description, 'housekeeping');
});

test('two managers, two threads, one store: every task of both threads resumes', async (t) => {
  const store = new FileStore(await tempDir(t));
  const alice = await attached(t, store);
  const bob = await attached(t, store);
  const ids = [];
  for (let i = 0; i < 5; i++) {
    ids.push(alice.spawn({ thread: 'alice', type: 'x' }, untilCancelled));
    ids.push(bob.spawn({ thread: 'bob', type: 'x' }, untilCancelled));
  }
  assert.equal(new Set(ids).size, ids.length, 'no id handed out twice');
  await Promise.all([alice.flush(), bob.flush()]);
  alice.dispose();
  bob.dispose();

  const third = await attached(t, store);
  assert.equal((await third.resume('alice')).added, 5);
  assert.equal((await third.resume('bob')).added, 5, "bob's tasks are not dropped");
  assert.equal(third.list('alice').length + third.list('bob').length, 10);
});

test('without a store, an id held by another thread refuses the restore as a whole (IdConflict)', async (t) => {
  const store = new FileStore(await tempDir(t));
  const alice = await manual(t);
  const bob = await manual(t);
  alice.spawn({ thread: 'alice', type: 'x' }, untilCancelled);
  bob.spawn({ thread: 'bob', type: 'x' }, untilCancelled);
  bob.spawn({ thread: 'bob', type: 'x' }, untilCancelled);
  await alice.persist(store, 'alice');
  await bob.persist(store, 'bob');

  const third = await manual(t);
  assert.deepEqual(await third.resume(store, 'alice'), { added: 1, skipped: [] });
  const before = JSON.stringify(third.snapshot());
  await assert.rejects(third.resume(store, 'bob'), (e) => bgError('IdConflict')(e) && /bg_0/.test(e.message) && /alice/.test(e.message));
  assert.equal(JSON.stringify(third.snapshot()), before, 'nothing of bob was restored');
});

test('auto-save: spawn, end, forget and restore are saved without being asked', async (t) => {
  const store = new FileStore(await tempDir(t));
  const mgr = await attached(t, store);
  const gate = blocker();
  const id = mgr.spawn({ thread: 't', type: 'x' }, gate.body);
  await mgr.flush();
  assert.equal((await onDisk(store, 't')).tasks[id].status, 'running');
  gate.release({ ok: true });
  await mgr.runUntilIdle();
  await mgr.flush();
  assert.deepEqual((await onDisk(store, 't')).tasks[id].result, { ok: true });
  assert.equal(mgr.forget(id), true);
  await mgr.flush();
  assert.deepEqual((await onDisk(store, 't')).tasks, {});
  const entry = { task_id: 'bg_900000', owner_thread_id: 'x', task_type: 'x', description: '', status: 'completed', created_at_ms: 1 };
  mgr.restore('t', { tasks: { bg_900000: entry } });
  await mgr.flush();
  assert.equal((await onDisk(store, 't')).tasks.bg_900000.status, 'completed');
  const later = mgr.spawn({ thread: 't', type: 'x' }, async () => {});
  assert.ok(Number(later.slice(3)) !== 900000, 'a restored id is never handed out');
  mgr.dispose();
  const other = await attached(t, store);
  const next = other.spawn({ thread: 'u', type: 'x' }, async () => {});
  assert.ok(Number(next.slice(3)) > 900000, 'the store raised its id floor above the restored id');
});

test('writes coalesce under load: 1000 spawns and ends take a handful of writes', async (t) => {
  const store = new CountingStore(await tempDir(t));
  const mgr = await attached(t, store);
  for (let i = 0; i < 1000; i++) mgr.spawn({ thread: 't', type: 'x' }, async () => i);
  await mgr.runUntilIdle();
  await mgr.flush();
  const saved = (await onDisk(store, 't')).tasks;
  assert.equal(Object.keys(saved).length, 1000);
  assert.ok(Object.values(saved).every((m) => m.status === 'completed'));
  assert.ok(store.saves >= 1 && store.saves <= 10, `${store.saves} writes for 1000 tasks`);
});

test('flush() waits for a write in flight and the newest state wins', async (t) => {
  const store = new FileStore(await tempDir(t));
  const mgr = await attached(t, store);
  const ids = [];
  for (let round = 0; round < 20; round++) {
    ids.push(mgr.spawn({ thread: 't', type: 'x' }, untilCancelled));
    await new Promise((resolve) => setImmediate(resolve)); // a write is often in flight here
  }
  await mgr.flush();
  assert.deepEqual(Object.keys((await onDisk(store, 't')).tasks).sort(), [...ids].sort());
});

test('30 overlapping persist() calls end with the newest state on disk', async (t) => {
  for (const attach of [false, true]) {
    const store = new FileStore(await tempDir(t));
    const mgr = attach ? await attached(t, store) : await manual(t);
    const calls = [];
    for (let i = 0; i < 30; i++) {
      mgr.spawn({ thread: 't', type: 'x' }, untilCancelled);
      calls.push(mgr.persist(store, 't'));
    }
    await Promise.all(calls);
    assert.equal(Object.keys((await onDisk(store, 't')).tasks).length, 30, attach ? 'attached' : 'explicit');
  }
});

test('a second owner takes the thread over; the first gets StaleOwner and stops writing it', async (t) => {
  const dir = await tempDir(t);
  const errors = [];
  const a = await attached(t, new FileStore(dir), { onStoreError: (e, thread) => errors.push([e.code, thread]) });
  const first = a.spawn({ thread: 'x', type: 'x' }, untilCancelled);
  await a.flush();
  assert.equal(a.ownership('x'), 'owned');

  const storeB = new FileStore(dir);
  const b = await attached(t, storeB);
  assert.deepEqual(await b.resume('x'), { added: 1, skipped: [] });
  assert.equal(b.get(first).error, ORPHANED, "the previous owner's running task shows as orphaned");
  const mine = b.spawn({ thread: 'x', type: 'x' }, untilCancelled);
  await b.flush();
  const bState = await onDisk(storeB, 'x');

  a.spawn({ thread: 'x', type: 'x' }, untilCancelled);
  await assert.rejects(a.flush(), bgError('StaleOwner'));
  assert.equal(a.ownership('x'), 'lost');
  assert.deepEqual(errors, [['StaleOwner', 'x']]);
  assert.deepEqual(await onDisk(storeB, 'x'), bState, "B's state is intact");
  assert.ok(bState.tasks[mine]);
  assert.equal(a.list('x').length, 2, 'nothing in memory was lost');
  // A keeps working on its other threads.
  a.spawn({ thread: 'y', type: 'x' }, untilCancelled);
  await assert.rejects(a.flush(), bgError('StaleOwner'), 'the lost thread still has unsaved changes');
  assert.ok((await onDisk(storeB, 'y')).tasks);
});

test('a failed save rejects flush(), is reported, loses nothing in memory, and the next save succeeds', async (t) => {
  const dir = await tempDir(t);
  const store = new FileStore(dir);
  const errors = [];
  const mgr = await attached(t, store, { onStoreError: (e, thread) => errors.push([e.message, thread]) });
  const id = mgr.spawn({ thread: 't', type: 'x' }, untilCancelled);
  await mgr.flush();
  // The snapshot's path becomes a non-empty folder: the rename fails (as a full or broken disk would).
  await rm(store.pathFor('t'));
  await mkdir(join(store.pathFor('t'), 'blocker'), { recursive: true });
  const second = mgr.spawn({ thread: 't', type: 'x' }, untilCancelled);
  await assert.rejects(mgr.flush(), (e) => /FileStore: saving thread 't'/.test(e.message) && e.cause?.code !== undefined);
  assert.equal(errors.length, 1);
  assert.equal(errors[0][1], 't');
  assert.match(errors[0][0], /saving thread 't' to .*t\.json failed/);
  assert.deepEqual(mgr.list('t').map((s) => s.task_id), [id, second], 'nothing lost in memory');
  await rm(store.pathFor('t'), { recursive: true });
  await mgr.flush();
  assert.deepEqual(Object.keys((await onDisk(store, 't')).tasks).sort(), [id, second].sort());
});

test('ids: a burst beyond the block fails with IdsUnavailable until reserveIds(); awaken snapshots restore', async (t) => {
  const dir = await tempDir(t);
  // A snapshot written before this store kept a counter (or by awaken): ids start above it.
  await writeFile(
    join(dir, 'legacy.json'),
    JSON.stringify({ tasks: { bg_41: { task_id: 'bg_41', owner_thread_id: 'legacy', task_type: 'x', description: '', status: 'running', created_at_ms: 1 } } }),
  );
  const store = new FileStore(dir);
  const mgr = await attached(t, store, { idBlockSize: 8 });
  const ids = [];
  assert.throws(() => {
    for (let i = 0; i < 9; i++) ids.push(mgr.spawn({ thread: 't', type: 'x' }, async () => {}));
  }, (e) => bgError('IdsUnavailable')(e) && /reserveIds/.test(e.message));
  assert.equal(ids.length, 8);
  assert.ok(ids.every((id) => Number(id.slice(3)) > 41), ids.join());
  await mgr.reserveIds(100);
  for (let i = 0; i < 100; i++) ids.push(mgr.spawn({ thread: 't', type: 'x' }, async () => {}));
  assert.equal(new Set(ids).size, ids.length);
  assert.deepEqual(await mgr.resume('legacy'), { added: 1, skipped: [] });
  assert.equal(mgr.get('bg_41').error, ORPHANED);
});

test('option checks name what was wrong', async () => {
  await assert.rejects(createTaskManager({ store: {} }), /options\.store lacks load\(\), save\(\), claim\(\), reserveIds\(\), raiseIdFloor\(\)/);
  await assert.rejects(createTaskManager({ onStoreError: () => {} }), /need options\.store/);
  await assert.rejects(createTaskManager({ store: new FileStore('/nonexistent-bgtasks'), idBlockSize: 0 }), /idBlockSize/);
  const mgr = await createTaskManager({ clock: 'manual' });
  await assert.rejects(mgr.resume('t'), bgError('StoreNotConfigured'));
  await assert.rejects(mgr.reserveIds(5), bgError('StoreNotConfigured'));
  assert.equal(mgr.ownership('t'), 'none');
  await mgr.flush();
  mgr.dispose();
});

// A real full disk and a real read-only folder: a 64 KiB tmpfs, remounted read-only. Needs root
// (CI runs the suite as root); without it the test says so and is skipped.
function tryMount(dir, options) {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const remount = (dir, options) => execFileSync('mount', ['-o', `remount,${options}`, dir], { stdio: 'ignore' });

test('a full disk, then a read-only folder: flush() rejects with the cause, nothing is lost, saving resumes', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'bgtasks-fulldisk-'));
  const mounted = process.getuid?.() === 0 && tryMount(dir, 'size=64k');
  t.after(async () => {
    if (mounted) execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
    await rm(dir, { recursive: true, force: true, maxRetries: 10 });
  });
  if (!mounted) {
    t.skip('needs root and tmpfs mounts to make a real full disk');
    return;
  }
  const store = new FileStore(dir);
  const errors = [];
  const mgr = await attached(t, store, { onStoreError: (e) => errors.push(e) });
  const ids = [];
  const description = 'x'.repeat(2000);
  let failure = null;
  for (let i = 0; i < 200 && failure === null; i++) {
    ids.push(mgr.spawn({ thread: 't', type: 'x', description }, untilCancelled));
    await mgr.flush().catch((e) => (failure = e));
  }
  assert.ok(failure, 'the 64 KiB disk filled up');
  assert.match(failure.message, /FileStore: saving thread 't' to .* failed: ENOSPC/);
  assert.equal(failure.cause.code, 'ENOSPC');
  assert.equal(errors.at(-1), failure, 'reported to onStoreError too');
  assert.equal(mgr.list('t').length, ids.length, 'nothing lost in memory');
  const onDiskBefore = Object.keys((await onDisk(store, 't')).tasks).length;
  assert.ok(onDiskBefore < ids.length, 'the last saved snapshot is intact');

  remount(dir, 'size=4m');
  await mgr.flush();
  assert.equal(Object.keys((await onDisk(store, 't')).tasks).length, ids.length, 'the next save has everything');

  remount(dir, 'ro');
  ids.push(mgr.spawn({ thread: 't', type: 'x' }, untilCancelled));
  await assert.rejects(mgr.flush(), (e) => e.cause?.code === 'EROFS' && /saving thread 't'/.test(e.message));
  assert.equal(mgr.list('t').length, ids.length);
  remount(dir, 'rw');
  await mgr.flush();
  assert.equal(Object.keys((await onDisk(store, 't')).tasks).length, ids.length);
});
