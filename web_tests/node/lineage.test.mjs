// Lineage (docs/behaviour.md): ctx.spawn anywhere, mgr.spawn in the synchronous part, explicit fields win.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { manual, untilCancelled } from './_helpers.mjs';

test('ctx.spawn after an await makes a child; mgr.spawn inherits only in the synchronous part', async (t) => {
  const mgr = await manual(t);
  const ids = {};
  ids.parent = mgr.spawn({ thread: 't', type: 'parent' }, async (ctx) => {
    ids.syncMgr = mgr.spawn({ thread: 't', type: 'sync-mgr' }, async () => 1);
    ids.syncCtx = ctx.spawn({ thread: 't', type: 'sync-ctx' }, async () => 1);
    await ctx.sleep(5);
    ids.lateCtx = ctx.spawn({ thread: 'u', type: 'late-ctx' }, async () => 1);
    ids.lateAgent = ctx.spawnAgent({ thread: 't' }, async () => 1);
    ids.lateMgr = mgr.spawn({ thread: 't', type: 'late-mgr' }, async () => 1);
    return 'done';
  });
  ids.top = mgr.spawn({ thread: 't', type: 'top' }, async () => 1);
  await mgr.runUntilIdle();
  mgr.advance(5);
  await mgr.runUntilIdle();
  const parentOf = (id) => mgr.get(id).parent_context;
  for (const k of ['syncMgr', 'syncCtx', 'lateCtx', 'lateAgent']) assert.deepEqual(parentOf(ids[k]), { task_id: ids.parent }, k);
  assert.equal(mgr.get(ids.lateAgent).task_type, 'sub_agent');
  assert.equal(parentOf(ids.lateMgr), undefined, 'no ambient parent after an await');
  assert.equal(parentOf(ids.top), undefined);
  assert.equal(parentOf(ids.parent), undefined);
});

test('the ambient parent does not leak into spawns made outside any body', async (t) => {
  const mgr = await manual(t);
  let inner;
  mgr.spawn({ thread: 't', type: 'p' }, () => {
    inner = mgr.spawn({ thread: 't', type: 'c' }, async () => 1);
    throw new Error('sync throw while the parent is ambient');
  });
  await mgr.runUntilIdle();
  const outside = mgr.spawn({ thread: 't', type: 'o' }, async () => 1);
  assert.deepEqual(mgr.get(inner).parent_context, { task_id: 'bg_0' });
  assert.equal(mgr.get(outside).parent_context, undefined);
});

test('explicit parent fields win field by field', async (t) => {
  const mgr = await manual(t);
  const ids = {};
  ids.parent = mgr.spawn({ thread: 't', type: 'p' }, async (ctx) => {
    ids.a = ctx.spawn({ thread: 't', type: 'a', parent: { run_id: 'run-1', agent_id: 'agent-a' } }, async () => 1);
    ids.b = ctx.spawn({ thread: 't', type: 'b', parent: { task_id: 'bg_99' } }, async () => 1);
    ids.c = mgr.spawn({ thread: 't', type: 'c', parent: { call_id: 'call-1', task_id: null } }, async () => 1);
  });
  await mgr.runUntilIdle();
  assert.deepEqual(mgr.get(ids.a).parent_context, { task_id: ids.parent, run_id: 'run-1', agent_id: 'agent-a' });
  assert.deepEqual(mgr.get(ids.b).parent_context, { task_id: 'bg_99' });
  assert.deepEqual(mgr.get(ids.c).parent_context, { task_id: ids.parent, call_id: 'call-1' });
});

