// Type declarations for the `bgtasks` package (hand-written; they describe src/*.js).
// Data objects use awaken's snake_case JSON (see the README); methods are camelCase.
// ESM only: `import { createTaskManager } from 'bgtasks'` (Node >= 18 and browsers).

// ---------------------------------------------------------------------------------------------
// JSON and awaken's data shapes
// ---------------------------------------------------------------------------------------------

/** Any value JSON can carry: what payloads, results and snapshots are made of. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/**
 * `T` checked for JSON: `T` itself where it is made of what JSON carries (strings, numbers,
 * booleans, `null`, arrays, tuples and objects of those; `readonly` ones, interfaces and optional
 * members too), `never` in each place where it is not (a function, an object with methods such as a
 * `Date` or a `Map`, a `bigint`, a `symbol`, `undefined`). So `T` is assignable to
 * `JsonCompatible<T>` exactly when it is JSON-compatible (a check to apply to an inferred type; as
 * the constraint of `T` itself TypeScript calls it circular). `unknown` and `any` pass: what they
 * hold is checked at run time.
 *
 * @example
 * type Ok = JsonCompatible<{ pct: number; tags?: readonly string[] }>; // the same type
 * type No = JsonCompatible<{ at: Date }>; // { at: { toString: never; ... } }: Date is refused
 */
export type JsonCompatible<T> = unknown extends T
  ? T
  : T extends JsonValue
    ? T
    : T extends bigint | symbol | undefined | void | Function
      ? never
      : T extends object
        ? { [K in keyof T]: JsonCompatible<T[K]> }
        : never;

/**
 * An event map: each custom event type a task emits, mapped to the JSON type of its payload, e.g.
 * `{ progress: { pct: number }; done: null }` (a `type` or an `interface`). Give it to
 * {@link createTaskManager} to type `ctx.emit` and the custom events of `drain()` / `events()`.
 * `Events extends EventMap<Events>` holds when every payload type is {@link JsonCompatible};
 * `EventMap` alone is `Record<string, JsonValue>`.
 */
export type EventMap<Events = Record<string, JsonValue>> = { [K in keyof Events]: JsonCompatible<Events[K]> };

/**
 * The event map of a manager created without one: any event type, and `ctx.emit` takes any payload
 * (as `unknown`, optional) while custom events carry it as `JsonValue`.
 */
export type DefaultEventMap = Record<string, JsonValue>;

/**
 * The payload argument(s) of `ctx.emit(eventType, payload)` for event type `K` of `Events`:
 * `payload: Events[K]`, required; optional when `null` is one of its values (an omitted payload
 * arrives as `null`); `payload?: unknown` when it is all of `JsonValue` (as in
 * {@link DefaultEventMap}): any value JSON.stringify can write, copied as
 * {@link CustomTaskEvent} `payload` says.
 */
export type EmitPayload<Events, K extends keyof Events> = JsonValue extends Events[K]
  ? [payload?: unknown]
  : null extends Events[K]
    ? [payload?: Events[K]]
    : [payload: Events[K]];

/** The key of {@link TaskId}'s brand: a type only, nothing at run time has it (not exported). */
declare const taskResultType: unique symbol;
// Exports only what is marked `export` (a declaration file exports every declaration otherwise).
export {};

/**
 * A task id as `spawn` / `spawnAgent` return it: a `string` (use it wherever an id goes) that
 * carries the type `R` of the task's result, so that `wait(id)` and `get(id)` give a
 * `TaskSummary<R>`. Only a type: at run time it is the plain string (`bg_<n>`). A plain `string`
 * is not a `TaskId`; `get` / `wait` take one too and give `TaskSummary<JsonValue>`.
 */
export type TaskId<R = JsonValue> = string & { readonly [taskResultType]: R };

/**
 * What a body may resolve with, as a check: `R` itself when `R` is {@link JsonCompatible},
 * `undefined` or `void` (a body that returns nothing completes with `null`), or a union of those.
 * `spawn` takes a body that is both a `TaskBody<R>` (which infers `R`) and a
 * `TaskBody<ResultCompatible<R>>` (which refuses a non-JSON `R` at the call).
 */
export type ResultCompatible<R> = R extends undefined | void ? R : JsonCompatible<R>;

/**
 * The result of a task whose body resolves with `R`: `R` with `undefined` / `void` as `null`
 * (`{ ok: true } | undefined` gives `{ ok: true } | null`); `JsonValue` when `R` is `unknown`.
 */
export type TaskResult<R> = unknown extends R ? JsonValue : R extends undefined | void ? null : R;

/** awaken's `TaskStatus`: `running` until the body settles, then one of the three terminal states. */
export type TaskStatus = 'running' | 'completed' | 'failed' | 'cancelled';

/**
 * awaken's `TaskParentContext`: where a task was spawned from. Every field is optional and absent
 * fields are omitted (an empty context is `{}`). `task_id` is filled from the ambient task (the body
 * whose synchronous part is running, or the task whose `ctx.spawn` is called) unless given.
 */
export interface TaskParentContext {
  /** The parent background task's id. */
  task_id?: string;
  /** The agent run that spawned the task. */
  run_id?: string;
  /** The tool call that spawned the task. */
  call_id?: string;
  /** The agent that spawned the task. */
  agent_id?: string;
}

