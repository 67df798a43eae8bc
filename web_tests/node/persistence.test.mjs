// snapshot / restore: awaken's background_task_state value, orphans, the counter, InvalidSnapshot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BgTasksError } from 'bgtasks';
import { manual, untilCancelled, state } from './_helpers.mjs';

const ORPHANED = 'task orphaned: runtime restarted while running';

async function populated(t) {
  const mgr = await manual(t, { now: 100 });
  const running = mgr.spawn({ thread: 't1', type: 'shell', name: 'builder', description: 'build project', parent: { run_id: 'run-1', call_id: 'call-1', agent_id: 'agent-a' } }, untilCancelled);
  const done = mgr.spawn({ thread: 't1', type: 'shell', description: 'compile' }, async (ctx) => {
    await ctx.sleep(50);
    return { exit_code: 0 };
  });
  const failed = mgr.spawn({ thread: 't1', type: 'http', description: 'fetch data' }, async () => {
    throw new Error('timeout');
  });
  const elsewhere = mgr.spawn({ thread: 't2', type: 'x' }, async () => 'other');
  await mgr.runUntilIdle();
  mgr.advance(50);
  await mgr.runUntilIdle();
  return { mgr, running, done, failed, elsewhere };
}

test('snapshot(thread) is awaken\'s state value with only that thread\'s tasks; snapshot() has every thread', async (t) => {
  const { mgr, running, done, failed, elsewhere } = await populated(t);
  const snap = mgr.snapshot('t1');
  assert.deepEqual(Object.keys(snap), ['tasks']);
  assert.deepEqual(Object.keys(snap.tasks).sort(), [running, done, failed].sort());
  assert.deepEqual(snap.tasks[running], {
    task_id: running, owner_thread_id: 't1', task_type: 'shell', name: 'builder', description: 'build project',
    status: 'running', created_at_ms: 100, parent_context: { run_id: 'run-1', call_id: 'call-1', agent_id: 'agent-a' },
  });
  assert.deepEqual(snap.tasks[done], {
    task_id: done, owner_thread_id: 't1', task_type: 'shell', description: 'compile', status: 'completed',
    result: { exit_code: 0 }, created_at_ms: 100, completed_at_ms: 150, parent_context: {},
  });
  assert.deepEqual(snap.tasks[failed].error, 'timeout');
  assert.deepEqual(Object.keys(mgr.snapshot().tasks).sort(), [running, done, failed, elsewhere].sort());
  assert.deepEqual(mgr.snapshot('nobody'), { tasks: {} });
});

test('restore: running entries become orphaned failures, terminal ones are kept, the thread claims them', async (t) => {
  const { mgr, running, done, failed } = await populated(t);
  const snap = mgr.snapshot('t1');
  const fresh = await manual(t, { now: 5000 });
  assert.deepEqual(fresh.restore('t9', snap), { added: 3, skipped: [] });
  const orphan = fresh.get(running);
  assert.equal(orphan.status, 'failed');
  assert.equal(orphan.error, ORPHANED);
  assert.equal('completed_at_ms' in orphan, false);
  assert.deepEqual(orphan.parent_context, snap.tasks[running].parent_context);
  const after = fresh.snapshot('t9');
  for (const id of [done, failed]) assert.deepEqual(after.tasks[id], { ...snap.tasks[id], owner_thread_id: 't9' });
  assert.equal(after.tasks[running].name, 'builder');
  assert.deepEqual(fresh.list('t9').map((s) => s.task_id), [running, done, failed]);
  assert.deepEqual(fresh.list('t1'), []);
  assert.equal(fresh.hasRunning('t9'), false);
  assert.deepEqual(fresh.drain(), [], 'restore emits no events');
  assert.deepEqual(fresh.restore('t9', snap), { added: 0, skipped: [running, done, failed] }, 'existing ids are skipped, and said');
});

test('restore keeps existing ids untouched, including a live task', async (t) => {
  const mgr = await manual(t);
  const live = mgr.spawn({ thread: 't', type: 'live' }, async (ctx) => {
    await ctx.sleep(10);
    return 'live result';
  });
  await mgr.runUntilIdle();
  const n = mgr.restore('t', {
    tasks: {
      [live]: { task_id: live, task_type: 'impostor', description: '', status: 'completed', created_at_ms: 1, completed_at_ms: 2 },
      bg_restored: { task_id: 'bg_restored', task_type: 'x', description: '', status: 'running', created_at_ms: 1 },
    },
  });
  assert.deepEqual(n, { added: 1, skipped: [live] });
  assert.equal(mgr.get(live).task_type, 'live');
  assert.equal(mgr.get(live).status, 'running');
  mgr.advance(10);
  await mgr.runUntilIdle();
  assert.equal(mgr.get(live).result, 'live result');
  assert.equal(mgr.get('bg_restored').error, ORPHANED);
});

