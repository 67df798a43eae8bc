// The demo (demo/, a Vite app importing the bgtasks package) driven as a person would, in headless
// Chromium: spawn tasks, watch a progress bar move, cancel one task, a tree and a whole thread,
// message a sub-agent (and see the error cases), switch threads, reload mid-run and find the
// orphans, step the manual clock, limit concurrency (a queued task) and time out a hung call, open a second tab that takes the threads over and take them back. Every wait is on a DOM condition (with a timeout), never a fixed
// sleep. Screenshots go to build/web-tests/screenshots/demo-*.png (git-ignored).
// Run: cd web_tests && node --test browser/demo.test.mjs
// Needs: js/build/bgtasks.wasm (cmake --preset wasm && cmake --build --preset wasm) and `npm ci` at
// the top level (the workspace that installs vite and links bgtasks for the demo).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { access, mkdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { chromium } from 'playwright-core';
import { REPO, JS_DIR } from './server.mjs';
import { CHROMIUM, CHROMIUM_ARGS } from './chromium.mjs';

const DEMO = join(REPO, 'demo');
const SHOTS = join(REPO, 'build', 'web-tests', 'screenshots');
const ORPHANED = 'task orphaned: runtime restarted while running';
const WAIT = { timeout: 20_000 };

let vite;
let viteOutput = '';
let origin;
let browser;
let context;
let page;
const consoleErrors = [];
const pageErrors = [];
const failedRequests = [];
const navigations = [];

// ---- helpers ---------------------------------------------------------------------------------

const exists = (p) => access(p).then(() => true, () => false);

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// Resolves once vite has printed the URL it serves (it prints it once it listens) and that URL
// answers; rejects as soon as vite exits, or when it has said nothing of the kind by the deadline.
async function waitForServer(url, timeoutMs = 60_000) {
  const plain = () => stripVTControlCharacters(viteOutput); // vite colours the port
  await new Promise((resolve, reject) => {
    const finish = (settle, value) => {
      clearTimeout(timer);
      vite.stdout.off('data', listening);
      vite.off('exit', exited);
      settle(value);
    };
    const listening = () => plain().includes(url) && finish(resolve);
    const exited = (code) => finish(reject, new Error(`vite exited with ${code}:\n${viteOutput}`));
    const timer = setTimeout(
      () => finish(reject, new Error(`vite did not say it serves ${url} within ${timeoutMs} ms:\n${viteOutput}`)),
      timeoutMs,
    );
    vite.stdout.on('data', listening);
    vite.once('exit', exited);
    listening();
  });
  const res = await fetch(url);
  if (!res.ok) throw new Error(`vite answered ${url} with ${res.status}:\n${viteOutput}`);
}

function watch(p) {
  p.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(`${msg.text()} @ ${JSON.stringify(msg.location())}`);
  });
  p.on('pageerror', (err) => pageErrors.push(String(err?.stack ?? err)));
  p.on('framenavigated', (frame) => {
    if (frame === p.mainFrame()) navigations.push(frame.url());
  });
  p.on('requestfailed', (req) => {
    // Vite's HMR socket and aborted fetches at reload time are not failures of the page.
    const text = req.failure()?.errorText ?? '';
    if (!/ERR_ABORTED/.test(text)) failedRequests.push(`${req.url()} ${text}`);
  });
  p.on('response', (res) => {
    if (res.status() >= 400) failedRequests.push(`${res.status()} ${res.url()}`);
  });
  return p;
}

/** A second tab: its errors count, its navigations are its own. */
function watchOther(p) {
  p.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(`second tab: ${msg.text()} @ ${JSON.stringify(msg.location())}`);
  });
  p.on('pageerror', (err) => pageErrors.push(`second tab: ${String(err?.stack ?? err)}`));
  p.on('response', (res) => {
    if (res.status() >= 400) failedRequests.push(`second tab: ${res.status()} ${res.url()}`);
  });
  return p;
}

/** Awaits a wait; if it fails, adds what the page showed (tree, stats, last action, navigations). */
async function explained(promise) {
  try {
    return await promise;
  } catch (e) {
    const state = await page
      .evaluate(() => ({
        tree: [...document.querySelectorAll('#task-tree .task-node')].map(
          (n) => `${n.dataset.taskId} ${n.dataset.status} lines=${n.querySelector('.task-output')?.dataset.lines} ${n.querySelector('.task-meta')?.textContent}`,
        ),
        stats: document.querySelector('#stats')?.innerText.replace(/\s+/g, ' '),
        action: document.querySelector('#action-status')?.textContent,
        log: document.querySelector('#event-log')?.innerText.slice(0, 600),
      }))
      .catch((err) => ({ unavailable: String(err) }));
    e.message += `\npage state: ${JSON.stringify({ ...state, navigations }, null, 1)}\nvite: ${viteOutput.slice(-800)}`;
    throw e;
  }
}

