// Fault injection, JS side: bounded owner and agent inboxes under both overflow
// policies, bodies that reject or never settle, a "crash" and restore with orphaned descendants,
// and a restore into a manager whose live tasks have the same ids. The native counterparts
// (failing commits, dropped receivers, closed sub-agent inboxes) are in
// native_tests/fault_injection_test.cpp: the JS API cannot reach those states.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { BgTasksError, createTaskManager } from 'bgtasks';
import { manual } from './_helpers.mjs';

const never = () => new Promise(() => {});
const ORPHANED = 'task orphaned: runtime restarted while running';

// ---- bounded owner inbox ----------------------------------------------------------------------

test('owner inbox, reject: ctx.emit answers false when full, refused events are counted, records unaffected', async (t) => {
  const mgr = await manual(t, { ownerInboxCapacity: 2, ownerInboxOverflow: 'reject' });
  const sent = [];
  const id = mgr.spawn({ thread: 't', type: 'w' }, async (ctx) => {
    for (let i = 1; i <= 3; i++) sent.push(ctx.emit('e', i));
    return 'done';
  });
  await mgr.runUntilIdle();
  assert.deepEqual(sent, [true, true, false]);
  let st = mgr.stats();
  assert.equal(st.owner_inbox_depth, 2);
  assert.equal(st.owner_inbox_dropped, 2, 'e3 and the terminal event were refused');
  assert.equal(mgr.get(id).status, 'completed');
  assert.deepEqual(mgr.drain().map((e) => e.payload), [1, 2]);

  // Room again: the next task's events arrive, the counter keeps its history.
  const id2 = mgr.spawn({ thread: 't', type: 'w' }, async (ctx) => ctx.emit('again', 1));
  await mgr.runUntilIdle();
  assert.deepEqual(mgr.drain(), [
    { kind: 'custom', task_id: id2, event_type: 'again', payload: 1 },
    { kind: 'completed', task_id: id2, result: true },
  ]);
  st = mgr.stats();
  assert.equal(st.owner_inbox_dropped, 2);
  assert.deepEqual(Object.keys(mgr.snapshot().tasks).sort(), [id, id2].sort(), 'the snapshot keeps awaken\'s shape');
});

test('owner inbox, dropOldest: every emit is delivered, the oldest are evicted and counted', async (t) => {
  const mgr = await manual(t, { ownerInboxCapacity: 2, ownerInboxOverflow: 'dropOldest' });
  const sent = [];
  const id = mgr.spawn({ thread: 't', type: 'w' }, async (ctx) => {
    for (let i = 1; i <= 3; i++) sent.push(ctx.emit('e', i));
    return 'done';
  });
  await mgr.runUntilIdle();
  assert.deepEqual(sent, [true, true, true]);
  assert.equal(mgr.stats().owner_inbox_dropped, 2, 'e1 and e2 were evicted');
  assert.deepEqual(mgr.drain(), [
    { kind: 'custom', task_id: id, event_type: 'e', payload: 3 },
    { kind: 'completed', task_id: id, result: 'done' },
  ]);
  assert.equal(mgr.get(id).status, 'completed');
});

test('owner inbox, dropOldest: events() and drain(thread) see only what survived, in order', async (t) => {
  const mgr = await manual(t, { ownerInboxCapacity: 3, ownerInboxOverflow: 'dropOldest' });
  let ctxA;
  let ctxB;
  mgr.spawn({ thread: 'a', type: 'w' }, (ctx) => ((ctxA = ctx), never()));
  mgr.spawn({ thread: 'b', type: 'w' }, (ctx) => ((ctxB = ctx), never()));
  await mgr.runUntilIdle();
  ctxA.emit('a', 1);
  ctxB.emit('b', 1);
  ctxA.emit('a', 2);
  ctxB.emit('b', 2); // evicts a1
  ctxA.emit('a', 3); // evicts b1
  assert.equal(mgr.stats().owner_inbox_dropped, 2);
  assert.deepEqual(mgr.drain('a').map((e) => e.payload), [2, 3]);
  const it = mgr.events('b');
  assert.deepEqual((await it.next()).value.payload, 2);
  assert.equal(mgr.stats().owner_inbox_depth, 0);
});

// ---- bounded agent inbox ----------------------------------------------------------------------

