// A manager with IndexedDbStore attached (createTaskManager({ store })) in headless Chromium, in
// two tabs of one origin: the tab that resumes a thread last owns it, the other is told (its
// ownership becomes 'lost', its flush rejects StaleOwner) and cannot overwrite the owner's state;
// a reload mid-run brings the running task back as an orphan.
// Run: cd web_tests && node --test browser/tabs.test.mjs  (needs the wasm build in js/build/)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { startServer, importMapFor, JS_DIR } from './server.mjs';
import { CHROMIUM, CHROMIUM_ARGS } from './chromium.mjs';

const ORPHANED = 'task orphaned: runtime restarted while running';
const WAIT = { timeout: 20_000 };

let server;
let browser;
let context;
const tabs = {};
const consoleErrors = [];
const pageErrors = [];

function watch(p) {
  p.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(`${msg.text()} @ ${JSON.stringify(msg.location())}`);
  });
  p.on('pageerror', (err) => pageErrors.push(String(err?.stack ?? err)));
  return p;
}

async function ready(p) {
  await p.waitForFunction(() => window.bgtestReady === true, null, WAIT);
}

async function openTab(name) {
  const p = watch(await context.newPage());
  await p.goto(`${server.origin}/index.html`);
  await ready(p);
  tabs[name] = p;
  return p;
}

/** window.bgtest[fn](arg) in a tab. */
function run(tab, fn, arg = {}) {
  return tabs[tab].evaluate(([f, a]) => window.bgtest[f](a), [fn, arg]);
}

async function waitOwnership(tab, thread, want) {
  await tabs[tab].waitForFunction(([t, w]) => window.bgtest.attachedState({ thread: t }).ownership === w, [thread, want], WAIT);
}

before(async () => {
  await access(join(JS_DIR, 'build', 'bgtasks.wasm')).catch(() => {
    throw new Error('js/build/bgtasks.wasm is missing: build it with `cmake --preset wasm && cmake --build --preset wasm`');
  });
  server = await startServer(
    { '/js/': JS_DIR, '/': new URL('./page/', import.meta.url).pathname },
    { importMap: await importMapFor('/js/') },
  );
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  context = await browser.newContext();
  await openTab('A');
  await openTab('B');
});

after(async () => {
  await browser?.close();
  await server?.close();
});

test("ownership across tabs: B resumes the thread and owns it; A is told, its flush rejects StaleOwner, B's state stays intact", async () => {
  const dbName = 'tabs-ownership';
  const T = 'chat-1';
  const U = 'chat-2'; // a thread only A uses
  await run('A', 'attach', { dbName });
  const devServer = await run('A', 'spawnLong', { thread: T, description: 'dev server' });
  const compile = await run('A', 'spawnQuick', { thread: T, description: 'compile' });
  await run('A', 'spawnQuick', { thread: U, description: 'other thread' });
  assert.deepEqual(await run('A', 'attachedFlush'), { value: null });
  assert.equal((await run('A', 'attachedState', { thread: T })).ownership, 'owned');

  await run('B', 'attach', { dbName });
  const resumed = await run('B', 'attachedResume', { thread: T });
  assert.deepEqual(resumed, { value: { added: 2, skipped: [] } });
  let b = await run('B', 'attachedState', { thread: T });
  assert.equal(b.ownership, 'owned');
  const byId = Object.fromEntries(b.list.map((s) => [s.task_id, s]));
  assert.deepEqual([byId[devServer].status, byId[devServer].error], ['failed', ORPHANED], "A's running task is an orphan in B: B does not run it");
  assert.equal(byId[compile].status, 'completed');

  // A hears of it through the stolen Web Lock, before it writes anything.
  await waitOwnership('A', T, 'lost');
  let a = await run('A', 'attachedState', { thread: T });
  assert.deepEqual(
    a.errors.map((e) => [e.thread, e.code, e.isBgTasksError]),
    [[T, 'StaleOwner', true]],
    'onStoreError(error, thread) was called once, for the thread taken over',
  );
  assert.equal((await run('A', 'attachedState', { thread: U })).ownership, 'owned', 'the thread B did not touch stays with A');

  // A changes the thread anyway: nothing of it reaches the store, and flush() says so.
  const late = await run('A', 'spawnQuick', { thread: T, description: 'after the takeover' });
  const flushed = await run('A', 'attachedFlush');
  assert.equal(flushed.error?.code, 'StaleOwner', `A's flush rejects: ${JSON.stringify(flushed)}`);
  assert.equal(flushed.error?.name, 'BgTasksError');
  a = await run('A', 'attachedState', { thread: T });
  assert.equal(a.ownership, 'lost');

  // B's state is what B saved; ids stay unique across the tabs.
  const mine = await run('B', 'spawnQuick', { thread: T, description: 'B works on' });
  assert.ok(![devServer, compile, late].includes(mine), `B's new id ${mine} is none of A's`);
  assert.deepEqual(await run('B', 'attachedFlush'), { value: null });
  b = await run('B', 'attachedState', { thread: T });
  const stored = await run('B', 'attachedLoad', { thread: T });
  assert.deepEqual(stored.value, b.snapshot, "the stored thread is exactly B's");
  assert.ok(!(late in stored.value.tasks), "A's task made after the takeover was never written");
  assert.equal(stored.value.tasks[devServer].error, ORPHANED);
});

test('reload mid-run still shows orphans: the running task comes back failed, orphaned, and is saved so', async () => {
  const dbName = 'tabs-reload';
  const T = 'chat-r';
  const p = tabs.A;
  await run('A', 'attach', { dbName });
  const long = await run('A', 'spawnLong', { thread: T, description: 'long job' });
  const done = await run('A', 'spawnQuick', { thread: T, description: 'finished job' });
  assert.deepEqual(await run('A', 'attachedFlush'), { value: null });
  const before = await run('A', 'attachedLoad', { thread: T });
  assert.equal(before.value.tasks[long].status, 'running', 'saved while running');

  await p.reload();
  await ready(p);
  await run('A', 'attach', { dbName });
  assert.deepEqual(await run('A', 'attachedResume', { thread: T }), { value: { added: 2, skipped: [] } });
  const after = await run('A', 'attachedState', { thread: T });
  assert.equal(after.ownership, 'owned', "the reloaded page owns the thread (the old page's lock went with it)");
  const byId = Object.fromEntries(after.list.map((s) => [s.task_id, s]));
  assert.deepEqual([byId[long].status, byId[long].error], ['failed', ORPHANED]);
  assert.equal(byId[done].status, 'completed');
  assert.deepEqual(after.errors, []);

  // The orphan is saved as failed: a second reload reads it so, and new ids go on above.
  assert.deepEqual(await run('A', 'attachedFlush'), { value: null });
  const stored = await run('A', 'attachedLoad', { thread: T });
  assert.deepEqual([stored.value.tasks[long].status, stored.value.tasks[long].error], ['failed', ORPHANED]);
  const next = await run('A', 'spawnQuick', { thread: T, description: 'after reload' });
  assert.ok(Number(next.slice(3)) > Math.max(Number(long.slice(3)), Number(done.slice(3))), `${next} is above the restored ids`);
});

test('no console or page errors in either tab', () => {
  assert.deepEqual(pageErrors, []);
  assert.deepEqual(consoleErrors, []);
});