/**
 * awaken's `TaskSummary`, as returned by `get`, `list` and `wait`. It has no `name` and no
 * `owner_thread_id` (those live in {@link PersistedTaskMeta}). `R` is the type of `result`:
 * `get` / `wait` with a {@link TaskId} give the spawned body's {@link TaskResult}, anything else
 * `JsonValue`.
 */
export interface TaskSummary<R = JsonValue> {
  /** The task's id, `bg_<n>` for spawned tasks (any non-empty string for restored ones). */
  task_id: string;
  /** The task's type as given at spawn; always `'sub_agent'` for `spawnAgent`. */
  task_type: string;
  /** The description given at spawn (`''` when none). */
  description: string;
  /** The current status. */
  status: TaskStatus;
  /**
   * True while the task waits for a concurrency slot (its status is `running` in awaken's terms;
   * its body has not started). Absent otherwise, and never in snapshots.
   */
  queued?: true;
  /** When the task was spawned, in ms on the manager's clock. */
  created_at_ms: number;
  /**
   * Failed tasks: the error message (a thrown Error's `message`, its `name` when empty; a thrown
   * string as it is; any other value as JSON). Always well-formed: a lone surrogate in it is U+FFFD.
   */
  error?: string;
  /**
   * Failed tasks of this manager whose body threw an object: what it threw (an `Error` keeps its
   * `name`, `stack`, `cause`, an `AggregateError` its `errors`). Not enumerable, never persisted.
   */
  readonly cause?: unknown;
  /** Completed tasks: the JSON value the body resolved with (`null` for `undefined`). */
  result?: R;
  /** When the task reached its terminal status, in ms. Absent while running and for orphans. */
  completed_at_ms?: number;
  /** Omitted when empty. */
  parent_context?: TaskParentContext;
}

/**
 * awaken's `PersistedTaskMeta`: one entry of a {@link BackgroundTaskState}, as `snapshot()`
 * produces it (keys come out sorted; compare by value).
 */
export interface PersistedTaskMeta {
  /** The task's id; must equal the entry's key. */
  task_id: string;
  /** The thread that owns the task (`restore` overwrites it with the restoring thread). */
  owner_thread_id: string;
  /** The task's type. */
  task_type: string;
  /** The task's name, if it was spawned with one. */
  name?: string;
  /** The task's description. */
  description: string;
  /** The task's status. */
  status: TaskStatus;
  /** Failed tasks: the error message. */
  error?: string;
  /** Completed tasks: the result value. */
  result?: JsonValue;
  /** Spawn time, in ms. */
  created_at_ms: number;
  /** Terminal time, in ms (absent while running and for orphans). */
  completed_at_ms?: number;
  /** Always present in a snapshot; `{}` when empty. */
  parent_context: TaskParentContext;
}

/**
 * A {@link PersistedTaskMeta} as `restore` accepts it: awaken decodes entries without
 * `owner_thread_id` or `parent_context` (legacy JSON), so those may be missing.
 */
export interface PersistedTaskMetaInput extends Omit<PersistedTaskMeta, 'owner_thread_id' | 'parent_context'> {
  /** Ignored on restore (the restoring thread becomes the owner); defaults to `''`. */
  owner_thread_id?: string;
  /** Defaults to `{}`. */
  parent_context?: TaskParentContext;
}

/**
 * awaken's `background_task_state` value: `{tasks: {id: meta}}`. `snapshot()` returns it and
 * `restore()` takes it, so a value taken from an awaken store restores here.
 */
export interface BackgroundTaskState {
  /** Every task of the snapshot, keyed by task id. */
  tasks: Record<string, PersistedTaskMeta>;
}

/** A snapshot as `restore()` accepts it (entries may omit `owner_thread_id` / `parent_context`). */
export interface BackgroundTaskStateInput {
  /** Entries keyed by task id; every key must equal its entry's `task_id`. */
  tasks: Record<string, PersistedTaskMetaInput>;
}

/**
 * A `custom` event: sent by `ctx.emit(event_type, payload)`, in order, also after a cancel. With
 * an event map, the union of one such event per event type, so testing `event_type` narrows
 * `payload` (`if (ev.event_type === 'progress') ev.payload.pct`).
 */
export type CustomTaskEvent<Events extends EventMap<Events> = DefaultEventMap> = {
  [K in keyof Events & string]: CustomTaskEventOf<K, Events[K]>;
}[keyof Events & string];

/** One event type's {@link CustomTaskEvent}: its `event_type` is `K`, its payload a `P`. */
export interface CustomTaskEventOf<K extends string, P> {
  kind: 'custom';
  /** The emitting task. */
  task_id: string;
  /** The event type given to `ctx.emit`. */
  event_type: K;
  /**
   * The payload given to `ctx.emit` (`null` for `undefined`), as a round trip through JSON makes
   * it: a copy taken at `emit` with object keys sorted by code point (as the native core writes
   * them); a `Date` arrives as its string, `undefined` members vanish, `NaN` is `null`. The copy
   * stays on the JS side (the core orders, counts and evicts the event by a handle).
   */
  payload: P;
}

/** The terminal event of a task whose body resolved (not cancelled). */
export interface CompletedTaskEvent {
  kind: 'completed';
  /** The finished task. */
  task_id: string;
  /** The body's value; always present, possibly `null`. */
  result: JsonValue;
}