test('agent inbox, reject: sendMessage throws BgTasksError InboxFull, counted, nothing else changes', async (t) => {
  const mgr = await manual(t, { agentInboxCapacity: 2 });
  let inbox;
  const id = mgr.spawnAgent({ thread: 't', name: 'slow' }, (ctx) => ((inbox = ctx.inbox), never()));
  await mgr.runUntilIdle();
  mgr.sendMessage(id, 't', 'p', '1');
  mgr.sendMessage(id, 't', 'p', '2');
  const snapshot = JSON.stringify(mgr.snapshot());
  for (let i = 0; i < 2; i++) {
    assert.throws(
      () => mgr.sendMessage(id, 't', 'p', '3'),
      (e) => e instanceof BgTasksError && e.code === 'InboxFull' && e.message === 'sub-agent inbox full',
    );
  }
  assert.equal(JSON.stringify(mgr.snapshot()), snapshot);
  const st = mgr.stats();
  assert.equal(st.agent_inbox_dropped, 2);
  assert.equal(st.owner_inbox_dropped, 0);
  assert.deepEqual([inbox.tryRecv(), inbox.tryRecv(), inbox.tryRecv()].map((m) => m?.payload.content ?? null), ['1', '2', null]);
  mgr.sendMessage(id, 't', 'p', '4'); // room again
  assert.equal(inbox.tryRecv().payload.content, '4');
  assert.equal(mgr.cancel(id), true);
  assert.equal(mgr.stats().agent_inbox_dropped, 2, 'the count stays');
});

test('agent inbox, dropOldest: the newest messages stay and the evictions are counted, also after the agent ends', async (t) => {
  const mgr = await manual(t, { agentInboxCapacity: 2, agentInboxOverflow: 'dropOldest' });
  const id = mgr.spawnAgent({ thread: 't' }, async (ctx) => {
    await ctx.sleep(1);
    const got = [];
    for (let m = ctx.inbox.tryRecv(); m !== null; m = ctx.inbox.tryRecv()) got.push(m.payload.content);
    return got;
  });
  await mgr.runUntilIdle();
  for (const c of ['1', '2', '3', '4']) mgr.sendMessage(id, 't', 'p', c);
  assert.equal(mgr.stats().agent_inbox_dropped, 2);
  mgr.advance(1);
  await mgr.runUntilIdle();
  assert.deepEqual(mgr.get(id).result, ['3', '4']);
  assert.equal(mgr.stats().agent_inbox_dropped, 2);
  assert.throws(() => mgr.sendMessage(id, 't', 'p', '5'), (e) => e instanceof BgTasksError && e.code === 'TaskTerminated');
});

// ---- bodies that reject or never settle -------------------------------------------------------

test('bodies that throw, reject with non-Errors, or resolve with non-JSON fail cleanly; the manager keeps working', async (t) => {
  const mgr = await manual(t);
  const ids = [
    mgr.spawn({ thread: 't', type: 'x' }, () => {
      throw new Error('sync throw');
    }),
    mgr.spawn({ thread: 't', type: 'x' }, async () => Promise.reject(new RangeError('async reject'))),
    mgr.spawn({ thread: 't', type: 'x' }, async () => Promise.reject('a string')),
    mgr.spawn({ thread: 't', type: 'x' }, async () => Promise.reject({ code: 42 })),
    mgr.spawn({ thread: 't', type: 'x' }, async () => 10n),
  ];
  await mgr.runUntilIdle();
  const errors = ids.map((id) => [mgr.get(id).status, mgr.get(id).error]);
  assert.deepEqual(errors.slice(0, 4), [
    ['failed', 'sync throw'],
    ['failed', 'async reject'],
    ['failed', 'a string'],
    ['failed', '{"code":42}'],
  ]);
  assert.equal(errors[4][0], 'failed');
  assert.match(errors[4][1], /result/);
  assert.equal(mgr.stats().live_bodies, 0);
  assert.deepEqual(mgr.drain().map((e) => e.kind), ['failed', 'failed', 'failed', 'failed', 'failed']);
  const ok = mgr.spawn({ thread: 't', type: 'x' }, async () => 'fine');
  await mgr.runUntilIdle();
  assert.equal(mgr.get(ok).status, 'completed');
});

// Collect garbage from a test: node --test gives no --expose-gc flag.
function gcFunction() {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc');
}

