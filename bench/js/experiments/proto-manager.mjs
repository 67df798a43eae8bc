// A cut-down TaskManager (spawn, ctx.emit, settle, drain, runUntilIdle, stats: what the agent
// workload uses) over the prototype binding (proto-binding.cpp), with one switch per crossing
// alternative so each can be measured end to end against today's js/src/manager.js. Same checks
// as today (checkOptions, checkString, toJson on results); same pump loop. Not a product: cancel,
// sleep, lineage options, wait and the rest are left out (the workload does not call them).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkFunction, checkOptions, checkString, toJson } from '../../../js/src/errors.js';

const here = path.dirname(fileURLToPath(import.meta.url));
// BGTASKS_PROTO=patched: the build with experiments/*.patch applied (build-wasm.sh --patched).
export const PROTO_DIR = path.resolve(here, `../../../build/bench-js/wasm-proto${process.env.BGTASKS_PROTO === 'patched' ? '-patched' : ''}`);

export const PATCHED_DIR = path.resolve(here, '../../../build/bench-js/wasm-proto-patched');
const modules = new Map();
export function loadProtoModule(dir = PROTO_DIR) {
  if (!modules.has(dir))
    modules.set(dir, (async () => {
      const { default: create } = await import(path.join(dir, 'bgtasks.mjs'));
      return create({ wasmBinary: await readFile(path.join(dir, 'bgtasks.wasm')) });
    })());
  return modules.get(dir);
}

const SPAWN_OPTIONS = ['thread', 'type', 'name', 'description', 'parent'];
const decoder = new TextDecoder();
const nextTurn = () => new Promise((resolve) => setImmediate(resolve));
const KINDS = ['custom', 'completed', 'failed', 'cancelled'];

/**
 * variant:
 *   endHook    the binding dumps every ended task's summary to JSON (today: on)
 *   lazyAbort  AbortController created on first ctx.signal / cancel (today: eager)
 *   emit       'text'   ids/types as ints, payload JSON text (emitT) — drained as JSON text
 *              'handle' payload kept in JS, core holds a handle (emitH), drained as records
 *              'batch'  as handle, but emits and completions queued in JS and run by one
 *                       flushOps call per pump (and before drain)
 *   validate   with handles: JSON.stringify the payload at emit anyway (JSON check; today's cost)
 */
export function protoFactory(variant) {
  return async (options = {}) => new ProtoManager(await loadProtoModule(), variant, options);
}

class ProtoContext {
  #mgr;
  #rec;
  constructor(mgr, rec) {
    this.#mgr = mgr;
    this.#rec = rec;
    this.taskId = rec.id;
    Object.freeze(this);
  }
  get signal() {
    return this.#mgr._signal(this.#rec);
  }
  isCancelled() {
    return this.#rec.controller !== null && this.#rec.controller.signal.aborted;
  }
  emit(eventType, payload) {
    return this.#mgr._emit(this.#rec, eventType, payload);
  }
}

class ProtoManager {
  #m;
  #core;
  #v;
  #live = new Map();
  #pending = [];
  #activity = 0;
  #interned = new Map();
  #strings = [];
  #payloads = [];
  #ops = []; // batch: [op, n, a, payload-or-result]
  #typeProgress;

  constructor(module, variant, options) {
    this.#m = module;
    this.#v = { endHook: true, lazyAbort: false, emit: 'text', validate: false, ...variant };
    this.#core = new module.ProtoCore(options.clock === 'manual');
    this.#core.endHook(this.#v.endHook);
  }

