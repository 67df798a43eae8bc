// The system clock: the wrapper pumps by itself (no runUntilIdle), including timers.
// The one place with a short real timer (ctx.sleep(20)).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTaskManager } from 'bgtasks';

test('a body with ctx.sleep(20) completes without runUntilIdle', { timeout: 10_000 }, async (t) => {
  const mgr = await createTaskManager({ clock: 'system' });
  t.after(() => mgr.dispose());
  const started = mgr.now();
  assert.ok(Math.abs(started - Date.now()) < 60_000, 'the system clock is wall time in ms');
  const id = mgr.spawn({ thread: 't', type: 'timer' }, async (ctx) => {
    ctx.emit('before', null);
    await ctx.sleep(20);
    ctx.emit('after', null);
    return 'slept';
  });
  const summary = await mgr.wait(id);
  assert.equal(summary.status, 'completed');
  assert.equal(summary.result, 'slept');
  assert.ok(summary.completed_at_ms - summary.created_at_ms >= 20, `slept ${summary.completed_at_ms - summary.created_at_ms} ms`);
  assert.deepEqual(mgr.drain().map((e) => e.event_type ?? e.kind), ['before', 'after', 'completed']);
});

test('without timers the system clock runs bodies on microtasks; events() sees them', { timeout: 10_000 }, async (t) => {
  const mgr = await createTaskManager();
  t.after(() => mgr.dispose());
  const id = mgr.spawn({ thread: 't', type: 'x' }, async (ctx) => {
    const child = ctx.spawn({ thread: 't', type: 'child' }, async () => 'child');
    await mgr.wait(child);
    return 'parent';
  });
  const seen = [];
  for await (const e of mgr.events('t')) {
    seen.push(`${e.task_id}:${e.kind}`);
    if (e.task_id === id) break;
  }
  assert.deepEqual(seen, ['bg_1:completed', 'bg_0:completed']);
  assert.equal(mgr.stats().live_bodies, 0);
});
