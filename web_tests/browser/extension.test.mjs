// examples/browser-extension in headless Chromium: the unpacked Manifest V3 extension (the package
// vendored into it by its vendor.mjs) is loaded with --load-extension; its module service worker
// runs tasks under the extension CSP (script-src 'self' 'wasm-unsafe-eval') and persists them to
// IndexedDB, which a browser restart on the same profile reads back.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { access, cp, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { chromium } from 'playwright-core';
import { JS_DIR, REPO } from './server.mjs';
import { CHROMIUM, CHROMIUM_ARGS } from './chromium.mjs';

const ORPHANED = 'task orphaned: runtime restarted while running';
const WAIT = { timeout: 30_000 };

let tmp;
let extensionDir;
let context;
let worker;
const problems = [];

async function launch() {
  context = await chromium.launchPersistentContext(join(tmp, 'profile'), {
    executablePath: CHROMIUM,
    headless: true, // the new headless mode, which loads extensions
    args: [...CHROMIUM_ARGS, `--disable-extensions-except=${extensionDir}`, `--load-extension=${extensionDir}`],
  });
  worker = context.serviceWorkers().find((w) => w.url().endsWith('/background.js')) ??
    (await context.waitForEvent('serviceworker', { predicate: (w) => w.url().endsWith('/background.js'), ...WAIT }));
  worker.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`service worker console: ${msg.text()}`);
  });
}

before(async () => {
  await access(join(JS_DIR, 'build', 'bgtasks.wasm'));
  tmp = await mkdtemp(join(tmpdir(), 'bgtasks-extension-'));
  extensionDir = join(tmp, 'extension');
  const example = join(REPO, 'examples', 'browser-extension');
  const ownVendor = join(example, 'vendor'); // a copy vendored by hand: the test makes its own
  await cp(example, extensionDir, { recursive: true, filter: (src) => src !== ownVendor && !src.startsWith(ownVendor + sep) });
  execFileSync(process.execPath, [join(extensionDir, 'vendor.mjs'), JS_DIR], { stdio: 'pipe' });
  // A page of the test's own in its copy: does the extension's policy refuse new Function? (An
  // evaluate call from the test would not tell: DevTools exempts those from the policy.)
  await writeFile(join(extensionDir, 'probe.html'), '<!doctype html><meta charset="utf-8"><script type="module" src="./probe.js"></script>');
  await writeFile(
    join(extensionDir, 'probe.js'),
    "try { new Function('return 1'); globalThis.evalProbe = 'allowed'; } catch (e) { globalThis.evalProbe = e.name; }\n",
  );
  await launch();
});

after(async () => {
  await context?.close();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

test('the service worker loads the package under the extension CSP, which refuses eval', async () => {
  assert.match(worker.url(), /^chrome-extension:\/\/[a-p]{32}\/background\.js$/);
  const scope = await worker.evaluate(() => ({ document: typeof document, window: typeof window, indexedDB: typeof indexedDB }));
  assert.deepEqual(scope, { document: 'undefined', window: 'undefined', indexedDB: 'object' });
  const status = await worker.evaluate(() => globalThis.agent.status());
  assert.deepEqual(status, { resumed: { added: 0, skipped: [] }, tasks: [] });

  const probe = await context.newPage();
  await probe.goto(`chrome-extension://${new URL(worker.url()).host}/probe.html`);
  await probe.waitForFunction(() => globalThis.evalProbe !== undefined, null, WAIT);
  assert.equal(await probe.evaluate(() => globalThis.evalProbe), 'EvalError', "the extension's pages may not eval");
  await probe.close();

  // And nothing in what the extension loads would try: no code generation in the package's files.
  const vendored = join(extensionDir, 'vendor', 'bgtasks');
  const files = [...(await readdir(join(vendored, 'src'))).map((f) => join(vendored, 'src', f)), join(vendored, 'build', 'bgtasks.mjs')];
  for (const file of files) assert.doesNotMatch(await readFile(file, 'utf8'), /\bnew Function\s*\(|\beval\s*\(/, file);
});

test('tasks run in the service worker and persist to IndexedDB across a browser restart', async () => {
  const ids = await worker.evaluate(async () => {
    const { agent } = globalThis;
    const done = await agent.spawn('https://example.com/a', 2);
    const summary = await agent.wait(done);
    const running = await agent.spawn('https://example.com/long', 100_000);
    await agent.flush();
    return { done, running, summary };
  });
  assert.equal(ids.summary.status, 'completed');
  assert.deepEqual(ids.summary.result, { url: 'https://example.com/a', words: 200 });

  await context.close();
  await launch(); // the same profile: the extension's IndexedDB is on disk
  const after = await worker.evaluate(() => globalThis.agent.status());
  assert.deepEqual(after.resumed, { added: 2, skipped: [] });
  const byId = Object.fromEntries(after.tasks.map((t) => [t.task_id, t]));
  assert.equal(byId[ids.done].status, 'completed');
  assert.deepEqual(byId[ids.done].result, { url: 'https://example.com/a', words: 200 });
  assert.equal(byId[ids.running].status, 'failed');
  assert.equal(byId[ids.running].error, ORPHANED);
});

test('the popup (an extension page) drives the worker by messages', async () => {
  const extensionId = new URL(worker.url()).host;
  const popup = await context.newPage();
  popup.on('pageerror', (err) => problems.push(`popup: ${err}`));
  popup.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`popup console: ${msg.text()}`);
  });
  await popup.goto(`chrome-extension://${extensionId}/popup.html`);
  await popup.locator('#tasks').filter({ hasText: 'bg_' }).waitFor(WAIT);
  await popup.click('#run');
  await popup.waitForFunction(() => /bg_\d+ completed fetch https:\/\/example\.com\/\n?$/.test(document.getElementById('tasks').textContent), null, WAIT);
  await popup.close();
});

test('no errors from the service worker or the popup', () => {
  assert.deepEqual(problems, []);
});
