// IndexedDbStore through fake-indexeddb: one record per thread, persist/resume.
import 'fake-indexeddb/auto';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IndexedDbStore } from 'bgtasks';
import { manual, untilCancelled } from './_helpers.mjs';

let dbCounter = 0;
function freshStore(t, options) {
  const store = new IndexedDbStore(`bgtasks-test-${process.pid}-${++dbCounter}`, options);
  t.after(() => store.close());
  return store;
}

test('save / load / threads / delete: one record per thread', async (t) => {
  const store = freshStore(t);
  assert.equal(await store.load('t1'), null);
  assert.deepEqual(await store.threads(), []);
  const a = { tasks: { bg_0: { task_id: 'bg_0', owner_thread_id: 't1', task_type: 'x', description: '', status: 'completed', created_at_ms: 1, parent_context: {}, result: { n: [1, 2] } } } };
  const b = { tasks: {} };
  await store.save('t1', a);
  await store.save('t2', b);
  assert.deepEqual(await store.load('t1'), a);
  assert.deepEqual(await store.load('t2'), b);
  assert.deepEqual((await store.threads()).sort(), ['t1', 't2']);
  await store.save('t1', b);
  assert.deepEqual(await store.load('t1'), b, 'a save replaces the record');
  await store.delete('t2');
  assert.deepEqual(await store.threads(), ['t1']);
  assert.equal(await store.load('t2'), null);
});

test('records survive closing and reopening the database; store names are separate', async (t) => {
  const name = `bgtasks-test-reopen-${process.pid}`;
  const one = new IndexedDbStore(name);
  await one.save('t1', { tasks: {} });
  one.close();
  const again = new IndexedDbStore(name);
  t.after(() => again.close());
  assert.deepEqual(await again.load('t1'), { tasks: {} });
  const other = new IndexedDbStore(`${name}-b`, { storeName: 'other', durability: 'relaxed' });
  t.after(() => other.close());
  assert.equal(await other.load('t1'), null);
});

test('persist / resume: the running task comes back orphaned in a new manager', async (t) => {
  const store = freshStore(t);
  const first = await manual(t);
  const live = first.spawn({ thread: 't1', type: 'sub' }, untilCancelled);
  const done = first.spawn({ thread: 't1', type: 'sub' }, async () => 'done');
  await first.runUntilIdle();
  await first.persist(store, 't1');
  assert.deepEqual(await store.load('t1'), first.snapshot('t1'));

  const second = await manual(t);
  assert.deepEqual(await second.resume(store, 't1'), { added: 2, skipped: [] });
  assert.equal(second.get(live).status, 'failed');
  assert.equal(second.get(live).error, 'task orphaned: runtime restarted while running');
  assert.equal(second.get(done).result, 'done');
  assert.equal(second.spawn({ thread: 't1', type: 'x' }, async () => {}), 'bg_2');
});

test('bad arguments to IndexedDbStore are TypeErrors', async (t) => {
  assert.throws(() => new IndexedDbStore(''), (e) => e instanceof TypeError && /dbName/.test(e.message));
  assert.throws(() => new IndexedDbStore('db', { durability: 'fast' }), (e) => e instanceof TypeError && /durability/.test(e.message));
  const store = freshStore(t);
  await assert.rejects(store.save(1, { tasks: {} }), (e) => e instanceof TypeError && /thread/.test(e.message));
});

// Without Web Locks (Node has none), the epoch alone fences: these are the store's rules.
test('claim / fenced save / id blocks without Web Locks: a stale epoch writes nothing', async (t) => {
  const name = `bgtasks-test-fence-${process.pid}`;
  const a = new IndexedDbStore(name);
  const b = new IndexedDbStore(name);
  t.after(() => {
    a.close();
    b.close();
  });
  const one = await a.claim('x', { owner: 'a' });
  await a.save('x', { tasks: {} }, { epoch: one.epoch });
  const two = await b.claim('x', { owner: 'b' });
  assert.ok(two.epoch > one.epoch);
  const bState = { tasks: { bg_7: { task_id: 'bg_7', owner_thread_id: 'x', task_type: 'x', description: 'b', status: 'running', created_at_ms: 1, parent_context: {} } } };
  await b.save('x', bState, { epoch: two.epoch });
  await assert.rejects(a.save('x', { tasks: {} }, { epoch: one.epoch }), (e) => e.code === 'StaleOwner' && /thread 'x'/.test(e.message));
  assert.deepEqual(await a.load('x'), bState, "the newer owner's state is intact");
  assert.equal((await a.owner('x')).owner, 'b');
  // Blocks never overlap and start above every saved id.
  const blocks = await Promise.all([a.reserveIds(10), b.reserveIds(10), a.reserveIds(5)]);
  assert.ok(blocks.every((first) => first >= 8), blocks.join());
  const ranges = blocks.map((first, i) => [first, first + [10, 10, 5][i]]).sort((p, q) => p[0] - q[0]);
  for (let i = 1; i < ranges.length; i++) assert.ok(ranges[i][0] >= ranges[i - 1][1], JSON.stringify(ranges));
});

test('a manager attached to an IndexedDbStore: take-in, auto-save, takeover (epoch only)', async (t) => {
  const name = `bgtasks-test-attached-${process.pid}`;
  const storeA = freshStoreNamed(t, name);
  const storeB = freshStoreNamed(t, name);
  const errors = [];
  const a = await manual(t, { store: storeA, onStoreError: (e, thread) => errors.push([e.code, thread]) });
  const long = a.spawn({ thread: 'x', type: 'x' }, untilCancelled);
  await a.flush();
  assert.equal((await storeA.load('x')).tasks[long].status, 'running');

  const b = await manual(t, { store: storeB });
  const mine = b.spawn({ thread: 'x', type: 'x' }, untilCancelled);
  assert.notEqual(mine, long);
  assert.deepEqual(await b.resume('x'), { added: 1, skipped: [] });
  assert.equal(b.get(long).error, 'task orphaned: runtime restarted while running');
  await b.flush();
  const bState = await storeB.load('x');

  a.spawn({ thread: 'x', type: 'x' }, untilCancelled);
  await assert.rejects(a.flush(), (e) => e.code === 'StaleOwner');
  assert.equal(a.ownership('x'), 'lost');
  assert.deepEqual(errors, [['StaleOwner', 'x']]);
  assert.deepEqual(await storeB.load('x'), bState);
});

function freshStoreNamed(t, name) {
  const store = new IndexedDbStore(name);
  t.after(() => store.close());
  return store;
}
