// Argument checks: each takes what a caller passed, returns it (or its normalised form) when it is
// valid, and throws a TypeError naming the argument and what it got when it is not — before
// anything changes. The option lists of every method that takes options are here too.
import { wellFormed } from './surrogates.js';

const MANAGER_OPTIONS = [
  'clock',
  'now',
  'retainFinished',
  'agentInboxCapacity',
  'agentInboxOverflow',
  'ownerInboxCapacity',
  'ownerInboxOverflow',
  'store',
  'onStoreError',
  'idBlockSize',
  'concurrency',
  'cancelGraceMs',
];
/** spawn()'s options; spawnAgent() takes the same but `type` (always 'sub_agent'). */
export const SPAWN_OPTIONS = ['thread', 'type', 'name', 'description', 'parent', 'signal', 'timeoutMs'];
export const AGENT_OPTIONS = ['thread', 'name', 'description', 'parent', 'signal', 'timeoutMs'];
const PARENT_FIELDS = ['task_id', 'run_id', 'call_id', 'agent_id'];
// Ids are plentiful (2^53 before they stop being exact JS numbers): a big block keeps a burst of
// spawns from outrunning the store's reservation of the next one.
const DEFAULT_ID_BLOCK = 65536;
const INT32_MAX = 2 ** 31 - 1; // the binding takes these counts as int

