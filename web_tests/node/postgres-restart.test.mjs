// The server stopped and restarted under a running manager attached to a PostgresStore: saves fail
// with a clear error and flush() rejects while it is down; nothing in memory is lost; once it is
// back, the next save succeeds and the database holds everything. Its own cluster, since it stops it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createTaskManager } from 'bgtasks';
import { PostgresStore } from 'bgtasks/postgres';
import { postgresAvailable, startCluster } from './_postgres.mjs';

const avail = await postgresAvailable();
const cluster = avail.skip ? null : await startCluster(after, avail.bin);

test('server stopped and restarted under a running manager: saves fail clearly, flush() rejects, then the next save succeeds and nothing is lost', { skip: avail.skip, timeout: 120_000 }, async (t) => {
  const store = new PostgresStore({ connectionString: cluster.url, pool: { connectionTimeoutMillis: 2000 } });
  const errors = [];
  const mgr = await createTaskManager({ store, onStoreError: (e, thread) => errors.push({ e, thread }) });
  t.after(async () => {
    mgr.dispose();
    await store.close();
  });
  const thread = 'agent';
  const spawn = async (description) => {
    const id = mgr.spawn({ thread, type: 'job', description }, async () => description);
    await mgr.wait(id);
    return id;
  };
  const before = await spawn('before');
  const running = mgr.spawn({ thread, type: 'job', description: 'running' }, () => new Promise(() => {}));
  await mgr.flush();

  await cluster.stop();
  const during = await spawn('during');
  const failure = await mgr.flush().then(
    () => null,
    (e) => e,
  );
  assert.ok(failure, 'flush() rejects while the server is down');
  assert.match(failure.message, /^PostgresStore: saving thread 'agent' failed: /);
  assert.ok(failure.cause, 'the driver error is kept as the cause');
  t.diagnostic(`while down: ${failure.message}`);
  assert.ok(errors.some((r) => r.thread === thread && r.e === failure), 'onStoreError saw it');
  const inMemory = mgr.list(thread).map((s) => [s.task_id, s.status]);
  assert.deepEqual(inMemory.map(([id]) => id).sort(), [before, running, during].sort(), 'nothing in memory is lost');

  await cluster.start();
  const afterRestart = await spawn('after');
  await mgr.flush();
  assert.equal(mgr.ownership(thread), 'owned');

  const reader = new PostgresStore({ connectionString: cluster.url });
  t.after(() => reader.close());
  const saved = (await reader.load(thread)).tasks;
  assert.deepEqual(Object.keys(saved).sort(), [before, running, during, afterRestart].sort());
  assert.equal(saved[during].status, 'completed');
  assert.equal(saved[running].status, 'running');
});
