// cancel / cancelTree / cancelAll: awaken's return values, and the final statuses of
// docs/behaviour.md (a cancel that said true ends cancelled).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { manual, untilCancelled, blocker } from './_helpers.mjs';

test('cancel: true while live (also on repeat), status running until the body settles, then cancelled', async (t) => {
  const mgr = await manual(t);
  const b = blocker();
  const id = mgr.spawn({ thread: 't', type: 'x' }, b.body);
  await mgr.runUntilIdle();
  assert.equal(mgr.cancel(id), true);
  assert.equal(mgr.cancel(id), true);
  await mgr.runUntilIdle();
  assert.equal(mgr.get(id).status, 'running');
  assert.equal(mgr.stats().cancel_requested_running, 1);
  b.release('value');
  await mgr.runUntilIdle();
  const s = mgr.get(id);
  assert.equal(s.status, 'cancelled');
  assert.equal('result' in s, false);
  assert.equal('error' in s, false);
  assert.equal(typeof s.completed_at_ms, 'number');
  assert.deepEqual(mgr.drain(), [{ kind: 'cancelled', task_id: id }]);
  assert.equal(mgr.cancel(id), false, 'finished');
  assert.equal(mgr.cancel('bg_404'), false, 'unknown');
  assert.equal(mgr.stats().cancel_requested_running, 0);
});

test('a success returned after cancel still ends cancelled; its value is discarded', async (t) => {
  const mgr = await manual(t);
  const id = mgr.spawn({ thread: 't', type: 'x' }, untilCancelled);
  await mgr.runUntilIdle();
  assert.equal(mgr.cancel(id), true);
  await mgr.runUntilIdle();
  assert.deepEqual(mgr.drain(), [{ kind: 'cancelled', task_id: id }]);
  assert.equal(mgr.get(id).status, 'cancelled');
  assert.equal(mgr.get(id).result, undefined);
});

test('a failure after cancel also ends cancelled', async (t) => {
  const mgr = await manual(t);
  const id = mgr.spawn({ thread: 't', type: 'x' }, async (ctx) => {
    await untilCancelled(ctx);
    throw new Error('cleanup failed');
  });
  await mgr.runUntilIdle();
  mgr.cancel(id);
  await mgr.runUntilIdle();
  assert.equal(mgr.get(id).status, 'cancelled');
  assert.equal(mgr.get(id).error, undefined);
  assert.deepEqual(mgr.drain(), [{ kind: 'cancelled', task_id: id }]);
});

test('ctx.signal aborts with an AbortError on cancel; ctx.isCancelled follows it', async (t) => {
  const mgr = await manual(t);
  let ctxRef;
  const seen = [];
  const id = mgr.spawn({ thread: 't', type: 'x' }, (ctx) => {
    ctxRef = ctx;
    ctx.signal.addEventListener('abort', () => seen.push('abort'));
    return untilCancelled(ctx);
  });
  await mgr.runUntilIdle();
  assert.equal(ctxRef.signal.aborted, false);
  assert.equal(ctxRef.isCancelled(), false);
  mgr.cancel(id);
  assert.deepEqual(seen, ['abort'], 'the signal aborts synchronously inside cancel()');
  assert.equal(ctxRef.isCancelled(), true);
  assert.equal(ctxRef.signal.reason.name, 'AbortError');
  assert.ok(ctxRef.signal.reason instanceof DOMException);
});

test('ctx.sleep rejects with an AbortError on cancel, long before its deadline', async (t) => {
  const mgr = await manual(t);
  let caught = null;
  const id = mgr.spawn({ thread: 't', type: 'x' }, async (ctx) => {
    try {
      await ctx.sleep(1_000_000);
    } catch (e) {
      caught = e;
      throw e;
    }
    return 'slept';
  });
  await mgr.runUntilIdle();
  mgr.advance(10);
  await mgr.runUntilIdle();
  assert.equal(caught, null);
  mgr.cancel(id);
  await mgr.runUntilIdle();
  assert.equal(caught?.name, 'AbortError');
  assert.equal(mgr.now(), 10, 'no time moved');
  assert.equal(mgr.get(id).status, 'cancelled');
});

