// Durable state across processes: concurrent managers in separate processes share one FileStore
// (ids never collide, every task resumes), and a child killed with SIGKILL at random points loses
// nothing a resolved flush() acknowledged.
//
// BGTASKS_KILL_LOOP_MS sets how long the kill loop runs (default 4000 ms; the soak mode is e.g.
// BGTASKS_KILL_LOOP_MS=300000 node --test node/durability-processes.test.mjs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTaskManager, FileStore } from 'bgtasks';

const CHILD = fileURLToPath(new URL('./fixtures/durable-child.mjs', import.meta.url));
const ORPHANED = 'task orphaned: runtime restarted while running';
const LOOP_MS = Number(process.env.BGTASKS_KILL_LOOP_MS ?? 4000);

async function tempDir(t) {
  const dir = await mkdtemp(join(tmpdir(), 'bgtasks-procs-'));
  t.after(() => rm(dir, { recursive: true, force: true, maxRetries: 10 })); // a write may still be landing
  return dir;
}

function child(args) {
  const proc = fork(CHILD, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve(signal ?? code)));
  return { proc, exited };
}

async function runMany(dir, processes, perProcess) {
  const runs = [];
  for (let p = 0; p < processes; p++) {
    const { proc, exited } = child([dir, 'many', `thread-${processes}-${p}`, String(perProcess)]);
    const reply = new Promise((resolve, reject) => {
      proc.once('message', resolve);
      exited.then((code) => reject(new Error(`child ${p} exited (${code}) without reporting`)));
    });
    runs.push(reply.then(async (m) => ({ thread: `thread-${processes}-${p}`, ids: m.ids, code: await exited })));
  }
  return Promise.all(runs);
}

test('two, then four processes spawning 1e3 tasks each into one store: ids distinct, every task resumable', async (t) => {
  const dir = await tempDir(t);
  const all = [];
  for (const processes of [2, 4]) {
    const runs = await runMany(dir, processes, 1000);
    for (const r of runs) {
      assert.equal(r.code, 0);
      assert.equal(r.ids.length, 1000);
      all.push(r);
    }
  }
  const ids = all.flatMap((r) => r.ids);
  assert.equal(new Set(ids).size, ids.length, `${ids.length} ids, ${ids.length - new Set(ids).size} handed out twice`);

  const mgr = await createTaskManager({ clock: 'manual', store: new FileStore(dir) });
  t.after(() => mgr.dispose());
  for (const r of all) {
    const { added, skipped } = await mgr.resume(r.thread);
    assert.deepEqual([added, skipped], [1000, []], r.thread);
    const list = mgr.list(r.thread);
    assert.deepEqual(
      list.map((s) => s.task_id).sort(),
      [...r.ids].sort(),
      `${r.thread}: every task resumes`,
    );
    assert.ok(list.every((s) => s.status === 'completed'));
  }
});

test('SIGKILL at random points: everything a resolved flush() acknowledged survives, no id twice', async (t) => {
  const dir = await tempDir(t);
  const thread = 'stream';
  const store = new FileStore(dir);
  const spawnedBy = new Map(); // id → iteration that spawned it
  const acked = new Map(); // id → newest acknowledged status
  const started = Date.now();
  let iterations = 0;
  let kills = 0;
  while (iterations < 3 || Date.now() - started < LOOP_MS) {
    iterations++;
    const { proc, exited } = child([dir, 'stream', thread]);
    const killAfter = 1 + Math.floor(Math.random() * 6); // acks to wait for before the kill
    let seen = 0;
    let lastAck = null;
    let lastSpawned = [];
    await new Promise((resolve, reject) => {
      proc.on('message', (m) => {
        lastAck = m.ack;
        lastSpawned = m.spawned;
        if (++seen === killAfter) {
          proc.kill('SIGKILL'); // lands wherever the child is: mid-spawn, mid-write, mid-flush
          resolve();
        }
      });
      exited.then((code) => (seen >= killAfter ? resolve() : reject(new Error(`child exited (${code}) early`))));
    });
    assert.equal(await exited, 'SIGKILL');
    kills++;
    for (const id of lastSpawned) {
      assert.ok(!spawnedBy.has(id) || spawnedBy.get(id) === iterations, `${id} handed out in run ${spawnedBy.get(id)} and again in run ${iterations}`);
      spawnedBy.set(id, iterations);
    }
    for (const [id, status] of lastAck) acked.set(id, status);

    // What is on disk holds everything acknowledged, at least as far along (a newer state may be
    // there, an older one never).
    const saved = (await store.load(thread))?.tasks ?? {};
    for (const [id, status] of lastAck) {
      const m = saved[id];
      assert.ok(m, `run ${iterations}: acknowledged ${id} is missing on disk`);
      if (status !== 'running') assert.equal(m.status, status, `run ${iterations}: ${id} went back from ${status} to ${m.status}`);
    }
  }

  const mgr = await createTaskManager({ clock: 'manual', store: new FileStore(dir) });
  t.after(() => mgr.dispose());
  await mgr.resume(thread);
  for (const [id, status] of acked) {
    const s = mgr.get(id);
    assert.ok(s, `${id} lost`);
    if (status === 'running') assert.ok(s.status === 'failed' && s.error === ORPHANED, `${id}: ${s.status} ${s.error}`);
    else assert.equal(s.status, status, id);
  }
  t.diagnostic(`${iterations} runs, ${kills} kills, ${acked.size} acknowledged tasks, ${spawnedBy.size} distinct ids`);
});
