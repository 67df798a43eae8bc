// Scheduling beyond awaken, on the manual clock: concurrency limits, deadlines, a grace for stuck
// bodies, shutdown, why a signal aborted, fan-out to listeners, wait() with a timeout or signal,
// and the Disposed code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTaskManager, FileStore } from 'bgtasks';
import { bgError, blocker, manual, untilCancelled } from './_helpers.mjs';

const ignoresSignal = () => new Promise(() => {}); // never settles, never looks at its signal

/** A body that records how many bodies run at once, and ends when released. */
function gauge() {
  const g = { running: 0, max: 0, started: [], gates: new Map() };
  g.body = (name) => async (ctx) => {
    g.running++;
    g.max = Math.max(g.max, g.running);
    g.started.push(name);
    try {
      await new Promise((resolve, reject) => {
        g.gates.set(name, resolve);
        ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason));
      });
    } finally {
      g.running--;
    }
    return name;
  };
  g.release = (name) => g.gates.get(name)();
  return g;
}

test('a per-thread limit: never more than N bodies, FIFO, queued tasks marked and counted', async (t) => {
  const mgr = await manual(t, { concurrency: { perThread: 2 } });
  const g = gauge();
  const ids = ['a', 'b', 'c', 'd', 'e'].map((name) => mgr.spawn({ thread: 't', type: 'x', name }, g.body(name)));
  const other = mgr.spawn({ thread: 'u', type: 'x' }, g.body('u'));
  await mgr.runUntilIdle();
  assert.deepEqual(g.started, ['a', 'b', 'u'], 'two of t, and u has its own slots');
  assert.equal(mgr.get(ids[2]).queued, true);
  assert.equal(mgr.get(ids[2]).status, 'running', "queued tasks are running in awaken's terms");
  assert.equal(mgr.get(ids[0]).queued, undefined);
  assert.equal(mgr.stats().queued, 3);
  assert.deepEqual(mgr.list('t').map((s) => Boolean(s.queued)), [false, false, true, true, true]);
  assert.equal(mgr.snapshot('t').tasks[ids[2]].queued, undefined, 'snapshots stay awaken-readable');
  g.release('b');
  await mgr.runUntilIdle();
  assert.deepEqual(g.started, ['a', 'b', 'u', 'c']);
  g.release('a');
  g.release('c');
  await mgr.runUntilIdle();
  assert.deepEqual(g.started, ['a', 'b', 'u', 'c', 'd', 'e']);
  assert.equal(g.max, 3, 'two of t plus one of u, never more');
  assert.equal(mgr.stats().queued, 0);
  void other;
});

test('limits per type and per thread together; cancelling a queued task ends it without its body', async (t) => {
  const mgr = await manual(t, { concurrency: { perThread: 3, perType: { shell: 1 } } });
  const g = gauge();
  mgr.spawn({ thread: 't', type: 'shell' }, g.body('s1'));
  const s2 = mgr.spawn({ thread: 't', type: 'shell' }, g.body('s2'));
  const f1 = mgr.spawn({ thread: 't', type: 'fetch' }, g.body('f1'));
  const f2 = mgr.spawn({ thread: 't', type: 'fetch' }, g.body('f2'));
  const f3 = mgr.spawn({ thread: 't', type: 'fetch' }, g.body('f3'));
  await mgr.runUntilIdle();
  assert.deepEqual(g.started, ['s1', 'f1', 'f2'], 'a blocked shell does not hold back a fetch');
  const ended = mgr.wait(s2);
  assert.equal(mgr.cancel(s2), true);
  const summary = await ended;
  assert.equal(summary.status, 'cancelled');
  await mgr.runUntilIdle();
  assert.ok(!g.started.includes('s2'), 'its body never ran');
  assert.deepEqual(
    mgr.drain('t').filter((e) => e.task_id === s2),
    [{ kind: 'cancelled', task_id: s2 }],
  );
  g.release('s1');
  await mgr.runUntilIdle();
  assert.deepEqual(g.started, ['s1', 'f1', 'f2', 'f3'], 'the freed thread slot goes to the next in line');
  void f1, f2, f3;
});

