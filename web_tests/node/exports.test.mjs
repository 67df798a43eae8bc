import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import * as bgtasks from 'bgtasks';

const require = createRequire(import.meta.url);

test('the runtime exports are exactly the values index.d.ts declares', async () => {
  const pkgDir = require.resolve('bgtasks/package.json').replace(/package\.json$/, '');
  const dts = await readFile(`${pkgDir}index.d.ts`, 'utf8');
  const declared = [...dts.matchAll(/^export declare (?:class|function|const) (\w+)/gm)].map((m) => m[1]).sort();
  assert.deepEqual(Object.keys(bgtasks).sort(), declared);
  assert.deepEqual(declared, [
    'AgentInbox', 'BgTasksError', 'ERROR_CODES', 'FileStore', 'IndexedDbStore', 'TaskContext', 'TaskManager', 'createTaskManager',
  ]);
});

test('ERROR_CODES is frozen and indexed by the core code', () => {
  const { ERROR_CODES } = bgtasks;
  assert.ok(Object.isFrozen(ERROR_CODES));
  assert.equal(ERROR_CODES[0], undefined);
  assert.deepEqual(ERROR_CODES.slice(1), [
    'TaskNotFound', 'NotOwner', 'TaskTerminated', 'NoInbox', 'InboxClosed', 'InboxFull', 'ReservedName',
    'DuplicateName', 'StoreNotConfigured', 'UnknownKey', 'InvalidSnapshot', 'NotHostTask', 'InvalidArgument',
    'IdConflict', 'IdsUnavailable', 'StaleOwner', 'Disposed', 'ShuttingDown',
  ]);
});

test('BgTasksError carries name, code, message and optional status', () => {
  const e = new bgtasks.BgTasksError('TaskTerminated', 'task already completed', 'completed');
  assert.ok(e instanceof Error);
  assert.equal(e.name, 'BgTasksError');
  assert.equal(e.code, 'TaskTerminated');
  assert.equal(e.message, 'task already completed');
  assert.equal(e.status, 'completed');
  assert.equal('status' in new bgtasks.BgTasksError('NoInbox', 'x'), false);
});

test('the browser entry exports what the Node entry does, and reaches only its own files by relative paths', async () => {
  const pkgDir = require.resolve('bgtasks/package.json').replace(/package\.json$/, '');
  const pkg = JSON.parse(await readFile(`${pkgDir}package.json`, 'utf8'));
  assert.equal(pkg.exports['.'].browser, './src/browser.js');
  assert.deepEqual(pkg.dependencies?.idb, undefined, 'no browser-only dependency for Node to load');
  const browser = await import(new URL(pkg.exports['.'].browser, `file://${pkgDir}`).href);
  assert.deepEqual(Object.keys(browser).sort(), Object.keys(bgtasks).sort());
  // A Worker or an extension has no import map: every import below the entry must be a path.
  const seen = new Set();
  const walk = async (url) => {
    if (seen.has(url.href)) return;
    seen.add(url.href);
    const text = await readFile(url, 'utf8');
    for (const [, spec] of text.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm)) {
      if (spec === undefined) continue;
      assert.match(spec, /^\.\.?\//, `${url.pathname} imports ${spec}`);
      if (!spec.endsWith('.mjs')) await walk(new URL(spec, url)); // the glue (build/bgtasks.mjs) imports nothing
    }
  };
  await walk(new URL(pkg.exports['.'].browser, `file://${pkgDir}`));
  assert.ok(seen.size > 10, `${seen.size} modules walked`);
});
