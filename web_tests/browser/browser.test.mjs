// The package in headless Chromium (Debian's /usr/bin/chromium driven by playwright-core):
// the package's browser entry loaded unbundled from 127.0.0.1 under a strict CSP, a core
// scenario, IndexedDbStore across a reload and a browser restart, quota/abort errors, and no
// console or page errors or CSP violations.
// Run: node --test web_tests/browser/  (needs the wasm build in js/build/ and web_tests' npm deps)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, access } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { startServer, importMapFor, JS_DIR, REPO } from './server.mjs';
import { CHROMIUM, CHROMIUM_ARGS } from './chromium.mjs';

const SHOTS = join(REPO, 'build', 'web-tests', 'screenshots');
const ORPHANED = 'task orphaned: runtime restarted while running';
const WAIT = { timeout: 30_000 };

let server;
let userDataDir;
let context;
let page;
const consoleErrors = [];
const pageErrors = [];
const failedRequests = [];

function watch(p) {
  p.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(`${msg.text()} @ ${JSON.stringify(msg.location())}`);
  });
  p.on('pageerror', (err) => pageErrors.push(String(err?.stack ?? err)));
  p.on('requestfailed', (req) => failedRequests.push(`${req.url()} ${req.failure()?.errorText}`));
  p.on('response', (res) => {
    if (res.status() >= 400) failedRequests.push(`${res.status()} ${res.url()}`);
  });
  return p;
}

async function launch() {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1100, height: 900 },
  });
  page = watch(context.pages()[0] ?? (await context.newPage()));
}

async function ready(p = page) {
  await p.waitForFunction(() => window.bgtestReady === true, null, WAIT);
}

let pageCsp;
async function open() {
  const res = await page.goto(`${server.origin}/index.html`);
  pageCsp = res.headers()['content-security-policy'];
  await ready();
}