test('a queued task restores as any running one: orphaned', async (t) => {
  const mgr = await manual(t, { concurrency: { perThread: 1 } });
  mgr.spawn({ thread: 't', type: 'x' }, untilCancelled);
  const queued = mgr.spawn({ thread: 't', type: 'x' }, untilCancelled);
  const other = await manual(t);
  other.restore('t', mgr.snapshot('t'));
  assert.equal(other.get(queued).error, 'task orphaned: runtime restarted while running');
});

test('a deadline on the manual clock: not one ms early, failed with its text, the late result discarded', async (t) => {
  const mgr = await manual(t);
  const gate = blocker();
  let reason;
  const id = mgr.spawn({ thread: 't', type: 'tool', timeoutMs: 100 }, async (ctx) => {
    ctx.signal.addEventListener('abort', () => (reason = ctx.signal.reason));
    const value = await gate.body();
    ctx.emit('late', { value });
    return value;
  });
  const fast = mgr.spawn({ thread: 't', type: 'tool', timeoutMs: 100 }, async () => 'in time');
  await mgr.runFor(99);
  assert.equal(mgr.get(id).status, 'running');
  await mgr.runFor(1);
  const s = mgr.get(id);
  assert.deepEqual([s.status, s.error], ['failed', 'task timed out after 100 ms']);
  assert.equal(reason.name, 'TimeoutError');
  assert.equal(reason.kind, 'timeout');
  assert.equal(mgr.get(fast).status, 'completed', 'a task that ended first keeps its end');
  gate.release('too late');
  await mgr.runUntilIdle();
  assert.equal(mgr.get(id).status, 'failed', 'the late result is discarded');
  const mine = mgr.drain('t').filter((e) => e.task_id === id);
  assert.deepEqual(mine, [{ error: 'task timed out after 100 ms', kind: 'failed', task_id: id }], 'no event after the terminal one');
});

test('cancelGraceMs: a body that ignores its cancel is ended cancelled after the grace', async (t) => {
  const mgr = await manual(t, { cancelGraceMs: 50 });
  const stuck = mgr.spawn({ thread: 't', type: 'x' }, ignoresSignal);
  await mgr.runUntilIdle();
  assert.equal(mgr.cancel(stuck), true);
  await mgr.runFor(49);
  assert.equal(mgr.get(stuck).status, 'running');
  assert.equal(mgr.stats().cancel_requested_running, 1);
  await mgr.runFor(1);
  assert.equal(mgr.get(stuck).status, 'cancelled');
  assert.equal(await mgr.wait(stuck).then((s) => s.status), 'cancelled');

  const plain = await manual(t);
  const forever = plain.spawn({ thread: 't', type: 'x' }, ignoresSignal);
  await plain.runUntilIdle();
  plain.cancel(forever);
  await plain.runFor(1e6);
  assert.equal(plain.get(forever).status, 'running', "no grace by default: awaken's behaviour");
});

test('signal reasons tell cancel, tree cancel, cancel-all, timeout and shutdown apart', async (t) => {
  const mgr = await manual(t);
  const reasons = {};
  const record = (name) => async (ctx) => {
    await untilCancelled(ctx);
    reasons[name] = ctx.signal.reason;
  };
  const one = mgr.spawn({ thread: 'a', type: 'x' }, record('cancel'));
  const root = mgr.spawn({ thread: 'b', type: 'x' }, record('cancelTree'));
  mgr.spawn({ thread: 'c', type: 'x' }, record('cancelAll'));
  mgr.spawn({ thread: 'd', type: 'x', timeoutMs: 5 }, record('timeout'));
  mgr.spawn({ thread: 'e', type: 'x' }, record('shutdown'));
  await mgr.runUntilIdle();
  mgr.cancel(one);
  mgr.cancelTree(root);
  mgr.cancelAll('c');
  await mgr.runFor(5);
  const done = mgr.shutdown();
  await mgr.runUntilIdle().catch(() => {});
  await done;
  assert.deepEqual(
    Object.fromEntries(Object.entries(reasons).map(([k, r]) => [k, [r.name, r.kind]])),
    {
      cancel: ['AbortError', 'cancel'],
      cancelTree: ['AbortError', 'cancelTree'],
      cancelAll: ['AbortError', 'cancelAll'],
      timeout: ['TimeoutError', 'timeout'],
      shutdown: ['AbortError', 'shutdown'],
    },
  );
});

