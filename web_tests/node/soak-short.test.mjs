// The short mode of soak/soak.mjs (retention keeps memory flat) as a node:test:
// 2e4 spawn → settle → drain cycles with retainFinished: 100 (wasm memory, live objects and the JS
// heap flat after warm-up), and 1e4 tasks × 100 sequence-numbered emits (none lost or reordered).
// node --test runs every test file in its own process, so this file's manager is the first to load
// the wasm module there (runSoak picks up its memory as the module is instantiated).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runSoak } from '../soak/soak.mjs';

test('soak and load (short): memory flat under retention, no event lost or reordered', { timeout: 600_000 }, async (t) => {
  const figures = await runSoak({ mode: 'short' });
  t.diagnostic(JSON.stringify(figures));
  const { soak, load } = figures;
  assert.deepEqual(soak.errors, [], 'soak errors');
  assert.equal(soak.events, soak.events_expected, 'every soak event drained');
  assert.ok(soak.growth_pct <= 5, `wasm memory grew ${soak.growth_pct}% after warm-up`);
  assert.deepEqual(soak.live_end, soak.live_warmup, 'live objects after warm-up and at the end');
  assert.equal(soak.live_end.live_bodies, 0);
  assert.ok(soak.live_end.retained <= 2 * soak.retain_finished);
  assert.equal(load.events, load.events_expected, 'every load event drained');
  assert.equal(load.lost, 0, 'lost events');
  assert.equal(load.reordered, 0, 'reordered events');
  assert.equal(load.terminal_missing + load.terminal_duplicate + load.terminal_early, 0, 'one terminal event per task, last');
  assert.equal(load.bad_events, 0, 'malformed events');
  assert.ok(figures.ok);
});