async function shot(name, p = page) {
  await p.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

before(async () => {
  await access(join(JS_DIR, 'build', 'bgtasks.wasm')).catch(() => {
    throw new Error('js/build/bgtasks.wasm is missing: build it with `cmake --preset wasm && cmake --build --preset wasm`');
  });
  await mkdir(SHOTS, { recursive: true });
  server = await startServer(
    { '/js/': JS_DIR, '/': new URL('./page/', import.meta.url).pathname },
    { importMap: await importMapFor('/js/') },
  );
  userDataDir = await mkdtemp(join(tmpdir(), 'bgtasks-chromium-'));
  await launch();
  await open();
});

after(async () => {
  await context?.close();
  await server?.close();
  if (userDataDir) await rm(userDataDir, { recursive: true, force: true });
});

test('the page loads the package unbundled; the wasm comes from js/build with application/wasm', async () => {
  const wasm = await page.evaluate(() =>
    performance.getEntriesByType('resource').filter((e) => e.name.endsWith('.wasm')).map((e) => new URL(e.name).pathname));
  // The module is instantiated lazily (first createTaskManager), so no wasm request yet is fine;
  // the core test below checks it was fetched from the package's build folder.
  assert.ok(wasm.length <= 1);
  const res = await page.request.get(`${server.origin}/js/build/bgtasks.wasm`);
  assert.equal(res.headers()['content-type'], 'application/wasm');
  const mjs = await page.request.get(`${server.origin}/js/build/bgtasks.mjs`);
  assert.match(mjs.headers()['content-type'], /^text\/javascript/);
});

test('(a) core scenario: manual clock, spawn/emit/complete/cancel/cancelTree/sendMessage, ordered events, snapshot', async () => {
  const r = await page.evaluate(() => window.bgtest.core());
  const { build, slow, agent, child } = r.ids;
  assert.deepEqual([build, slow, agent, child], ['bg_0', 'bg_1', 'bg_2', 'bg_3']);
  assert.equal(r.statusAtSpawn, 'running');
  assert.equal(r.nowBefore, 1000, 'the manual clock does not move by itself');
  assert.equal(r.nowAfter, 1100);
  assert.equal(r.buildWhileSleeping, 'running');
  assert.equal(r.cancelSlow, true);
  assert.equal(r.cancelSlowAgain, true, "awaken: cancel is true while the body is live and not terminal");
  assert.equal(r.slowSleepError, 'AbortError', 'ctx.sleep rejects with AbortError on cancel');
  assert.equal(r.cancelTreeCount, 2, 'cancelTree cancels the agent and its child');
  assert.equal(r.childSignalAborted, true);
  assert.deepEqual(r.inboxGot, [
    { kind: 'custom', task_id: agent, event_type: 'agent_message', payload: { from: 'parent', content: 'look at X' } },
  ]);
  const codes = Object.fromEntries(Object.entries(r.sendErrors).map(([k, v]) => [k, v && `${v.name}/${v.code}/${v.isBgTasksError}`]));
  assert.deepEqual(codes, {
    notFound: 'BgTasksError/TaskNotFound/true',
    notOwner: 'BgTasksError/NotOwner/true',
    noInbox: 'BgTasksError/NoInbox/true',
    terminated: 'BgTasksError/TaskTerminated/true',
  });
  assert.deepEqual([r.spawnErrors.reserved.code, r.spawnErrors.reserved.message], ['ReservedName', "'parent' is a reserved name"]);
  assert.deepEqual([r.spawnErrors.duplicate.code, r.spawnErrors.duplicate.message], ['DuplicateName', "a running task named 'build' already exists"]);
  assert.equal(r.spawnErrors.typeError.name, 'TypeError');
  assert.match(r.spawnErrors.typeError.message, /options\.thread/);

  assert.deepEqual(r.events, [
    { kind: 'custom', task_id: build, event_type: 'progress', payload: { pct: 50 } },
    { kind: 'cancelled', task_id: slow },
    { kind: 'custom', task_id: build, event_type: 'progress', payload: { pct: 100 } },
    { kind: 'completed', task_id: build, result: { ok: true } },
    { kind: 'cancelled', task_id: child },
    { kind: 'cancelled', task_id: agent },
  ]);
  assert.ok(r.events.every((e) => typeof e.task_id === 'string'), 'every event names its task_id');
  assert.deepEqual(r.drainAgain, []);
  assert.equal(r.buildWait.status, 'completed');
  assert.deepEqual(r.buildWait.result, { ok: true });

  assert.deepEqual(Object.keys(r.snapshot), ['tasks']);
  assert.deepEqual(Object.keys(r.snapshot.tasks).sort(), [build, slow, agent, child].sort());
  assert.deepEqual(r.snapshot.tasks[build], {
    task_id: build, owner_thread_id: 't1', task_type: 'shell', name: 'build', description: 'Build the app',
    status: 'completed', result: { ok: true }, created_at_ms: 1000, completed_at_ms: 1100, parent_context: {},
  });
  assert.deepEqual(r.snapshot.tasks[child].parent_context, { task_id: agent });
  assert.equal(r.snapshot.tasks[agent].task_type, 'sub_agent');
  assert.equal(r.snapshot.tasks[agent].name, 'researcher');
  assert.deepEqual(r.list.map((s) => `${s.task_id}:${s.status}`), [`${build}:completed`, `${slow}:cancelled`, `${agent}:cancelled`, `${child}:cancelled`]);
  assert.ok(r.list.every((s) => !('name' in s) && !('owner_thread_id' in s)), 'TaskSummary has no name / owner_thread_id');
  assert.equal(r.hasRunning, false);
  assert.deepEqual(
    { completed: r.stats.completed, cancelled: r.stats.cancelled, running: r.stats.running, live: r.stats.live_bodies, depth: r.stats.owner_inbox_depth },
    { completed: 1, cancelled: 3, running: 0, live: 0, depth: 0 },
  );
  assert.equal(r.tree.length, 3);
  assert.deepEqual(r.tree.find((n) => n.task_id === agent).children.map((c) => c.task_id), [child]);

  const wasm = await page.evaluate(() =>
    performance.getEntriesByType('resource').filter((e) => e.name.endsWith('.wasm')).map((e) => new URL(e.name).pathname));
  assert.deepEqual(wasm, ['/js/build/bgtasks.wasm'], 'the wasm is fetched once, beside the glue');
  assert.deepEqual(await page.evaluate(() => window.cspViolations), [], 'the glue and the manager ran without eval or new Function');
  await page.evaluate(() => window.bgtest.markStatus('core scenario done'));
  await shot('a-core');
});

const DB = 'bgtasks-browser-test';
const THREAD = 'chat-1';

function checkResumed(before, r, { title }) {
  const { running, completed, failed, cancelled } = before.ids;
  assert.equal(r.survivorWasReset, true, `${title}: the page's module state was really thrown away`);
  assert.deepEqual(r.raw, before.snapshot, `${title}: the stored record is exactly snapshot(thread)`);
  assert.deepEqual(r.threads, [THREAD, 'other'].sort());
  assert.deepEqual(r.restored, { added: 4, skipped: [] });
  assert.equal(r.missing, null);
  const byId = Object.fromEntries(r.list.map((s) => [s.task_id, s]));
  assert.deepEqual(Object.keys(byId), [running, completed, failed, cancelled]);
  assert.equal(byId[running].status, 'failed');
  assert.equal(byId[running].error, ORPHANED);
  assert.equal(r.snapshot.tasks[running].name, 'server');
  assert.deepEqual(r.snapshot.tasks[running].parent_context, { run_id: 'run-1', call_id: 'call-1' });
  for (const id of [completed, failed, cancelled])
    assert.deepEqual(r.snapshot.tasks[id], before.snapshot.tasks[id], `${title}: terminal task ${id} untouched`);
  assert.equal(byId[completed].status, 'completed');
  assert.deepEqual(byId[completed].result, { exit_code: 0 });
  assert.equal(byId[failed].error, 'boom');
  assert.equal(byId[cancelled].status, 'cancelled');
  assert.equal(r.hasRunning, false);
  assert.deepEqual(r.events, [], 'restore emits no events');
  assert.equal(r.nextId, 'bg_4', 'the id counter continues after the restored ids (bg_4 was the other thread\'s, not restored)');
  assert.equal(r.nextStatus, 'completed');
}

test('(b) IndexedDbStore: save → page.reload() → load; the running task comes back orphaned, terminal ones untouched', async () => {
  const before = await page.evaluate((args) => window.bgtest.persistSave(args), { dbName: DB, thread: THREAD });
  assert.deepEqual(before.stored, before.snapshot);
  assert.equal(before.snapshot.tasks[before.ids.running].status, 'running');
  assert.deepEqual(
    Object.values(before.snapshot.tasks).map((m) => m.status).sort(),
    ['cancelled', 'completed', 'failed', 'running'],
  );
  await shot('b1-before-reload');

  await page.reload();
  await ready();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('loads')), '2');
  const r = await page.evaluate((args) => window.bgtest.persistLoad(args), { dbName: DB, thread: THREAD });
  checkResumed(before, r, { title: 'reload' });
  await shot('b2-after-reload');

  // The same profile after a full browser restart (the record is on disk, not in memory).
  await context.close();
  await launch();
  await open();
  const again = await page.evaluate((args) => window.bgtest.persistLoad(args), { dbName: DB, thread: THREAD, title: 'after browser restart' });
  checkResumed(before, again, { title: 'restart' });
  await shot('b3-after-restart');
});

