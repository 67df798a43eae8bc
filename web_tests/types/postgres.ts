// Exercises the declarations of bgtasks/postgres (postgres.d.ts); checked, never run, by `npm run typecheck`.
import { createTaskManager, BgTasksError } from 'bgtasks';
import type { TaskStore } from 'bgtasks';
import { PostgresStore, SCHEMA_VERSION } from 'bgtasks/postgres';
import type { PgPool, PostgresStoreConnectOptions, PostgresStoreOptions } from 'bgtasks/postgres';

export async function postgresUsage(pool: PgPool): Promise<void> {
  const options: PostgresStoreConnectOptions = { connectionString: 'postgresql://localhost/app', leaseMs: 10_000, pool: { max: 4 } };
  const owned = new PostgresStore(options);
  const leases: PostgresStoreOptions = { claimTimeoutMs: 5_000 };
  const shared = new PostgresStore(pool, leases);
  const asStore: TaskStore = shared;
  const mgr = await createTaskManager({ store: owned, onStoreError: (e: Error, thread: string | undefined) => void [e, thread] });
  await mgr.flush();
  const n: number = SCHEMA_VERSION + owned.leaseMs + (await owned.reserveIds(10));
  const { epoch }: { epoch: number } = await owned.claim('x', { owner: 'me', onLost: (t: string) => void t });
  await owned.saveText('x', '{"tasks":{}}', { epoch });
  const o = await owned.owner('x');
  const until: number | null = o ? o.leaseUntil : null;
  const threads: string[] = await owned.threads();
  void [n, until, threads, asStore, shared.pool, BgTasksError];
  await owned.close();
  // @ts-expect-error a store needs a pool or options
  new PostgresStore();
  // @ts-expect-error close() is asynchronous: its result is a promise
  const closed: void = owned.close();
  void closed;
}
