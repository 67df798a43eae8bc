// What an attached store costs: spawn → complete with no store, a FileStore and a PostgresStore,
// and the throughput of 1 and 4 processes sharing one PostgreSQL database. Starts a throw-away
// PostgreSQL cluster (the web tests' helper: initdb + pg_ctl, fsync on) and removes it after.
//
//   node bench/js/stores.mjs [--tasks=10000] [--reps=5] [--acks=200]
//
// Figures (medians of the repetitions, stores alternated within each repetition):
//   burst: `tasks` tasks spawned in batches of 1000 with a macrotask between batches, each body
//     completing at once, on the system clock; the time until every task ended (and its ratio to
//     the no-store run of the same repetition), then the flush() that puts every end in the store,
//     reported on its own, and this process's CPU time for both (the database server's is not in
//     it). Writes coalesce under load.
//   ack: one task at a time, spawned, completed and flushed before the next: the latency of a
//     durable spawn → complete.
//   fleet: 1, then 4 processes (each its own thread and pool) spawning `tasks` tasks each into
//     one database, from a common start signal until the last one's flush resolved.
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTaskManager, FileStore } from '../../js/src/index.js';
import { PostgresStore } from '../../js/src/postgres-store.js';
import { postgresAvailable, startCluster } from '../../web_tests/node/_postgres.mjs';

const arg = (name, fallback) => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? Number(a.slice(name.length + 3)) : fallback;
};
const TASKS = arg('tasks', 10_000);
const REPS = arg('reps', 5);
const ACKS = arg('acks', 200);
const BATCH = 1000;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const round = (x, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

async function burst(store, n, thread = 'bench') {
  const mgr = await createTaskManager(store ? { store } : {});
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const ends = [];
  for (let i = 0; i < n; i += BATCH) {
    for (let j = i; j < Math.min(n, i + BATCH); j++) ends.push(mgr.wait(mgr.spawn({ thread, type: 'job' }, async () => j)));
    await new Promise((resolve) => setImmediate(resolve));
  }
  await Promise.all(ends);
  const ms = performance.now() - t0;
  await mgr.flush();
  const flushMs = performance.now() - t0 - ms;
  const cpu = process.cpuUsage(cpu0);
  mgr.dispose();
  return { ms, flushMs, cpuMs: (cpu.user + cpu.system) / 1000 };
}

async function ack(store, n) {
  const mgr = await createTaskManager(store ? { store } : {});
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    await mgr.wait(mgr.spawn({ thread: 'ack', type: 'job' }, async () => i));
    await mgr.flush();
  }
  const ms = performance.now() - t0;
  mgr.dispose();
  return ms;
}

// ---- fleet child: waits for 'go', spawns into its own thread, reports its end ----
if (process.argv[2] === '--child') {
  const [, , , url, thread, n] = process.argv;
  const store = new PostgresStore({ connectionString: url });
  await createTaskManager({ store }).then((m) => m.dispose()); // schema and connection warm
  process.once('message', async () => {
    const r = await burst(store, Number(n), thread);
    process.send({ ...r }, async () => {
      await store.close();
      process.disconnect();
    });
  });
  process.send('ready');
} else {
  const pg = await postgresAvailable();
  if (pg.skip) {
    console.log(pg.skip);
    process.exit(0);
  }
  const afters = [];
  const cluster = await startCluster((fn) => afters.push(fn), pg.bin);
  try {
    const results = { tasks: TASKS, reps: REPS, acks: ACKS, node: process.version, cpu: os.cpus()[0]?.model, cores: os.cpus().length };
    const kinds = ['none', 'file', 'postgres'];
    const s = Object.fromEntries(kinds.map((k) => [k, { ms: [], flushMs: [], cpuMs: [], ackMs: [], vsNone: [] }]));
    await burst(null, TASKS, 'warm-up'); // JIT and wasm warm before the first measured run
    for (let r = 0; r < REPS; r++) {
      for (const kind of r % 2 ? [...kinds].reverse() : kinds) {
        const dir = mkdtempSync(path.join(os.tmpdir(), 'bgtasks-bench-stores-'));
        const store =
          kind === 'file' ? new FileStore(dir) : kind === 'postgres' ? new PostgresStore({ connectionString: cluster.url }) : null;
        try {
          if (kind === 'postgres') await store.pool.query('DROP TABLE IF EXISTS bgtasks_threads, bgtasks_ids, bgtasks_schema_version');
          const b = await burst(store, TASKS, `bench-${r}`);
          s[kind].ms.push(b.ms);
          s[kind].flushMs.push(b.flushMs);
          s[kind].cpuMs.push(b.cpuMs);
          s[kind].ackMs.push(await ack(store, ACKS));
        } finally {
          await store?.close();
          rmSync(dir, { recursive: true, force: true });
        }
      }
    }
    // Each repetition's ratio to the no-store run of the same repetition: the load of a shared
    // machine drifts less within one repetition than across the whole run.
    for (let r = 0; r < REPS; r++) for (const k of kinds) s[k].vsNone.push(s[k].ms[r] / s.none.ms[r]);
    results.burst = {};
    for (const k of kinds)
      results.burst[k] = {
        usPerTask: round((median(s[k].ms) * 1000) / TASKS),
        thenFlushMs: round(median(s[k].flushMs)),
        vsNone: round(median(s[k].vsNone), 2),
        clientCpuUsPerTask: round((median(s[k].cpuMs) * 1000) / TASKS),
        ackMsPerTask: round(median(s[k].ackMs) / ACKS, 3),
      };

    const CHILD = fileURLToPath(import.meta.url);
    results.fleet = {};
    for (const procs of [1, 4]) {
      const walls = [];
      for (let r = 0; r < REPS; r++) {
        const children = [];
        for (let p = 0; p < procs; p++) {
          const proc = fork(CHILD, ['--child', cluster.url, `fleet-${procs}-${r}-${p}`, String(TASKS)]);
          await new Promise((resolve, reject) => {
            proc.once('message', resolve); // ready
            proc.once('exit', (code) => reject(new Error(`fleet child exited (${code}) before it was ready`)));
          });
          children.push(proc);
        }
        const t0 = performance.now();
        const done = children.map((proc) => new Promise((resolve) => proc.once('message', resolve)));
        for (const proc of children) proc.send('go');
        await Promise.all(done);
        walls.push(performance.now() - t0);
        await Promise.all(children.map((proc) => new Promise((resolve) => (proc.exitCode !== null ? resolve() : proc.once('exit', resolve)))));
      }
      const wall = median(walls);
      results.fleet[procs] = { wallMs: round(wall), tasksPerS: Math.round((procs * TASKS) / (wall / 1000)) };
    }
    console.log(JSON.stringify(results, null, 2));
  } finally {
    for (const fn of afters) await fn();
  }
}