// Chromium's IndexedDB reads an origin's quota when it opens the origin's backing store and keeps
// it while that store is open, so a CDP override set after the origin has used IndexedDB is not
// seen by later writes (checked: a 4 MB put still commits under a 0.5 MB override). This test
// therefore uses a fresh origin (a second server = another port) and sets the override before
// the page first touches IndexedDB.
test('(c) IndexedDbStore: an over-quota save rejects clearly (no hang) and the earlier record stays intact', async (t) => {
  const dbName = 'bgtasks-quota-test';
  const thread = 'q';
  const quotaServer = await startServer(
    { '/js/': JS_DIR, '/': new URL('./page/', import.meta.url).pathname },
    { importMap: await importMapFor('/js/') },
  );
  const origin = quotaServer.origin;
  const qpage = watch(await context.newPage());
  const cdp = await context.newCDPSession(qpage);
  const quotaSize = 1024 * 1024;
  try {
    try {
      await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize });
    } catch (e) {
      assert.fail(`CDP Storage.overrideQuotaForOrigin is unavailable in this Chromium: ${e.message}`);
    }
    await qpage.goto(`${origin}/index.html`);
    await ready(qpage);
    // navigator.storage.estimate() reports a fixed quota to pages (Chromium hides the real one),
    // so the override is checked from the browser side.
    const seen = await cdp.send('Storage.getUsageAndQuota', { origin });
    assert.equal(seen.overrideActive, true);
    assert.equal(seen.quota, quotaSize);

    const base = await qpage.evaluate((args) => window.bgtest.quotaBaseline(args), { dbName, thread });
    assert.equal(Object.values(base.stored.tasks)[0].status, 'completed');
    t.diagnostic(`quota overridden to ${quotaSize} B; page estimate() says ${base.estimate.quota} B`);

    const r = await qpage.evaluate((args) => window.bgtest.quotaOverflow(args), { dbName, thread, chars: 4_000_000 });
    t.diagnostic(`over-quota save: ${JSON.stringify(r.outcome)}`);
    assert.equal(r.outcome.settled, 'rejected', 'the save settles (rejects); it neither hangs nor succeeds');
    assert.equal(r.outcome.error.name, 'Error');
    assert.match(r.outcome.error.message, /^IndexedDbStore: saving thread 'q' failed: QuotaExceededError/);
    assert.equal(r.outcome.error.causeName, 'QuotaExceededError');
    assert.deepEqual(r.after, base.stored, 'the earlier record is intact');

    const clone = await qpage.evaluate((args) => window.bgtest.cloneError(args), { dbName, thread });
    t.diagnostic(`uncloneable save: ${JSON.stringify(clone.outcome)}`);
    assert.equal(clone.outcome.settled, 'rejected');
    assert.match(clone.outcome.error.message, /^IndexedDbStore: saving thread 'q' failed: DataCloneError/);
    assert.deepEqual(clone.after, base.stored, 'the earlier record is intact');

    const value = { tasks: {} };
    const ok = await qpage.evaluate((args) => window.bgtest.saveAgain(args), { dbName, thread, value });
    assert.equal(ok.outcome.settled, 'resolved', 'a save that fits works after the failures');
    assert.deepEqual(ok.after, value);
    await qpage.evaluate(() => window.bgtest.markStatus('quota scenarios done'));
    await shot('c-quota', qpage);
  } finally {
    await cdp.send('Storage.overrideQuotaForOrigin', { origin }).catch(() => {}); // no quotaSize: back to normal
    await cdp.detach().catch(() => {});
    await qpage.close();
    await quotaServer.close();
  }
});