test('shutdown: refuses spawns, ends every live task "interrupted: host shutdown", saves, disposes', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'bgtasks-shutdown-'));
  t.after(() => rm(dir, { recursive: true, force: true, maxRetries: 10 }));
  const mgr = await createTaskManager({ clock: 'manual', store: new FileStore(dir), concurrency: { perThread: 3 } });
  const honours = mgr.spawn({ thread: 't', type: 'x' }, untilCancelled);
  const ignores = mgr.spawn({ thread: 't', type: 'x' }, ignoresSignal);
  const cancelled = mgr.spawn({ thread: 't', type: 'x' }, untilCancelled);
  const queued = mgr.spawn({ thread: 't', type: 'x' }, untilCancelled);
  const finished = mgr.spawn({ thread: 'u', type: 'x' }, async () => 'done');
  await mgr.runUntilIdle();
  assert.equal(mgr.get(queued).queued, true);
  mgr.cancel(cancelled);
  await mgr.runUntilIdle();

  const done = mgr.shutdown({ graceMs: 100 });
  assert.throws(() => mgr.spawn({ thread: 't', type: 'x' }, untilCancelled), bgError('ShuttingDown'));
  assert.equal(mgr.shutdown({ graceMs: 500 }), done, 'one shutdown; a longer grace does not extend it');
  await mgr.runFor(99);
  assert.equal(mgr.get(ignores).status, 'running', 'the grace is not over');
  assert.equal(mgr.get(honours).status, 'failed', 'a body that honoured the signal ends at once');
  await mgr.runFor(1);
  await done;
  assert.equal(mgr.disposed, true);
  assert.throws(() => mgr.list('t'), bgError('Disposed', 'TaskManager is disposed'));

  const next = await createTaskManager({ clock: 'manual', store: new FileStore(dir) });
  t.after(() => next.dispose());
  await next.resume('t');
  await next.resume('u');
  const read = (id) => [next.get(id).status, next.get(id).error];
  assert.deepEqual(read(honours), ['failed', 'interrupted: host shutdown']);
  assert.deepEqual(read(ignores), ['failed', 'interrupted: host shutdown']);
  assert.deepEqual(read(queued), ['failed', 'interrupted: host shutdown']);
  assert.deepEqual(read(cancelled), ['cancelled', undefined], 'a user cancel stays a cancel');
  assert.deepEqual(read(finished), ['completed', undefined]);
});

test('subscribe: two listeners and a drain each see every event, in order; a throwing one breaks nothing', async (t) => {
  const mgr = await manual(t, { ownerInboxCapacity: 1 });
  const seenA = [];
  const seenB = [];
  const offA = mgr.subscribe((e) => seenA.push(e), { thread: 't' });
  const offThrow = mgr.subscribe(() => {
    throw new Error('listener bug');
  });
  const offB = mgr.subscribe((e) => seenB.push([e.kind, e.task_id]));
  const errors = [];
  const saved = console.error;
  console.error = (...a) => errors.push(a);
  t.after(() => (console.error = saved));
  const id = mgr.spawn({ thread: 't', type: 'x' }, async (ctx) => {
    ctx.emit('step', { n: 1 });
    ctx.emit('step', { n: 2 });
    return 'ok';
  });
  const elsewhere = mgr.spawn({ thread: 'u', type: 'x' }, async () => 'u');
  await mgr.runUntilIdle();
  assert.deepEqual(seenA, [
    { event_type: 'step', kind: 'custom', payload: { n: 1 }, task_id: id },
    { event_type: 'step', kind: 'custom', payload: { n: 2 }, task_id: id },
    { kind: 'completed', result: 'ok', task_id: id },
  ]);
  assert.deepEqual(seenB, [['custom', id], ['custom', id], ['completed', id], ['completed', elsewhere]]);
  assert.ok(errors.length >= 4, 'the throwing listener was reported each time');
  assert.equal(mgr.drain().length, 1, 'the bounded owner inbox kept one event: listeners do not consume it');
  offA();
  offThrow();
  mgr.spawn({ thread: 't', type: 'x' }, async () => 'after');
  await mgr.runUntilIdle();
  assert.equal(seenA.length, 3, 'nothing after unsubscribe');
  assert.equal(seenB.length, 5);
  offB();
  offB();
});

