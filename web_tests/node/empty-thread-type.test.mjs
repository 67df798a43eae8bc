// "" is a thread and a task type like any other (awaken's owner_thread_id and task_type are plain
// strings): every API taking a thread selects the empty thread with it, never "every thread".
import 'fake-indexeddb/auto';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BgTasksError, FileStore, IndexedDbStore } from 'bgtasks';
import { manual, untilCancelled, state } from './_helpers.mjs';

const ids = (summaries) => summaries.map((s) => s.task_id);

// Tasks on '' and on 't', each having emitted one event.
async function twoThreads(t) {
  const mgr = await manual(t);
  const body = (label) => async (ctx) => {
    ctx.emit('hello', label);
    return untilCancelled(ctx);
  };
  const empty = mgr.spawn({ thread: '', type: '' }, body('empty'));
  const other = mgr.spawn({ thread: 't', type: 'x' }, body('t'));
  const agent = mgr.spawnAgent({ thread: '', name: 'a' }, body('agent'));
  await mgr.runUntilIdle();
  return { mgr, empty, other, agent };
}

test('spawn and spawnAgent accept an empty thread and type; list, hasRunning and names are per thread', async (t) => {
  const { mgr, empty, other, agent } = await twoThreads(t);
  assert.deepEqual([empty, other, agent], ['bg_0', 'bg_1', 'bg_2']);
  assert.equal(mgr.get(empty).task_type, '');
  assert.equal(mgr.get(agent).task_type, 'sub_agent');
  const metas = mgr.snapshot('').tasks;
  assert.equal(metas[empty].owner_thread_id, '');
  assert.equal(metas[empty].task_type, '');
  assert.equal(metas[agent].owner_thread_id, '');
  assert.deepEqual(ids(mgr.list('')), [empty, agent]);
  assert.deepEqual(ids(mgr.list('t')), [other]);
  assert.equal(mgr.hasRunning(''), true);
  assert.throws(() => mgr.spawn({ thread: '', type: '', name: 'a' }, async () => {}), (e) => e instanceof BgTasksError && e.code === 'DuplicateName');
  assert.equal(mgr.spawn({ thread: 't', type: '', name: 'a' }, async () => {}), 'bg_3', "a name on '' does not count on 't'");
});

test("a body's ctx.spawn accepts an empty thread and type", async (t) => {
  const mgr = await manual(t);
  let child;
  const parent = mgr.spawn({ thread: 't', type: 'x' }, async (ctx) => {
    child = ctx.spawn({ thread: '', type: '' }, async () => 'child');
  });
  await mgr.runUntilIdle();
  assert.equal(mgr.get(child).status, 'completed');
  assert.equal(mgr.get(child).parent_context.task_id, parent);
  assert.deepEqual(ids(mgr.list('')), [child]);
});

test("drain('') and events('') take only the empty thread's events; the rest stay queued in order", async (t) => {
  const { mgr, empty, other, agent } = await twoThreads(t);
  assert.deepEqual(mgr.drain(''), [
    { event_type: 'hello', kind: 'custom', payload: 'empty', task_id: empty },
    { event_type: 'hello', kind: 'custom', payload: 'agent', task_id: agent },
  ]);
  assert.deepEqual(mgr.drain(''), []);
  mgr.spawn({ thread: '', type: '' }, async () => 'done');
  await mgr.runUntilIdle();
  const it = mgr.events('');
  assert.deepEqual((await it.next()).value, { kind: 'completed', result: 'done', task_id: 'bg_3' });
  await it.return();
  assert.deepEqual(mgr.drain(), [{ event_type: 'hello', kind: 'custom', payload: 't', task_id: other }]);
});

test("snapshot('') and taskTree('') are the empty thread's; without a thread, every thread's", async (t) => {
  const { mgr, empty, other, agent } = await twoThreads(t);
  assert.deepEqual(Object.keys(mgr.snapshot('').tasks).sort(), [empty, agent]);
  assert.deepEqual(Object.keys(mgr.snapshot().tasks).sort(), [empty, other, agent]);
  assert.deepEqual(mgr.taskTree('').map((n) => n.task_id), [empty, agent]);
  assert.deepEqual(mgr.taskTree().map((n) => n.task_id), [empty, other, agent]);
  assert.deepEqual(Object.keys(mgr.snapshot('t').tasks), [other]);
});

test("restore('') claims every entry for the empty thread", async (t) => {
  const mgr = await manual(t);
  const meta = (id, owner) => ({ task_id: id, owner_thread_id: owner, task_type: '', description: '', status: 'completed', created_at_ms: 1, completed_at_ms: 2 });
  assert.equal(mgr.restore('', { tasks: { bg_4: meta('bg_4', 't'), bg_5: meta('bg_5', '') } }).added, 2);
  assert.deepEqual(ids(mgr.list('')), ['bg_4', 'bg_5']);
  assert.deepEqual(mgr.list('t'), []);
  assert.equal(mgr.snapshot('').tasks.bg_4.owner_thread_id, '');
  assert.equal(mgr.spawn({ thread: '', type: '' }, async () => {}), 'bg_6');
});