/** The terminal event of a task whose body threw or rejected (not cancelled). */
export interface FailedTaskEvent {
  kind: 'failed';
  /** The failed task. */
  task_id: string;
  /** The error message. */
  error: string;
  /** What the body threw, when it threw an object (not enumerable; see {@link TaskSummary.cause}). */
  readonly cause?: unknown;
}

/** The terminal event of a task whose cancel was requested before its body settled. */
export interface CancelledTaskEvent {
  kind: 'cancelled';
  /** The cancelled task. */
  task_id: string;
}

/**
 * An owner-inbox event (awaken's `TaskEvent`), as `drain()` and `events()` yield them. Every event
 * carries `task_id`; a body that emits N events and then settles produces N + 1 events. `Events`
 * is the manager's event map (see {@link CustomTaskEvent}).
 */
export type TaskEvent<Events extends EventMap<Events> = DefaultEventMap> =
  | CustomTaskEvent<Events>
  | CompletedTaskEvent
  | FailedTaskEvent
  | CancelledTaskEvent;

/**
 * awaken's `agent_message`: what `sendMessage` puts into a sub-agent's own inbox (read it with
 * `ctx.inbox`); it never goes to the owner inbox.
 */
export interface AgentMessage {
  kind: 'custom';
  /** The receiving sub-agent. */
  task_id: string;
  event_type: 'agent_message';
  payload: {
    /** The sender given to `sendMessage` (`from`). */
    from: string;
    /** The content given to `sendMessage`. */
    content: string;
  };
}

/** `stats()`: counts over every thread. */
export interface Stats {
  /** Tasks whose status is `running` (cancel requested or not). */
  running: number;
  /** Tasks that completed (and are still retained). */
  completed: number;
  /** Tasks that failed (and are still retained). */
  failed: number;
  /** Tasks that ended cancelled (and are still retained). */
  cancelled: number;
  /** Tasks whose cancel was requested while their body is still running. */
  cancel_requested_running: number;
  /** Bodies that have not settled yet. */
  live_bodies: number;
  /** Events waiting in the owner inbox. */
  owner_inbox_depth: number;
  /** Events a bounded owner inbox refused (`'reject'`) or dropped (`'dropOldest'`), since creation. */
  owner_inbox_dropped: number;
  /** Messages dropped by the bounded inboxes of live sub-agents (`agentInboxOverflow: 'dropOldest'`). */
  agent_inbox_dropped: number;
  /** Tasks waiting for a concurrency slot. */
  queued: number;
  /** Exceptions thrown by native event listeners (JS listeners' are reported, not counted). */
  listener_errors: number;
}

