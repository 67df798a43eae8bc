// FileStore: round trip, one file per thread, atomic replacement (a crash mid-write keeps the old file).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileStore, BgTasksError } from 'bgtasks';
import { manual, untilCancelled } from './_helpers.mjs';

async function tempDir(t) {
  const dir = await mkdtemp(join(tmpdir(), 'bgtasks-filestore-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const entry = (id, extra = {}) => ({
  task_id: id, owner_thread_id: 't1', task_type: 'x', description: 'd', status: 'completed', created_at_ms: 1,
  completed_at_ms: 2, parent_context: {}, ...extra,
});

test('save/load round trip; unknown thread loads null; one file per thread', async (t) => {
  const dir = join(await tempDir(t), 'nested', 'store');
  const store = new FileStore(dir);
  assert.equal(store.dir, dir);
  assert.equal(await store.load('t1'), null);
  assert.deepEqual(await store.threads(), []);
  const a = { tasks: { bg_0: entry('bg_0', { result: { deep: [1, 'two', null] } }) } };
  const b = { tasks: { bg_1: entry('bg_1', { owner_thread_id: 'a/b c' }) } };
  await store.save('t1', a);
  await store.save('a/b c', b);
  assert.deepEqual(await store.load('t1'), a);
  assert.deepEqual(await store.load('a/b c'), b);
  assert.deepEqual((await readdir(dir)).sort(), ['a%2Fb%20c.json', 't1.json']);
  assert.equal(store.pathFor('a/b c'), join(dir, 'a%2Fb%20c.json'));
  assert.deepEqual((await store.threads()).sort(), ['a/b c', 't1']);
  const a2 = { tasks: {} };
  await store.save('t1', a2);
  assert.deepEqual(await store.load('t1'), a2);
  assert.deepEqual(await store.load('a/b c'), b, 'other threads untouched');
  await store.delete('t1');
  await store.delete('t1');
  assert.equal(await store.load('t1'), null);
  assert.deepEqual(await store.threads(), ['a/b c']);
});

test('persist / resume through a FileStore: the running task comes back orphaned, the counter moves on', async (t) => {
  const dir = await tempDir(t);
  const store = new FileStore(dir);
  const first = await manual(t);
  const live = first.spawn({ thread: 't1', type: 'shell', name: 'server' }, untilCancelled);
  const done = first.spawn({ thread: 't1', type: 'shell' }, async () => ({ exit_code: 0 }));
  first.spawn({ thread: 't2', type: 'shell' }, async () => 'other thread');
  await first.runUntilIdle();
  await first.persist(store, 't1');
  assert.deepEqual(JSON.parse(await readFile(store.pathFor('t1'), 'utf8')), first.snapshot('t1'));
  assert.deepEqual(await store.threads(), ['t1']);

  const second = await manual(t);
  assert.deepEqual(await second.resume(store, 't1'), { added: 2, skipped: [] });
  assert.deepEqual(await second.resume(store, 'never-saved'), { added: 0, skipped: [] });
  assert.equal(second.get(live).status, 'failed');
  assert.equal(second.get(live).error, 'task orphaned: runtime restarted while running');
  assert.deepEqual(second.get(done).result, { exit_code: 0 });
  assert.equal(second.get('bg_2'), null, "t2's task was not saved");
  assert.equal(second.spawn({ thread: 't1', type: 'x' }, async () => {}), 'bg_2');
});

test('a process killed in the middle of a save leaves the previous snapshot readable', async (t) => {
  const dir = await tempDir(t);
  const a = { tasks: { bg_0: entry('bg_0', { result: 'A'.repeat(1000) }) } };
  const b = { tasks: { bg_0: entry('bg_0', { result: 'B'.repeat(100_000) }), bg_1: entry('bg_1') } };
  const child = fork(fileURLToPath(new URL('./fixtures/crash-child.mjs', import.meta.url)), [dir, JSON.stringify(a), JSON.stringify(b)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const messages = [];
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));
  await new Promise((resolve, reject) => {
    child.on('message', (m) => {
      messages.push(m);
      if (m === 'mid-write') {
        child.kill('SIGKILL');
        resolve();
      }
      if (m === 'saved-b') reject(new Error('the crash was not simulated'));
    });
    child.on('exit', () => resolve());
  });
  assert.equal(await exited, 'SIGKILL');
  assert.deepEqual(messages, ['saved-a', 'mid-write']);
  const store = new FileStore(dir);
  assert.deepEqual(await store.load('t1'), a, 'the previous snapshot is intact');
  assert.deepEqual(await store.threads(), ['t1'], 'the half-written temp file is not a thread');
  const files = await readdir(dir);
  const temps = files.filter((f) => f.endsWith('.tmp'));
  assert.equal(temps.length, 1, 'the torn write went to a temp file');
  const torn = await readFile(join(dir, temps[0]), 'utf8');
  assert.ok(torn.length > 0 && torn.length < JSON.stringify(b).length, 'the temp file is torn');
  await store.save('t1', b);
  assert.deepEqual(await store.load('t1'), b, 'the next save succeeds');
});

test('a failed write or rename rejects the save and keeps the previous snapshot', async (t) => {
  const dir = await tempDir(t);
  const store = new FileStore(dir);
  const a = { tasks: { bg_0: entry('bg_0') } };
  await store.save('t1', a);
  const require = createRequire(import.meta.url);
  const fsp = require('node:fs/promises');
  const { open: realOpen, rename: realRename } = fsp;
  t.after(() => {
    fsp.open = realOpen;
    fsp.rename = realRename;
    syncBuiltinESMExports();
  });
  fsp.open = async (...args) => {
    const handle = await realOpen(...args);
    if (args[1] === 'w') {
      handle.writeFile = async (data) => {
        await handle.write(String(data).slice(0, 10));
        throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
      };
    }
    return handle;
  };
  syncBuiltinESMExports();
  await assert.rejects(store.save('t1', { tasks: {} }), /ENOSPC/);
  assert.deepEqual(await store.load('t1'), a);
  assert.deepEqual((await readdir(dir)).filter((f) => f.endsWith('.tmp')), [], 'a failed write removes its temp file');

  fsp.open = realOpen;
  fsp.rename = async () => {
    throw Object.assign(new Error('EIO: i/o error, rename'), { code: 'EIO' });
  };
  syncBuiltinESMExports();
  await assert.rejects(store.save('t1', { tasks: {} }), /EIO/);
  assert.deepEqual(await store.load('t1'), a);
});

test('a corrupt snapshot file is an InvalidSnapshot error naming the file', async (t) => {
  const dir = await tempDir(t);
  const store = new FileStore(dir);
  await writeFile(store.pathFor('t1'), '{"tasks": {', 'utf8');
  await assert.rejects(store.load('t1'), (e) => e instanceof BgTasksError && e.code === 'InvalidSnapshot' && e.message.includes('t1.json'));
});

test('bad arguments to FileStore are TypeErrors', async () => {
  assert.throws(() => new FileStore(5), (e) => e instanceof TypeError && /dir/.test(e.message));
  assert.throws(() => new FileStore(''), (e) => e instanceof TypeError && /dir/.test(e.message));
  const store = new FileStore('/nonexistent-bgtasks-dir');
  await assert.rejects(store.save(7, { tasks: {} }), (e) => e instanceof TypeError && /thread/.test(e.message));
  await assert.rejects(store.load(null), (e) => e instanceof TypeError && /thread/.test(e.message));
});
