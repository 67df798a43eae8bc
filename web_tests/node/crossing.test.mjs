// The JS ↔ wasm crossing: tasks cross as numeric handles (ids past 2^53 through a table),
// strings as interned ints up to a limit and as text past it, payloads stay on the JS side while
// the core orders, counts and evicts their events, text goes in through TextEncoder.encodeInto.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { manual } from './_helpers.mjs';

const meta = (id, extra = {}) => ({
  task_id: id, owner_thread_id: 't', task_type: 'x', description: '', status: 'completed',
  created_at_ms: 0, completed_at_ms: 0, parent_context: {}, result: null, ...extra,
});

test('ids past 2^53 (after a restore) work everywhere a task crosses: spawn, ctx, emit, lineage, cancel, drain, wait', async (t) => {
  const mgr = await manual(t);
  const last = 'bg_18446744073709551612';
  assert.equal(mgr.restore('t', { tasks: { [last]: meta(last) } }).added, 1);
  let child;
  const parent = mgr.spawn({ thread: 't', type: 'x' }, async (ctx) => {
    assert.equal(ctx.taskId, 'bg_18446744073709551613');
    ctx.emit('hello', { from: ctx.taskId });
    child = ctx.spawn({ thread: 't', type: 'y' }, async (c) => {
      c.emit('child', 1);
      await c.sleep(10);
      return 'slept';
    });
    await ctx.sleep(1000);
    return 'never';
  });
  assert.equal(parent, 'bg_18446744073709551613');
  await mgr.runUntilIdle();
  assert.equal(child, 'bg_18446744073709551614');
  assert.equal(mgr.get(child).parent_context.task_id, parent);
  mgr.advance(10);
  await mgr.runUntilIdle();
  assert.equal(mgr.cancel(parent), true);
  await mgr.runUntilIdle();
  assert.equal((await mgr.wait(parent)).status, 'cancelled');
  assert.deepEqual(mgr.drain(), [
    { event_type: 'hello', kind: 'custom', payload: { from: parent }, task_id: parent },
    { event_type: 'child', kind: 'custom', payload: 1, task_id: child },
    { kind: 'completed', result: 'slept', task_id: child },
    { kind: 'cancelled', task_id: parent },
  ]);
});

test('past the interning limit, threads and event types cross as text (drain(thread) too)', async (t) => {
  const mgr = await manual(t);
  const N = 4200; // > the binding's 4096 interned strings
  for (let i = 0; i < N; i++) mgr.spawn({ thread: `thread-${i}`, type: `type-${i}` }, async (ctx) => ctx.emit(`event-${i}`, i));
  await mgr.runUntilIdle();
  const mine = mgr.drain(`thread-${N - 1}`);
  assert.deepEqual(mine, [
    { event_type: `event-${N - 1}`, kind: 'custom', payload: N - 1, task_id: `bg_${N - 1}` },
    { kind: 'completed', result: true, task_id: `bg_${N - 1}` },
  ]);
  assert.equal(mgr.list(`thread-${N - 1}`)[0].task_type, `type-${N - 1}`);
  const rest = mgr.drain();
  assert.equal(rest.length, 2 * (N - 1));
  const custom = rest.filter((e) => e.kind === 'custom');
  assert.deepEqual(custom.map((e) => e.event_type), Array.from({ length: N - 1 }, (_, i) => `event-${i}`));
  assert.deepEqual(custom.map((e) => e.payload), Array.from({ length: N - 1 }, (_, i) => i));
});

// Payloads are held as copies, so what is held is measured by the heap: every payload carries an
// array of 131,072 numbers (0.5-1 MiB of heap once copied) that only the held copy keeps alive.
const MiB = 1 << 20;
const bigArray = (i) => new Array(131072).fill(i);
async function heapAfterGc() {
  setFlagsFromString('--expose-gc');
  await new Promise((resolve) => setImmediate(resolve));
  runInNewContext('gc')();
  return process.memoryUsage().heapUsed;
}