/** One node of `taskTree()`: a task and the tasks whose `parent_context.task_id` is this task. */
export interface TaskTreeNode {
  task_id: string;
  task_type: string;
  description: string;
  status: TaskStatus;
  /** The task's name, if it has one. */
  name?: string;
  /** Child nodes, in id order. */
  children: TaskTreeNode[];
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/** Every `BgTasksError.code` (`'Unknown'` only for a core code this package does not know). */
export type BgTasksErrorCode =
  | 'TaskNotFound'
  | 'NotOwner'
  | 'TaskTerminated'
  | 'NoInbox'
  | 'InboxClosed'
  | 'InboxFull'
  | 'ReservedName'
  | 'DuplicateName'
  | 'StoreNotConfigured'
  | 'UnknownKey'
  | 'InvalidSnapshot'
  | 'NotHostTask'
  | 'InvalidArgument'
  | 'IdConflict'
  | 'IdsUnavailable'
  | 'StaleOwner'
  | 'Disposed'
  | 'ShuttingDown'
  | 'Unknown';

/**
 * The error codes in the core's order: index = the core's numeric code (0 = ok, hence `undefined`).
 * Frozen.
 */
export declare const ERROR_CODES: readonly [
  undefined,
  'TaskNotFound',
  'NotOwner',
  'TaskTerminated',
  'NoInbox',
  'InboxClosed',
  'InboxFull',
  'ReservedName',
  'DuplicateName',
  'StoreNotConfigured',
  'UnknownKey',
  'InvalidSnapshot',
  'NotHostTask',
  'InvalidArgument',
  'IdConflict',
  'IdsUnavailable',
  'StaleOwner',
  'Disposed',
  'ShuttingDown',
];

/**
 * A failure the core reported. `code` says which; `message` is awaken's Display text where awaken
 * has one (e.g. `'x' is a reserved name`, `task already completed`). Wrong argument types are
 * plain `TypeError`s instead, and change nothing.
 */
export declare class BgTasksError extends Error {
  /**
   * @param code which failure
   * @param message the human-readable text
   * @param status for `TaskTerminated`: the task's terminal status
   */
  constructor(code: BgTasksErrorCode, message: string, status?: TaskStatus);
  /** Always `'BgTasksError'`. */
  name: 'BgTasksError';
  /** Which failure (`sendMessage`: TaskNotFound, NotOwner, TaskTerminated, NoInbox, InboxClosed, InboxFull; `spawn`: ReservedName, DuplicateName; `restore`: InvalidSnapshot; `advance` on a system clock: InvalidArgument). */
  code: BgTasksErrorCode;
  /** `TaskTerminated` only: the status the task already has. */
  status?: TaskStatus;
}

// ---------------------------------------------------------------------------------------------
// Manager options and spawn options
// ---------------------------------------------------------------------------------------------

/** Options of `wait(id, options)`. */
export interface WaitOptions {
  /** Rejects with a `TimeoutError` `DOMException` after this many ms on the manager's clock. */
  timeoutMs?: number | undefined;
  /** Rejects with the signal's reason when it aborts. */
  signal?: AbortSignal | undefined;
}

/**
 * Why a task's signal aborted: `ctx.signal.reason` is a `DOMException` (`AbortError`, or
 * `TimeoutError` for a deadline) with this `kind`; a cancel caused by `spawn({ signal })` keeps
 * that signal's own reason.
 */
export type CancelKind = 'cancel' | 'cancelTree' | 'cancelAll' | 'run' | 'timeout' | 'shutdown' | 'grace';

/** Options of {@link createTaskManager}. Any other key is a `TypeError`. */
export interface TaskManagerOptions {
  /**
   * `'system'` (default): real time, and the manager runs bodies by itself (microtasks and one
   * timer for the next deadline). `'manual'`: time moves only with `advance(ms)`, and nothing runs
   * until `runUntilIdle()`.
   */
  clock?: 'system' | 'manual' | undefined;
  /** Manual clock only: the start time in ms (default 0). */
  now?: number | undefined;
  /** Keep at most this many finished tasks per thread, the newest (default: unlimited, as awaken). */
  retainFinished?: number | undefined;
  /** Capacity of each sub-agent inbox (default 0: unbounded). */
  agentInboxCapacity?: number | undefined;
  /** What a full sub-agent inbox does: `'reject'` (default; `sendMessage` throws InboxFull) or `'dropOldest'`. */
  agentInboxOverflow?: 'reject' | 'dropOldest' | undefined;
  /** Capacity of the owner inbox (default 0: unbounded). */
  ownerInboxCapacity?: number | undefined;
  /** What a full owner inbox does: `'reject'` (default; the new event is not delivered, `ctx.emit` returns false) or `'dropOldest'`. */
  ownerInboxOverflow?: 'reject' | 'dropOldest' | undefined;
  /**
   * Concurrency limits: at most `perThread` bodies running per thread and `perType[type]` per task
   * type. A task over a limit gets its id at once and waits, `queued: true`, in FIFO order; a blocked
   * task does not hold back a later one of another thread or type. Cancelling a queued task ends it
   * `cancelled` without its body ever running.
   */
  concurrency?: { perThread?: number | undefined; perType?: Record<string, number> | undefined } | undefined;
  /**
   * A body whose cancel was requested and that has not settled within this many ms (manager clock)
   * is ended `cancelled` by the manager; its later result is discarded. Default: none (awaken's
   * behaviour: a body that ignores its cancel keeps its task running).
   */
  cancelGraceMs?: number | undefined;
  /**
   * Attaches a store: task ids come from the store in blocks (so managers sharing it never
   * collide), each thread the manager touches is claimed and its saved state taken in before the
   * first write, and every change is saved without being asked (coalesced, one write in flight
   * per thread, the newest state wins). `await manager.flush()` waits for durability. The
   * guarantees: https://github.com/bgtasks/bgtasks/blob/main/docs/persistence.md
   */
  store?: TaskStore | undefined;
  /** With `store`: called with each failed save or claim (`StaleOwner` once another owner took a thread over) and its thread. */
  onStoreError?: ((error: Error, thread: string | undefined) => void) | undefined;
  /** With `store`: how many ids are reserved at a time (default 65536). */
  idBlockSize?: number | undefined;
}

/** Explicit lineage for a spawn; each given field wins over the ambient one (`null` = not given). */
export interface SpawnParentOptions {
  task_id?: string | null | undefined;
  run_id?: string | null | undefined;
  call_id?: string | null | undefined;
  agent_id?: string | null | undefined;
}

/** Options of `spawn` / `ctx.spawn`. Any other key is a `TypeError`. */
export interface SpawnOptions {
  /** The owning thread: any string, `''` included. */
  thread: string;
  /** The task type: any string, `''` included, e.g. `'shell'`. */
  type: string;
  /**
   * A name, unique per thread among running tasks (`DuplicateName`); `parent`, `self`, `all` and
   * `broadcast` are reserved (`ReservedName`). `undefined`/`null`: no name.
   */
  name?: string | null | undefined;
  /** A description (default `''`). */
  description?: string | undefined;
  /** Explicit parent context fields. */
  parent?: SpawnParentOptions | undefined;
  /** An outside signal: its abort cancels the task, and its reason becomes `ctx.signal.reason` (already aborted: cancelled at once). */
  signal?: AbortSignal | undefined;
  /**
   * A deadline in ms on the manager's clock: at it, the task ends `failed` with
   * `task timed out after N ms` (unless it ended first) and its signal aborts with a
   * `TimeoutError`; what the body does afterwards is discarded.
   */
  timeoutMs?: number | undefined;
}

/** Options of `spawnAgent` / `ctx.spawnAgent` (the type is always `'sub_agent'`, so no `type`). */
export interface SpawnAgentOptions {
  /** The owning thread: any string, `''` included. */
  thread: string;
  /** A name, as for {@link SpawnOptions.name}. */
  name?: string | null | undefined;
  /** A description (default `''`). */
  description?: string | undefined;
  /** Explicit parent context fields. */
  parent?: SpawnParentOptions | undefined;
  /** An outside signal: its abort cancels the task, and its reason becomes `ctx.signal.reason` (already aborted: cancelled at once). */
  signal?: AbortSignal | undefined;
  /**
   * A deadline in ms on the manager's clock: at it, the task ends `failed` with
   * `task timed out after N ms` (unless it ended first) and its signal aborts with a
   * `TimeoutError`; what the body does afterwards is discarded.
   */
  timeoutMs?: number | undefined;
}

/**
 * A task body: an (async) function of its context. Resolving completes the task with the value as
 * JSON, copied under the rules of a payload (see {@link TaskContext.emit}: a value JSON cannot
 * carry, nesting past 128 levels, text over 64 MiB or a lone surrogate fails it with that
 * `TypeError`'s message); throwing or rejecting fails it with the error's message (a thrown
 * string as it is, any other value as JSON), made well-formed rather than refused: each lone
 * surrogate becomes U+FFFD, as `String.prototype.toWellFormed()` does, so the task still fails
 * with its own text. Once a cancel was requested, whatever it settles with is discarded and the
 * task ends `cancelled`.
 *
 * `R` is what it resolves with (`unknown`: anything), `Events` the manager's event map.
 */
export type TaskBody<R = unknown, Events extends EventMap<Events> = DefaultEventMap> = (
  ctx: TaskContext<Events>,
) => R | PromiseLike<R>;

/** A sub-agent body: like {@link TaskBody}, with `ctx.inbox`. */
export type AgentTaskBody<R = unknown, Events extends EventMap<Events> = DefaultEventMap> = (
  ctx: AgentTaskContext<Events>,
) => R | PromiseLike<R>;

/** Where `persist` / `resume` keep snapshots: {@link FileStore}, {@link IndexedDbStore} or your own. */
export interface SnapshotStore {
  /** Replaces the thread's saved snapshot. */
  save(thread: string, snapshot: BackgroundTaskState, options?: { epoch?: number }): Promise<void>;
  /** The thread's saved snapshot, or null when none was saved. */
  load(thread: string): Promise<BackgroundTaskState | BackgroundTaskStateInput | null>;
}

/**
 * A store a manager can be attached to (`createTaskManager({ store })`): snapshots plus task-id
 * blocks and fenced thread ownership. {@link FileStore} and {@link IndexedDbStore} are ones, and
 * `PostgresStore` from `bgtasks/postgres` (its declarations are in postgres.d.ts).
 */
export interface TaskStore extends SnapshotStore {
  /**
   * With `epoch`: writes only while the thread is still owned with that epoch; otherwise rejects
   * with `BgTasksError` `StaleOwner` and changes nothing.
   */
  save(thread: string, snapshot: BackgroundTaskState, options?: { epoch?: number }): Promise<void>;
  /** Takes the thread over (the owner epoch goes up; older epochs' saves are refused from then on). `onLost` is called if the store learns that another owner took it. */
  claim(thread: string, options?: { owner?: string; onLost?: (thread: string) => void }): Promise<{ epoch: number }>;
  /** The first number of a block of `count` task numbers nobody got before, above every `bg_<n>` saved. */
  reserveIds(count: number): Promise<number>;
  /** Later blocks start at or above `next`. */
  raiseIdFloor(next: number): Promise<void>;
  /** Optional: `save` for a snapshot already in JSON text; used instead of `save` when present. */
  saveText?(thread: string, text: string, options?: { epoch?: number }): Promise<void>;
  /** Gives the thread's claim up (optional); with `epoch`, only the claim that got that epoch. */
  release?(thread: string, options?: { epoch?: number }): Promise<void>;
}

/** What `restore` / `resume` did: how many entries were added, and which ids the thread already had (kept as they were). */
export interface RestoreResult {
  added: number;
  skipped: string[];
}

/** A thread's ownership in the attached store. */
export type ThreadOwnership = 'none' | 'claiming' | 'owned' | 'lost' | 'failed';

// ---------------------------------------------------------------------------------------------
// Task contexts
// ---------------------------------------------------------------------------------------------

/**
 * What a task body receives. Frozen; do not construct it yourself. `Events` is the manager's event
 * map: it types `emit`.
 */
export declare class TaskContext<Events extends EventMap<Events> = DefaultEventMap> {
  private constructor();
  /** This task's id (`bg_<n>`). */
  readonly taskId: string;
  /** Sub-agents only (see {@link AgentTaskContext}): their inbox of `agent_message` events. */
  readonly inbox?: AgentInbox;
  /** Aborted (with an `AbortError` reason) when this task's cancel is requested or the manager is disposed. */
  get signal(): AbortSignal;
  /** True once this task's cancel was requested (`signal.aborted`). */
  isCancelled(): boolean;
  /**
   * Sends `{kind:'custom', task_id, event_type, payload}` to the owner inbox. True if delivered;
   * false once the task has ended or a bounded owner inbox refused it. A payload JSON cannot
   * carry is a `TypeError`, as is one past the core's limits (nesting deeper than 128 levels,
   * JSON text over 64 MiB, a lone surrogate). The payload is copied at `emit` (see
   * {@link CustomTaskEvent} `payload`): changing it afterwards changes nothing queued. With an
   * event map, `eventType` is one of its keys and `payload` that key's type (see
   * {@link EmitPayload}); without one, any string and any (optional) payload.
   */
  emit<K extends keyof Events & string>(eventType: K, ...payload: EmitPayload<Events, K>): boolean;
  /**
   * Resolves after `ms` on the manager's clock; rejects with a `DOMException` named `AbortError`
   * as soon as this task's cancel is requested (or the manager is disposed).
   */
  sleep(ms: number): Promise<void>;
  /**
   * Spawns a child of this task (its `parent_context.task_id` is this task unless given), also
   * after an await. The id carries the body's {@link TaskResult}; a body whose resolved type is
   * not JSON (see {@link ResultCompatible}) is refused.
   */
  spawn<R>(
    options: SpawnOptions,
    body: TaskBody<R, Events> & TaskBody<ResultCompatible<R>, Events>,
  ): TaskId<TaskResult<R>>;
  /** Spawns a sub-agent child of this task; its id carries the body's {@link TaskResult}, as for `spawn`. */
  spawnAgent<R>(
    options: SpawnAgentOptions,
    body: AgentTaskBody<R, Events> & AgentTaskBody<ResultCompatible<R>, Events>,
  ): TaskId<TaskResult<R>>;
}

/** What a sub-agent body receives: a {@link TaskContext} with its own inbox. */
export interface AgentTaskContext<Events extends EventMap<Events> = DefaultEventMap> extends TaskContext<Events> {
  /** The sub-agent's inbox of `agent_message` events sent with `sendMessage`. */
  readonly inbox: AgentInbox;
}

/** A sub-agent's inbox. Async-iterable: `for await (const msg of ctx.inbox)` ends on cancel or task end. */
export declare class AgentInbox {
  private constructor();
  /** The next message; waits for one. Resolves null once the task is cancelled or has ended. */
  recv(): Promise<AgentMessage | null>;
  /** The next message if one is waiting, else null. */
  tryRecv(): AgentMessage | null;
  /** Yields messages in order until the task is cancelled or ends. */
  [Symbol.asyncIterator](): AsyncGenerator<AgentMessage, void, undefined>;
}

// ---------------------------------------------------------------------------------------------
// The manager
// ---------------------------------------------------------------------------------------------

/**
 * Creates a task manager (one wasm core). Rejects with a `TypeError` for options that are not an
 * object, an unknown key, or a bad value.
 *
 * `Events` is the event map (see {@link EventMap}) that types `ctx.emit` and the custom events of
 * `drain()` / `events()`; without one, any event type and payload, as {@link DefaultEventMap}.
 *
 * @example
 * const mgr = await createTaskManager({ clock: 'manual', now: 0 });
 * const typed = await createTaskManager<{ progress: { pct: number }; done: null }>();
 */
export declare function createTaskManager<Events extends EventMap<Events> = DefaultEventMap>(
  options?: TaskManagerOptions,
): Promise<TaskManager<Events>>;

/**
 * awaken's background task manager. Create it with {@link createTaskManager}. Every method throws
 * an `Error` once the manager is disposed; a wrong argument type is a `TypeError` naming the
 * argument and changes nothing. A thread or task type is any string, `''` included (as in
 * awaken); a string argument with a lone UTF-16 surrogate is a `TypeError`. `Events` is the event
 * map given to {@link createTaskManager}.
 */
export declare class TaskManager<Events extends EventMap<Events> = DefaultEventMap> {
  /** Use {@link createTaskManager}. */
  private constructor();