test('cancelTree reaches children spawned after an await; taskTree shows the forest', async (t) => {
  const mgr = await manual(t);
  const ids = {};
  ids.root = mgr.spawn({ thread: 't', type: 'root', name: 'r' }, async (ctx) => {
    await ctx.sleep(1);
    ids.child = ctx.spawn({ thread: 't', type: 'child', description: 'c' }, untilCancelled);
    return untilCancelled(ctx);
  });
  await mgr.runUntilIdle();
  mgr.advance(1);
  await mgr.runUntilIdle();
  assert.deepEqual(mgr.taskTree('t'), [
    {
      task_id: ids.root, task_type: 'root', description: '', status: 'running', name: 'r',
      children: [{ task_id: ids.child, task_type: 'child', description: 'c', status: 'running', children: [] }],
    },
  ]);
  assert.equal(mgr.cancelTree(ids.root), 2);
  await mgr.runUntilIdle();
  assert.equal(mgr.get(ids.child).status, 'cancelled');
  assert.deepEqual(mgr.taskTree().map((n) => n.status), ['cancelled']);
});

test('dispose from a body started inside another body start leaves no ambient parent behind', async (t) => {
  const a = await manual(t);
  let nested;
  a.spawn({ thread: 't', type: 'outer' }, (ctx) => {
    ctx.spawn({ thread: 't', type: 'inner' }, () => {
      a.dispose(); // two task scopes are open in the core: the outer start's and this one's
      return 1;
    });
    nested = a.runUntilIdle(); // its first pump is synchronous: starts the inner body now
    return 1;
  });
  await a.runUntilIdle();
  await nested;
  assert.equal(a.disposed, true);
  // The wasm module (and its ambient task) is shared: a new manager's spawn has no parent.
  const b = await manual(t);
  const id = b.spawn({ thread: 't', type: 'after' }, async () => 1);
  assert.equal(b.get(id).parent_context, undefined);
  await b.runUntilIdle();
  assert.equal(b.get(id).status, 'completed');
});

test('a body that pumps inside its synchronous part is still the ambient parent afterwards', async (t) => {
  const mgr = await manual(t);
  const ids = {};
  ids.outer = mgr.spawn({ thread: 't', type: 'outer' }, (ctx) => {
    ids.inner = ctx.spawn({ thread: 't', type: 'inner' }, () => {
      ids.fromInner = mgr.spawn({ thread: 't', type: 'x' }, async () => 1);
      return 1;
    });
    void mgr.runUntilIdle(); // its first pump is synchronous: the inner body's synchronous part runs now
    ids.afterPump = mgr.spawn({ thread: 't', type: 'x' }, async () => 1);
    return 1;
  });
  ids.top = mgr.spawn({ thread: 't', type: 'x' }, async () => 1);
  await mgr.runUntilIdle();
  const parentOf = (id) => mgr.get(id).parent_context?.task_id;
  assert.equal(parentOf(ids.inner), ids.outer);
  assert.equal(parentOf(ids.fromInner), ids.inner);
  assert.equal(parentOf(ids.afterPump), ids.outer, 'the outer body is ambient again once the inner one returned');
  assert.equal(parentOf(ids.top), undefined);
});

test('the ambient parent crosses managers, as natively: the innermost running body, of any manager', async (t) => {
  const a = await manual(t);
  const b = await manual(t);
  for (let i = 0; i < 5; i++) b.spawn({ thread: 't', type: 'pad' }, async () => 1); // b's ids differ from a's
  const ids = {};
  ids.outer = a.spawn({ thread: 't', type: 'outer' }, () => {
    ids.inB = b.spawn({ thread: 't', type: 'x' }, () => {
      ids.inAFromB = a.spawn({ thread: 't', type: 'y' }, async () => 1);
      return 1;
    });
    void b.runUntilIdle(); // its first pump is synchronous: b's body runs inside a's
    ids.inBAfter = b.spawn({ thread: 't', type: 'z' }, async () => 1);
    return 1;
  });
  await a.runUntilIdle();
  await b.runUntilIdle();
  await a.runUntilIdle();
  assert.equal(b.get(ids.inB).parent_context?.task_id, ids.outer, "a's body is ambient for a spawn on b");
  assert.equal(a.get(ids.inAFromB).parent_context?.task_id, ids.inB, "b's body, running inside a's, is the innermost");
  assert.equal(b.get(ids.inBAfter).parent_context?.task_id, ids.outer);
});