async function ready() {
  await page.waitForFunction(() => document.body.dataset.ready === 'true', null, WAIT);
}

const nodeSel = (id) => `.task-node[data-task-id="${id}"]`;
const cardSel = (id) => `${nodeSel(id)} > .task-card`;

/** Waits until the task's tree node has the given status (data-status), and returns its chip text. */
async function waitStatus(id, status) {
  await explained(page.locator(`${nodeSel(id)}[data-status="${status}"]`).waitFor(WAIT));
  return (await page.locator(`${cardSel(id)} .chip`).textContent()).trim();
}

async function treeIds() {
  return page.$$eval('#task-tree .task-node', (els) => els.map((e) => e.dataset.taskId));
}

/** Clicks a spawn button and returns the id of the task that appeared in the tree. */
async function spawnVia(selector) {
  const beforeIds = await treeIds();
  await page.click(selector);
  const handle = await page.waitForFunction(
    (known) => {
      const ids = [...document.querySelectorAll('#task-tree > .task-node')].map((e) => e.dataset.taskId);
      return ids.find((id) => !known.includes(id)) ?? null;
    },
    beforeIds,
    WAIT,
  );
  return handle.jsonValue();
}

async function progressOf(id) {
  return page.$eval(`${cardSel(id)} progress`, (p) => Number(p.value));
}

async function waitProgressAbove(id, value) {
  await explained(page.waitForFunction(
    ([sel, v]) => Number(document.querySelector(sel)?.value ?? -1) > v,
    [`${cardSel(id)} progress`, value],
    WAIT,
  ));
  return progressOf(id);
}

async function childIds(id) {
  return page.$$eval(`${nodeSel(id)} > .tree-children > .task-node`, (els) => els.map((e) => e.dataset.taskId));
}

async function selectThread(name) {
  await page.getByRole('tab', { name: new RegExp(name) }).click();
  await page.locator(`[role="tab"][aria-selected="true"]`, { hasText: name }).waitFor(WAIT);
}

async function saveSeq() {
  return Number(await page.getAttribute('#save-status', 'data-seq'));
}

async function shot(name, { fullPage = false } = {}) {
  await page.screenshot({ path: join(SHOTS, `demo-${name}.png`), fullPage });
}

// ---- setup -----------------------------------------------------------------------------------

before(async () => {
  if (!(await exists(join(JS_DIR, 'build', 'bgtasks.wasm'))))
    throw new Error('js/build/bgtasks.wasm is missing: build it with `cmake --preset wasm && cmake --build --preset wasm`');
  for (const dep of ['vite', 'bgtasks'])
    if (!(await exists(join(REPO, 'node_modules', dep))))
      throw new Error(`node_modules/${dep} is missing: run \`npm ci\` at the top of the repository`);
  await mkdir(SHOTS, { recursive: true });

  const port = await freePort();
  origin = `http://127.0.0.1:${port}`;
  vite = spawn('npx', ['vite', '--host', '127.0.0.1', '--port', String(port), '--strictPort'], {
    cwd: DEMO,
    detached: true, // its own process group: npx and vite are stopped together
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, BROWSER: 'none', CI: 'true' },
  });
  vite.stdout.on('data', (d) => (viteOutput += d));
  vite.stderr.on('data', (d) => (viteOutput += d));
  await waitForServer(`${origin}/`);

  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  page = watch(await context.newPage());
});

after(async () => {
  await browser?.close();
  if (vite && vite.exitCode === null) {
    const exited = new Promise((r) => vite.once('exit', r));
    try {
      process.kill(-vite.pid, 'SIGTERM');
    } catch {
      vite.kill('SIGTERM');
    }
    await exited;
  }
});

// ---- the tests, in the order a person would go -------------------------------------------------