test('a body that never looks stays running; stats counts it; cancel keeps answering true', async (t) => {
  const mgr = await manual(t);
  const b = blocker();
  const id = mgr.spawn({ thread: 't', type: 'x' }, b.body);
  await mgr.runUntilIdle();
  mgr.cancel(id);
  await mgr.runUntilIdle();
  const st = mgr.stats();
  assert.equal(st.running, 1);
  assert.equal(st.cancel_requested_running, 1);
  assert.equal(st.live_bodies, 1);
  assert.equal(mgr.hasRunning('t'), true);
  assert.equal(mgr.cancel(id), true);
});

test('a cancel before the body starts: the body sees an aborted signal and the task ends cancelled', async (t) => {
  const mgr = await manual(t);
  let abortedOnEntry = null;
  const id = mgr.spawn({ thread: 't', type: 'x' }, async (ctx) => {
    abortedOnEntry = ctx.signal.aborted;
    return 'ignored';
  });
  assert.equal(mgr.cancel(id), true);
  await mgr.runUntilIdle();
  assert.equal(abortedOnEntry, true);
  assert.equal(mgr.get(id).status, 'cancelled');
});

test('cancelTree counts the live root and descendants across threads; finished ones are not counted', async (t) => {
  const mgr = await manual(t);
  const ids = {};
  ids.root = mgr.spawn({ thread: 'a', type: 'root' }, async (ctx) => {
    ids.child = ctx.spawn({ thread: 'b', type: 'child' }, async (c) => {
      ids.grandchild = c.spawn({ thread: 'a', type: 'grandchild' }, untilCancelled);
      return untilCancelled(c);
    });
    ids.done = ctx.spawn({ thread: 'a', type: 'quick' }, async () => 'quick');
    return untilCancelled(ctx);
  });
  ids.other = mgr.spawn({ thread: 'a', type: 'unrelated' }, untilCancelled);
  await mgr.runUntilIdle();
  assert.equal(mgr.get(ids.done).status, 'completed');
  assert.equal(mgr.cancelTree(ids.grandchild), 1, 'a leaf');
  assert.equal(mgr.cancelTree(ids.root), 3, 'root + child + grandchild (still live)');
  await mgr.runUntilIdle();
  for (const k of ['root', 'child', 'grandchild']) assert.equal(mgr.get(ids[k]).status, 'cancelled', k);
  assert.equal(mgr.get(ids.done).status, 'completed');
  assert.equal(mgr.get(ids.other).status, 'running');
  assert.equal(mgr.cancelTree(ids.root), 0, 'all finished');
  assert.equal(mgr.cancelTree('bg_404'), 0, 'unknown');
});

test('cancelAll counts only the thread\'s live tasks and leaves other threads running', async (t) => {
  const mgr = await manual(t);
  const a1 = mgr.spawn({ thread: 't1', type: 'x' }, untilCancelled);
  const a2 = mgr.spawn({ thread: 't1', type: 'x' }, untilCancelled);
  const done = mgr.spawn({ thread: 't1', type: 'x' }, async () => 1);
  const b1 = mgr.spawn({ thread: 't2', type: 'x' }, untilCancelled);
  await mgr.runUntilIdle();
  assert.equal(mgr.cancelAll('t1'), 2);
  await mgr.runUntilIdle();
  assert.deepEqual([a1, a2, done, b1].map((id) => mgr.get(id).status), ['cancelled', 'cancelled', 'completed', 'running']);
  assert.equal(mgr.hasRunning('t1'), false);
  assert.equal(mgr.hasRunning('t2'), true);
  assert.equal(mgr.cancelAll('t1'), 0);
  assert.equal(mgr.cancelAll('nobody'), 0);
  assert.equal(mgr.cancelAll('t2'), 1);
});

test('restored-only ids: cancel false, cancelTree 0', async (t) => {
  const mgr = await manual(t);
  mgr.restore('t', {
    tasks: {
      bg_7: { task_id: 'bg_7', task_type: 'x', description: '', status: 'running', created_at_ms: 1 },
      bg_8: { task_id: 'bg_8', task_type: 'x', description: '', status: 'completed', created_at_ms: 1, completed_at_ms: 2, parent_context: { task_id: 'bg_7' } },
    },
  });
  assert.equal(mgr.cancel('bg_7'), false);
  assert.equal(mgr.cancel('bg_8'), false);
  assert.equal(mgr.cancelTree('bg_7'), 0);
  assert.equal(mgr.cancelAll('t'), 0);
});