// Not inline in the async test: a suspended async frame may keep a dead local (the context) alive.
function checkAborted(ref) {
  const ctx = ref.deref();
  assert.ok(ctx, 'the manager keeps live contexts');
  assert.equal(ctx.signal.aborted, true);
  assert.equal(ctx.isCancelled(), true);
  assert.equal(ctx.signal.reason.name, 'AbortError');
}

async function collected(ref, gc) {
  for (let i = 0; i < 10 && ref.deref() !== undefined; i++) {
    await new Promise((resolve) => setImmediate(resolve));
    gc();
  }
  return ref.deref() === undefined;
}

test('a body whose promise never settles, cancelled: stays running with an aborted signal, is counted, and dispose frees it', async (t) => {
  const gc = gcFunction();
  const mgr = await createTaskManager({ clock: 'manual' });
  t.after(() => mgr.dispose());
  const ctxRefs = [];
  let sleepOutcome = 'pending';
  const ids = [];
  for (let i = 0; i < 3; i++) {
    ids.push(
      mgr.spawn({ thread: 't', type: 'stuck' }, (ctx) => {
        ctxRefs.push(new WeakRef(ctx));
        return never(); // ignores its signal
      }),
    );
  }
  let sleeper;
  ids.push(
    mgr.spawn({ thread: 't', type: 'stuck' }, async (ctx) => {
      sleeper = new WeakRef(ctx);
      await ctx.sleep(10).catch(() => {}); // cancel rejects it; the body then waits forever
      sleepOutcome = 'rejected';
      await never();
    }),
  );
  await mgr.runUntilIdle();
  const waits = ids.map((id) => mgr.wait(id));

  for (const id of ids) assert.equal(mgr.cancel(id), true);
  mgr.advance(1000);
  await mgr.runUntilIdle();
  assert.equal(sleepOutcome, 'rejected');
  for (const id of ids) {
    assert.equal(mgr.get(id).status, 'running', id);
    assert.equal(mgr.cancel(id), true, 'cancel answers true again while the body is live');
  }
  for (const ref of [...ctxRefs, sleeper]) checkAborted(ref);
  const st = mgr.stats();
  assert.equal(st.running, 4);
  assert.equal(st.live_bodies, 4);
  assert.equal(st.cancel_requested_running, 4);
  assert.deepEqual(mgr.drain(), [], 'no terminal event for a body that never ended');
  assert.equal(mgr.hasRunning('t'), true);

  // Other work is not blocked.
  const ok = mgr.spawn({ thread: 't', type: 'x' }, async () => 1);
  await mgr.runUntilIdle();
  assert.equal(mgr.get(ok).status, 'completed');

  mgr.dispose();
  assert.equal(mgr.disposed, true);
  assert.deepEqual(await Promise.all(waits), [null, null, null, null], 'pending waits resolve null');
  assert.throws(() => mgr.stats(), /disposed/);
  for (const [i, ref] of [...ctxRefs, sleeper].entries())
    assert.equal(await collected(ref, gc), true, `body ${ids[i]} and its context are collectable after dispose`);
});

// ---- restore after a crash --------------------------------------------------------------------

