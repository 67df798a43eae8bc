// sendMessage → a sub-agent's own inbox (awaken's agent_message) and each of its error codes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BgTasksError } from 'bgtasks';
import { manual, untilCancelled, state } from './_helpers.mjs';

const msg = (task_id, from, content) => ({ kind: 'custom', task_id, event_type: 'agent_message', payload: { from, content } });

test('a sub-agent receives agent_message events in order through ctx.inbox; the owner inbox gets none', async (t) => {
  const mgr = await manual(t);
  const got = [];
  const agent = mgr.spawnAgent({ thread: 't', name: 'researcher', description: 'find sources' }, async (ctx) => {
    got.push(await ctx.inbox.recv());
    for await (const m of ctx.inbox) {
      got.push(m);
      if (got.length === 3) break;
    }
    return got.length;
  });
  await mgr.runUntilIdle();
  assert.equal(mgr.get(agent).task_type, 'sub_agent');
  mgr.sendMessage(agent, 't', 'parent', 'look at X');
  mgr.sendMessage(agent, 't', 'agent-b', '');
  mgr.sendMessage(agent, 't', 'parent', 'and Y');
  await mgr.runUntilIdle();
  assert.deepEqual(got, [msg(agent, 'parent', 'look at X'), msg(agent, 'agent-b', ''), msg(agent, 'parent', 'and Y')]);
  assert.deepEqual(mgr.drain(), [{ kind: 'completed', task_id: agent, result: 3 }]);
});

test('tryRecv returns null when empty and the next message when one waits', async (t) => {
  const mgr = await manual(t);
  const seen = [];
  const agent = mgr.spawnAgent({ thread: 't' }, async (ctx) => {
    seen.push(ctx.inbox.tryRecv());
    await ctx.sleep(1);
    seen.push(ctx.inbox.tryRecv(), ctx.inbox.tryRecv());
  });
  await mgr.runUntilIdle();
  mgr.sendMessage(agent, 't', 'p', 'hello');
  mgr.advance(1);
  await mgr.runUntilIdle();
  assert.deepEqual(seen, [null, msg(agent, 'p', 'hello'), null]);
});

test('recv resolves null on cancel, ending for-await; the agent ends cancelled', async (t) => {
  const mgr = await manual(t);
  let ended = false;
  const agent = mgr.spawnAgent({ thread: 't' }, async (ctx) => {
    for await (const m of ctx.inbox) void m;
    ended = true;
    return 'stopped';
  });
  await mgr.runUntilIdle();
  assert.equal(ended, false);
  mgr.cancel(agent);
  await mgr.runUntilIdle();
  assert.equal(ended, true);
  assert.equal(mgr.get(agent).status, 'cancelled');
});

test('sendMessage error codes and awaken messages, checked in awaken\'s order', async (t) => {
  const mgr = await manual(t);
  const agent = mgr.spawnAgent({ thread: 't' }, untilCancelled);
  const plain = mgr.spawn({ thread: 't', type: 'x' }, untilCancelled);
  const finishedPlain = mgr.spawn({ thread: 't', type: 'x' }, async () => 1);
  const finishedAgent = mgr.spawnAgent({ thread: 't' }, async () => 2);
  const cancelledAgent = mgr.spawnAgent({ thread: 't' }, untilCancelled);
  await mgr.runUntilIdle();
  mgr.cancel(cancelledAgent);
  await mgr.runUntilIdle();
  const before = state(mgr);
  const expect = (args, code, message, status) =>
    assert.throws(
      () => mgr.sendMessage(...args, 'from', 'content'),
      (e) => e instanceof BgTasksError && e.name === 'BgTasksError' && e.code === code && e.message === message && e.status === status,
      `${args} → ${code}`,
    );
  expect(['bg_404', 't'], 'TaskNotFound', 'task not found', undefined);
  expect([agent, 'other-thread'], 'NotOwner', 'caller does not own this task', undefined);
  expect([finishedAgent, 't'], 'TaskTerminated', 'task already completed', 'completed');
  expect([cancelledAgent, 't'], 'TaskTerminated', 'task already cancelled', 'cancelled');
  expect([finishedPlain, 't'], 'TaskTerminated', 'task already completed', 'completed'); // before NoInbox
  expect([plain, 't'], 'NoInbox', 'task has no inbox (not a sub-agent)', undefined);
  expect([finishedPlain, 'other-thread'], 'NotOwner', 'caller does not own this task', undefined); // before TaskTerminated
  assert.equal(state(mgr), before);
  mgr.sendMessage(agent, 't', 'from', 'content');
});

test('a bounded agent inbox: InboxFull with reject, oldest dropped with dropOldest', async (t) => {
  const reject = await manual(t, { agentInboxCapacity: 1 });
  const a = reject.spawnAgent({ thread: 't' }, async (ctx) => {
    await ctx.sleep(1);
    return [ctx.inbox.tryRecv(), ctx.inbox.tryRecv()].map((m) => m?.payload.content ?? null);
  });
  await reject.runUntilIdle();
  reject.sendMessage(a, 't', 'p', 'one');
  assert.throws(() => reject.sendMessage(a, 't', 'p', 'two'), (e) => e.code === 'InboxFull');
  reject.advance(1);
  await reject.runUntilIdle();
  assert.deepEqual(reject.get(a).result, ['one', null]);

  const drop = await manual(t, { agentInboxCapacity: 1, agentInboxOverflow: 'dropOldest' });
  const b = drop.spawnAgent({ thread: 't' }, async (ctx) => {
    await ctx.sleep(1);
    return [ctx.inbox.tryRecv(), ctx.inbox.tryRecv()].map((m) => m?.payload.content ?? null);
  });
  await drop.runUntilIdle();
  drop.sendMessage(b, 't', 'p', 'one');
  drop.sendMessage(b, 't', 'p', 'two');
  assert.equal(drop.stats().agent_inbox_dropped, 1);
  drop.advance(1);
  await drop.runUntilIdle();
  assert.deepEqual(drop.get(b).result, ['two', null]);
});

test('recv after cancel or after the task ended resolves null; a recv left pending at the end resolves null', async (t) => {
  const mgr = await manual(t);
  let afterCancel = 'unset';
  const a = mgr.spawnAgent({ thread: 't' }, async (ctx) => {
    await ctx.sleep(1_000_000).catch(() => {});
    afterCancel = await ctx.inbox.recv();
  });
  let inbox;
  let pending;
  mgr.spawnAgent({ thread: 't' }, async (ctx) => {
    inbox = ctx.inbox;
    pending = ctx.inbox.recv();
    return 'ended without waiting';
  });
  await mgr.runUntilIdle();
  mgr.cancel(a);
  await mgr.runUntilIdle();
  assert.equal(afterCancel, null);
  assert.equal(mgr.get(a).status, 'cancelled');
  assert.equal(await pending, null);
  assert.equal(await inbox.recv(), null);
  assert.equal(inbox.tryRecv(), null);
});