test('the page loads from the Vite dev server, explains itself, and fetches the package wasm', async () => {
  await page.goto(`${origin}/`);
  await ready();
  assert.match(await page.textContent('h1'), /bgtasks/);
  assert.match(await page.textContent('.lede'), /runtime core that keeps track of it/);
  assert.equal(await page.getByRole('tab').count(), 3);
  assert.equal(await page.getAttribute('[role="tab"][aria-selected="true"]', 'data-thread'), 'chat-release');
  assert.equal(await page.isVisible('#tree-empty'), true, 'a fresh profile starts with no tasks');
  await page.locator('#owner-note[data-ownership="owned"]').waitFor(WAIT);
  assert.match(await page.textContent('#owner-text'), /This tab owns “Release”: its changes are saved to IndexedDB/);
  assert.equal(await page.isVisible('#owner-reload'), false);
  const wasm = await page.evaluate(() =>
    performance.getEntriesByType('resource').filter((e) => e.name.endsWith('.wasm')).map((e) => new URL(e.name).pathname));
  assert.equal(wasm.length, 1);
  assert.match(wasm[0], /\/js\/build\/bgtasks\.wasm$/, 'the wasm comes from the package (node_modules/bgtasks → js/)');
  const res = await page.request.get(`${origin}${wasm[0]}`);
  assert.equal(res.headers()['content-type'], 'application/wasm');
});

let firstDownload;

