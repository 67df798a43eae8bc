// PostgresStore against a real server (a throw-away cluster, _postgres.mjs): schema set-up and
// version, id blocks, the fenced write, lease takeover and release, corrupt rows, pool ownership.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createTaskManager, BgTasksError } from 'bgtasks';
import { PostgresStore, SCHEMA_VERSION } from 'bgtasks/postgres';
import { createRequire } from 'node:module';
import { postgresAvailable, startCluster } from './_postgres.mjs';

// pg as bgtasks resolves it (the tests use it to create databases and edit rows by hand).
const pg = createRequire(import.meta.resolve('bgtasks/postgres'))('pg');
const ORPHANED = 'task orphaned: runtime restarted while running';
const avail = await postgresAvailable();
const cluster = avail.skip ? null : await startCluster(after, avail.bin);
const opts = { skip: avail.skip, timeout: 60_000 };

// A fresh database per test, so that tests do not see each other's rows.
let databases = 0;
async function database() {
  const name = `t${++databases}`;
  const admin = new pg.Client({ connectionString: cluster.url });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  return cluster.url.replace(/\/postgres$/, `/${name}`);
}

async function store(t, options = {}) {
  const s = new PostgresStore({ connectionString: options.url ?? (await database()), leaseMs: 500, ...options });
  t.after(() => s.close());
  return s;
}

const staleOwner = (e) => e instanceof BgTasksError && e.code === 'StaleOwner';

test('the schema is created once, on first use, with its version; stores starting together do not race', opts, async (t) => {
  const url = await database();
  const stores = await Promise.all([1, 2, 3, 4].map(() => store(t, { url })));
  const firsts = await Promise.all(stores.map((s) => s.reserveIds(10)));
  assert.deepEqual([...firsts].sort((a, b) => a - b), [0, 10, 20, 30]);
  const { rows } = await stores[0].pool.query('SELECT version FROM bgtasks_schema_version');
  assert.deepEqual(rows, [{ version: SCHEMA_VERSION }]);
  const tables = await stores[0].pool.query(`SELECT tablename FROM pg_tables WHERE tablename LIKE 'bgtasks_%' ORDER BY 1`);
  assert.deepEqual(tables.rows.map((r) => r.tablename), ['bgtasks_ids', 'bgtasks_schema_version', 'bgtasks_threads']);
});

test('a database whose schema is newer than this package is refused with a clear error', opts, async (t) => {
  const url = await database();
  const first = await store(t, { url });
  await first.reserveIds(1);
  await first.pool.query('INSERT INTO bgtasks_schema_version (version) VALUES ($1)', [SCHEMA_VERSION + 1]);
  const later = await store(t, { url });
  await assert.rejects(later.load('x'), /schema is version 2; this bgtasks knows versions up to 1/);
});

test('id blocks are disjoint, raiseIdFloor only raises, and a block past 2^53 is refused', opts, async (t) => {
  const s = await store(t);
  assert.equal(await s.reserveIds(5), 0);
  assert.equal(await s.reserveIds(3), 5);
  await s.raiseIdFloor(100);
  await s.raiseIdFloor(50);
  assert.equal(await s.reserveIds(1), 100);
  await assert.rejects(s.reserveIds(0), TypeError);
  await s.raiseIdFloor(Number.MAX_SAFE_INTEGER - 1);
  await assert.rejects(s.reserveIds(2), RangeError);
});

test('fencing in one statement: a save with an old epoch is refused with StaleOwner and changes nothing', opts, async (t) => {
  const s = await store(t);
  const { epoch: first } = await s.claim('x', { owner: 'A' });
  await s.save('x', { tasks: { bg_1: { status: 'a' } } }, { epoch: first });
  const { epoch: second } = await s.claim('x', { owner: 'A' }); // a new claim by the same owner
  assert.equal(second, first + 1);
  await assert.rejects(s.save('x', { tasks: { bg_2: {} } }, { epoch: first }), (e) => staleOwner(e) && /epoch 2; this writer holds epoch 1/.test(e.message));
  assert.deepEqual(await s.load('x'), { tasks: { bg_1: { status: 'a' } } });
  await s.save('x', { tasks: { bg_3: {} } }, { epoch: second });
  assert.deepEqual(await s.load('x'), { tasks: { bg_3: {} } });
  await s.delete('x');
  assert.equal(await s.load('x'), null);
  await assert.rejects(s.save('x', { tasks: {} }, { epoch: second }), staleOwner, 'an owner of a deleted thread is refused');
  assert.deepEqual(await s.threads(), []);
});

test("takeover: another owner's live lease is waited out; a lease whose holder stopped renewing is taken", opts, async (t) => {
  const url = await database();
  const a = await store(t, { url, leaseMs: 300 });
  const b = await store(t, { url, leaseMs: 300, claimTimeoutMs: 200 });
  const { epoch } = await a.claim('x', { owner: 'A' });
  await a.save('x', { tasks: { bg_0: {} } }, { epoch });
  // A renews its lease while it lives: B gives up after its timeout.
  await assert.rejects(b.claim('x', { owner: 'B' }), (e) => staleOwner(e) && /held by owner 'A'/.test(e.message));
  // A stops renewing (as a dead process does) without letting go: B takes over once the lease ends.
  await a.close();
  const b2 = await store(t, { url, leaseMs: 300 });
  const taken = await b2.claim('x', { owner: 'B' });
  assert.equal(taken.epoch, epoch + 1);
  assert.ok((await b2.owner('x')).leaseUntil > Date.now() - 60_000);
  await assert.rejects(b2.save('x', { tasks: {} }, { epoch }), staleOwner);
  assert.deepEqual(await b2.load('x'), { tasks: { bg_0: {} } });
});

