// PostgresStore across processes, against a real server (a throw-away cluster, _postgres.mjs):
// managers in separate processes share one database (ids never collide, every task resumes in any
// process), a stalled owner is fenced out once another process takes its expired lease, and a
// child killed with SIGKILL loses nothing a resolved flush() acknowledged.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createTaskManager } from 'bgtasks';
import { PostgresStore } from 'bgtasks/postgres';
import { postgresAvailable, startCluster } from './_postgres.mjs';

const CHILD = fileURLToPath(new URL('./fixtures/postgres-child.mjs', import.meta.url));
const ORPHANED = 'task orphaned: runtime restarted while running';
const LEASE_MS = 600; // short, so that taking over a killed or stalled child's thread is quick
const pg = await postgresAvailable();
const cluster = pg.skip ? null : await startCluster(after, pg.bin);

function child(args) {
  const proc = fork(CHILD, [cluster.url, String(LEASE_MS), ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve(signal ?? code)));
  const next = () =>
    new Promise((resolve, reject) => {
      proc.once('message', resolve);
      exited.then((code) => reject(new Error(`child ${args.join(' ')} exited (${code}) without reporting`)));
    });
  return { proc, exited, next };
}

async function attached(t, options = {}) {
  const store = new PostgresStore({ connectionString: cluster.url, leaseMs: LEASE_MS, claimTimeoutMs: 60_000, ...options });
  const mgr = await createTaskManager({ store, onStoreError: () => {} });
  t.after(async () => {
    mgr.dispose();
    await store.close();
  });
  return { store, mgr };
}

test('two, then four processes spawning 1e3 tasks each into one database: ids distinct, every task resumable in any process', { skip: pg.skip, timeout: 120_000 }, async (t) => {
  const all = [];
  for (const processes of [2, 4]) {
    const runs = [];
    for (let p = 0; p < processes; p++) {
      const thread = `thread-${processes}-${p}`;
      const c = child(['many', thread, '1000']);
      runs.push(c.next().then(async (m) => ({ thread, ids: m.ids, code: await c.exited })));
    }
    for (const r of await Promise.all(runs)) {
      assert.equal(r.code, 0);
      assert.equal(r.ids.length, 1000);
      all.push(r);
    }
  }
  const ids = all.flatMap((r) => r.ids);
  assert.equal(new Set(ids).size, ids.length, `${ids.length} ids, ${ids.length - new Set(ids).size} handed out twice`);

  // Each thread resumed in a process other than the one that wrote it.
  const threads = all.map((r) => r.thread);
  const rotated = [...threads.slice(1), threads[0]];
  const readers = [0, 1].map((half) => {
    const c = child(['resume', ...rotated.filter((_, i) => i % 2 === half)]);
    return c.next().then(async (m) => (assert.equal(await c.exited, 0), m.threads));
  });
  const resumed = Object.assign({}, ...(await Promise.all(readers)));
  for (const r of all) {
    const list = resumed[r.thread];
    assert.deepEqual(list.map(([id]) => id).sort(), [...r.ids].sort(), `${r.thread}: every task resumes`);
    assert.ok(list.every(([, status]) => status === 'completed'), r.thread);
  }

  // And in this process too.
  const { mgr } = await attached(t);
  for (const r of all) {
    assert.deepEqual(await mgr.resume(r.thread), { added: 1000, skipped: [] }, r.thread);
    assert.deepEqual(mgr.list(r.thread).map((s) => s.task_id).sort(), [...r.ids].sort());
  }
});

test('fencing: a stalled owner loses its thread once its lease expires; its next write fails with StaleOwner and changes nothing', { skip: pg.skip, timeout: 120_000 }, async (t) => {
  const thread = 'x';
  const a = child(['own', thread]);
  t.after(() => a.proc.kill('SIGKILL'));
  const { ids: [completed, running] } = await a.next();

  // A stalls (a stopped process renews nothing); B's claim waits out A's lease, then takes over.
  a.proc.kill('SIGSTOP');
  const { store, mgr } = await attached(t);
  const before = await store.owner(thread);
  await mgr.resume(thread);
  const after = await store.owner(thread);
  assert.ok(after.epoch > before.epoch, `B's epoch ${after.epoch} is above A's ${before.epoch}`);
  assert.equal(mgr.ownership(thread), 'owned');
  assert.equal(mgr.get(completed).status, 'completed');
  assert.equal(mgr.get(running).status, 'failed', 'A\'s running task is orphaned');
  assert.equal(mgr.get(running).error, ORPHANED);
  const mine = mgr.spawn({ thread, type: 'job', description: 'B' }, async () => 'b');
  await mgr.wait(mine);
  await mgr.flush();
  const bState = await store.load(thread);
  assert.ok(bState.tasks[mine], 'B\'s task is saved');

  // A wakes up and writes: refused, nothing changed.
  a.proc.kill('SIGCONT');
  a.proc.send('write');
  const reply = await a.next();
  assert.equal(reply.flushed, false);
  assert.equal(reply.error.code, 'StaleOwner', reply.error.message);
  assert.equal(reply.ownership, 'lost');
  assert.deepEqual(await store.load(thread), bState, 'B\'s state is intact');
  assert.ok(!(reply.id in bState.tasks));
  assert.deepEqual((await store.owner(thread)).epoch, after.epoch);
  a.proc.send('exit');
  assert.equal(await a.exited, 0);
});

test('SIGKILL mid-stream: another process resumes everything a resolved flush() acknowledged; running tasks orphaned', { skip: pg.skip, timeout: 120_000 }, async (t) => {
  const thread = 'stream';
  const spawnedBy = new Map(); // id → run that spawned it
  const acked = new Map(); // id → newest acknowledged status
  const probe = new PostgresStore({ connectionString: cluster.url });
  t.after(() => probe.close());
  for (let run = 1; run <= 4; run++) {
    const c = child(['stream', thread]);
    const killAfter = 1 + Math.floor(Math.random() * 6); // acks to wait for before the kill
    let last;
    for (let seen = 0; seen < killAfter; seen++) last = await c.next();
    c.proc.kill('SIGKILL'); // lands wherever the child is: mid-spawn, mid-write, mid-flush
    assert.equal(await c.exited, 'SIGKILL');
    for (const id of last.spawned) {
      assert.ok(!spawnedBy.has(id) || spawnedBy.get(id) === run, `${id} handed out in run ${spawnedBy.get(id)} and again in run ${run}`);
      spawnedBy.set(id, run);
    }
    const saved = (await probe.load(thread))?.tasks ?? {};
    for (const [id, status] of last.ack) {
      acked.set(id, status);
      assert.ok(saved[id], `run ${run}: acknowledged ${id} is missing in the database`);
      if (status !== 'running') assert.equal(saved[id].status, status, `run ${run}: ${id} went back from ${status} to ${saved[id].status}`);
    }
  }

  const reader = child(['resume', thread]);
  const { threads } = await reader.next();
  assert.equal(await reader.exited, 0);
  const resumed = new Map(threads[thread].map(([id, status, error]) => [id, { status, error }]));
  for (const [id, status] of acked) {
    const s = resumed.get(id);
    assert.ok(s, `${id} lost`);
    if (status === 'running') assert.ok(s.status === 'failed' && s.error === ORPHANED, `${id}: ${s.status} ${s.error}`);
    else assert.equal(s.status, status, id);
  }
  t.diagnostic(`${acked.size} acknowledged tasks, ${spawnedBy.size} distinct ids`);
});
