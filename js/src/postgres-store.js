// PostgresStore (Node, `bgtasks/postgres`): the attached-store contract on a PostgreSQL database,
// so that managers on many machines share threads and task ids. Tables (created on first use,
// under a transaction-scoped advisory lock so that processes starting together do not race):
//
//   bgtasks_schema_version (version, applied_at)   one row per applied schema version
//   bgtasks_ids (singleton, next)                   the task-number high-water mark
//   bgtasks_threads (thread, snapshot, epoch, owner, lease_until, saved_at)
//
// Ownership is a lease in the thread's row: `claim` takes the row when nobody holds it, when its
// lease has expired (the holder died or stalled), or when the caller already holds it; each claim
// raises the epoch. Every fenced write is one UPDATE that matches the epoch, so a stale owner's write
// changes nothing and fails with StaleOwner. Lease times are the server's clock, so machines' clock
// skew does not matter. The store renews the leases it holds in the background.
//
// Snapshots are stored as text, not jsonb: jsonb refuses `\u0000` and lone surrogates, which task
// descriptions and results may hold; `snapshot::jsonb` still works for queries on valid rows.
import { checkString } from './arguments.js';
import { BgTasksError } from './errors.js';

// pg is an optional peer dependency: say what is missing rather than fail on a bare import.
const pg = await import('pg').then(
  (m) => m.default ?? m,
  (e) => {
    if (e?.code !== 'ERR_MODULE_NOT_FOUND') throw e;
    throw new Error("bgtasks/postgres needs the 'pg' package next to bgtasks: npm install pg", { cause: e });
  },
);

export const SCHEMA_VERSION = 1;

const MAX_BLOCK = 2 ** 32;
const DEFAULT_LEASE_MS = 30_000;
const SCHEMA_LOCK = 0x6267746173; // pg_advisory_xact_lock key for schema setup ('bgtas')

const SCHEMA_V1 = [
  `CREATE TABLE IF NOT EXISTS bgtasks_ids (
     singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
     next bigint NOT NULL CHECK (next >= 0))`,
  `INSERT INTO bgtasks_ids (singleton, next) VALUES (true, 0) ON CONFLICT DO NOTHING`,
  `CREATE TABLE IF NOT EXISTS bgtasks_threads (
     thread text PRIMARY KEY,
     snapshot text,
     epoch bigint NOT NULL DEFAULT 0,
     owner text,
     lease_until timestamptz,
     saved_at timestamptz)`,
];

function failure(what, e) {
  if (e instanceof BgTasksError || e instanceof TypeError || e instanceof RangeError) return e;
  const detail = e?.message || e?.code || String(e);
  const error = new Error(`PostgresStore: ${what} failed: ${detail}`, { cause: e });
  if (e?.code) error.code = e.code; // the server's SQLSTATE or the socket's errno
  return error;
}

function stale(thread, current, epoch) {
  return new BgTasksError(
    'StaleOwner',
    current === null
      ? `thread '${thread}' is not in the store any more (this writer holds epoch ${epoch}): the write was refused`
      : `thread '${thread}' was taken over by another owner (epoch ${current}; this writer holds epoch ${epoch}): the write was refused`,
  );
}

function checkEpoch(epoch) {
  if (epoch !== undefined && !(Number.isSafeInteger(epoch) && epoch > 0))
    throw new TypeError(`options.epoch must be a positive integer (got ${typeof epoch === 'number' ? epoch : typeof epoch})`);
}

export class PostgresStore {
  #pool;
  #ownsPool;
  #leaseMs;
  #claimTimeoutMs;
  #schema = null; // the schema setup, once it succeeded (retried after a failure)
  #held = new Map(); // thread → { epoch, onLost }: leases this store renews
  #renewTimer = null;
  #pending = new Set(); // releases and renewals in flight, awaited by close()
  #closed = false;