// What an argument was, for error texts: `number 1`, `string abc`, `undefined` (nothing given).
function describe(value) {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value).slice(0, 40)}`;
}

/** A string argument; `nonEmpty` also refuses "". */
export function checkString(value, name, { nonEmpty = false } = {}) {
  if (typeof value !== 'string') throw new TypeError(`${name} must be a string, got ${describe(value)}`);
  if (nonEmpty && value.length === 0) throw new TypeError(`${name} must be a non-empty string`);
  if (!wellFormed(value)) throw new TypeError(`${name} contains a lone UTF-16 surrogate`);
  return value;
}

export function checkOptionalString(value, name) {
  if (value === undefined) return undefined;
  return checkString(value, name);
}

export function checkFunction(value, name) {
  if (typeof value !== 'function') throw new TypeError(`${name} must be a function, got ${describe(value)}`);
  return value;
}

export function checkMs(value, name) {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > Number.MAX_SAFE_INTEGER)
    throw new TypeError(`${name} must be a finite number of milliseconds >= 0, got ${describe(value)}`);
  return Math.floor(value);
}

export function checkCount(value, name, max = Number.MAX_SAFE_INTEGER) {
  if (!Number.isSafeInteger(value) || value < 0 || value > max)
    throw new TypeError(`${name} must be an integer from 0 to ${max}, got ${describe(value)}`);
  return value;
}

/** A plain options object whose keys are all in `allowed`. */
export function checkOptions(value, name, allowed) {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new TypeError(`${name} must be an object, got ${describe(value)}`);
  for (const key of Object.keys(value))
    if (!allowed.includes(key)) throw new TypeError(`${name}: unknown option '${key}' (allowed: ${allowed.join(', ')})`);
  return value;
}

export function checkSignal(value, name) {
  if (typeof value !== 'object' || typeof value.aborted !== 'boolean' || typeof value.addEventListener !== 'function')
    throw new TypeError(`${name} must be an AbortSignal`);
  return value;
}

/** A spawn's `parent` option: its given fields (null and undefined ones left out). */
export function checkParent(parent) {
  checkOptions(parent, 'options.parent', PARENT_FIELDS);
  const out = {};
  for (const field of PARENT_FIELDS) {
    const v = parent[field];
    if (v === undefined || v === null) continue;
    out[field] = checkString(v, `options.parent.${field}`);
  }
  return out;
}

/** Concurrency limits: {perThread?, perType?} with the counts checked (0 is left to the core to refuse). */
export function checkConcurrency(value, name = 'options.concurrency') {
  checkOptions(value, name, ['perThread', 'perType']);
  const out = {};
  if (value.perThread !== undefined) {
    out.perThread = checkCount(value.perThread, `${name}.perThread`, INT32_MAX);
  }
  if (value.perType !== undefined) {
    if (value.perType === null || typeof value.perType !== 'object' || Array.isArray(value.perType))
      throw new TypeError(`${name}.perType must be an object {type: limit}`);
    out.perType = {};
    for (const [type, n] of Object.entries(value.perType)) {
      checkString(type, `${name}.perType key`);
      out.perType[type] = checkCount(n, `${name}.perType.${type}`, INT32_MAX);
    }
  }
  return out;
}

/** Checks that a value can serve as an attached store; names what is missing. */
export function checkStore(store) {
  if (store === null || typeof store !== 'object') throw new TypeError('options.store must be a store object (FileStore, IndexedDbStore or one with the same methods)');
  const missing = ['load', 'save', 'claim', 'reserveIds', 'raiseIdFloor'].filter((m) => typeof store[m] !== 'function');
  if (missing.length > 0) throw new TypeError(`options.store lacks ${missing.map((m) => `${m}()`).join(', ')}: an attached store must hand out ids and owner epochs`);
  return store;
}

/** restore()'s snapshot: an object (its JSON form is checked as it crosses). */
export function checkSnapshot(snapshot) {
  if (snapshot === null || typeof snapshot !== 'object' || Array.isArray(snapshot))
    throw new TypeError('snapshot must be an object {tasks: {...}}');
  return snapshot;
}

/** A store given to persist() or resume(): it must have `method` (`signature` names it in the error). */
export function checkStoreMethod(store, method, signature) {
  if (store === null || typeof store !== 'object' || typeof store[method] !== 'function')
    throw new TypeError(`store must have a ${signature} method`);
  return store;
}

function overflowPolicy(value, name) {
  if (value === undefined || value === 'reject') return false;
  if (value === 'dropOldest') return true;
  throw new TypeError(`${name} must be 'reject' or 'dropOldest'`);
}

/** createTaskManager's options, checked, with every default filled in: what the manager is built from. */
export function managerConfig(options) {
  checkOptions(options, 'options', MANAGER_OPTIONS);
  const clock = options.clock ?? 'system';
  if (clock !== 'system' && clock !== 'manual') throw new TypeError(`options.clock must be 'system' or 'manual'`);
  if (options.now !== undefined && clock !== 'manual') throw new TypeError('options.now needs clock: "manual"');
  const config = {
    manual: clock === 'manual',
    now: options.now === undefined ? 0 : checkMs(options.now, 'options.now'),
    retainFinished: options.retainFinished === undefined ? -1 : checkCount(options.retainFinished, 'options.retainFinished', INT32_MAX),
    agentInboxCapacity: options.agentInboxCapacity === undefined ? 0 : checkCount(options.agentInboxCapacity, 'options.agentInboxCapacity', INT32_MAX),
    agentDropOldest: overflowPolicy(options.agentInboxOverflow, 'options.agentInboxOverflow'),
    ownerInboxCapacity: options.ownerInboxCapacity === undefined ? 0 : checkCount(options.ownerInboxCapacity, 'options.ownerInboxCapacity', INT32_MAX),
    ownerDropOldest: overflowPolicy(options.ownerInboxOverflow, 'options.ownerInboxOverflow'),
    store: options.store === undefined ? null : checkStore(options.store),
    onStoreError: options.onStoreError === undefined ? null : checkFunction(options.onStoreError, 'options.onStoreError'),
    idBlockSize: options.idBlockSize === undefined ? DEFAULT_ID_BLOCK : checkCount(options.idBlockSize, 'options.idBlockSize', 1 << 20),
    concurrency: options.concurrency === undefined ? null : checkConcurrency(options.concurrency),
    cancelGraceMs: options.cancelGraceMs === undefined ? -1 : checkMs(options.cancelGraceMs, 'options.cancelGraceMs'),
  };
  if (config.store === null && (options.onStoreError !== undefined || options.idBlockSize !== undefined))
    throw new TypeError('options.onStoreError and options.idBlockSize need options.store');
  if (config.idBlockSize === 0) throw new TypeError('options.idBlockSize must be at least 1');
  return config;
}

/** wait()'s options: {timeoutMs (-1: none), signal (null: none)}. */
export function waitOptions(options) {
  let timeoutMs = -1;
  let signal = null;
  if (options !== undefined) {
    checkOptions(options, 'wait options', ['timeoutMs', 'signal']);
    if (options.timeoutMs !== undefined) timeoutMs = checkMs(options.timeoutMs, 'options.timeoutMs');
    if (options.signal !== undefined && options.signal !== null) signal = checkSignal(options.signal, 'options.signal');
  }
  return { timeoutMs, signal };
}

/** shutdown()'s options: {graceMs (default 0), dispose (default true)}. */
export function shutdownOptions(options) {
  let graceMs = 0;
  let dispose = true;
  if (options !== undefined) {
    checkOptions(options, 'shutdown options', ['graceMs', 'dispose']);
    if (options.graceMs !== undefined) graceMs = checkMs(options.graceMs, 'options.graceMs');
    if (options.dispose !== undefined) {
      if (typeof options.dispose !== 'boolean') throw new TypeError('options.dispose must be a boolean');
      dispose = options.dispose;
    }
  }
  return { graceMs, dispose };
}
