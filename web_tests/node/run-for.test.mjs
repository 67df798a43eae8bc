// runFor(ms) lets manual time pass like real time: a body sleeping in a loop advances one step per
// deadline, where a single advance(ms) would move it only once. nextDeadline() tells the next one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTaskManager, BgTasksError } from 'bgtasks';
import { manual } from './_helpers.mjs';

test('runFor stops at every deadline on the way; advance jumps once', async (t) => {
  const mgr = await createTaskManager({ clock: 'manual', now: 0 });
  t.after(() => mgr.dispose());
  const ticks = [];
  const body = (label) => async (ctx) => {
    for (let i = 0; i < 5; i++) {
      await ctx.sleep(100);
      ticks.push(`${label}@${mgr.now()}`);
    }
    return label;
  };
  const a = mgr.spawn({ thread: 't', type: 'loop' }, body('a'));
  await mgr.runUntilIdle();
  assert.equal(mgr.nextDeadline(), 100);

  mgr.advance(1000); // one jump: only the first sleep is due
  await mgr.runUntilIdle();
  assert.deepEqual(ticks, ['a@1000']);

  const b = mgr.spawn({ thread: 't', type: 'loop' }, body('b'));
  await mgr.runFor(450);
  assert.deepEqual(ticks, ['a@1000', 'a@1100', 'b@1100', 'a@1200', 'b@1200', 'a@1300', 'b@1300', 'a@1400', 'b@1400']);
  assert.equal(mgr.now(), 1450);
  assert.equal(mgr.get(a).status, 'completed');
  assert.equal(mgr.get(b).status, 'running');
  assert.equal(mgr.nextDeadline(), 1500);
  await mgr.runFor(100);
  assert.equal(mgr.get(b).status, 'completed');
  assert.equal(mgr.nextDeadline(), null);
});

test('runFor and advance need the manual clock; bad ms is a TypeError', async (t) => {
  const mgr = await createTaskManager();
  t.after(() => mgr.dispose());
  await assert.rejects(mgr.runFor(10), (e) => e instanceof BgTasksError && e.code === 'InvalidArgument');
  const manual = await createTaskManager({ clock: 'manual' });
  t.after(() => manual.dispose());
  await assert.rejects(manual.runFor(-1), TypeError);
  await assert.rejects(manual.runFor('10'), TypeError);
  assert.equal(manual.now(), 0);
});

test('overlapping runFor calls queue: the clock moves by their sum, timers fire in order', async (t) => {
  const mgr = await manual(t);
  const fired = [];
  for (const ms of [50, 120, 260])
    mgr.spawn({ thread: 't', type: 'x' }, async (ctx) => {
      await ctx.sleep(ms);
      fired.push([ms, mgr.now()]);
    });
  const first = mgr.runFor(100); // not awaited: the forgotten await
  const second = mgr.runFor(100);
  assert.equal(mgr.now(), 0, 'nothing runs synchronously');
  await second;
  assert.equal(mgr.now(), 200, 'both ran, one after the other');
  await first;
  assert.deepEqual(fired, [[50, 50], [120, 120]]);
  await mgr.runFor(60);
  assert.deepEqual(fired.at(-1), [260, 260]);
  await assert.rejects(mgr.runFor(-1), TypeError);
  await mgr.runFor(0); // a refused call does not block the queue
});