  /**
   * @param {import('pg').Pool | { connectionString?: string, pool?: object, leaseMs?: number, claimTimeoutMs?: number }} target
   *   the caller's `pg.Pool` (never ended by the store), or options: `connectionString` (or other
   *   `pg.Pool` settings under `pool`) for a pool the store opens and `close()` ends; `leaseMs`,
   *   how long a claim holds a thread without renewal (default 30 s); `claimTimeoutMs`, how long a
   *   claim waits for another owner's live lease to expire (default twice `leaseMs`).
   * @param {{ leaseMs?: number, claimTimeoutMs?: number }} [options] with a pool: the lease options
   */
  constructor(target, options = {}) {
    const isPool = target && typeof target.query === 'function' && typeof target.connect === 'function';
    if (!isPool && (target === null || typeof target !== 'object'))
      throw new TypeError('PostgresStore needs a pg.Pool or { connectionString }');
    if (!isPool) options = target;
    const leaseMs = options?.leaseMs ?? DEFAULT_LEASE_MS;
    if (!Number.isSafeInteger(leaseMs) || leaseMs < 10) throw new TypeError(`leaseMs must be an integer of at least 10 (got ${leaseMs})`);
    const claimTimeoutMs = options?.claimTimeoutMs ?? 2 * leaseMs;
    if (!Number.isSafeInteger(claimTimeoutMs) || claimTimeoutMs < 0)
      throw new TypeError(`claimTimeoutMs must be a non-negative integer (got ${claimTimeoutMs})`);
    this.#leaseMs = leaseMs;
    this.#claimTimeoutMs = claimTimeoutMs;
    if (isPool) {
      this.#pool = target;
      this.#ownsPool = false;
      return;
    }
    const settings = { ...(options.pool ?? {}) };
    if (options.connectionString !== undefined)
      settings.connectionString = checkString(options.connectionString, 'connectionString', { nonEmpty: true });
    settings.connectionTimeoutMillis ??= 10_000; // an unreachable server fails saves instead of hanging them
    this.#pool = new pg.Pool(settings);
    // An idle connection that the server closes (restart, failover) is dropped from the pool and
    // replaced on next use; without a listener its 'error' event would end the process.
    this.#pool.on('error', () => {});
    this.#ownsPool = true;
  }

  /** The pool the store queries. */
  get pool() {
    return this.#pool;
  }

  get leaseMs() {
    return this.#leaseMs;
  }