test('the counter after restore: bg_5 and bg_10 make the next id bg_11; other ids do not move it', async (t) => {
  const mgr = await manual(t);
  const entry = (id) => ({ task_id: id, task_type: 'x', description: '', status: 'completed', created_at_ms: 1, completed_at_ms: 2 });
  mgr.restore('t', { tasks: { bg_restored: entry('bg_restored'), 'custom-1': entry('custom-1'), bg_x: entry('bg_x') } });
  assert.equal(mgr.spawn({ thread: 't', type: 'x' }, async () => {}), 'bg_0');
  mgr.restore('t', { tasks: { bg_5: entry('bg_5'), bg_10: entry('bg_10') } });
  assert.equal(mgr.spawn({ thread: 't', type: 'x' }, async () => {}), 'bg_11');
  mgr.restore('t', { tasks: { bg_3: entry('bg_3') } });
  assert.equal(mgr.spawn({ thread: 't', type: 'x' }, async () => {}), 'bg_12', 'a lower id never lowers the counter');
});

test('awaken\'s legacy JSON (no owner_thread_id, no parent_context) restores', async (t) => {
  const mgr = await manual(t);
  const legacy = { task_id: 'bg_old', task_type: 'shell', description: 'legacy task', status: 'completed', created_at_ms: 100, completed_at_ms: 200 };
  assert.deepEqual(mgr.restore('t1', { tasks: { bg_old: legacy } }), { added: 1, skipped: [] });
  assert.deepEqual(mgr.get('bg_old'), legacy);
  assert.deepEqual(mgr.snapshot('t1').tasks.bg_old, { ...legacy, owner_thread_id: 't1', parent_context: {} });
});

test('InvalidSnapshot names the entry and field and restores nothing (all or nothing)', async (t) => {
  const mgr = await manual(t);
  mgr.spawn({ thread: 't', type: 'x' }, async () => 1);
  await mgr.runUntilIdle();
  const before = state(mgr);
  const good = { task_id: 'bg_50', task_type: 'x', description: '', status: 'completed', created_at_ms: 1, completed_at_ms: 2 };
  const cases = [
    [{ bg_3: { task_id: 'bg_3', task_type: 'x', description: '', status: 'bogus', created_at_ms: 1 } }, /tasks\.bg_3\.status/],
    [{ bg_3: { task_id: 'bg_3', task_type: 'x', status: 'running', created_at_ms: 1 } }, /tasks\.bg_3.*description/],
    [{ bg_3: { task_id: 'bg_4', task_type: 'x', description: '', status: 'running', created_at_ms: 1 } }, /tasks\.bg_3\.task_id/],
    [{ bg_3: { task_id: 'bg_3', task_type: 'x', description: '', status: 'running', created_at_ms: 'soon' } }, /tasks\.bg_3\.created_at_ms/],
  ];
  for (const [bad, pattern] of cases) {
    assert.throws(
      () => mgr.restore('t', { tasks: { bg_50: good, ...bad } }),
      (e) => e instanceof BgTasksError && e.code === 'InvalidSnapshot' && pattern.test(e.message),
      String(pattern),
    );
    assert.equal(state(mgr), before);
  }
  assert.throws(() => mgr.restore('t', { task: {} }), (e) => e.code === 'InvalidSnapshot' && /tasks/.test(e.message));
  assert.equal(mgr.get('bg_50'), null);
  assert.equal(mgr.spawn({ thread: 't', type: 'x' }, async () => {}), 'bg_1', 'the counter did not move');
});

test('restored-only tasks: get answers, sendMessage says TaskNotFound', async (t) => {
  const mgr = await manual(t);
  mgr.restore('t', { tasks: { bg_2: { task_id: 'bg_2', task_type: 'sub_agent', description: '', status: 'running', created_at_ms: 1 } } });
  assert.equal(mgr.get('bg_2').status, 'failed');
  assert.throws(() => mgr.sendMessage('bg_2', 't', 'p', 'x'), (e) => e.code === 'TaskNotFound');
});
