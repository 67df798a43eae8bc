// Wrong JS types are TypeErrors naming the argument and change nothing; unknown ids get awaken's answers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTaskManager, BgTasksError } from 'bgtasks';
import { manual, untilCancelled, state } from './_helpers.mjs';

async function seeded(t) {
  const mgr = await manual(t);
  const agent = mgr.spawnAgent({ thread: 't', name: 'agent' }, untilCancelled);
  const plain = mgr.spawn({ thread: 't', type: 'x' }, async (ctx) => {
    ctx.emit('hello', 1);
    return untilCancelled(ctx);
  });
  await mgr.runUntilIdle();
  return { mgr, agent, plain };
}

const fn = async () => {};

test('a wrong type is a TypeError naming the argument, and the manager state is unchanged', async (t) => {
  const { mgr, agent, plain } = await seeded(t);
  const LONE = 'a\uD800b';
  const cases = [
    ['number thread', () => mgr.spawn({ thread: 1, type: 'x' }, fn), /options\.thread/],
    ['missing thread', () => mgr.spawn({ type: 'x' }, fn), /options\.thread/],
    ['number type', () => mgr.spawn({ thread: 't', type: 2 }, fn), /options\.type/],
    ['number name', () => mgr.spawn({ thread: 't', type: 'x', name: 3 }, fn), /options\.name/],
    ['lone surrogate description', () => mgr.spawn({ thread: 't', type: 'x', description: LONE }, fn), /options\.description.*surrogate/],
    ['lone surrogate thread', () => mgr.spawn({ thread: '\uDC00', type: 'x' }, fn), /options\.thread.*surrogate/],
    ['non-function body', () => mgr.spawn({ thread: 't', type: 'x' }, 'body'), /body must be a function/],
    ['missing body', () => mgr.spawnAgent({ thread: 't' }), /body must be a function/],
    ['non-object options', () => mgr.spawn('t', fn), /spawn options must be an object/],
    ['null options', () => mgr.spawnAgent(null, fn), /spawnAgent options must be an object/],
    ['unknown option', () => mgr.spawn({ thread: 't', type: 'x', priority: 1 }, fn), /unknown option 'priority'/],
    ['type on an agent', () => mgr.spawnAgent({ thread: 't', type: 'x' }, fn), /unknown option 'type'/],
    ['parent not an object', () => mgr.spawn({ thread: 't', type: 'x', parent: 'bg_0' }, fn), /options\.parent/],
    ['unknown parent field', () => mgr.spawn({ thread: 't', type: 'x', parent: { owner: 'x' } }, fn), /options\.parent.*owner/],
    ['number parent field', () => mgr.spawn({ thread: 't', type: 'x', parent: { task_id: 0 } }, fn), /options\.parent\.task_id/],
    ['number id: get', () => mgr.get(0), /\bid\b/],
    ['number id: cancel', () => mgr.cancel(0), /\bid\b/],
    ['number id: cancelTree', () => mgr.cancelTree(0), /\bid\b/],
    ['number id: forget', () => mgr.forget(0), /\bid\b/],
    ['number id: wait', () => mgr.wait(0), /\bid\b/],
    ['lone surrogate id', () => mgr.cancel('\uD800'), /\bid\b.*surrogate/],
    ['number thread: list', () => mgr.list(1), /\bthread\b/],
    ['number thread: hasRunning', () => mgr.hasRunning(1), /\bthread\b/],
    ['number thread: cancelAll', () => mgr.cancelAll(1), /\bthread\b/],
    ['number thread: drain', () => mgr.drain(1), /\bthread\b/],
    ['number thread: events', () => mgr.events(1), /\bthread\b/],
    ['number thread: snapshot', () => mgr.snapshot(1), /\bthread\b/],
    ['number thread: taskTree', () => mgr.taskTree(1), /\bthread\b/],
    ['number thread: restore', () => mgr.restore(1, { tasks: {} }), /\bthread\b/],
    ['non-object snapshot', () => mgr.restore('t', 'tasks'), /snapshot/],
    ['array snapshot', () => mgr.restore('t', []), /snapshot/],
    ['number taskId: sendMessage', () => mgr.sendMessage(1, 't', 'p', 'c'), /taskId/],
    ['number thread: sendMessage', () => mgr.sendMessage(agent, 1, 'p', 'c'), /\bthread\b/],
    ['number from: sendMessage', () => mgr.sendMessage(agent, 't', 1, 'c'), /\bfrom\b/],
    ['lone surrogate content', () => mgr.sendMessage(agent, 't', 'p', LONE), /content.*surrogate/],
    ['string ms: advance', () => mgr.advance('5'), /\bms\b/],
    ['negative ms: advance', () => mgr.advance(-1), /\bms\b/],
  ];
  for (const [label, call, pattern] of cases) {
    const before = state(mgr);
    assert.throws(call, (e) => e instanceof TypeError && pattern.test(e.message), label);
    assert.equal(state(mgr), before, `${label}: state changed`);
  }
  assert.equal(mgr.now(), 0);
  assert.deepEqual(mgr.drain(), [{ kind: 'custom', task_id: plain, event_type: 'hello', payload: 1 }], 'the queue is intact');
  assert.equal(mgr.spawn({ thread: 't', type: 'x' }, fn), 'bg_2', 'no id was consumed');
});

