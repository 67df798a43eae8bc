// forget, retainFinished, wait, dispose and Symbol.dispose.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTaskManager } from 'bgtasks';
import { manual, untilCancelled } from './_helpers.mjs';

test('forget drops finished tasks only, once; unknown ids answer false', async (t) => {
  const mgr = await manual(t);
  const done = mgr.spawn({ thread: 't', type: 'x' }, async () => 1);
  const live = mgr.spawn({ thread: 't', type: 'x' }, untilCancelled);
  assert.equal(mgr.forget(done), false, 'not started yet');
  await mgr.runUntilIdle();
  assert.equal(mgr.forget(live), false, 'running');
  assert.equal(mgr.forget(done), true);
  assert.equal(mgr.get(done), null);
  assert.deepEqual(mgr.list('t').map((s) => s.task_id), [live]);
  assert.equal(mgr.snapshot().tasks[done], undefined);
  assert.equal(mgr.forget(done), false);
  assert.equal(mgr.forget('bg_404'), false);
  mgr.restore('t', { tasks: { old: { task_id: 'old', task_type: 'x', description: '', status: 'completed', created_at_ms: 1 } } });
  assert.equal(mgr.forget('old'), true, 'a restored terminal task can be forgotten');
});

test('retainFinished keeps the newest n finished tasks per thread and never drops running ones', async (t) => {
  const mgr = await manual(t, { retainFinished: 2 });
  const live = mgr.spawn({ thread: 't1', type: 'x' }, untilCancelled);
  const t1 = [];
  for (let i = 0; i < 5; i++) {
    t1.push(mgr.spawn({ thread: 't1', type: 'x' }, async () => i));
    await mgr.runUntilIdle();
  }
  const t2 = mgr.spawn({ thread: 't2', type: 'x' }, async () => 'kept');
  await mgr.runUntilIdle();
  assert.deepEqual(mgr.list('t1').map((s) => s.task_id), [live, t1[3], t1[4]]);
  assert.deepEqual(mgr.list('t2').map((s) => s.task_id), [t2]);
  assert.equal(mgr.get(t1[0]), null);
  const st = mgr.stats();
  assert.equal(st.completed, 3);
  assert.equal(st.running, 1);
  assert.equal(mgr.drain().length, 6, 'retention drops records, not events');
});

test('wait resolves with the terminal summary even when retention drops the task at once', async (t) => {
  const mgr = await manual(t, { retainFinished: 0 });
  const id = mgr.spawn({ thread: 't', type: 'x' }, async () => 'value');
  const waiting = mgr.wait(id);
  await mgr.runUntilIdle();
  const summary = await waiting;
  assert.equal(summary?.status, 'completed');
  assert.equal(summary?.result, 'value');
});

test('dispose: signals abort, pending sleeps reject, waits resolve null, further calls throw', async () => {
  const mgr = await createTaskManager({ clock: 'manual' });
  let ctxRef;
  let sleepError = null;
  const id = mgr.spawn({ thread: 't', type: 'x' }, async (ctx) => {
    ctxRef = ctx;
    try {
      await ctx.sleep(1000);
    } catch (e) {
      sleepError = e;
    }
  });
  await mgr.runUntilIdle();
  const waiting = mgr.wait(id);
  assert.equal(mgr.disposed, false);
  mgr.dispose();
  assert.equal(mgr.disposed, true);
  assert.equal(ctxRef.signal.aborted, true);
  assert.equal(await waiting, null);
  await new Promise((r) => setImmediate(r));
  assert.equal(sleepError?.name, 'AbortError');
  await assert.rejects(ctxRef.sleep(1), (e) => e.name === 'AbortError');
  const calls = {
    spawn: () => mgr.spawn({ thread: 't', type: 'x' }, async () => {}),
    spawnAgent: () => mgr.spawnAgent({ thread: 't' }, async () => {}),
    get: () => mgr.get(id), list: () => mgr.list('t'), hasRunning: () => mgr.hasRunning('t'), wait: () => mgr.wait(id),
    forget: () => mgr.forget(id), cancel: () => mgr.cancel(id), cancelTree: () => mgr.cancelTree(id), cancelAll: () => mgr.cancelAll('t'),
    sendMessage: () => mgr.sendMessage(id, 't', 'a', 'b'), drain: () => mgr.drain(), events: () => mgr.events(),
    snapshot: () => mgr.snapshot(), restore: () => mgr.restore('t', { tasks: {} }), advance: () => mgr.advance(1),
    now: () => mgr.now(), stats: () => mgr.stats(), taskTree: () => mgr.taskTree(), ctxEmit: () => ctxRef.emit('e', 1),
    ctxSpawn: () => ctxRef.spawn({ thread: 't', type: 'x' }, async () => {}),
  };
  for (const [name, call] of Object.entries(calls)) assert.throws(call, /disposed/, name);
  await assert.rejects(mgr.runUntilIdle(), /disposed/);
  await assert.rejects(mgr.persist({ save: async () => {}, load: async () => null }, 't'), /disposed/);
  mgr.dispose(); // idempotent
});

test('[Symbol.dispose] disposes the manager', async () => {
  const mgr = await createTaskManager({ clock: 'manual' });
  assert.equal(typeof mgr[Symbol.dispose], 'function');
  mgr[Symbol.dispose]();
  assert.equal(mgr.disposed, true);
  assert.throws(() => mgr.list('t'), /disposed/);
});
