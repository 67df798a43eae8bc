// What a failed body threw stays reachable on the JS side (name, message, stack, cause, errors) as
// a non-enumerable `cause` of the failed event and summaries; the stored error stays awaken's text.
// An outside AbortSignal cancels its task, and its reason is the body's signal reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { manual, untilCancelled } from './_helpers.mjs';

class ToolError extends Error {
  name = 'ToolError';
}

test('the thrown error rides along as `cause` on the failed event, wait() and get()', async (t) => {
  const mgr = await manual(t);
  const root = new Error('socket closed');
  const thrown = new ToolError('fetch failed', { cause: root });
  const aggregate = new AggregateError([new Error('a'), new Error('b')], 'two tools failed');
  const one = mgr.spawn({ thread: 't', type: 'tool' }, async () => {
    throw thrown;
  });
  const two = mgr.spawn({ thread: 't', type: 'tool' }, async () => {
    throw aggregate;
  });
  const three = mgr.spawn({ thread: 't', type: 'tool' }, async () => {
    throw 'plain text';
  });
  const waited = mgr.wait(one);
  await mgr.runUntilIdle();
  const summary = await waited;
  assert.equal(summary.error, 'fetch failed', "the stored error stays awaken's string");
  assert.equal(summary.cause, thrown);
  assert.equal(summary.cause.name, 'ToolError');
  assert.equal(summary.cause.cause, root);
  assert.match(summary.cause.stack, /ToolError: fetch failed/);
  assert.ok(!Object.keys(summary).includes('cause'), 'not enumerable: JSON and deepEqual views are unchanged');
  assert.equal(JSON.stringify(summary).includes('cause'), false);
  assert.deepEqual(mgr.get(two).cause.errors.map((e) => e.message), ['a', 'b']);
  assert.equal(mgr.get(three).error, 'plain text');
  assert.equal(mgr.get(three).cause, undefined, 'a thrown string is its own text');
  const events = mgr.drain('t').filter((e) => e.kind === 'failed');
  assert.deepEqual(events.map((e) => e.cause), [thrown, aggregate, undefined]);
  assert.equal(mgr.snapshot('t').tasks[one].cause, undefined, 'snapshots carry only the text');
  assert.equal(mgr.forget(one), true);
  assert.equal(mgr.get(one), null);
});

test('retention drops the kept errors of the tasks it drops', async (t) => {
  const mgr = await manual(t, { retainFinished: 2 });
  const ids = [];
  for (let i = 0; i < 200; i++)
    ids.push(
      mgr.spawn({ thread: 't', type: 'x' }, async () => {
        throw new Error(`e${i}`);
      }),
    );
  await mgr.runUntilIdle();
  assert.equal(mgr.get(ids[199]).cause.message, 'e199');
  assert.equal(mgr.get(ids[0]), null);
});

test('spawn({ signal }): an outside abort cancels the task with that reason', async (t) => {
  const mgr = await manual(t);
  const outer = new AbortController();
  let seen;
  const id = mgr.spawn({ thread: 't', type: 'x', signal: outer.signal }, async (ctx) => {
    await untilCancelled(ctx);
    seen = ctx.signal.reason;
  });
  await mgr.runUntilIdle();
  const reason = new Error('user left the page');
  outer.abort(reason);
  await mgr.runUntilIdle();
  assert.equal(mgr.get(id).status, 'cancelled');
  assert.equal(seen, reason);

  const already = AbortSignal.abort('too late');
  let started = false;
  const late = mgr.spawn({ thread: 't', type: 'x', signal: already }, async (ctx) => {
    started = ctx.signal.aborted;
  });
  await mgr.runUntilIdle();
  assert.equal(mgr.get(late).status, 'cancelled', 'an aborted signal cancels at once');
  assert.equal(started, true, 'the body sees its signal aborted');

  // The link goes when the task ends: a later abort changes nothing.
  const after = new AbortController();
  const done = mgr.spawn({ thread: 't', type: 'x', signal: after.signal }, async () => 'ok');
  await mgr.runUntilIdle();
  after.abort();
  assert.equal(mgr.get(done).status, 'completed');
  assert.throws(() => mgr.spawn({ thread: 't', type: 'x', signal: {} }, async () => {}), /options\.signal must be an AbortSignal/);
});
