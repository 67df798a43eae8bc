// The owner inbox: task_id on every event, order, no loss, drain(thread), events(thread).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { manual, untilCancelled } from './_helpers.mjs';

test('events from interleaved tasks keep the global emission order, each with its task_id', async (t) => {
  const mgr = await manual(t);
  const body = (offset) => async (ctx) => {
    await ctx.sleep(offset);
    for (let step = 0; step < 3; step++) {
      ctx.emit('step', { step });
      await ctx.sleep(10);
    }
    return offset;
  };
  const a = mgr.spawn({ thread: 't', type: 'x' }, body(1));
  const b = mgr.spawn({ thread: 't', type: 'x' }, body(2));
  await mgr.runUntilIdle();
  for (let i = 0; i < 40; i++) {
    mgr.advance(1);
    await mgr.runUntilIdle();
  }
  const events = mgr.drain();
  assert.deepEqual(
    events.map((e) => `${e.task_id}:${e.kind}:${e.payload?.step ?? e.result}`),
    [`${a}:custom:0`, `${b}:custom:0`, `${a}:custom:1`, `${b}:custom:1`, `${a}:custom:2`, `${b}:custom:2`, `${a}:completed:1`, `${b}:completed:2`],
  );
});

test('10000 rapid emits: none lost, in order, then the terminal event', async (t) => {
  const mgr = await manual(t);
  const N = 10_000;
  const id = mgr.spawn({ thread: 't', type: 'x' }, async (ctx) => {
    let delivered = 0;
    for (let i = 0; i < N; i++) if (ctx.emit('tick', i)) delivered++;
    return delivered;
  });
  await mgr.runUntilIdle();
  const events = mgr.drain();
  assert.equal(events.length, N + 1);
  for (let i = 0; i < N; i++) {
    const e = events[i];
    if (e.payload !== i || e.task_id !== id || e.kind !== 'custom') assert.fail(`event ${i}: ${JSON.stringify(e)}`);
  }
  assert.deepEqual(events[N], { kind: 'completed', task_id: id, result: N });
  assert.equal(mgr.stats().owner_inbox_dropped, 0);
});

test('custom events emitted after cancel are still delivered, before the cancelled event', async (t) => {
  const mgr = await manual(t);
  const id = mgr.spawn({ thread: 't', type: 'x' }, async (ctx) => {
    await untilCancelled(ctx);
    ctx.emit('cleanup', { done: true });
  });
  await mgr.runUntilIdle();
  mgr.cancel(id);
  await mgr.runUntilIdle();
  assert.deepEqual(mgr.drain(), [
    { kind: 'custom', task_id: id, event_type: 'cleanup', payload: { done: true } },
    { kind: 'cancelled', task_id: id },
  ]);
});

test('drain(thread) takes only that thread\'s events and leaves the rest queued in order', async (t) => {
  const mgr = await manual(t);
  const a = mgr.spawn({ thread: 't1', type: 'x' }, async (ctx) => ctx.emit('a', 1));
  const b = mgr.spawn({ thread: 't2', type: 'x' }, async (ctx) => ctx.emit('b', 1));
  const c = mgr.spawn({ thread: 't1', type: 'x' }, async (ctx) => ctx.emit('c', 1));
  await mgr.runUntilIdle();
  const t1 = mgr.drain('t1');
  assert.ok(t1.length === 4 && t1.every((e) => e.task_id === a || e.task_id === c));
  assert.deepEqual(t1.map((e) => `${e.task_id}:${e.kind}`), [`${a}:custom`, `${c}:custom`, `${a}:completed`, `${c}:completed`]);
  assert.equal(mgr.stats().owner_inbox_depth, 2);
  assert.deepEqual(mgr.drain('t1'), []);
  assert.deepEqual(mgr.drain(), [
    { kind: 'custom', task_id: b, event_type: 'b', payload: 1 },
    { kind: 'completed', task_id: b, result: true },
  ]);
  assert.deepEqual(mgr.drain(), []);
});

test('events(thread) is an async iterator over that thread\'s events, in order, waiting for new ones', async (t) => {
  const mgr = await manual(t);
  const a = mgr.spawn({ thread: 't1', type: 'x' }, async (ctx) => {
    ctx.emit('first', 1);
    await ctx.sleep(10);
    ctx.emit('second', 2);
    return 'end';
  });
  const other = mgr.spawn({ thread: 't2', type: 'x' }, async (ctx) => ctx.emit('other', 0));
  const seen = [];
  const consumer = (async () => {
    for await (const e of mgr.events('t1')) {
      seen.push(e);
      if (e.kind !== 'custom') break;
    }
  })();
  await mgr.runUntilIdle();
  assert.deepEqual(seen, [{ kind: 'custom', task_id: a, event_type: 'first', payload: 1 }]);
  mgr.advance(10);
  await mgr.runUntilIdle();
  await consumer;
  assert.deepEqual(seen.map((e) => e.kind), ['custom', 'custom', 'completed']);
  assert.equal(seen[1].event_type, 'second');
  assert.equal(seen[2].result, 'end');
  assert.deepEqual(mgr.drain().map((e) => `${e.task_id}:${e.kind}`), [`${other}:custom`, `${other}:completed`], 't2 left queued');
});

test('events() without a thread yields every event and ends when the manager is disposed', async (t) => {
  const mgr = await manual(t);
  mgr.spawn({ thread: 't1', type: 'x' }, async () => 1);
  mgr.spawn({ thread: 't2', type: 'x' }, async () => 2);
  await mgr.runUntilIdle();
  const seen = [];
  let finished = false;
  const consumer = (async () => {
    for await (const e of mgr.events()) seen.push(e.result);
    finished = true;
  })();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(seen, [1, 2]);
  assert.equal(finished, false);
  mgr.dispose();
  await consumer;
  assert.equal(finished, true);
});