test("cancelAll('') cancels only the empty thread's tasks", async (t) => {
  const { mgr, empty, other, agent } = await twoThreads(t);
  assert.equal(mgr.cancelAll(''), 2);
  await mgr.runUntilIdle();
  assert.equal(mgr.get(empty).status, 'cancelled');
  assert.equal(mgr.get(agent).status, 'cancelled');
  assert.equal(mgr.get(other).status, 'running');
});

test("sendMessage's owner thread may be '': it must match the agent's thread", async (t) => {
  const mgr = await manual(t);
  const got = [];
  const agent = mgr.spawnAgent({ thread: '' }, async (ctx) => {
    for await (const msg of ctx.inbox) got.push(msg.payload);
  });
  const onT = mgr.spawnAgent({ thread: 't' }, untilCancelled);
  await mgr.runUntilIdle();
  mgr.sendMessage(agent, '', '', '');
  assert.throws(() => mgr.sendMessage(agent, 't', 'p', 'c'), (e) => e instanceof BgTasksError && e.code === 'NotOwner');
  assert.throws(() => mgr.sendMessage(onT, '', 'p', 'c'), (e) => e instanceof BgTasksError && e.code === 'NotOwner');
  await mgr.runUntilIdle();
  assert.deepEqual(got, [{ content: '', from: '' }]);
  mgr.cancelAll('');
  mgr.cancelAll('t');
  await mgr.runUntilIdle();
});

test("persist/resume with the empty thread: FileStore keeps it in its own file, IndexedDbStore in its own record", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'bgtasks-empty-thread-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const idb = new IndexedDbStore(`bgtasks-empty-thread-${process.pid}`);
  t.after(() => idb.close());
  for (const store of [new FileStore(dir), idb]) {
    const mgr = await manual(t);
    mgr.spawn({ thread: '', type: '' }, async () => 'empty');
    mgr.spawn({ thread: 't', type: 'x' }, async () => 't');
    await mgr.runUntilIdle();
    await mgr.persist(store, '');
    await mgr.persist(store, 't');
    assert.deepEqual((await store.threads()).sort(), ['', 't']);
    assert.deepEqual(await store.load(''), mgr.snapshot(''));
    const fresh = await manual(t);
    assert.equal((await fresh.resume(store, '')).added, 1);
    assert.deepEqual(fresh.list(''), mgr.list(''));
    assert.deepEqual(fresh.list('t'), []);
    await store.delete('');
    assert.deepEqual(await store.threads(), ['t']);
    assert.equal(await store.load(''), null);
    await store.delete('t');
  }
  assert.deepEqual(await readdir(dir), []);
  assert.equal(new FileStore(dir).pathFor(''), join(dir, '.json'));
});

test('a thread or type that is not a string is still a TypeError, and changes nothing', async (t) => {
  const { mgr, agent } = await twoThreads(t);
  const fn = async () => {};
  const cases = [
    ['missing thread', () => mgr.spawn({ type: '' }, fn), /options\.thread/],
    ['null thread', () => mgr.spawn({ thread: null, type: '' }, fn), /options\.thread/],
    ['missing type', () => mgr.spawn({ thread: '' }, fn), /options\.type/],
    ['missing agent thread', () => mgr.spawnAgent({}, fn), /options\.thread/],
    ['list()', () => mgr.list(), /\bthread\b/],
    ['hasRunning(null)', () => mgr.hasRunning(null), /\bthread\b/],
    ['cancelAll()', () => mgr.cancelAll(), /\bthread\b/],
    ['drain(null)', () => mgr.drain(null), /\bthread\b/],
    ['snapshot(null)', () => mgr.snapshot(null), /\bthread\b/],
    ['restore(undefined)', () => mgr.restore(undefined, { tasks: {} }), /\bthread\b/],
    ['sendMessage(null thread)', () => mgr.sendMessage(agent, null, '', ''), /\bthread\b/],
  ];
  for (const [label, call, pattern] of cases) {
    const before = state(mgr);
    assert.throws(call, (e) => e instanceof TypeError && pattern.test(e.message), label);
    assert.equal(state(mgr), before, `${label}: state changed`);
  }
  await assert.rejects(new FileStore('/nonexistent-bgtasks-dir').load(null), (e) => e instanceof TypeError && /thread/.test(e.message));
  mgr.cancelAll('');
  mgr.cancelAll('t');
  await mgr.runUntilIdle();
});