test('a crash mid-run: restore orphans the running root and all its running descendants, terminal ones untouched', async (t) => {
  const a = await createTaskManager({ clock: 'manual', now: 1000 });
  const ids = {};
  const gate = Promise.withResolvers ? Promise.withResolvers() : (() => { let resolve; const promise = new Promise((r) => (resolve = r)); return { promise, resolve }; })();
  ids.root = a.spawn({ thread: 't', type: 'root', name: 'root' }, (ctx) => {
    ids.child = ctx.spawn({ thread: 't', type: 'child' }, (c) => {
      ids.grandchild = c.spawn({ thread: 't', type: 'grandchild' }, never);
      ids.doneGrandchild = c.spawn({ thread: 't', type: 'grandchild' }, async () => ({ ok: 1 }));
      return never();
    });
    ids.done = ctx.spawn({ thread: 't', type: 'child' }, async (c) => {
      ids.underDone = c.spawn({ thread: 't', type: 'grandchild' }, never);
      return 'done';
    });
    ids.failed = ctx.spawn({ thread: 't', type: 'child' }, async () => {
      throw new Error('boom');
    });
    ids.cancelled = ctx.spawnAgent({ thread: 't' }, async () => {
      await gate.promise;
      return 'late';
    });
    return never();
  });
  a.spawn({ thread: 'other', type: 'x' }, never); // another thread's task is not in snapshot('t')
  await a.runUntilIdle();
  a.advance(5);
  a.cancel(ids.cancelled);
  gate.resolve();
  await a.runUntilIdle();
  const saved = a.snapshot('t');
  a.dispose(); // the crash

  const before = saved.tasks;
  assert.equal(Object.keys(before).length, 8);
  assert.equal(before[ids.cancelled].status, 'cancelled');
  const b = await manual(t, { now: 5000 });
  assert.equal(b.restore('t2', saved).added, 8);
  const after = b.snapshot().tasks;
  const orphaned = [];
  for (const [id, meta] of Object.entries(before)) {
    const want = { ...meta, owner_thread_id: 't2' };
    if (meta.status === 'running') {
      orphaned.push(id);
      want.status = 'failed';
      want.error = ORPHANED;
    }
    assert.deepEqual(after[id], want, id);
  }
  assert.deepEqual(orphaned.sort(), [ids.root, ids.child, ids.grandchild, ids.underDone].sort());
  assert.equal(after[ids.grandchild].parent_context.task_id, ids.child, 'lineage survives');
  assert.equal(b.hasRunning('t2'), false);
  assert.equal(b.cancelTree(ids.root), 0, 'orphans have no body to cancel');
  assert.equal(b.stats().live_bodies, 0);
  assert.deepEqual(b.drain(), []);
  const tree = b.taskTree('t2');
  assert.equal(tree.length, 1);
  assert.equal(tree[0].task_id, ids.root);
  assert.equal(tree[0].status, 'failed');
  assert.deepEqual(tree[0].children.map((c) => c.task_id).sort(), [ids.child, ids.done, ids.failed, ids.cancelled].sort());
  // Idempotent, and the ids move on past the restored ones.
  const snap = JSON.stringify(b.snapshot());
  assert.deepEqual(b.restore('t2', saved), { added: 0, skipped: Object.keys(saved.tasks).sort((x, y) => Number(x.slice(3)) - Number(y.slice(3))) });
  assert.equal(JSON.stringify(b.snapshot()), snap);
  assert.equal(b.spawn({ thread: 't2', type: 'x' }, never), 'bg_9');
});

test('restore into a manager with live tasks of the same ids: skipped, the live ones unaffected', async (t) => {
  const mgr = await manual(t);
  const worker = mgr.spawn({ thread: 't', type: 'worker', description: 'live worker' }, async (ctx) => {
    await ctx.sleep(100);
    return { live: true };
  });
  const agent = mgr.spawnAgent({ thread: 't', description: 'live agent' }, async (ctx) => (await ctx.inbox.recv())?.payload.content);
  await mgr.runUntilIdle();
  assert.deepEqual([worker, agent], ['bg_0', 'bg_1']);
  const live = mgr.snapshot().tasks;
  const foreign = {
    tasks: {
      bg_0: { task_id: 'bg_0', task_type: 'shell', description: 'impostor', status: 'completed', result: 'fake', created_at_ms: 1, completed_at_ms: 2 },
      bg_1: { task_id: 'bg_1', task_type: 'sub_agent', description: 'impostor agent', status: 'running', created_at_ms: 1 },
      bg_5: { task_id: 'bg_5', task_type: 'shell', description: 'new', status: 'running', created_at_ms: 1 },
    },
  };
  assert.deepEqual(mgr.restore('t', foreign), { added: 1, skipped: ['bg_0', 'bg_1'] });
  assert.throws(() => mgr.restore('t2', foreign), (e) => e.code === 'IdConflict' && /bg_0 \(thread 't'\)/.test(e.message), 'ids are global: another thread cannot claim them');
  const now = mgr.snapshot().tasks;
  assert.deepEqual(now.bg_0, live.bg_0);
  assert.deepEqual(now.bg_1, live.bg_1);
  assert.equal(now.bg_5.status, 'failed');
  assert.equal(now.bg_5.error, ORPHANED);
  assert.equal(mgr.stats().live_bodies, 2);

  mgr.sendMessage(agent, 't', 'p', 'still me');
  mgr.advance(100);
  await mgr.runUntilIdle();
  assert.deepEqual(mgr.get(worker).result, { live: true });
  assert.equal(mgr.get(worker).description, 'live worker');
  assert.equal(mgr.get(agent).result, 'still me');
  assert.equal(mgr.spawn({ thread: 't', type: 'x' }, never), 'bg_6');
});