  // ---- schema ----
  async #ready() {
    if (this.#closed) throw new Error('PostgresStore is closed');
    if (this.#schema === null) {
      const run = this.#setUp();
      this.#schema = run;
      run.catch(() => {
        if (this.#schema === run) this.#schema = null; // try again on the next call
      });
    }
    return this.#schema;
  }

  async #setUp() {
    const client = await this.#pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK]);
      await client.query(`CREATE TABLE IF NOT EXISTS bgtasks_schema_version (
        version integer PRIMARY KEY,
        applied_at timestamptz NOT NULL DEFAULT now())`);
      const { rows } = await client.query('SELECT max(version) AS version FROM bgtasks_schema_version');
      const version = rows[0].version ?? 0;
      if (version > SCHEMA_VERSION)
        throw new Error(`the database's bgtasks schema is version ${version}; this bgtasks knows versions up to ${SCHEMA_VERSION}: upgrade bgtasks`);
      if (version < 1) {
        for (const sql of SCHEMA_V1) await client.query(sql);
        await client.query('INSERT INTO bgtasks_schema_version (version) VALUES (1)');
      }
      await client.query('COMMIT');
    } catch (e) {
      await client.query('ROLLBACK').catch(() => {});
      throw e;
    } finally {
      client.release();
    }
  }

  async #query(what, sql, params) {
    try {
      await this.#ready();
      return await this.#pool.query(sql, params);
    } catch (e) {
      throw failure(what, e);
    }
  }

  // ---- snapshots ----
  /**
   * Replaces the thread's snapshot. With `epoch` (an owner's save), the write happens only if the
   * thread is still owned with that epoch (checked in the same statement), else StaleOwner.
   */
  async save(thread, snapshot, options = {}) {
    const text = JSON.stringify(snapshot);
    if (typeof text !== 'string') throw new TypeError('snapshot must be JSON-serializable');
    return this.saveText(thread, text, options);
  }

  /** save() for a snapshot that is already JSON text (an attached manager's writes). */
  async saveText(thread, text, options = {}) {
    checkString(thread, 'thread');
    if (typeof text !== 'string') throw new TypeError('text must be a string of JSON');
    const epoch = options?.epoch;
    checkEpoch(epoch);
    const what = `saving thread '${thread}'`;
    if (epoch === undefined) {
      await this.#query(
        what,
        `INSERT INTO bgtasks_threads (thread, snapshot, saved_at) VALUES ($1, $2, clock_timestamp())
         ON CONFLICT (thread) DO UPDATE SET snapshot = EXCLUDED.snapshot, saved_at = EXCLUDED.saved_at`,
        [thread, text],
      );
      return;
    }
    // The owner's write also renews its lease: writing shows it is alive.
    const { rowCount } = await this.#query(
      what,
      `UPDATE bgtasks_threads
          SET snapshot = $2, saved_at = clock_timestamp(),
              lease_until = greatest(lease_until, clock_timestamp() + $4 * interval '1 millisecond')
        WHERE thread = $1 AND epoch = $3`,
      [thread, text, epoch, this.#leaseMs],
    );
    if (rowCount === 1) return;
    const { rows } = await this.#query(what, 'SELECT epoch FROM bgtasks_threads WHERE thread = $1', [thread]);
    this.#forget(thread, epoch);
    throw stale(thread, rows.length ? Number(rows[0].epoch) : null, epoch);
  }

  /** The thread's snapshot, or null when none was saved. A corrupt row is an InvalidSnapshot error naming the thread. */
  async load(thread) {
    checkString(thread, 'thread');
    const { rows } = await this.#query(`loading thread '${thread}'`, 'SELECT snapshot FROM bgtasks_threads WHERE thread = $1', [thread]);
    const text = rows[0]?.snapshot;
    if (text === undefined || text === null) return null;
    let snapshot;
    try {
      snapshot = JSON.parse(text);
    } catch (e) {
      throw new BgTasksError('InvalidSnapshot', `thread '${thread}': the stored snapshot is not valid JSON (${e.message})`);
    }
    if (!snapshot || typeof snapshot !== 'object' || Array.isArray(snapshot) || !snapshot.tasks || typeof snapshot.tasks !== 'object' || Array.isArray(snapshot.tasks))
      throw new BgTasksError('InvalidSnapshot', `thread '${thread}': the stored snapshot is not {"tasks": {…}}`);
    return snapshot;
  }

  // ---- ownership ----
  /**
   * Takes the thread: when nobody holds its lease, the lease expired, or `owner` holds it already.
   * Another owner's live lease is waited out (up to `claimTimeoutMs`). The epoch goes up by one and
   * is returned; from then on a save with an older epoch is refused (StaleOwner). The store renews
   * the lease until `release`, `close`, or a renewal finds that another owner took the thread
   * (then `onLost(thread)` is called).
   */
  async claim(thread, options = {}) {
    checkString(thread, 'thread');
    const owner = options?.owner === undefined ? '' : checkString(options.owner, 'options.owner');
    const onLost = typeof options?.onLost === 'function' ? options.onLost : null;
    const what = `claiming thread '${thread}'`;
    const deadline = Date.now() + this.#claimTimeoutMs;
    for (;;) {
      const { rows } = await this.#query(
        what,
        `INSERT INTO bgtasks_threads AS t (thread, epoch, owner, lease_until)
           VALUES ($1, 1, $2, clock_timestamp() + $3 * interval '1 millisecond')
         ON CONFLICT (thread) DO UPDATE
           SET epoch = t.epoch + 1, owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until
           WHERE t.lease_until IS NULL OR t.lease_until <= clock_timestamp() OR t.owner = EXCLUDED.owner
         RETURNING t.epoch`,
        [thread, owner, this.#leaseMs],
      );
      if (rows.length === 1) {
        const epoch = Number(rows[0].epoch);
        this.#hold(thread, epoch, onLost);
        return { epoch };
      }
      // Held by a live lease: wait until it ends (or the holder lets go), then try again.
      const held = await this.#query(
        what,
        `SELECT owner, epoch, greatest(0, ceil(extract(epoch FROM lease_until - clock_timestamp()) * 1000))::bigint AS left_ms
           FROM bgtasks_threads WHERE thread = $1`,
        [thread],
      );
      const left = Number(held.rows[0]?.left_ms ?? 0);
      const now = Date.now();
      if (now >= deadline)
        throw failure(
          what,
          new BgTasksError(
            'StaleOwner',
            `thread '${thread}' is held by owner '${held.rows[0]?.owner}' (epoch ${held.rows[0]?.epoch}) whose lease is live for ${left} ms more; waited ${this.#claimTimeoutMs} ms`,
          ),
        );
      // Poll often enough to see an early release, never past the deadline.
      const wait = Math.max(5, Math.min(left + 5, 250, deadline - now));
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }

  /** Who holds the thread: {epoch, owner, leaseUntil (ms since the epoch, server clock), savedAt}, or null. */
  async owner(thread) {
    checkString(thread, 'thread');
    const { rows } = await this.#query(
      `reading the owner of thread '${thread}'`,
      'SELECT epoch, owner, lease_until, saved_at FROM bgtasks_threads WHERE thread = $1 AND epoch > 0',
      [thread],
    );
    if (!rows.length) return null;
    const r = rows[0];
    return { epoch: Number(r.epoch), owner: r.owner, leaseUntil: r.lease_until?.getTime() ?? null, savedAt: r.saved_at?.getTime() ?? null };
  }

  /** Ends the thread's lease (with `epoch`: only that claim's), so another owner may claim it at once. */
  async release(thread, options = {}) {
    checkString(thread, 'thread');
    const epoch = options?.epoch;
    checkEpoch(epoch);
    const held = this.#held.get(thread);
    if (held && (epoch === undefined || held.epoch === epoch)) this.#forget(thread, held.epoch);
    if (held === undefined && epoch === undefined) return;
    await this.#track(
      this.#query(
        `releasing thread '${thread}'`,
        'UPDATE bgtasks_threads SET lease_until = NULL WHERE thread = $1 AND epoch = $2',
        [thread, epoch ?? held.epoch],
      ),
    );
  }

  #hold(thread, epoch, onLost) {
    this.#held.set(thread, { epoch, onLost });
    if (this.#renewTimer === null && !this.#closed) {
      this.#renewTimer = setInterval(() => this.#track(this.#renew()).catch(() => {}), Math.max(5, Math.floor(this.#leaseMs / 3)));
      this.#renewTimer.unref?.(); // leases never keep a process alive
    }
  }

  #forget(thread, epoch) {
    if (this.#held.get(thread)?.epoch === epoch) this.#held.delete(thread);
    if (this.#held.size === 0 && this.#renewTimer !== null) {
      clearInterval(this.#renewTimer);
      this.#renewTimer = null;
    }
  }

  // Renews every lease this store holds in one statement; a thread whose epoch moved on was taken
  // over, and its owner learns it now rather than at its next write.
  async #renew() {
    if (this.#held.size === 0) return;
    const held = [...this.#held];
    const { rows } = await this.#query(
      'renewing leases',
      `UPDATE bgtasks_threads t SET lease_until = clock_timestamp() + $3 * interval '1 millisecond'
         FROM unnest($1::text[], $2::bigint[]) AS h(thread, epoch)
        WHERE t.thread = h.thread AND t.epoch = h.epoch
        RETURNING t.thread`,
      [held.map(([thread]) => thread), held.map(([, h]) => h.epoch), this.#leaseMs],
    );
    const kept = new Set(rows.map((r) => r.thread));
    for (const [thread, h] of held) {
      if (kept.has(thread) || this.#held.get(thread) !== h) continue;
      this.#forget(thread, h.epoch);
      try {
        h.onLost?.(thread);
      } catch {
        // a throwing callback must not stop the renewals
      }
    }
  }

  #track(promise) {
    this.#pending.add(promise);
    const done = () => this.#pending.delete(promise);
    promise.then(done, done);
    return promise;
  }

  // ---- ids ----
  /** Reserves `count` task numbers: returns `first` of the block [first, first + count), which no caller of this database got before. */
  async reserveIds(count) {
    if (!Number.isSafeInteger(count) || count < 1 || count > MAX_BLOCK)
      throw new TypeError(`count must be an integer from 1 to ${MAX_BLOCK} (got ${count})`);
    const { rows } = await this.#query(
      'reserving task ids',
      `UPDATE bgtasks_ids SET next = next + $1 WHERE next + $1 <= $2 RETURNING next - $1 AS first`,
      [count, Number.MAX_SAFE_INTEGER],
    );
    if (!rows.length) throw new RangeError('task numbers beyond 2^53 cannot be reserved');
    return Number(rows[0].first);
  }

  /** Later blocks start at or above `next` (ids that entered a thread from outside the store). */
  async raiseIdFloor(next) {
    if (!Number.isSafeInteger(next) || next < 0) throw new TypeError(`next must be a non-negative integer (got ${next})`);
    await this.#query('raising the task-id floor', 'UPDATE bgtasks_ids SET next = greatest(next, $1)', [next]);
  }

  // ---- housekeeping ----
  /** Thread ids that have a saved snapshot. */
  async threads() {
    const { rows } = await this.#query('listing threads', 'SELECT thread FROM bgtasks_threads WHERE snapshot IS NOT NULL ORDER BY thread');
    return rows.map((r) => r.thread);
  }

  /** Removes the thread's snapshot and ends its lease; the epoch stays, so an old owner's write is still refused. */
  async delete(thread) {
    checkString(thread, 'thread');
    const held = this.#held.get(thread);
    if (held) this.#forget(thread, held.epoch);
    await this.#query(
      `deleting thread '${thread}'`,
      'UPDATE bgtasks_threads SET snapshot = NULL, saved_at = NULL, owner = NULL, lease_until = NULL, epoch = epoch + 1 WHERE thread = $1',
      [thread],
    );
  }

  /** Stops renewing leases, waits for releases in flight, and ends the pool if the store opened it. */
  async close() {
    if (this.#closed) return;
    // A manager disposed just before lets go of its threads a tick later: let those releases start.
    await new Promise((resolve) => setImmediate(resolve));
    if (this.#renewTimer !== null) clearInterval(this.#renewTimer);
    this.#renewTimer = null;
    await Promise.allSettled([...this.#pending]);
    this.#closed = true;
    this.#held.clear();
    if (this.#ownsPool) await this.#pool.end();
  }
}