test('a download: its progress bar moves, then it completes and the event log shows what drain returned', async () => {
  const id = await spawnVia('#spawn-download');
  firstDownload = id;
  assert.match(id, /^bg_\d+$/);
  assert.equal(await waitStatus(id, 'running'), 'running');
  const v1 = await waitProgressAbove(id, 0);
  const v2 = await waitProgressAbove(id, v1);
  assert.ok(v2 > v1 && v2 <= 100, `progress moved: ${v1} → ${v2}`);
  assert.match(await page.textContent(`${cardSel(id)} .progress-label`), /\d+% · .* of /);
  assert.equal(await waitStatus(id, 'completed'), 'completed');
  assert.equal(await progressOf(id), 100);
  assert.match(await page.textContent(`${cardSel(id)} .task-outcome`), /^Result: \{.*"bytes":/);
  // The event log lists drained events: custom progress events, then the completed event.
  await page.locator(`#event-log li[data-kind="completed"][data-task-id="${id}"]`).waitFor(WAIT);
  assert.ok((await page.locator(`#event-log li[data-kind="custom"][data-task-id="${id}"]`).count()) > 0);
  assert.match(await page.textContent('#event-log .log-head'), /drain\(\) → \d+ events?/);
});

test('a shell job streams its output lines and exits', async () => {
  const id = await spawnVia('#spawn-shell');
  await explained(page.waitForFunction((sel) => Number(document.querySelector(sel)?.dataset.lines ?? 0) >= 3, `${cardSel(id)} .task-output`, WAIT));
  assert.equal(await waitStatus(id, 'completed'), 'completed');
  assert.match(await page.textContent(`${cardSel(id)} .task-output`), /exit code 0$/);
  assert.match(await page.textContent(`${cardSel(id)} .task-outcome`), /"exit_code":0/);
});

test('keyboard: Enter on a focused spawn button starts a task; a failing task shows its error', async () => {
  const beforeIds = await treeIds();
  await page.focus('#spawn-flaky');
  await page.keyboard.press('Enter');
  const id = await (
    await page.waitForFunction((known) => [...document.querySelectorAll('#task-tree > .task-node')].map((e) => e.dataset.taskId).find((x) => !known.includes(x)) ?? null, beforeIds, WAIT)
  ).jsonValue();
  assert.equal(await waitStatus(id, 'failed'), 'failed');
  assert.match(await page.textContent(`${cardSel(id)} .task-outcome`), /^Error: HTTP 503 Service Unavailable/);
  assert.equal(await page.getAttribute(nodeSel(id), 'data-orphaned'), 'false');
});

test('cancel one task: its chip becomes cancelled', async () => {
  const id = await spawnVia('#spawn-download');
  await waitProgressAbove(id, 0);
  await page.getByRole('button', { name: `Cancel ${id}`, exact: true }).click();
  assert.equal(await waitStatus(id, 'cancelled'), 'cancelled');
  assert.match(await page.textContent('#action-status'), new RegExp(`cancel\\('${id}'\\) → true`));
  assert.ok((await progressOf(id)) < 100, 'it stopped before the end');
  await page.locator(`#event-log li[data-kind="cancelled"][data-task-id="${id}"]`).waitFor(WAIT);
  assert.equal(await page.isVisible(`${cardSel(id)} [data-action="cancel"]`), false, 'no cancel button on a finished task');
});

let finishedAgent;

test('a research sub-agent spawns children, reacts to a message, and finishes on request', async () => {
  const agent = await spawnVia('#spawn-agent');
  assert.equal(await page.getAttribute(nodeSel(agent), 'data-type'), 'sub_agent');
  assert.equal(await page.inputValue('#msg-to'), agent, 'the new agent id is put in the message box');
  await page.waitForFunction((sel) => document.querySelectorAll(sel).length >= 3, `${nodeSel(agent)} > .tree-children > .task-node`, WAIT);
  const children = await childIds(agent);
  assert.equal(children.length, 3);

  await page.fill('#msg-text', 'check pricing pages');
  await page.click('#msg-send');
  await page.locator('#msg-result[data-state="ok"]').waitFor(WAIT);
  assert.match(await page.textContent('#msg-result'), new RegExp(`Delivered to ${agent}`));
  // The effect: the agent shows the message and starts a follow-up search as a new child.
  await page.locator(`${cardSel(agent)} .task-messages li`, { hasText: 'check pricing pages' }).waitFor(WAIT);
  await page.locator(`${nodeSel(agent)} > .tree-children > .task-node .task-title`, { hasText: 'search: check pricing pages' }).waitFor(WAIT);
  assert.equal((await childIds(agent)).length, 4);

  await page.fill('#msg-text', 'finish');
  await page.click('#msg-send');
  assert.equal(await waitStatus(agent, 'completed'), 'completed');
  assert.match(await page.textContent(`${cardSel(agent)} .task-outcome`), /"report":/);
  finishedAgent = agent;
});

test('bad sends show readable errors: TaskNotFound, NoInbox, TaskTerminated', async () => {
  await page.click('[data-error-case="unknown"]');
  await page.locator('#msg-result[data-code="TaskNotFound"]').waitFor(WAIT);
  let text = await page.textContent('#msg-result');
  assert.match(text, /TaskNotFound/);
  assert.match(text, /No task has this id/);
  assert.match(text, /sendMessage\('bg_9999', 'chat-release'/);

  await page.click('[data-error-case="no-inbox"]');
  await page.locator('#msg-result[data-code="NoInbox"]').waitFor(WAIT);
  assert.match(await page.textContent('#msg-result'), /Only sub-agents .* have an inbox/);

  await page.click('[data-error-case="finished"]');
  await page.locator('#msg-result[data-code="TaskTerminated"]').waitFor(WAIT);
  text = await page.textContent('#msg-result');
  assert.match(text, /already ended/);
  assert.match(text, /status: (completed|cancelled|failed)/);
  assert.equal(await page.inputValue('#msg-to'), finishedAgent);
});

test('cancel tree: the agent and every running descendant end cancelled', async () => {
  const agent = await spawnVia('#spawn-agent');
  await page.waitForFunction((sel) => document.querySelectorAll(sel).length >= 3, `${nodeSel(agent)} > .tree-children > .task-node[data-status="running"]`, WAIT);
  const children = await childIds(agent);
  await page.getByRole('button', { name: `Cancel ${agent} and its descendants` }).click();
  assert.equal(await waitStatus(agent, 'cancelled'), 'cancelled');
  for (const c of children) assert.equal(await waitStatus(c, 'cancelled'), 'cancelled', `child ${c}`);
  assert.match(await page.textContent('#action-status'), new RegExp(`cancelTree\\('${agent}'\\) → 4 tasks signalled`));
});

test('threads are isolated: another thread sees none of these tasks, and cannot be messaged from here', async () => {
  const releaseIds = await treeIds();
  assert.ok(releaseIds.length >= 5);
  await selectThread('Research');
  await page.locator('#tree-empty').waitFor({ state: 'visible', ...WAIT });
  assert.deepEqual(await treeIds(), []);
  assert.match(await page.textContent('#isolation-note'), /list\('chat-research'\) → 0 tasks/);
  const agent = await spawnVia('#spawn-agent');
  assert.ok(!releaseIds.includes(agent));
  await page.locator('#tab-chat-research .tab-badge[data-running="true"]').waitFor(WAIT);

  // Back to the first thread with the keyboard (arrow keys move between tabs).
  await page.focus('#tab-chat-research');
  await page.keyboard.press('ArrowLeft');
  await page.locator('#tab-chat-release[aria-selected="true"]').waitFor(WAIT);
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'tab-chat-release');
  await page.locator('#task-tree > .task-node').first().waitFor(WAIT);
  assert.ok(!(await treeIds()).includes(agent), "the other thread's agent is not listed here");

  await page.click('[data-error-case="other-thread"]');
  await page.locator('#msg-result[data-code="NotOwner"]').waitFor(WAIT);
  assert.match(await page.textContent('#msg-result'), /another thread/);
  assert.equal(await page.inputValue('#msg-to'), agent);
});

test('cancel all: every running task of this thread ends cancelled; the other thread keeps running', async () => {
  // Start from a thread where nothing runs (children of the earlier agent finish by themselves).
  await page.waitForFunction(() => document.querySelectorAll('#task-tree .task-node[data-status="running"]').length === 0, null, WAIT);
  const a = await spawnVia('#spawn-download');
  const b = await spawnVia('#spawn-shell');
  await page.click('#cancel-all');
  assert.equal(await waitStatus(a, 'cancelled'), 'cancelled');
  assert.equal(await waitStatus(b, 'cancelled'), 'cancelled');
  assert.match(await page.textContent('#action-status'), /cancelAll\('chat-release'\) → 2 tasks signalled \(this thread only\)/);
  assert.equal(await page.getAttribute('#tab-chat-research .tab-badge', 'data-running'), 'true');
  await shot('desktop-after-cancels', { fullPage: true });
});

test('snapshot panel: awaken-shaped JSON for this thread or all threads, and a download', async () => {
  const one = JSON.parse(await page.textContent('#snapshot-json'));
  const ids = Object.keys(one.tasks);
  assert.ok(ids.includes(firstDownload));
  assert.ok(Object.values(one.tasks).every((m) => m.owner_thread_id === 'chat-release'));
  assert.equal(one.tasks[firstDownload].status, 'completed');

  await page.getByRole('radio', { name: 'All threads' }).check();
  await page.waitForFunction(() => document.querySelector('#snapshot-json').textContent.includes('"chat-research"'), null, WAIT);
  const all = JSON.parse(await page.textContent('#snapshot-json'));
  assert.ok(Object.keys(all.tasks).length > ids.length);

  const [download] = await Promise.all([page.waitForEvent('download', WAIT), page.click('#snapshot-download')]);
  assert.equal(download.suggestedFilename(), 'bgtasks-snapshot-all-threads.json');
  const saved = JSON.parse(await readFile(await download.path(), 'utf8'));
  assert.ok(saved.tasks[firstDownload]);
  await page.getByRole('radio', { name: 'This thread' }).check();
});

test('reload mid-run: the tasks come back from IndexedDB, the running ones failed and marked orphaned', async () => {
  const dl = await spawnVia('#spawn-download');
  const agent = await spawnVia('#spawn-agent');
  await waitProgressAbove(dl, 0);
  // Wait for a save that started after both spawns: the second one completed from now on
  // (each spawn saves at once, events save again debounced, and saves run one after another).
  const seq = await saveSeq();
  await page.waitForFunction((n) => Number(document.querySelector('#save-status').dataset.seq) >= n + 2, seq, WAIT);
  assert.equal(await page.getAttribute(nodeSel(dl), 'data-status'), 'running');
  await shot('desktop-mid-run');

  await page.reload();
  await ready();
  await page.locator('#banner:not([hidden])').waitFor(WAIT);
  const banner = await page.textContent('#banner-text');
  assert.match(banner, /Restored \d+ tasks from IndexedDB/);
  assert.match(banner, /came back as failed \(orphaned\)/);

  for (const id of [dl, agent]) {
    assert.equal(await waitStatus(id, 'failed'), 'orphaned', `${id} is marked orphaned`);
    assert.equal(await page.getAttribute(nodeSel(id), 'data-orphaned'), 'true');
    assert.match(await page.textContent(`${cardSel(id)} .task-outcome`), new RegExp(ORPHANED));
    assert.match(await page.textContent(`${cardSel(id)} .task-meta`), /restored from IndexedDB/);
  }
  // Finished tasks keep their status; the snapshot says failed + the orphan error.
  assert.equal(await page.getAttribute(nodeSel(firstDownload), 'data-status'), 'completed');
  assert.equal(await page.getAttribute(nodeSel(firstDownload), 'data-orphaned'), 'false');
  const snap = JSON.parse(await page.textContent('#snapshot-json'));
  assert.equal(snap.tasks[dl].status, 'failed');
  assert.equal(snap.tasks[dl].error, ORPHANED);
  assert.equal(await page.locator('.task-node[data-status="running"]').count(), 0, 'nothing runs after a restart');

  // The other thread was resumed too: its sub-agent (waiting for messages) is an orphan now.
  await selectThread('Research');
  await page.locator('#task-tree .task-node[data-orphaned="true"][data-type="sub_agent"]').waitFor(WAIT);
  await selectThread('Release');
  // A restored orphan has no live body: as in awaken, a message to it finds no task.
  await page.fill('#msg-to', agent);
  await page.click('#msg-send');
  await page.locator('#msg-result[data-code="TaskNotFound"]').waitFor(WAIT);
  assert.match(await page.textContent('#msg-result'), /restored from a snapshot/);
  await page.locator(cardSel(dl)).scrollIntoViewIfNeeded();
  await shot('desktop-orphans');
});

test('manual clock: time moves only when stepped, and the same steps give the same output', async () => {
  await page.getByRole('radio', { name: 'Manual' }).check();
  await page.waitForFunction(() => document.body.dataset.clock === 'manual', null, WAIT);
  await page.locator('#step-buttons:not([hidden])').waitFor(WAIT);
  assert.match(await page.textContent('#banner-text'), /manual clock: the manager was recreated\. .*nothing was running/);
  assert.equal(await page.getAttribute('#clock-now', 'data-offset'), '0');

  const sh = await spawnVia('#spawn-shell');
  const lines = (n) => explained(page.waitForFunction(([sel, k]) => document.querySelector(sel)?.dataset.lines === String(k), [`${cardSel(sh)} .task-output`, n], WAIT));
  const offset = (ms) => page.waitForFunction((v) => document.querySelector('#clock-now').dataset.offset === String(v), ms, WAIT);
  await lines(1); // the body started at once (spawn then runUntilIdle); its first line is out
  await page.click('#step-100');
  await offset(100);
  await page.click('#step-100');
  await offset(200);
  assert.equal(await page.getAttribute(`${cardSel(sh)} .task-output`, 'data-lines'), '1', 'nothing happens before 250 ms');
  await page.click('#step-1000');
  await offset(1200);
  await lines(5); // lines at 0, 250, 500, 750, 1000 ms
  assert.equal(await page.getAttribute(nodeSel(sh), 'data-status'), 'running');

  const dl = await spawnVia('#spawn-download');
  assert.equal(await progressOf(dl), 0);
  await page.click('#step-1000');
  await offset(2200);
  // Shell: 4 more lines (1250…2000); download: steps at 150…900 ms → 6 of 20 = 30 %.
  await lines(9);
  await page.waitForFunction((sel) => document.querySelector(sel)?.dataset.value === '30', `${cardSel(dl)} progress`, WAIT);
  assert.match(await page.textContent('#event-log .log-label'), /after \+1\.00 s \(100 × advance\(10\)/);
  await page.click('#step-1000');
  await page.click('#step-1000');
  await offset(4200);
  assert.equal(await waitStatus(sh, 'completed'), 'completed');
  assert.match(await page.textContent(`${cardSel(sh)} .task-meta`), /took 2\.75 s/, 'exactly 11 × 250 ms on the manual clock');
  await page.waitForFunction((sel) => document.querySelector(sel)?.dataset.value === '100', `${cardSel(dl)} progress`, WAIT);
  await waitStatus(dl, 'completed');
  assert.match(await page.textContent(`${cardSel(dl)} .task-meta`), /took 3\.00 s/);
  await shot('desktop-manual-clock', { fullPage: true });

  // Back to the system clock (the manager is recreated again from the saved snapshots).
  await page.getByRole('radio', { name: 'System' }).check();
  await page.waitForFunction(() => document.body.dataset.clock === 'system', null, WAIT);
  await page.locator('#step-buttons').waitFor({ state: 'hidden', ...WAIT });
});

test('concurrency 1 per thread: a second task waits queued and starts when the first ends; a hung API call times out', async () => {
  await page.getByRole('radio', { name: 'Manual' }).check();
  await page.waitForFunction(() => document.body.dataset.clock === 'manual', null, WAIT);
  await page.selectOption('#per-thread', '1');
  await page.waitForFunction(() => document.body.dataset.perThread === '1', null, WAIT);
  await page.waitForFunction(() => /Concurrency set to at most 1 running per thread/.test(document.querySelector('#banner-text').textContent), null, WAIT);
  assert.equal(await page.inputValue('#per-thread'), '1');
  const offset = (ms) => page.waitForFunction((v) => document.querySelector('#clock-now').dataset.offset === String(v), ms, WAIT);
  const lines = (id) => page.getAttribute(`${cardSel(id)} .task-output`, 'data-lines');

  const first = await spawnVia('#spawn-shell');
  const second = await spawnVia('#spawn-shell');
  await explained(page.locator(`${nodeSel(first)}[data-queued="false"]`).waitFor(WAIT));
  assert.equal(await waitStatus(first, 'running'), 'running');
  await explained(page.locator(`${nodeSel(second)}[data-queued="true"]`).waitFor(WAIT));
  assert.equal(await page.getAttribute(nodeSel(second), 'data-status'), 'running', 'a queued task is running in awaken terms');
  assert.equal((await page.textContent(`${cardSel(second)} .chip`)).trim(), 'queued');
  assert.match(await page.textContent(`${cardSel(second)} .task-meta`), /queued for .*waits for a slot/);
  assert.equal(await page.isVisible(`${cardSel(second)} .task-output`), false, 'its body has not run');
  assert.equal(await page.textContent('#stats [data-stat="queued"]'), '1');
  assert.equal(await page.textContent('#tab-chat-release .tab-badge'), '1 running · 1 queued');

  // Step 100 ms at a time: the second waits as long as the first runs, and starts in the slot it frees.
  let at = 0;
  while ((await page.getAttribute(nodeSel(first), 'data-status')) === 'running') {
    assert.equal(await page.getAttribute(nodeSel(second), 'data-queued'), 'true', `still waiting at +${at} ms while the first runs`);
    assert.ok(at < 4000, 'a shell job ends within 4 s');
    await page.click('#step-100');
    await offset((at += 100));
  }
  assert.equal(await waitStatus(first, 'completed'), 'completed');
  await explained(page.locator(`${nodeSel(second)}[data-queued="false"]`).waitFor(WAIT));
  assert.equal(await waitStatus(second, 'running'), 'running');
  assert.ok(Number(await lines(second)) >= 1, 'its body runs now');
  assert.equal(await page.textContent('#stats [data-stat="queued"]'), '0');
  await page.getByRole('button', { name: `Cancel ${second}`, exact: true }).click();
  assert.equal(await waitStatus(second, 'cancelled'), 'cancelled');

  // A call whose server never answers: its 2 s deadline (timeoutMs, shown on the card) ends it.
  const hung = await spawnVia('#spawn-hung');
  assert.equal(await waitStatus(hung, 'running'), 'running');
  assert.match(await page.textContent(`${cardSel(hung)} .task-meta`), /timeout 2\.00 s/);
  await page.click('#step-1000');
  await offset((at += 1000));
  assert.equal(await page.getAttribute(nodeSel(hung), 'data-status'), 'running', 'before its deadline');
  assert.match(await page.textContent(`${cardSel(hung)} .task-status-line`), /no response after 1000 ms/);
  await page.click('#step-1000');
  await offset((at += 1000));
  assert.equal(await waitStatus(hung, 'failed'), 'failed');
  assert.equal(await page.textContent(`${cardSel(hung)} .task-outcome`), 'Error: task timed out after 2000 ms');
  await page.locator(`#event-log li[data-kind="failed"][data-task-id="${hung}"]`).waitFor(WAIT);
  await shot('desktop-concurrency-timeout', { fullPage: true });

  // Back to no limit and the system clock.
  await page.selectOption('#per-thread', 'unlimited');
  await page.waitForFunction(() => document.body.dataset.perThread === 'unlimited', null, WAIT);
  await page.getByRole('radio', { name: 'System' }).check();
  await page.waitForFunction(() => document.body.dataset.clock === 'system', null, WAIT);
});

test('screenshots at 1280×800 and at 390 px phone width; no horizontal scrolling', async () => {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.click('#banner-close');
  await spawnVia('#spawn-download');
  const agent = await spawnVia('#spawn-agent');
  await spawnVia('#spawn-shell');
  await page.waitForFunction((sel) => document.querySelectorAll(sel).length >= 3, `${nodeSel(agent)} > .tree-children > .task-node`, WAIT);
  await shot('desktop');
  await page.locator('#task-tree-heading').evaluate((el) => el.scrollIntoView({ block: 'start' }));
  await shot('desktop-tree');
  await shot('desktop-full', { fullPage: true });
  assert.ok((await page.evaluate(() => document.documentElement.scrollWidth)) <= 1280);

  await page.setViewportSize({ width: 390, height: 844 });
  await page.evaluate(() => window.scrollTo(0, 0));
  assert.ok((await page.evaluate(() => document.documentElement.scrollWidth)) <= 390, 'no sideways scrolling on a phone');
  await shot('phone');
  await page.locator('#task-tree-heading').scrollIntoViewIfNeeded();
  await shot('phone-tree');
  await shot('phone-full', { fullPage: true });
  await page.setViewportSize({ width: 1280, height: 800 });
});

test('two tabs: the newest one owns the threads; the other says so, stops saving, and takes them back on reload', async () => {
  const running = await spawnVia('#spawn-agent'); // runs until told to finish
  await saveSeq().then((n) => page.waitForFunction((k) => Number(document.querySelector('#save-status').dataset.seq) >= k + 2, n, WAIT));

  // A second tab of the same origin: it claims every thread; the first tab is told at once.
  const second = watchOther(await context.newPage());
  await second.goto(`${origin}/`);
  await second.waitForFunction(() => document.body.dataset.ready === 'true', null, WAIT);
  await second.locator('#owner-note[data-ownership="owned"]').waitFor(WAIT);
  await explained(page.locator('#owner-note[data-ownership="lost"]').waitFor(WAIT));
  assert.match(await page.textContent('#owner-text'), /Another tab took over “Release”\..*no longer saved\. Reload to take it back\./);
  assert.equal(await page.isVisible('#owner-reload'), true);
  for (const t of ['release', 'research', 'support']) {
    assert.equal(await page.getAttribute(`#tab-chat-${t}`, 'data-ownership'), 'lost', `${t}: taken over too`);
    assert.equal(await page.isVisible(`#tab-chat-${t} .tab-owner`), true);
  }
  assert.equal(await page.isDisabled('#spawn-download'), true, 'no new work in a thread this tab cannot save');
  // The task that was running here is an orphan in the new owner (nothing runs it there).
  await second.locator(`.task-node[data-task-id="${running}"][data-orphaned="true"]`).waitFor(WAIT);
  await shot('two-tabs-taken-over', { fullPage: false });

  // The owner works on; what it saves stays, whatever the first tab still does in memory.
  await second.click('#spawn-shell');
  await second.waitForFunction(() => document.querySelector('#save-status').dataset.state === 'saved', null, WAIT);
  const seq2 = Number(await second.getAttribute('#save-status', 'data-seq'));
  await second.waitForFunction((k) => Number(document.querySelector('#save-status').dataset.seq) >= k + 1, seq2, WAIT);
  const owned = JSON.parse(await second.textContent('#snapshot-json'));
  // The first tab can still stop its own work, but the change is not saved over the owner's.
  await page.getByRole('button', { name: `Cancel ${running}`, exact: true }).click();
  assert.equal(await waitStatus(running, 'cancelled'), 'cancelled');
  await page.locator('#save-status[data-state="lost"]').waitFor(WAIT);
  assert.match(await page.textContent('#save-status'), /another tab owns/);

  // "Reload to take it back": the first tab owns the threads again, with the second tab's tasks.
  await page.click('#owner-reload');
  await page.waitForFunction(() => document.body.dataset.ready === 'true', null, WAIT);
  await page.locator('#owner-note[data-ownership="owned"]').waitFor(WAIT);
  await second.locator('#owner-note[data-ownership="lost"]').waitFor(WAIT);
  for (const id of Object.keys(owned.tasks)) await page.locator(nodeSel(id)).waitFor({ state: 'attached', ...WAIT });
  assert.equal(await page.getAttribute(nodeSel(running), 'data-orphaned'), 'true', "the owner's state, not the cancel the first tab could not save");
  assert.equal(await page.isDisabled('#spawn-download'), false);
  await second.close();
});

test('"Clear saved state" empties every thread, in memory and in IndexedDB', async () => {
  await page.click('#reset');
  await page.locator('#tree-empty').waitFor({ state: 'visible', ...WAIT });
  assert.match(await page.textContent('#action-status'), /Saved state cleared/);
  await page.reload();
  await ready();
  await page.locator('#tree-empty').waitFor({ state: 'visible', ...WAIT });
  assert.equal(await page.isHidden('#banner'), true, 'nothing to restore');
  for (const t of ['release', 'research', 'support'])
    assert.equal(await page.textContent(`#tab-chat-${t} .tab-badge`), '0 tasks');
});

test('no console errors, page errors or failed requests during the whole run; no unplanned reloads', () => {
  assert.equal(navigations.length, 4, `the test's goto, two reloads and the take-back reload only (no dev-server reloads): ${navigations.join(', ')}`);
  assert.deepEqual(pageErrors, []);
  assert.deepEqual(consoleErrors, []);
  assert.deepEqual(failedRequests, []);
});
