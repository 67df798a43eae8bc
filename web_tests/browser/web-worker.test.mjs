// examples/web-worker in headless Chromium: a bgtasks manager in a dedicated module Worker (no
// DOM, no import map), persisting to IndexedDB, driven by the page through messages. Served under
// the strict CSP (script-src 'self' 'wasm-unsafe-eval'), with the package at node_modules/bgtasks.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { startServer, JS_DIR, REPO } from './server.mjs';
import { CHROMIUM, CHROMIUM_ARGS } from './chromium.mjs';

const ORPHANED = 'task orphaned: runtime restarted while running';
const WAIT = { timeout: 30_000 };

let server;
let browser;
let page;
const problems = [];

before(async () => {
  await access(join(JS_DIR, 'build', 'bgtasks.wasm'));
  server = await startServer({ '/node_modules/bgtasks/': JS_DIR, '/': join(REPO, 'examples', 'web-worker') });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  page = await browser.newPage();
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page: ${err}`));
  page.on('response', (res) => {
    if (res.status() >= 400) problems.push(`${res.status()} ${res.url()}`);
  });
  page.on('worker', (worker) => worker.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`worker console: ${msg.text()}`);
  }));
  await page.goto(`${server.origin}/index.html`);
});

after(async () => {
  await browser?.close();
  await server?.close();
});

const call = (op, args) => page.evaluate(([o, a]) => window.example.call(o, a), [op, args]);

test('the manager runs in a Worker without DOM globals; events stream to the page', async () => {
  const ready = await page.evaluate(() => window.exampleReady);
  assert.deepEqual(ready.scope, { window: 'undefined', document: 'undefined', indexedDB: 'object' });
  assert.deepEqual(ready.resumed, { added: 0, skipped: [] }, 'a fresh database');

  const a = await call('spawn', { goal: 'alpha', steps: 3 });
  const b = await call('spawn', { goal: 'beta', steps: 2 });
  const [ra, rb] = await Promise.all([call('wait', { id: a }), call('wait', { id: b })]);
  assert.equal(ra.status, 'completed');
  assert.deepEqual(ra.result, { answer: 'alpha: 3 sources read', goal: 'alpha' });
  assert.deepEqual(rb.result, { answer: 'beta: 2 sources read', goal: 'beta' });
  // subscribe() messages were posted before the wait replies; wait for the terminal events anyway.
  await page.waitForFunction((ids) => ids.every((id) => window.example.events.some((e) => e.task_id === id && e.kind === 'completed')), [a, b], WAIT);
  const events = await page.evaluate(() => window.example.events);
  assert.deepEqual(
    events.filter((e) => e.task_id === a).map((e) => (e.kind === 'custom' ? e.payload.step : e.kind)),
    [1, 2, 3, 'completed'],
  );
  assert.ok((await page.locator('#log').textContent()).includes(`${a} completed`), 'the page shows the events');
});

test('the thread is in IndexedDB: a new Worker resumes it, a task cut off by terminate() comes back orphaned', async () => {
  const long = await call('spawn', { goal: 'long', steps: 100_000 });
  const cancelled = await call('spawn', { goal: 'dropped', steps: 100_000 });
  assert.equal(await call('cancel', { id: cancelled }), true);
  await call('flush');
  const before = await call('list');
  assert.deepEqual(before.map((s) => s.status), ['completed', 'completed', 'running', 'cancelled']);

  const again = await page.evaluate(() => window.example.start()); // terminates the old worker
  assert.deepEqual(again.resumed, { added: 4, skipped: [] });
  const after = await call('list');
  assert.deepEqual(after.map((s) => s.task_id), before.map((s) => s.task_id));
  const byId = Object.fromEntries(after.map((s) => [s.task_id, s]));
  assert.equal(byId[long].status, 'failed');
  assert.equal(byId[long].error, ORPHANED);
  assert.equal(byId[cancelled].status, 'cancelled');
  const next = await call('spawn', { goal: 'gamma', steps: 1 });
  assert.ok(!before.some((s) => s.task_id === next), `a new id (${next}) after the resumed ones`);
  assert.equal((await call('wait', { id: next })).status, 'completed');
});

test('under the strict CSP: no errors, violations or failed requests; the wasm comes from the package', () => {
  assert.deepEqual(problems, []);
  assert.ok(server.requests.includes('200 /node_modules/bgtasks/build/bgtasks.wasm'), server.requests.join('\n'));
  assert.ok(!server.requests.some((r) => /\/node_modules\/(?!bgtasks\/)/.test(r)), 'nothing but the package is loaded');
});