test('wrong types inside a body: ctx.emit and ctx.sleep', async (t) => {
  const mgr = await manual(t);
  const errors = {};
  mgr.spawn({ thread: 't', type: 'x' }, async (ctx) => {
    try { ctx.emit(1, {}); } catch (e) { errors.eventType = e; }
    try { ctx.emit('e', { loop: globalThis }); } catch (e) { errors.payload = e; }
    try { ctx.emit('e', 1n); } catch (e) { errors.bigint = e; }
    try { await ctx.sleep('10'); } catch (e) { errors.sleep = e; }
  });
  await mgr.runUntilIdle();
  assert.ok(errors.eventType instanceof TypeError && /eventType/.test(errors.eventType.message));
  assert.ok(errors.payload instanceof TypeError && /payload/.test(errors.payload.message));
  assert.ok(errors.bigint instanceof TypeError && /payload/.test(errors.bigint.message));
  assert.ok(errors.sleep instanceof TypeError && /\bms\b/.test(errors.sleep.message));
  assert.deepEqual(mgr.drain().map((e) => e.kind), ['completed'], 'no custom event leaked');
});

test('createTaskManager: options that are not an object, unknown keys and bad values are TypeErrors', async () => {
  const cases = [
    [5, /options must be an object/],
    [null, /options must be an object/],
    ['manual', /options must be an object/],
    [[], /options must be an object/],
    [{ clock: 'manual', speed: 2 }, /unknown option 'speed'/],
    [{ clock: 'fake' }, /options\.clock/],
    [{ clock: 'system', now: 5 }, /options\.now/],
    [{ clock: 'manual', now: -1 }, /options\.now/],
    [{ retainFinished: -1 }, /options\.retainFinished/],
    [{ retainFinished: 1.5 }, /options\.retainFinished/],
    [{ agentInboxCapacity: '4' }, /options\.agentInboxCapacity/],
    [{ agentInboxOverflow: 'dropNewest' }, /options\.agentInboxOverflow/],
    [{ ownerInboxCapacity: -2 }, /options\.ownerInboxCapacity/],
    [{ ownerInboxOverflow: true }, /options\.ownerInboxOverflow/],
  ];
  for (const [options, pattern] of cases)
    await assert.rejects(createTaskManager(options), (e) => e instanceof TypeError && pattern.test(e.message), JSON.stringify(options));
});

test('unknown ids get awaken\'s answers: get null, cancel false, cancelTree 0, sendMessage TaskNotFound', async (t) => {
  const { mgr } = await seeded(t);
  const before = state(mgr);
  for (const id of ['bg_404', '', 'not-an-id']) {
    assert.equal(mgr.get(id), null);
    assert.equal(mgr.cancel(id), false);
    assert.equal(mgr.cancelTree(id), 0);
    assert.equal(mgr.forget(id), false);
    assert.equal(await mgr.wait(id), null);
    assert.throws(() => mgr.sendMessage(id, 't', 'p', 'c'), (e) => e instanceof BgTasksError && e.code === 'TaskNotFound');
  }
  assert.equal(state(mgr), before);
});

test('advance on a system-clock manager is a BgTasksError InvalidArgument', async (t) => {
  const mgr = await createTaskManager({ clock: 'system' });
  t.after(() => mgr.dispose());
  assert.throws(() => mgr.advance(10), (e) => e instanceof BgTasksError && e.code === 'InvalidArgument');
});

test('counts beyond the binding\'s int32 are refused or honoured, never wrapped', async (t) => {
  for (const [key, value] of [['retainFinished', 2 ** 32], ['ownerInboxCapacity', 2 ** 32 + 1]]) {
    let mgr;
    try {
      mgr = await createTaskManager({ clock: 'manual', [key]: value });
    } catch (e) {
      assert.ok(e instanceof TypeError || e instanceof RangeError, key);
      assert.match(e.message, new RegExp(key));
      continue;
    }
    t.after(() => mgr.dispose());
    for (let i = 0; i < 3; i++) mgr.spawn({ thread: 't', type: 'x' }, async (ctx) => ctx.emit('e', i));
    await mgr.runUntilIdle();
    assert.equal(mgr.list('t').length, 3, `${key}: finished tasks kept`);
    assert.equal(mgr.drain().length, 6, `${key}: no event refused`);
  }
});

test('an argument error names the argument and what it got, once', async (t) => {
  const mgr = await manual(t);
  const cases = [
    [() => mgr.spawn(), 'spawn options must be an object, got undefined'],
    [() => mgr.spawn({ thread: 't' }, fn), 'options.type must be a string, got undefined'],
    [() => mgr.spawn({ thread: 't', type: 'x' }), 'body must be a function, got undefined'],
    [() => mgr.cancel(), 'id must be a string, got undefined'],
    [() => mgr.advance(), 'ms must be a finite number of milliseconds >= 0, got undefined'],
    [() => mgr.cancel(7), 'id must be a string, got number 7'],
    [() => mgr.spawn({ thread: 't', type: true }, fn), 'options.type must be a string, got boolean true'],
    [() => mgr.spawn({ thread: 't', type: [] }, fn), 'options.type must be a string, got an array'],
    [() => mgr.list(null), 'thread must be a string, got null'],
  ];
  for (const [call, message] of cases) assert.throws(call, (e) => e instanceof TypeError && e.message === message, message);
});