test('dropOldest: payloads of evicted events are released on the JS side', async (t) => {
  const mgr = await manual(t, { ownerInboxCapacity: 2, ownerInboxOverflow: 'dropOldest' });
  let ctx;
  mgr.spawn({ thread: 't', type: 'x' }, (c) => ((ctx = c), new Promise(() => {})));
  await mgr.runUntilIdle();
  const before = await heapAfterGc();
  for (let i = 0; i < 40; i++) assert.equal(ctx.emit('e', { i, big: bigArray(i) }), true);
  const held = (await heapAfterGc()) - before;
  assert.ok(held > 0.8 * MiB && held < 6 * MiB, `the 2 queued payloads are held, not 40: ${(held / MiB).toFixed(1)} MiB`);
  assert.deepEqual(mgr.drain().map((e) => e.payload.i), [38, 39]);
  assert.equal(mgr.stats().owner_inbox_dropped, 38);
});

test('drained payloads are released: nothing is held once the inbox is empty', async (t) => {
  const mgr = await manual(t);
  const before = await heapAfterGc();
  mgr.spawn({ thread: 'a', type: 'x' }, async (ctx) => {
    for (let i = 0; i < 20; i++) ctx.emit('e', { i, big: bigArray(i) });
  });
  mgr.spawn({ thread: 'b', type: 'x' }, async (ctx) => ctx.emit('e', { b: true }));
  await mgr.runUntilIdle();
  const queued = (await heapAfterGc()) - before;
  assert.ok(queued > 8 * MiB, `20 queued payloads are held: ${(queued / MiB).toFixed(1)} MiB`);
  assert.equal(mgr.drain('a').length, 21);
  assert.deepEqual(mgr.drain('b')[0].payload, { b: true });
  const left = (await heapAfterGc()) - before;
  assert.ok(left < 3 * MiB, `nothing is held once drained: ${(left / MiB).toFixed(1)} MiB`);
});

test('large non-ASCII text goes in whole: results, error messages, restore', async (t) => {
  const mgr = await manual(t);
  const big = 'é😀x'.repeat(300000);
  const ok = mgr.spawn({ thread: 't', type: 'x', name: big.slice(0, 48), description: big.slice(0, 996) }, async () => big);
  const bad = mgr.spawn({ thread: 't', type: 'x' }, async () => {
    throw new Error(big);
  });
  await mgr.runUntilIdle();
  assert.equal(mgr.get(ok).result, big);
  assert.equal(mgr.get(ok).description, big.slice(0, 996));
  assert.equal(mgr.get(bad).error, big);
  const fresh = await manual(t);
  assert.equal(fresh.restore('t', mgr.snapshot('t')).added, 2);
  assert.deepEqual(fresh.snapshot('t'), mgr.snapshot('t'));
});

test('a completed result is kept on the JS side: the drained event carries what the core stored, keys sorted, a copy', async (t) => {
  const mgr = await manual(t);
  let deep = 'leaf';
  for (let i = 0; i < 100; i++) deep = { [`k${i % 3}`]: deep, a: i };
  const mutable = { z: 1, a: { y: [1, 2], b: 'x' } };
  const values = [
    mutable,
    'é😀 text',
    42,
    -0,
    1e21,
    2 ** 64,
    -(2 ** 63),
    0.1 + 0.2,
    [undefined, () => 1, Symbol('s')],
    { u: undefined, n: NaN, inf: -Infinity, f: () => 1 },
    new Date(0),
    { toJSON: () => ({ z: 1, y: { d: 2, c: 3 } }) },
    undefined,
    null,
    true,
    deep,
    Object.assign(Object.create({ inherited: 1 }), { own: 2 }),
    { z: 1, a: { toJSON: 0, b: [{ y: 1, x: 2 }] } }, // a toJSON key holding data is data
  ];
  const ids = values.map((v) => mgr.spawn({ thread: 't', type: 'x' }, async () => v));
  await mgr.runUntilIdle();
  mutable.a.b = 'changed after the task ended';
  const events = mgr.drain();
  assert.equal(events.length, values.length);
  events.forEach((e, i) => {
    assert.equal(e.kind, 'completed', `value ${i}`);
    assert.equal(e.task_id, ids[i]);
    // Byte for byte (key order too) what the core parsed and stored for the task.
    assert.equal(JSON.stringify(e.result), JSON.stringify(mgr.get(ids[i]).result), `value ${i}`);
  });
  assert.deepEqual(events[0].result, { a: { b: 'x', y: [1, 2] }, z: 1 });
  assert.deepEqual(Object.keys(events[0].result), ['a', 'z']);
  assert.ok(Object.is(events[3].result, 0), '-0 is 0, as in JSON');
  assert.deepEqual(events[8].result, [null, null, null]);
  assert.deepEqual(events[9].result, { inf: null, n: null });
  assert.equal(events[10].result, '1970-01-01T00:00:00.000Z');
  assert.deepEqual(events[11].result, { y: { c: 3, d: 2 }, z: 1 });
  assert.equal(events[12].result, null);
  assert.deepEqual(events[16].result, { own: 2 });
  assert.equal(JSON.stringify(events[17].result), '{"a":{"b":[{"x":2,"y":1}],"toJSON":0},"z":1}');
});