  /**
   * Spawns a task and returns its id (`bg_<n>`) at once; the body starts at the next poll, never
   * inside `spawn`. Called during the synchronous part of another body, the new task's parent is
   * that body's task. Throws `BgTasksError` `ReservedName` / `DuplicateName`. The id is a
   * {@link TaskId} carrying the body's {@link TaskResult} (`R`, the type the body resolves with,
   * must be JSON: see {@link ResultCompatible}).
   */
  spawn<R>(
    options: SpawnOptions,
    body: TaskBody<R, Events> & TaskBody<ResultCompatible<R>, Events>,
  ): TaskId<TaskResult<R>>;

  /** Spawns a sub-agent (`task_type` `'sub_agent'`) with its own inbox (`ctx.inbox`). Same rules as `spawn`. */
  spawnAgent<R>(
    options: SpawnAgentOptions,
    body: AgentTaskBody<R, Events> & AgentTaskBody<ResultCompatible<R>, Events>,
  ): TaskId<TaskResult<R>>;

  /**
   * Sends awaken's `agent_message` `{from, content}` to a sub-agent owned by `thread`. Throws
   * `BgTasksError`: `TaskNotFound`, `NotOwner`, `TaskTerminated` (with `status`), `NoInbox`,
   * `InboxClosed`, `InboxFull` — checked in that order.
   */
  sendMessage(taskId: string, thread: string, from: string, content: string): void;

