// What ships is what is tested: `npm pack` js/ into a temp folder, install the tarball into an
// empty temp project (from the registry: idb, vite), then (a) run a Node ESM script importing
// 'bgtasks', (b) check the tarball's file list, (c) bundle a tiny browser app with `vite build`,
// serve dist/ from 127.0.0.1 and run it in Chromium (the wasm fetched by the bundled URL).
// Run: node --test web_tests/pack/  (needs the wasm build in js/build/, network to the npm registry)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { access, cp, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { startServer, JS_DIR, REPO } from '../browser/server.mjs';

const run = promisify(execFile);
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];
const SHOTS = join(REPO, 'build', 'web-tests', 'screenshots');
const FIXTURE = new URL('./fixture-app/', import.meta.url).pathname;
const NPM_FLAGS = ['--no-audit', '--no-fund', '--loglevel=error'];

let tmp;
let tarball;
let project;

async function sh(cmd, args, cwd, timeout = 300_000) {
  try {
    return await run(cmd, args, { cwd, timeout, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, NO_COLOR: '1' } });
  } catch (e) {
    throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) failed: ${e.message}\n--- stdout\n${e.stdout}\n--- stderr\n${e.stderr}`);
  }
}

before(async () => {
  await access(join(JS_DIR, 'build', 'bgtasks.wasm')).catch(() => {
    throw new Error('js/build/bgtasks.wasm is missing: build it with `cmake --preset wasm && cmake --build --preset wasm`');
  });
  tmp = await mkdtemp(join(tmpdir(), 'bgtasks-pack-'));
  const { stdout } = await sh('npm', ['pack', '--json', '--pack-destination', tmp, ...NPM_FLAGS], JS_DIR);
  const [info] = JSON.parse(stdout);
  tarball = join(tmp, info.filename);
  project = join(tmp, 'app');
  await cp(FIXTURE, project, { recursive: true });
  // One install: the tarball (and its dependency proper-lockfile) plus the fixture's devDependency vite.
  await sh('npm', ['install', tarball, ...NPM_FLAGS], project);
});

after(async () => {
  if (tmp && !process.env.KEEP_PACK_TMP) await rm(tmp, { recursive: true, force: true });
});

test('(b) the tarball holds only what ships: src/, build/bgtasks.{mjs,wasm}, index.d.ts, postgres.d.ts, package.json, README/LICENSE/NOTICE', async () => {
  const { stdout } = await sh('tar', ['-tzf', tarball], tmp);
  const files = stdout.trim().split('\n').map((f) => f.replace(/^package\//, '')).sort();
  const allowed = (f) =>
    /^src\/[\w.-]+\.js$/.test(f) ||
    ['build/bgtasks.mjs', 'build/bgtasks.wasm', 'index.d.ts', 'postgres.d.ts', 'package.json', 'README.md', 'LICENSE', 'NOTICE'].includes(f);
  assert.deepEqual(files.filter((f) => !allowed(f)), [], 'nothing else (tests, node_modules, lockfiles, sources of the build)');
  for (const required of ['package.json', 'index.d.ts', 'build/bgtasks.mjs', 'build/bgtasks.wasm', 'src/index.js', 'src/load-browser.js', 'src/load-node.js', 'src/file-store.js', 'src/file-store-unavailable.js', 'postgres.d.ts', 'src/postgres-store.js'])
    assert.ok(files.includes(required), `${required} is in the tarball`);
  const srcInRepo = (await readdir(join(JS_DIR, 'src'))).filter((f) => f.endsWith('.js')).sort();
  assert.deepEqual(files.filter((f) => f.startsWith('src/')).map((f) => f.slice(4)), srcInRepo, 'every src/ module ships');
  assert.ok(!files.some((f) => /node_modules|\.test\.|\.tgz$|package-lock/.test(f)));
  for (const doc of ['README.md', 'LICENSE', 'NOTICE']) assert.ok(files.includes(doc), `${doc} ships`);
  const shipped = JSON.parse(await readFile(join(project, 'node_modules', 'bgtasks', 'package.json'), 'utf8'));
  assert.equal(shipped.type, 'module');
  assert.equal(Object.keys(shipped.exports['.'])[0], 'types', 'exports lists types first');
});

test('(a) a Node ESM script in the empty project imports the installed package: spawn → complete → drain', async () => {
  const { stdout } = await sh(process.execPath, ['node-smoke.mjs'], project, 60_000);
  const r = JSON.parse(stdout.trim().split('\n').at(-1));
  assert.equal(r.resolved, join(project, 'node_modules', 'bgtasks', 'package.json'), 'bgtasks comes from the installed tarball');
  assert.equal(r.id, 'bg_0');
  assert.deepEqual(r.events, [
    { kind: 'custom', task_id: 'bg_0', event_type: 'progress', payload: { pct: 50 } },
    { kind: 'completed', task_id: 'bg_0', result: { ok: true } },
  ]);
  assert.equal(r.summary.status, 'completed');
  assert.equal(r.summary.completed_at_ms, 10);
  assert.deepEqual(r.loadedIds, ['bg_0'], 'FileStore (the node condition of #file-store) works from the tarball');
  assert.deepEqual(r.bgError, { isBgTasksError: true, code: 'ReservedName' });
  assert.equal(r.indexedDbStore, 'function');
});

test("(d) bgtasks/postgres resolves from the tarball and, with its optional peer pg not installed, says what is missing", async () => {
  const script = "import('bgtasks/postgres').then(() => console.log('loaded'), (e) => console.log(e.message))";
  const { stdout } = await sh(process.execPath, ['--input-type=module', '-e', script], project, 60_000);
  assert.equal(stdout.trim(), "bgtasks/postgres needs the 'pg' package next to bgtasks: npm install pg");
});

test('(c) vite build of an app importing bgtasks runs in Chromium: task completed, wasm fetched by the bundled URL', async (t) => {
  const viteVersion = JSON.parse(await readFile(join(project, 'node_modules', 'vite', 'package.json'), 'utf8')).version;
  t.diagnostic(`vite ${viteVersion}`);
  const build = await sh(process.execPath, [join(project, 'node_modules', 'vite', 'bin', 'vite.js'), 'build'], project);
  const log = `${build.stdout}\n${build.stderr}`;
  t.diagnostic(log.trim().split('\n').filter((l) => /\.(js|wasm|html)\b|warn/i.test(l)).join(' | '));
  const dist = join(project, 'dist');
  const assets = await readdir(join(dist, 'assets'));
  const wasmAssets = assets.filter((f) => f.endsWith('.wasm'));
  assert.equal(wasmAssets.length, 1, `exactly one .wasm emitted into dist/assets (got ${assets.join(', ')})`);
  const jsAssets = assets.filter((f) => f.endsWith('.js'));
  const bundle = (await Promise.all(jsAssets.map((f) => readFile(join(dist, 'assets', f), 'utf8')))).join('\n');
  assert.ok(!/node:fs|node:path|readFile\(/.test(bundle), 'the browser bundle holds no Node-only code (#load-module/#file-store resolved to their browser targets)');

  const server = await startServer({ '/': dist });
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  const problems = [];
  try {
    const page = await browser.newPage({ viewport: { width: 900, height: 600 } });
    page.on('console', (msg) => msg.type() === 'error' && problems.push(`console: ${msg.text()}`));
    page.on('pageerror', (err) => problems.push(`pageerror: ${err}`));
    page.on('response', (res) => res.status() >= 400 && problems.push(`${res.status()} ${res.url()}`));
    const wasmRequests = [];
    page.on('request', (req) => req.url().endsWith('.wasm') && wasmRequests.push(new URL(req.url()).pathname));
    await page.goto(`${server.origin}/index.html`);
    await page.waitForFunction(() => window.__result !== undefined, null, { timeout: 30_000 });
    const r = await page.evaluate(() => window.__result);
    await mkdir(SHOTS, { recursive: true });
    await page.screenshot({ path: join(SHOTS, 'pack-vite-app.png'), fullPage: true });
    assert.equal(r.error, undefined, `the bundled app failed: ${r.error}`);
    assert.equal(r.summary.status, 'completed');
    assert.deepEqual(r.summary.result, { answer: 42 });
    assert.deepEqual(r.events, [
      { kind: 'custom', task_id: r.id, event_type: 'progress', payload: { pct: 50 } },
      { kind: 'completed', task_id: r.id, result: { answer: 42 } },
    ]);
    assert.deepEqual(r.storedIds, [r.id], 'IndexedDbStore (idb bundled) saved the snapshot');
    assert.deepEqual(wasmRequests, [`/assets/${wasmAssets[0]}`], 'the wasm is fetched once, from the URL Vite emitted');
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    await server.close();
  }
});