test('wait(id, { timeoutMs, signal }) on the manager clock', async (t) => {
  const mgr = await manual(t);
  const id = mgr.spawn({ thread: 't', type: 'x' }, untilCancelled);
  const timed = mgr.wait(id, { timeoutMs: 10 });
  await mgr.runFor(9);
  let settled = false;
  timed.then(() => (settled = true), () => (settled = true));
  await mgr.runUntilIdle();
  assert.equal(settled, false);
  await mgr.runFor(1);
  await assert.rejects(timed, (e) => e.name === 'TimeoutError' && e.message === `wait(${id}) timed out after 10 ms`);
  const controller = new AbortController();
  const aborted = mgr.wait(id, { signal: controller.signal });
  controller.abort(new Error('page closed'));
  await assert.rejects(aborted, /page closed/);
  const ok = mgr.wait(id, { timeoutMs: 1000 });
  mgr.cancel(id);
  await mgr.runUntilIdle();
  assert.equal((await ok).status, 'cancelled');
  assert.throws(() => mgr.wait(id, { timeout: 5 }), /unknown option 'timeout'/);
});

test('option checks for limits, deadlines and grace name what was wrong', async () => {
  await assert.rejects(createTaskManager({ concurrency: { perThread: 0 } }), /options\.concurrency: .*at least 1/);
  await assert.rejects(createTaskManager({ concurrency: { perType: { shell: -1 } } }), /perType\.shell/);
  await assert.rejects(createTaskManager({ concurrency: { max: 1 } }), /unknown option 'max'/);
  await assert.rejects(createTaskManager({ cancelGraceMs: -5 }), /cancelGraceMs/);
  const mgr = await createTaskManager({ clock: 'manual' });
  assert.throws(() => mgr.spawn({ thread: 't', type: 'x', timeoutMs: 'soon' }, async () => {}), /options\.timeoutMs/);
  assert.throws(() => mgr.setConcurrency({ perType: { shell: 0 } }), bgError('InvalidArgument'));
  mgr.dispose();
  assert.throws(() => mgr.spawn({ thread: 't', type: 'x' }, async () => {}), bgError('Disposed'));
  await assert.rejects(mgr.runUntilIdle(), bgError('Disposed'));
});

test('a second shutdown() with a shorter grace ends the first one sooner (a second Ctrl-C)', async (t) => {
  const mgr = await manual(t);
  const stuck = mgr.spawn({ thread: 't', type: 'x' }, ignoresSignal);
  await mgr.runUntilIdle();
  const first = mgr.shutdown({ graceMs: 10_000, dispose: false });
  await mgr.runFor(10);
  assert.equal(mgr.get(stuck).status, 'running');
  assert.equal(mgr.shutdown({ graceMs: 0 }), first);
  await first;
  assert.deepEqual([mgr.get(stuck).status, mgr.get(stuck).error], ['failed', 'interrupted: host shutdown']);
  assert.equal(mgr.disposed, false, 'dispose: false leaves it open for reads and drains');
  assert.deepEqual(mgr.drain('t'), [{ error: 'interrupted: host shutdown', kind: 'failed', task_id: stuck }]);
  assert.throws(() => mgr.spawn({ thread: 't', type: 'x' }, ignoresSignal), bgError('ShuttingDown'));
});