test('a renewal that finds the thread taken over tells the owner (onLost) before its next write', opts, async (t) => {
  const url = await database();
  const a = await store(t, { url, leaseMs: 60 });
  let lost;
  const gone = new Promise((resolve) => (lost = resolve));
  const { epoch } = await a.claim('x', { owner: 'A', onLost: lost });
  // Another owner forces the epoch up (as a takeover after expiry does).
  await a.pool.query('UPDATE bgtasks_threads SET epoch = epoch + 1 WHERE thread = $1', ['x']);
  assert.equal(await gone, 'x');
  await assert.rejects(a.save('x', { tasks: {} }, { epoch }), staleOwner);
});

test('a disposed manager lets its threads go: the next one claims them at once and resumes them', opts, async (t) => {
  const url = await database();
  const first = new PostgresStore({ connectionString: url, leaseMs: 60_000, claimTimeoutMs: 0 });
  const m1 = await createTaskManager({ store: first });
  const done = m1.spawn({ thread: 'x', type: 'job', description: 'done' }, async () => 1);
  const running = m1.spawn({ thread: 'x', type: 'job', description: 'runs' }, () => new Promise(() => {}));
  await m1.wait(done);
  await m1.flush();
  m1.dispose();
  await first.close();

  const second = await store(t, { url, leaseMs: 60_000, claimTimeoutMs: 0 }); // no waiting: the lease was released
  const m2 = await createTaskManager({ store: second });
  t.after(() => m2.dispose());
  assert.deepEqual(await m2.resume('x'), { added: 2, skipped: [] });
  assert.equal(m2.get(done).status, 'completed');
  assert.equal(m2.get(running).error, ORPHANED);
});

test('a corrupt row is refused on resume with InvalidSnapshot naming the thread; other threads still resume', opts, async (t) => {
  const url = await database();
  const s1 = new PostgresStore({ connectionString: url });
  const m1 = await createTaskManager({ store: s1 });
  const ids = {};
  for (const thread of ['good', 'bad', 'shape']) {
    ids[thread] = m1.spawn({ thread, type: 'job', description: thread }, async () => thread);
    await m1.wait(ids[thread]);
  }
  await m1.flush();
  m1.dispose();
  await s1.close();
  const s2 = await store(t, { url });
  // Hand edits: JSON cut short, and valid JSON of the wrong shape.
  await s2.pool.query(`UPDATE bgtasks_threads SET snapshot = left(snapshot, 20) WHERE thread = 'bad'`);
  await s2.pool.query(`UPDATE bgtasks_threads SET snapshot = '{"tasks": [1, 2]}' WHERE thread = 'shape'`);
  const errors = [];
  const m2 = await createTaskManager({ store: s2, onStoreError: (e, thread) => errors.push([e.code, thread]) });
  t.after(() => m2.dispose());
  await assert.rejects(m2.resume('bad'), (e) => e instanceof BgTasksError && e.code === 'InvalidSnapshot' && /thread 'bad'.*not valid JSON/.test(e.message));
  await assert.rejects(m2.resume('shape'), (e) => e instanceof BgTasksError && e.code === 'InvalidSnapshot' && e.message.includes("thread 'shape'"));
  assert.deepEqual(await m2.resume('good'), { added: 1, skipped: [] });
  assert.equal(m2.get(ids.good).result, 'good');
  assert.deepEqual(errors, [['InvalidSnapshot', 'bad'], ['InvalidSnapshot', 'shape']]);
  assert.equal(m2.ownership('bad'), 'failed');
});

test("payloads jsonb would refuse (NUL, lone surrogates) round-trip", opts, async (t) => {
  const s = await store(t);
  const snapshot = { tasks: { bg_0: { description: 'a\u0000b \ud800 c' } } };
  await s.save('x', snapshot);
  assert.deepEqual(await s.load('x'), snapshot);
});

test("close() ends only a pool the store opened; the caller's pool stays usable", opts, async (t) => {
  const pool = new pg.Pool({ connectionString: await database() });
  t.after(() => pool.end());
  const s = new PostgresStore(pool, { leaseMs: 1000 });
  assert.equal(s.pool, pool);
  assert.equal(s.leaseMs, 1000);
  await s.save('x', { tasks: {} });
  await s.close();
  assert.deepEqual((await pool.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
  await assert.rejects(s.load('x'), /PostgresStore is closed/);
  assert.throws(() => new PostgresStore({ connectionString: '' }), TypeError);
  assert.throws(() => new PostgresStore(undefined), TypeError);
  assert.throws(() => new PostgresStore(pool, { leaseMs: 0 }), TypeError);
});
