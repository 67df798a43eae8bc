// Types of the `bgtasks/postgres` entry point: PostgresStore, on the `pg` client.
// The pool is typed structurally, so that no `@types/pg` is needed.
import type { BackgroundTaskState, TaskStore } from './index.js';

/** A `pg.Pool` (what the store uses of it). */
export interface PgPool {
  query(text: string, values?: unknown[]): Promise<{ rows: any[]; rowCount: number | null }>;
  connect(): Promise<{ query(text: string, values?: unknown[]): Promise<unknown>; release(error?: unknown): void }>;
  end(): Promise<void>;
}

/** Options of {@link PostgresStore}. */
export interface PostgresStoreOptions {
  /** How long a claim holds a thread without renewal, in ms (default 30000). The store renews its leases every third of it. */
  leaseMs?: number | undefined;
  /** How long a claim waits for another owner's live lease to end, in ms (default twice `leaseMs`). */
  claimTimeoutMs?: number | undefined;
}

/** Options for a pool the store opens itself (and `close()` ends). */
export interface PostgresStoreConnectOptions extends PostgresStoreOptions {
  /** `postgresql://user:password@host:port/database` */
  connectionString?: string | undefined;
  /** Other `pg.Pool` settings (`connectionTimeoutMillis` defaults to 10000). */
  pool?: Record<string, unknown> | undefined;
}

/** The schema version this package creates and reads (`bgtasks_schema_version`). */
export declare const SCHEMA_VERSION: number;

/**
 * A PostgreSQL database shared by managers on any number of machines: one row per thread
 * (snapshot, owner epoch, lease), a task-id counter row, tables created on first use. Every owner's
 * write checks the epoch in the same statement: a stale owner's write changes nothing and rejects
 * with `BgTasksError` `StaleOwner`.
 */
export declare class PostgresStore implements TaskStore {
  /** With the caller's pool (never ended by the store). */
  constructor(pool: PgPool, options?: PostgresStoreOptions);
  /** With a pool the store opens from these settings. */
  constructor(options: PostgresStoreConnectOptions);
  /** The pool the store queries. */
  readonly pool: PgPool;
  /** The lease time in ms. */
  readonly leaseMs: number;
  /** Replaces the thread's snapshot; with `epoch`, only while the thread is owned with that epoch (else `StaleOwner`). */
  save(thread: string, snapshot: BackgroundTaskState, options?: { epoch?: number }): Promise<void>;
  /** `save` for a snapshot already in JSON text (what an attached manager writes). */
  saveText(thread: string, text: string, options?: { epoch?: number }): Promise<void>;
  /** The thread's snapshot, or null; a corrupt row rejects with `InvalidSnapshot` naming the thread. */
  load(thread: string): Promise<BackgroundTaskState | null>;
  /** Takes the thread when its lease is free, expired or already the caller's (waiting out a live one up to `claimTimeoutMs`); the epoch goes up. */
  claim(thread: string, options?: { owner?: string; onLost?: (thread: string) => void }): Promise<{ epoch: number }>;
  /** Who holds the thread, or null (never claimed). `leaseUntil` is null once released. */
  owner(thread: string): Promise<{ epoch: number; owner: string | null; leaseUntil: number | null; savedAt: number | null } | null>;
  /** Ends the thread's lease (with `epoch`, only that claim's) so that another owner can claim it at once. */
  release(thread: string, options?: { epoch?: number }): Promise<void>;
  /** Reserves a block of `count` task numbers (1 to 2^32) from the database's counter. */
  reserveIds(count: number): Promise<number>;
  /** Later blocks start at or above `next`. */
  raiseIdFloor(next: number): Promise<void>;
  /** The threads that have a saved snapshot. */
  threads(): Promise<string[]>;
  /** Removes the thread's snapshot and ends its lease (an old owner's write is still refused). */
  delete(thread: string): Promise<void>;
  /** Stops renewing leases, waits for releases in flight, ends the pool if the store opened it. */
  close(): Promise<void>;
}