test('a result the copy refuses fails the task with the TypeError\'s message, as a payload is refused', async (t) => {
  const mgr = await manual(t);
  let deep = [];
  for (let i = 0; i < 130; i++) deep = [deep];
  const ids = [
    mgr.spawn({ thread: 't', type: 'x' }, async () => deep),
    mgr.spawn({ thread: 't', type: 'x' }, async () => ({ ok: '\ud800' })),
    mgr.spawn({ thread: 't', type: 'x' }, async () => ({ n: 10n })),
  ];
  await mgr.runUntilIdle();
  assert.deepEqual(ids.map((id) => mgr.get(id).status), ['failed', 'failed', 'failed']);
  assert.equal(mgr.get(ids[0]).error, 'result: nesting deeper than 128 levels');
  assert.equal(mgr.get(ids[1]).error, 'result contains a lone UTF-16 surrogate');
  assert.match(mgr.get(ids[2]).error, /^result is not JSON-serializable: .*BigInt/);
  assert.deepEqual(mgr.drain().map((e) => e.kind), ['failed', 'failed', 'failed']);
});

test('results no queued event holds are released: refused (reject), evicted (dropOldest), cancelled', async (t) => {
  const big = (i) => ({ i, big: bigArray(i) });
  const cases = [
    ['reject', { ownerInboxCapacity: 2, ownerInboxOverflow: 'reject' }, [0, 1]],
    ['dropOldest', { ownerInboxCapacity: 2, ownerInboxOverflow: 'dropOldest' }, [38, 39]],
  ];
  for (const [policy, options, kept] of cases) {
    const mgr = await manual(t, { ...options, retainFinished: 1 });
    const before = await heapAfterGc();
    for (let i = 0; i < 40; i++) mgr.spawn({ thread: 't', type: 'x' }, async () => big(i));
    await mgr.runUntilIdle();
    const held = (await heapAfterGc()) - before;
    assert.ok(held > 0.8 * MiB && held < 6 * MiB, `${policy}: the 2 queued results are held, not 40: ${(held / MiB).toFixed(1)} MiB`);
    assert.deepEqual(mgr.drain().map((e) => e.result.i), kept, policy);
    assert.equal(mgr.stats().owner_inbox_dropped, 38, policy);
    assert.equal(mgr.stats().live_bodies, 0, `${policy}: every body settled, whatever became of its event`);
    assert.equal(mgr.list('t').at(-1).status, 'completed', policy);
  }
  // Cancelled before their bodies resolve: the late results are discarded (docs/behaviour.md), and
  // not held while another event stays queued.
  const mgr = await manual(t, { retainFinished: 1 });
  mgr.spawn({ thread: 'keep', type: 'x' }, async (ctx) => ctx.emit('stays', 1));
  const release = [];
  const ids = [];
  for (let i = 0; i < 20; i++) ids.push(mgr.spawn({ thread: 't', type: 'x' }, () => new Promise((resolve) => release.push(() => resolve(big(i))))));
  await mgr.runUntilIdle();
  for (const id of ids) assert.equal(mgr.cancel(id), true);
  const before = await heapAfterGc();
  for (const resolve of release) resolve();
  release.length = 0; // each resolve function holds its promise, and so the value
  await mgr.runUntilIdle();
  const held = (await heapAfterGc()) - before;
  assert.ok(held < 3 * MiB, `no late result is held: ${(held / MiB).toFixed(1)} MiB`);
  assert.deepEqual(mgr.drain('t').map((e) => e.kind), new Array(20).fill('cancelled'));
  assert.deepEqual(mgr.drain('keep').map((e) => e.kind), ['custom', 'completed']);
});
