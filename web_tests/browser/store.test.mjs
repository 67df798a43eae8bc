// IndexedDbStore's ownership and id blocks in headless Chromium (real IndexedDB and Web Locks),
// with two or three tabs of one origin: claims that fence a taken-over tab's saves, onLost through
// a stolen Web Lock, id blocks disjoint across tabs, the upgrade of a version-1 database.
// The page (page/store.html) imports the store alone, not the manager.
// Run: cd web_tests && node --test browser/store.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { startServer, importMapFor, JS_DIR } from './server.mjs';
import { CHROMIUM, CHROMIUM_ARGS } from './chromium.mjs';

const WAIT = { timeout: 20_000 };

let server;
let browser;
let context;
const pages = {};
const consoleErrors = [];
const pageErrors = [];

function watch(p) {
  p.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(`${msg.text()} @ ${JSON.stringify(msg.location())}`);
  });
  p.on('pageerror', (err) => pageErrors.push(String(err?.stack ?? err)));
  return p;
}

async function openTab(name) {
  const p = watch(await context.newPage());
  await p.goto(`${server.origin}/store.html?tab=${name}`);
  await p.waitForFunction(() => window.storeTestReady === true, null, WAIT);
  pages[name] = p;
  return p;
}

/** Runs storeTest[fn](...args) in a tab. */
function inTab(tab, fn, ...args) {
  return pages[tab].evaluate(([f, a]) => window.storeTest[f](...a), [fn, args]);
}

/** A store method in a tab; returns its value, or fails the test with the error it threw. */
async function ok(tab, key, method, ...args) {
  const r = await inTab(tab, 'call', key, method, ...args);
  assert.ok(!('error' in r), `${tab}: ${method}(${JSON.stringify(args)}) threw ${JSON.stringify(r.error)}`);
  return r.value;
}

/** A store method in a tab that must throw; returns {name, code, message}. */
async function fails(tab, key, method, ...args) {
  const r = await inTab(tab, 'call', key, method, ...args);
  assert.ok('error' in r, `${tab}: ${method}(${JSON.stringify(args)}) should have thrown, returned ${JSON.stringify(r.value)}`);
  return r.error;
}

async function waitLost(tab, key, thread) {
  await pages[tab].waitForFunction(([k, t]) => window.storeTest.lost(k).includes(t), [key, thread], WAIT);
}

/** Waits until the origin's Web Locks show `count` held locks for the thread of database `db`. */
async function waitHeld(tab, db, thread, count) {
  const name = `bgtasks:${JSON.stringify([db, 'snapshots', thread])}`;
  await pages[tab].waitForFunction(
    async ([lock, n]) => (await navigator.locks.query()).held.filter((l) => l.name === lock).length === n,
    [name, count],
    WAIT,
  );
}

function snap(...ids) {
  return {
    tasks: Object.fromEntries(
      ids.map((id) => [id, { task_id: id, owner_thread_id: 't', task_type: 'x', description: '', status: 'completed', created_at_ms: 1, parent_context: {} }]),
    ),
  };
}

let dbCounter = 0;
const freshDb = (what) => `store-test-${what}-${++dbCounter}`;