  #intern(s) {
    let i = this.#interned.get(s);
    if (i === undefined) {
      i = this.#core.intern(s);
      this.#interned.set(s, i);
      this.#strings[i] = s;
    }
    return i;
  }

  spawn(options, body) {
    checkOptions(options, 'spawn options', SPAWN_OPTIONS);
    const thread = checkString(options.thread, 'options.thread', { nonEmpty: true });
    const type = checkString(options.type, 'options.type', { nonEmpty: true });
    checkFunction(body, 'body');
    this.#flush();
    const n = this.#core.spawnI(this.#intern(thread), this.#intern(type));
    if (n < 0) throw new Error('spawn failed');
    const rec = { n, id: `bg_${n}`, body, controller: null, ctx: null };
    if (!this.#v.lazyAbort) rec.controller = new AbortController();
    rec.ctx = new ProtoContext(this, rec);
    this.#live.set(n, rec);
    this.#pending.push(rec);
    this.#activity++;
    return rec.id;
  }

  _signal(rec) {
    rec.controller ??= new AbortController();
    return rec.controller.signal;
  }

  _emit(rec, eventType, payload) {
    checkString(eventType, 'eventType');
    const ty = this.#intern(eventType);
    const v = this.#v;
    this.#activity++;
    if (v.emit === 'text') return this.#core.emitT(rec.n, ty, toJson(payload, 'payload')) === 1;
    if (v.validate) toJson(payload, 'payload');
    const value = payload === undefined ? null : payload;
    if (v.emit === 'handle') {
      const h = this.#payloads.push(value) - 1;
      return this.#core.emitH(rec.n, ty, h) === 1;
    }
    if (!this.#live.has(rec.n)) return false; // batch: the JS side knows the task has ended
    this.#ops.push(0, rec.n, ty, value);
    return true;
  }

  #flush() {
    const ops = this.#ops;
    if (ops.length === 0) return;
    const count = ops.length / 4;
    let base = this.#core.sharedPtr() / 8;
    if (this.#core.sharedCapacity() < ops.length) throw new Error('proto: shared buffer too small');
    const heap = this.#m.HEAPF64;
    const results = [];
    for (let i = 0; i < ops.length; i += 4) {
      heap[base] = ops[i];
      heap[base + 1] = ops[i + 1];
      heap[base + 2] = ops[i] === 0 ? ops[i + 2] : results.push(ops[i + 3]) - 1;
      heap[base + 3] = ops[i] === 0 ? this.#payloads.push(ops[i + 3]) - 1 : 0;
      base += 4;
    }
    this.#ops = [];
    const text = results.length === 0 ? '' : `[${results.join(',')}]`;
    if (this.#core.flushOps(count, text) !== 0) throw new Error('proto: flushOps failed');
  }

  #start(rec) {
    const body = rec.body;
    rec.body = null;
    let promise;
    this.#core.enterI(rec.n);
    try {
      promise = Promise.resolve(body(rec.ctx));
    } catch (e) {
      promise = Promise.reject(e);
    } finally {
      this.#core.leaveTask();
    }
    promise.then(
      (value) => this.#settle(rec, value),
      (error) => {
        throw error;
      },
    );
  }

  #settle(rec, value) {
    const text = toJson(value, 'result');
    this.#live.delete(rec.n);
    if (this.#v.emit === 'batch') this.#ops.push(1, rec.n, 0, text);
    else if (this.#core.completeI(rec.n, text) !== 0) throw new Error('proto: complete failed');
    this.#activity++;
  }

  drain() {
    this.#flush();
    if (this.#v.emit === 'text') {
      const len = this.#core.drainJson();
      const ptr = this.#core.bufferPtr();
      return JSON.parse(decoder.decode(this.#m.HEAPU8.subarray(ptr, ptr + len)));
    }
    const count = this.#core.drainH();
    const len = this.#core.bufferLen();
    let results = null;
    if (len > 0) {
      const ptr = this.#core.bufferPtr();
      results = JSON.parse(decoder.decode(this.#m.HEAPU8.subarray(ptr, ptr + len)));
    }
    const heap = this.#m.HEAPF64;
    let base = this.#core.sharedPtr() / 8;
    const out = new Array(count);
    let r = 0;
    for (let i = 0; i < count; i++, base += 4) {
      const kind = heap[base];
      const id = `bg_${heap[base + 1]}`;
      if (kind === 0) out[i] = { kind: 'custom', task_id: id, event_type: this.#strings[heap[base + 2]], payload: this.#payloads[heap[base + 3]] };
      else if (kind === 1) out[i] = { kind: 'completed', task_id: id, result: results[r++] };
      else out[i] = { kind: KINDS[kind], task_id: id };
    }
    this.#payloads = []; // everything pending was drained: every handle is free again
    return out;
  }

  async runUntilIdle() {
    for (;;) {
      const before = this.#activity;
      while (this.#pending.length > 0) {
        const batch = this.#pending;
        this.#pending = [];
        for (const rec of batch) this.#start(rec);
        this.#core.runUntilIdle();
      }
      await nextTurn();
      this.#flush();
      if (this.#activity === before && this.#pending.length === 0) return;
    }
  }

  stats() {
    this.#flush();
    return { completed: this.#core.completedCount() };
  }

  dispose() {
    this.#core.delete();
  }
}