  /** The task's summary (any thread), or null for an unknown id. A {@link TaskId} types its `result`. */
  get<R>(id: TaskId<R>): TaskSummary<R> | null;
  get(id: string): TaskSummary | null;

  /** The thread's tasks, in id order. */
  list(thread: string): TaskSummary[];

  /** True if the thread has a task whose status is `running`. */
  hasRunning(thread: string): boolean;

  /**
   * Resolves with the terminal summary once the task's body has settled (at once for a task that
   * is not live; null for an unknown id, or when the manager is disposed first). A
   * {@link TaskId} types its `result`.
   */
  wait<R>(id: TaskId<R>, options?: WaitOptions): Promise<TaskSummary<R> | null>;
  wait(id: string, options?: WaitOptions): Promise<TaskSummary | null>;

  /**
   * Calls `listener` with every event of `options.thread` (or of every thread), in order, as it
   * happens, without consuming the owner inbox that `drain()`/`events()` read. Returns the
   * unsubscribe function. A listener that throws is reported (`reportError`, else `console.error`)
   * and the others still get the event. Treat events as read-only: listeners share them.
   */
  subscribe(listener: (event: TaskEvent<Events>) => void, options?: { thread?: string | undefined }): () => void;

  /**
   * Stops the manager as a host stops: spawns are refused (`ShuttingDown`), every live task's signal
   * aborts (reason `kind: 'shutdown'`), bodies get `graceMs` (manager clock, default 0) to settle,
   * then every task live when it began ends `failed` with `interrupted: host shutdown` (tasks a user
   * cancelled before stay `cancelled`); the attached store is flushed and the manager disposed
   * (`dispose: false` leaves it open for reads and drains; spawns stay refused). A second call while
   * the grace runs ends it no later than its own `graceMs` (a second Ctrl-C) and returns the same
   * promise.
   */
  shutdown(options?: { graceMs?: number | undefined; dispose?: boolean | undefined }): Promise<void>;