before(async () => {
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

test('a version-1 database upgrades in place: its snapshots stay, owners and meta are added', async () => {
  const db = freshDb('v1');
  const records = { 'chat-1': snap('bg_0', 'bg_3'), 'chat-2': snap('bg_41', 'custom_id') };
  await inTab('A', 'makeV1', db, records);
  const v1 = await inTab('A', 'inspect', db);
  assert.deepEqual([v1.version, v1.stores], [1, ['snapshots']]);

  await inTab('A', 'open', 'up', db);
  assert.deepEqual(await ok('A', 'up', 'load', 'chat-1'), records['chat-1']);
  assert.deepEqual(await ok('A', 'up', 'load', 'chat-2'), records['chat-2']);
  assert.deepEqual((await ok('A', 'up', 'threads')).sort(), ['chat-1', 'chat-2']);
  const v2 = await inTab('A', 'inspect', db);
  assert.equal(v2.version, 2);
  assert.deepEqual(v2.stores, ['meta', 'owners', 'snapshots']);
  assert.deepEqual(v2.records.snapshots, records, 'the upgrade kept every snapshot as it was');
  assert.equal(await ok('A', 'up', 'reserveIds', 5), 42, 'the first block starts above bg_41');

  // Opened again (another tab, same schema): nothing changes.
  await inTab('B', 'open', 'up', db);
  assert.deepEqual(await ok('B', 'up', 'load', 'chat-1'), records['chat-1']);
  assert.equal(await ok('B', 'up', 'reserveIds', 1), 47);
  const again = await inTab('B', 'inspect', db);
  assert.equal(again.version, 2);
  assert.deepEqual(again.records.meta, { nextId: 48 });

  // Another storeName in the same database gets its own three object stores.
  await inTab('A', 'open', 'other', db, { storeName: 'jobs' });
  await ok('A', 'other', 'save', 'chat-1', snap('bg_7'));
  assert.equal(await ok('A', 'other', 'reserveIds', 2), 8, "its ids follow its own snapshots, not the default store's");
  const three = await inTab('A', 'inspect', db);
  assert.equal(three.version, 3);
  assert.deepEqual(three.stores, ['jobs', 'jobs.meta', 'jobs.owners', 'meta', 'owners', 'snapshots']);
  // The tabs' connections let the upgrade through (they close when another one needs a newer version).
  assert.deepEqual(await ok('B', 'up', 'load', 'chat-2'), records['chat-2']);
  assert.deepEqual(await ok('A', 'up', 'load', 'chat-1'), records['chat-1']);
  for (const tab of ['A', 'B']) await inTab(tab, 'close', 'up');
  await inTab('A', 'close', 'other');
});

test('reserveIds starts above the bg_N ids of every stored snapshot; saves and raiseIdFloor keep it above', async () => {
  const db = freshDb('ids');
  await inTab('A', 'open', 'ids', db);
  await inTab('A', 'open', 'empty', freshDb('empty'));
  assert.equal(await ok('A', 'empty', 'reserveIds', 3), 0, 'an empty database starts at 0');
  assert.equal(await ok('A', 'empty', 'reserveIds', 3), 3);
  await inTab('A', 'close', 'empty');

  await ok('A', 'ids', 'save', 'a', snap('bg_0', 'bg_9', 'bg_2'));
  await ok('A', 'ids', 'save', 'b', snap('bg_100', 'not_an_id', 'bg_x'));
  await ok('A', 'ids', 'save', 'c', { tasks: {} });
  assert.equal(await ok('A', 'ids', 'reserveIds', 10), 101, 'largest stored id bg_100, + 1');
  assert.equal(await ok('A', 'ids', 'reserveIds', 1), 111);
  // A snapshot saved later with higher ids (a manager that numbered them itself) moves the counter.
  await ok('A', 'ids', 'save', 'd', snap('bg_500'));
  assert.equal(await ok('A', 'ids', 'reserveIds', 1), 501);
  await ok('A', 'ids', 'raiseIdFloor', 1000);
  assert.equal(await ok('A', 'ids', 'reserveIds', 1), 1000);
  await ok('A', 'ids', 'raiseIdFloor', 5);
  assert.equal(await ok('A', 'ids', 'reserveIds', 1), 1001, 'a lower floor changes nothing');
  // Deleting a thread does not give its ids back.
  await ok('A', 'ids', 'delete', 'd');
  assert.equal(await ok('A', 'ids', 'reserveIds', 1), 1002);
  await inTab('A', 'close', 'ids');
});

test('concurrent reserveIds from two tabs: disjoint blocks that together cover a range without gaps', async () => {
  const db = freshDb('race');
  const countsA = Array.from({ length: 60 }, (_, i) => 1 + (i % 7));
  const countsB = Array.from({ length: 60 }, (_, i) => 1 + ((i * 3) % 11));
  for (const tab of ['A', 'B']) await inTab(tab, 'open', 'race', db);
  await ok('A', 'race', 'save', 'seed', snap('bg_9')); // both tabs have the database open first
  await ok('B', 'race', 'threads');
  await inTab('A', 'armReserve', 'race', countsA);
  await inTab('B', 'armReserve', 'race', countsB);
  await inTab('A', 'go'); // starts A directly and B through a BroadcastChannel
  const [a, b] = await Promise.all([inTab('A', 'reserved'), inTab('B', 'reserved')]);
  assert.ok(!a.error && !b.error, JSON.stringify({ a: a.error, b: b.error }));
  const blocks = [...a.value.map((x) => ({ ...x, tab: 'A' })), ...b.value.map((x) => ({ ...x, tab: 'B' }))].sort((x, y) => x.first - y.first);
  let next = 10; // above bg_9
  for (const block of blocks) {
    assert.equal(block.first, next, `block ${JSON.stringify(block)} follows the previous one without overlap or gap`);
    next = block.first + block.count;
  }
  const total = [...countsA, ...countsB].reduce((s, n) => s + n, 0);
  assert.equal(next, 10 + total);
  // The two tabs' requests really interleaved (else this test would prove nothing about races).
  const switches = blocks.filter((block, i) => i > 0 && block.tab !== blocks[i - 1].tab).length;
  assert.ok(switches > 1, `the tabs' blocks interleave (${switches} switches)`);
  for (const tab of ['A', 'B']) await inTab(tab, 'close', 'race');
});

test("a claim in tab B fences tab A: A's save with its epoch is refused (StaleOwner) and writes nothing; A's onLost fires", async () => {
  const db = freshDb('own');
  for (const tab of ['A', 'B']) await inTab(tab, 'open', 's', db);
  const { epoch: e1 } = await ok('A', 's', 'claim', 't', { owner: 'tab A', recordLost: true });
  assert.ok(Number.isSafeInteger(e1) && e1 >= 1);
  await waitHeld('A', db, 't', 1);
  const first = snap('bg_0');
  await ok('A', 's', 'save', 't', first, { epoch: e1 });
  assert.deepEqual(await ok('B', 's', 'load', 't'), first);

  const { epoch: e2 } = await ok('B', 's', 'claim', 't', { owner: 'tab B', recordLost: true });
  assert.ok(e2 > e1, `the new epoch ${e2} is above ${e1}`);
  await waitLost('A', 's', 't'); // through the stolen Web Lock, before A writes anything
  await waitHeld('B', db, 't', 1);

  const err = await fails('A', 's', 'save', 't', snap('bg_0', 'bg_1'), { epoch: e1 });
  assert.deepEqual(err, {
    name: 'BgTasksError',
    code: 'StaleOwner',
    isBgTasksError: true,
    message: `thread 't' was taken over by another owner (epoch ${e2}; this writer holds epoch ${e1}): the write was refused`,
  });
  assert.deepEqual(await ok('A', 's', 'load', 't'), first, 'the refused save changed nothing');
  const stored = await inTab('A', 'inspect', db);
  assert.equal(stored.records.meta.nextId, undefined, 'nor the id counter');
  assert.deepEqual({ ...stored.records.owners.t, at: 0 }, { epoch: e2, owner: 'tab B', at: 0 });
  const who = await ok('A', 's', 'owner', 't');
  assert.deepEqual([who.epoch, who.owner], [e2, 'tab B']);
  assert.ok(Math.abs(who.at - Date.now()) < 60_000, 'at: when it was claimed (ms since the epoch)');
  assert.equal(await ok('A', 's', 'owner', 'never-claimed'), null);

  const second = snap('bg_0', 'bg_5');
  await ok('B', 's', 'save', 't', second, { epoch: e2 });
  assert.deepEqual(await ok('A', 's', 'load', 't'), second);
  assert.deepEqual(await inTab('B', 'lost', 's'), [], "B, the owner, was not told it lost");
  // A save without an epoch is unconditional, as before ownership existed.
  await ok('A', 's', 'save', 'u', snap('bg_2'));
  assert.deepEqual(await ok('B', 's', 'load', 'u'), snap('bg_2'));

  // A takes it back by claiming again: B is told.
  const { epoch: e3 } = await ok('A', 's', 'claim', 't', { owner: 'tab A', recordLost: true });
  assert.ok(e3 > e2);
  await waitLost('B', 's', 't');
  assert.equal((await fails('B', 's', 'save', 't', first, { epoch: e2 })).code, 'StaleOwner');
  await ok('A', 's', 'save', 't', first, { epoch: e3 });
  for (const tab of ['A', 'B']) await inTab(tab, 'close', 's');
  await waitHeld('A', db, 't', 0);
});

test('release gives up the lock but keeps the epoch; close releases every lock; delete drops the owner record', async () => {
  const db = freshDb('rel');
  for (const tab of ['A', 'B']) await inTab(tab, 'open', 'r', db);
  const { epoch } = await ok('A', 'r', 'claim', 'x', { owner: 'A', recordLost: true });
  await waitHeld('A', db, 'x', 1);
  await ok('A', 'r', 'release', 'x');
  await waitHeld('A', db, 'x', 0);
  await ok('A', 'r', 'save', 'x', snap('bg_1'), { epoch }); // still the newest epoch
  const { epoch: eb } = await ok('B', 'r', 'claim', 'x', { owner: 'B', recordLost: true });
  assert.equal((await fails('A', 'r', 'save', 'x', snap('bg_2'), { epoch })).code, 'StaleOwner');
  assert.deepEqual(await inTab('A', 'lost', 'r'), [], 'a released claim is not reported lost');

  // release with an epoch gives up only the claim that got it.
  const { epoch: k1 } = await ok('A', 'r', 'claim', 'k', { owner: 'A', recordLost: true });
  const { epoch: k2 } = await ok('A', 'r', 'claim', 'k', { owner: 'A again', recordLost: true });
  await ok('A', 'r', 'release', 'k', { epoch: k1 });
  await waitHeld('A', db, 'k', 1);
  await ok('A', 'r', 'release', 'k', { epoch: k2 });
  await waitHeld('A', db, 'k', 0);
  assert.deepEqual(await inTab('A', 'lost', 'r'), [], 'claiming again from the same store is no loss');

  // close() in B lets go of its lock: a later claim from A steals nothing, B hears nothing.
  await ok('B', 'r', 'claim', 'y', { owner: 'B', recordLost: true });
  await waitHeld('B', db, 'y', 1);
  await inTab('B', 'close', 'r');
  await waitHeld('B', db, 'x', 0);
  await waitHeld('B', db, 'y', 0);
  await ok('A', 'r', 'claim', 'y', { owner: 'A', recordLost: true });
  assert.deepEqual(await inTab('B', 'lost', 'r'), []);
  // A closed store reopens on use; its epochs stay valid (only the locks were given up).
  await ok('B', 'r', 'save', 'x', snap('bg_3'), { epoch: eb });

  // delete removes the snapshot and the owner record; an old epoch cannot bring the thread back.
  const { epoch: ed } = await ok('A', 'r', 'claim', 'd', { owner: 'A' });
  await ok('A', 'r', 'save', 'd', snap('bg_4'), { epoch: ed });
  await ok('A', 'r', 'delete', 'd');
  assert.ok(!(await ok('A', 'r', 'threads')).includes('d'));
  const gone = await fails('A', 'r', 'save', 'd', snap('bg_4'), { epoch: ed });
  assert.equal(gone.code, 'StaleOwner');
  assert.equal(gone.message, `thread 'd' has no owner on record (it was deleted; this writer holds epoch ${ed}): the write was refused`);
  assert.equal(await ok('A', 'r', 'load', 'd'), null);
  assert.equal(await ok('A', 'r', 'owner', 'd'), null);
  const { epoch: again } = await ok('A', 'r', 'claim', 'd', { owner: 'A' });
  assert.ok(again > ed, 'epochs never repeat, even for a deleted thread');
  for (const tab of ['A', 'B']) await inTab(tab, 'close', 'r');
});

test('claims racing from two tabs settle on one owner: the other is told, and only the owner can save', async () => {
  const db = freshDb('claimrace');
  for (const tab of ['A', 'B']) await inTab(tab, 'open', 'c', db);
  const threads = Array.from({ length: 8 }, (_, i) => `race-${i}`);
  const claims = await Promise.all(
    threads.flatMap((t) => ['A', 'B'].map(async (tab) => ({ tab, t, epoch: (await ok(tab, 'c', 'claim', t, { owner: tab, recordLost: true })).epoch }))),
  );
  for (const t of threads) {
    const [x, y] = claims.filter((c) => c.t === t);
    const [winner, loser] = x.epoch > y.epoch ? [x, y] : [y, x];
    await waitLost(loser.tab, 'c', t);
    await waitHeld(winner.tab, db, t, 1);
    assert.ok(!(await inTab(winner.tab, 'lost', 'c')).includes(t), `${t}: the newest claim (${winner.tab}) keeps it`);
    assert.equal((await fails(loser.tab, 'c', 'save', t, snap('bg_1'), { epoch: loser.epoch })).code, 'StaleOwner');
    await ok(winner.tab, 'c', 'save', t, snap('bg_1'), { epoch: winner.epoch });
  }
  for (const tab of ['A', 'B']) await inTab(tab, 'close', 'c');
});

test('an older claim whose lock request comes last does not keep the lock: the newest epoch takes it back', async () => {
  const db = freshDb('late');
  const L = await openTab('L'); // its own tab: its lock requests are held back
  for (const tab of ['L', 'B']) await inTab(tab, 'open', 'k', db);
  await inTab('L', 'gateLocks');
  await inTab('L', 'startClaim', 'k', 't', 'L'); // epoch written, lock request held back
  await L.waitForFunction(async (name) => {
    const db = await new Promise((resolve) => (indexedDB.open(name).onsuccess = (e) => resolve(e.target.result)));
    const n = await new Promise((resolve) => (db.transaction('owners').objectStore('owners').count().onsuccess = (e) => resolve(e.target.result)));
    db.close();
    return n === 1;
  }, db, WAIT);
  const { epoch: eb } = await ok('B', 'k', 'claim', 't', { owner: 'B', recordLost: true });
  await waitHeld('B', db, 't', 1);
  await inTab('L', 'openLocks'); // L's stale request now steals B's lock
  const { value: { epoch: el } } = await inTab('L', 'claimed');
  assert.ok(eb > el);
  await waitLost('L', 'k', 't');
  await waitHeld('B', db, 't', 1);
  assert.deepEqual(await inTab('B', 'lost', 'k'), [], 'B holds the newest epoch: it is not told it lost');
  await ok('B', 'k', 'save', 't', snap('bg_0'), { epoch: eb });
  assert.equal((await fails('L', 'k', 'save', 't', snap('bg_1'), { epoch: el })).code, 'StaleOwner');
  for (const tab of ['L', 'B']) await inTab(tab, 'close', 'k');
  await L.close();
});

test('without Web Locks (an old browser) the epoch alone still fences', async () => {
  const db = freshDb('nolocks');
  const C = await openTab('C');
  assert.equal(await inTab('C', 'hideLocks'), true);
  await inTab('C', 'open', 'n', db);
  await inTab('A', 'open', 'n', db);
  const { epoch: ec } = await ok('C', 'n', 'claim', 't', { owner: 'C', recordLost: true });
  await ok('C', 'n', 'save', 't', snap('bg_0'), { epoch: ec });
  await ok('A', 'n', 'claim', 't', { owner: 'A', recordLost: true });
  assert.equal((await fails('C', 'n', 'save', 't', snap('bg_1'), { epoch: ec })).code, 'StaleOwner');
  assert.deepEqual(await ok('A', 'n', 'load', 't'), snap('bg_0'));
  await ok('C', 'n', 'release', 't');
  await inTab('C', 'close', 'n');
  await inTab('A', 'close', 'n');
  await C.close();
});

test('bad arguments are TypeErrors naming what was wrong', async () => {
  const db = freshDb('args');
  await inTab('A', 'open', 'g', db);
  const cases = [
    ['claim', [1]],
    ['claim', ['t', { owner: 5 }]],
    ['claim', ['t', { onLost: 'no' }]],
    ['claim', ['t', { steal: true }]],
    ['save', ['t', { tasks: {} }, { epoch: 0 }]],
    ['save', ['t', { tasks: {} }, { epoch: 1.5 }]],
    ['save', ['t', { tasks: {} }, { epic: 1 }]],
    ['reserveIds', [0]],
    ['reserveIds', [-1]],
    ['reserveIds', ['3']],
    ['reserveIds', [2 ** 40]],
    ['raiseIdFloor', [-1]],
    ['raiseIdFloor', [null]],
    ['release', [undefined]],
    ['owner', [7]],
    ['release', ['t', { epoch: -2 }]],
  ];
  const got = [];
  for (const [method, args] of cases) {
    const e = await fails('A', 'g', method, ...args);
    got.push(`${method}: ${e.name}: ${e.message}`);
  }
  assert.deepEqual(got, [
    'claim: TypeError: thread must be a string, got number 1',
    'claim: TypeError: options.owner must be a string, got number 5',
    'claim: TypeError: options.onLost must be a function, got string no',
    "claim: TypeError: options: unknown option 'steal' (allowed: owner, onLost)",
    'save: TypeError: options.epoch must be an epoch returned by claim() (an integer >= 1), got 0',
    'save: TypeError: options.epoch must be an epoch returned by claim() (an integer >= 1), got 1.5',
    "save: TypeError: options: unknown option 'epic' (allowed: epoch)",
    'reserveIds: TypeError: count must be an integer from 1 to 4294967296, got 0',
    'reserveIds: TypeError: count must be an integer from 1 to 4294967296, got -1',
    'reserveIds: TypeError: count must be an integer from 1 to 4294967296, got string',
    'reserveIds: TypeError: count must be an integer from 1 to 4294967296, got 1099511627776',
    'raiseIdFloor: TypeError: next must be an integer from 0 to 9007199254740991, got number -1',
    'raiseIdFloor: TypeError: next must be an integer from 0 to 9007199254740991, got null',
    'release: TypeError: thread must be a string, got undefined',
    'owner: TypeError: thread must be a string, got number 7',
    'release: TypeError: options.epoch must be an epoch returned by claim() (an integer >= 1), got -2',
  ]);
  const reserved = await inTab('A', 'open', 'bad', db, { storeName: 'owners' });
  assert.equal(reserved.error?.name, 'TypeError');
  assert.match(reserved.error.message, /options\.storeName 'owners' is reserved/);
  await inTab('A', 'close', 'g');
});

test('no console or page errors in any tab', () => {
  assert.deepEqual(pageErrors, []);
  assert.deepEqual(consoleErrors, []);
});
