// Thread isolation (list, hasRunning, cancelAll, names), the shared id counter, reserved and duplicate names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BgTasksError } from 'bgtasks';
import { manual, untilCancelled, state } from './_helpers.mjs';

test('list and hasRunning are per thread; get is global; the id counter is shared', async (t) => {
  const mgr = await manual(t);
  const a = mgr.spawn({ thread: 't1', type: 'x' }, untilCancelled);
  const b = mgr.spawn({ thread: 't2', type: 'x' }, async () => 'b');
  assert.deepEqual([a, b], ['bg_0', 'bg_1']);
  await mgr.runUntilIdle();
  assert.deepEqual(mgr.list('t1').map((s) => s.task_id), [a]);
  assert.deepEqual(mgr.list('t2').map((s) => s.task_id), [b]);
  assert.equal(mgr.hasRunning('t1'), true);
  assert.equal(mgr.hasRunning('t2'), false);
  assert.equal(mgr.hasRunning('t3'), false);
  assert.equal(mgr.get(b).result, 'b');
  assert.equal(mgr.get(a).status, 'running');
  assert.deepEqual(Object.keys(mgr.snapshot('t2').tasks), [b]);
});

for (const name of ['parent', 'self', 'all', 'broadcast']) {
  test(`the reserved name '${name}' is refused with awaken's message and consumes no id`, async (t) => {
    const mgr = await manual(t);
    const before = state(mgr);
    assert.throws(
      () => mgr.spawn({ thread: 't', type: 'x', name }, async () => {}),
      (e) => e instanceof BgTasksError && e.code === 'ReservedName' && e.message === `'${name}' is a reserved name`,
    );
    assert.throws(() => mgr.spawnAgent({ thread: 't', name }, async () => {}), (e) => e.code === 'ReservedName');
    assert.equal(state(mgr), before);
    assert.equal(mgr.spawn({ thread: 't', type: 'x' }, async () => {}), 'bg_0');
  });
}

test('reserved names are case-sensitive', async (t) => {
  const mgr = await manual(t);
  assert.equal(mgr.spawn({ thread: 't', type: 'x', name: 'Parent' }, async () => {}), 'bg_0');
  assert.equal(mgr.spawn({ thread: 't', type: 'x', name: 'ALL' }, async () => {}), 'bg_1');
});

test('a duplicate running name in the same thread is refused; other threads and finished tasks do not count', async (t) => {
  const mgr = await manual(t);
  const first = mgr.spawn({ thread: 't1', type: 'x', name: 'worker' }, untilCancelled);
  const before = state(mgr);
  assert.throws(
    () => mgr.spawn({ thread: 't1', type: 'y', name: 'worker' }, async () => {}),
    (e) => e instanceof BgTasksError && e.code === 'DuplicateName' && e.message === "a running task named 'worker' already exists",
  );
  assert.throws(() => mgr.spawnAgent({ thread: 't1', name: 'worker' }, async () => {}), (e) => e.code === 'DuplicateName');
  assert.equal(state(mgr), before, 'nothing spawned');
  const other = mgr.spawn({ thread: 't2', type: 'x', name: 'worker' }, async () => {});
  assert.equal(other, 'bg_1', 'no id was consumed by the refused spawns');
  mgr.cancel(first);
  await mgr.runUntilIdle();
  assert.equal(mgr.get(first).status, 'cancelled');
  assert.equal(mgr.spawn({ thread: 't1', type: 'x', name: 'worker' }, async () => {}), 'bg_2');
});

test('the empty name is a name: allowed once, a second running one is a duplicate', async (t) => {
  const mgr = await manual(t);
  mgr.spawn({ thread: 't', type: 'x', name: '' }, untilCancelled);
  assert.throws(() => mgr.spawn({ thread: 't', type: 'x', name: '' }, async () => {}), (e) => e.code === 'DuplicateName');
  mgr.spawn({ thread: 't', type: 'x' }, untilCancelled);
  mgr.spawn({ thread: 't', type: 'x', name: null }, untilCancelled);
  assert.equal(mgr.list('t').length, 3, 'tasks without a name never collide');
});

test('names are kept in the snapshot, not in the summary', async (t) => {
  const mgr = await manual(t);
  const id = mgr.spawn({ thread: 't', type: 'x', name: 'n1' }, async () => {});
  assert.equal(mgr.snapshot().tasks[id].name, 'n1');
  assert.equal('name' in mgr.get(id), false);
});