  /** Replaces the concurrency limits (`{}` removes them); queued tasks that now fit start at the next poll. A limit of 0 is `InvalidArgument`. */
  setConcurrency(limits: { perThread?: number | undefined; perType?: Record<string, number> | undefined }): void;

  /** Drops a finished task (terminal status, body ended). True if something was removed. */
  forget(id: string): boolean;

  /**
   * Requests the task's cancel: true while its body is live and its status is not terminal (again
   * on every repeat); false for unknown, finished or restored-only ids. Aborts `ctx.signal`; the
   * status stays `running` until the body settles, then it is `cancelled`.
   */
  cancel(id: string): boolean;

  /**
   * Cancels the task and its descendants (by `parent_context.task_id`, across threads); returns how
   * many live, non-terminal tasks were signalled (0 for an unknown id).
   */
  cancelTree(id: string): number;

  /** Cancels the thread's live, non-terminal tasks; returns how many. */
  cancelAll(thread: string): number;

  /**
   * Takes the pending owner-inbox events in order: all of them (no argument), or only `thread`'s
   * (the rest stay queued); `drain('')` takes the empty thread's.
   */
  drain(thread?: string): TaskEvent<Events>[];

  /**
   * The owner inbox as an async iterator (it consumes, like `drain`): every event, or only
   * `thread`'s, in order; waits for new ones; ends when the manager is disposed.
   */
  events(thread?: string): AsyncGenerator<TaskEvent<Events>, void, undefined>;

  /** awaken's `background_task_state` value: one thread's tasks (`''` is the empty thread), or every thread's (no argument). */
  snapshot(thread?: string): BackgroundTaskState;

  /**
   * Claims every entry of `snapshot` for `thread`, all or nothing, as awaken's
   * `restore_for_thread`: ids the thread already has are kept as they are and listed in `skipped`,
   * `bg_<n>` ids move the id counter past n, running entries become `failed` with
   * `task orphaned: runtime restarted while running`. Throws `BgTasksError` `InvalidSnapshot`
   * (naming the entry and field) when any entry is invalid, and `IdConflict` (naming the ids) when
   * another thread holds one of the ids; then nothing is restored.
   */
  restore(thread: string, snapshot: BackgroundTaskState | BackgroundTaskStateInput): RestoreResult;

  /**
   * Saves `snapshot(thread)` into `store`. Overlapping calls end with the newest state saved. Into
   * the attached store it is the owned, fenced save of the thread (`StaleOwner` once taken over).
   */
  persist(store: SnapshotStore, thread: string): Promise<void>;

  /** Restores the thread's snapshot from `store`, if one was saved. */
  resume(store: SnapshotStore, thread: string): Promise<RestoreResult>;
  /** Attached store only: claims the thread and takes its saved state in (once; later calls add nothing). */
  resume(thread: string): Promise<RestoreResult>;

  /** The attached store, or null. */
  readonly store: TaskStore | null;

  /** Resolves once every change made before the call is saved in the attached store (at once without one); rejects with the first failure (`StaleOwner` for a thread taken over). */
  flush(): Promise<void>;

  /** Who owns `thread` in the attached store. */
  ownership(thread: string): ThreadOwnership;

  /** Attached store only: reserves `count` more ids now (before spawning more tasks at once than `idBlockSize`). */
  reserveIds(count: number): Promise<void>;

  /**
   * Manual clock only (else `BgTasksError` `InvalidArgument`): moves time by `ms`; due timers
   * become ready, nothing runs until the next `runUntilIdle()`.
   */
  advance(ms: number): void;

  /**
   * Manual clock only (else `BgTasksError` `InvalidArgument`): lets `ms` pass the way real time
   * would — stops at every timer deadline on the way and runs what it woke (`runUntilIdle`).
   * Calls queue: one made while another is running (a forgotten `await`) starts when that one
   * ends, so time moves by the sum, as if each had been awaited.
   */
  runFor(ms: number): Promise<void>;

  /** The earliest armed timer deadline (ms on the manager's clock), or `null` when none is armed. */
  nextDeadline(): number | null;

  /** The manager's clock, in ms. */
  now(): number;

  /**
   * Runs ready bodies and lets settled promises deliver until nothing is ready. Never moves time;
   * does not wait for future timers or for promises outside the manager.
   */
  runUntilIdle(): Promise<void>;