test('the page runs under the strict CSP, with an import map naming only bgtasks', async () => {
  assert.match(pageCsp, /^script-src 'self' 'wasm-unsafe-eval' 'nonce-[^']+';/);
  assert.doesNotMatch(pageCsp, /[ ']'unsafe-eval'|unsafe-inline/, "no 'unsafe-eval' (only 'wasm-unsafe-eval')");
  const map = await page.evaluate(() => JSON.parse(document.querySelector('script[type=importmap]').textContent));
  assert.deepEqual(map, { imports: { bgtasks: '/js/src/browser.js' } });
  // The policy is really enforced, and a refusal is seen: the page's own code is refused new
  // Function (on a page of its own, whose violation is expected).
  const probe = await context.newPage();
  try {
    await probe.goto(`${server.origin}/index.html?probe-eval`);
    await ready(probe);
    assert.equal(await probe.evaluate(() => window.evalProbe), 'EvalError', 'new Function is refused under the policy');
    await probe.waitForFunction(() => window.cspViolations.length > 0, null, WAIT);
    assert.match((await probe.evaluate(() => window.cspViolations))[0], /^script-src eval /);
  } finally {
    await probe.close();
  }
});

test('(d) no console errors, page errors, CSP violations or failed requests during the run', async () => {
  assert.deepEqual(await page.evaluate(() => window.cspViolations), [], 'nothing reached eval or new Function');
  assert.deepEqual(pageErrors, []);
  assert.deepEqual(consoleErrors, []);
  assert.deepEqual(failedRequests, []);
  assert.ok(server.requests.some((r) => r === '200 /js/build/bgtasks.wasm'));
});