  /** Counts by status, live bodies, cancel-requested-but-running tasks, owner inbox depth and drops. */
  stats(): Stats;

  /** The task forest (every thread, or one thread's), roots and children in id order. */
  taskTree(thread?: string): TaskTreeNode[];

  /**
   * Frees the core: live bodies' signals abort, pending sleeps reject with an `AbortError`,
   * pending `wait`s resolve null, `events()` iterators end. Further calls throw. Idempotent.
   */
  dispose(): void;

  /** True once `dispose()` was called. */
  readonly disposed: boolean;

  /** `dispose()`, for `using mgr = await createTaskManager()`. */
  [Symbol.dispose](): void;
}

// ---------------------------------------------------------------------------------------------
// Stores
// ---------------------------------------------------------------------------------------------

/**
 * Node only: one JSON file per thread (`<dir>/<encodeURIComponent(thread)>.json`; the empty
 * thread's is `<dir>/.json`), replaced
 * atomically (temp file, fsync, rename): a crash mid-write leaves the previous snapshot readable.
 * In browsers the constructor throws; use {@link IndexedDbStore}.
 */
export declare class FileStore implements TaskStore {
  /** @param dir the folder for the snapshot files (created on first save; made absolute) */
  constructor(dir: string);
  /** The folder, as an absolute path. */
  get dir(): string;
  /** The file the thread's snapshot lives in. */
  pathFor(thread: string): string;
  /**
   * Atomically replaces the thread's snapshot; saves of one thread made in this process land in
   * call order. With `epoch`, only while the thread is owned with that epoch (else `StaleOwner`).
   */
  save(thread: string, snapshot: BackgroundTaskState, options?: { epoch?: number }): Promise<void>;
  /** `save` for a snapshot already in JSON text (what an attached manager writes). */
  saveText(thread: string, text: string, options?: { epoch?: number }): Promise<void>;
  /** The thread's snapshot, or null when none was saved; a corrupt file rejects with `InvalidSnapshot`. */
  load(thread: string): Promise<BackgroundTaskState | null>;
  /** Takes the thread over across processes (a cross-process lock around the epoch's update). */
  claim(thread: string, options?: { owner?: string }): Promise<{ epoch: number }>;
  /** Who claimed the thread last, or null. */
  owner(thread: string): Promise<{ epoch: number; owner: string; pid: number; at: number } | null>;
  /** Nothing to release in a FileStore: ownership ends by another claim. */
  release(thread: string, options?: { epoch?: number }): Promise<void>;
  /** Reserves a block of task numbers from the folder's shared counter (`.ids`). */
  reserveIds(count: number): Promise<number>;
  /** Later blocks start at or above `next`. */
  raiseIdFloor(next: number): Promise<void>;
  /** The threads that have a saved snapshot. */
  threads(): Promise<string[]>;
  /** Removes the thread's snapshot and owner record (no error if there is none). */
  delete(thread: string): Promise<void>;
  /** Nothing is held open between calls. */
  close(): void;
}

/** Options of {@link IndexedDbStore}. */
export interface IndexedDbStoreOptions {
  /** The object store's name (default `'snapshots'`). */
  storeName?: string | undefined;
  /** The transactions' durability hint (default `'strict'`). */
  durability?: 'strict' | 'relaxed' | 'default' | undefined;
}

/**
 * Browsers (or Node with an IndexedDB polyfill): one record per thread in one object store, each
 * save one transaction; an aborted transaction (quota, closing tab) rejects the save.
 */
export declare class IndexedDbStore implements TaskStore {
  /**
   * @param dbName the IndexedDB database name (opened on first use)
   * @param options object store name and durability
   */
  constructor(dbName: string, options?: IndexedDbStoreOptions);
  /**
   * Replaces the thread's snapshot in one transaction. With `epoch` (from `claim`): refused with
   * `BgTasksError` `StaleOwner`, nothing written, if the thread was claimed again since or deleted.
   */
  save(thread: string, snapshot: BackgroundTaskState, options?: { epoch?: number }): Promise<void>;
  /** The thread's snapshot, or null. */
  load(thread: string): Promise<BackgroundTaskState | null>;
  /** Raises the thread's epoch (never reused in the database) and steals its Web Lock; the previous holder's `onLost(thread)` is called. */
  claim(thread: string, options?: { owner?: string; onLost?: (thread: string) => void }): Promise<{ epoch: number }>;
  /** Who claimed the thread last, or null (never claimed, or deleted). */
  owner(thread: string): Promise<{ epoch: number; owner?: string; at: number } | null>;
  /** Gives up the thread's Web Lock (the epoch stays valid until another claim); with `epoch`, only that claim's lock. */
  release(thread: string, options?: { epoch?: number }): Promise<void>;
  /** Reserves a block of `count` task numbers (1 to 2^32) from the database's counter. */
  reserveIds(count: number): Promise<number>;
  /** Later blocks start at or above `next`. */
  raiseIdFloor(next: number): Promise<void>;
  /** The threads that have a saved snapshot. */
  threads(): Promise<string[]>;
  /** Removes the thread's snapshot and owner record (a later save with an old epoch is refused). */
  delete(thread: string): Promise<void>;
  /** Closes the connection (reopened on next use) and releases the Web Locks this store holds. */
  close(): void;
}
