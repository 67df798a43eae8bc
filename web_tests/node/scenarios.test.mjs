// Parity scenarios (scenarios/*.json, format in scenarios/README.md) through the public JS API.
// native_tests/scenario_test.cpp runs the same files against the C++ core; both write their
// transcripts to build/scenario-transcripts/ and must agree byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { createTaskManager, BgTasksError } from 'bgtasks';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCENARIO_DIR = join(ROOT, 'scenarios');
const OUT_DIR = join(ROOT, 'build', 'scenario-transcripts', 'node');
const NATIVE_DIR = join(ROOT, 'build', 'scenario-transcripts', 'native');

// ---- canonical JSON: what nlohmann's dump() writes ----------------------------------------------
// Keys sorted by their UTF-8 bytes (std::map<std::string>), no spaces, strings escaped as
// JSON.stringify does (nlohmann writes the same for valid UTF-8: \" \\ \b \f \n \r \t, \u00xx for
// other control characters, everything else raw).
const utf8 = (s) => Buffer.from(s, 'utf8');

function canonicalNumber(n) {
  if (!Number.isFinite(n)) throw new Error(`non-finite number ${n} has no JSON form`);
  if (Number.isInteger(n)) {
    if (!Number.isSafeInteger(n)) throw new Error(`integer ${n} beyond 2^53: not exact in JS`);
    return Object.is(n, -0) ? '0' : String(n);
  }
  // Non-integers: nlohmann and JS agree on the shortest digits for plain decimals; they differ in
  // exponent notation, so scenarios keep non-integers within [1e-4, 1e15) (README).
  const a = Math.abs(n);
  if (a < 1e-4 || a >= 1e15) throw new Error(`number ${n} needs exponent notation: not portable (see README)`);
  return String(n);
}

function canonical(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'number':
      return canonicalNumber(v);
    case 'object': {
      const keys = Object.keys(v).sort((a, b) => Buffer.compare(utf8(a), utf8(b)));
      return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`;
    }
    default:
      throw new Error(`${typeof v} has no JSON form`);
  }
}

// ---- the runner ------------------------------------------------------------------------------
const MANAGER_OPTIONS = {
  retain_finished: (v) => ({ retainFinished: v }),
  agent_inbox_capacity: (v) => ({ agentInboxCapacity: v }),
  agent_inbox_overflow: (v) => {
    if (v !== 'reject' && v !== 'drop_oldest') throw new Error(`agent_inbox_overflow: ${v}`);
    return { agentInboxOverflow: v === 'drop_oldest' ? 'dropOldest' : 'reject' };
  },
  concurrency: (v) => ({ concurrency: concurrencyLimits(v) }),
  cancel_grace_ms: (v) => ({ cancelGraceMs: v }),
};

function concurrencyLimits(v) {
  const out = {};
  if ('per_thread' in v) out.perThread = v.per_thread;
  if ('per_type' in v) out.perType = v.per_type;
  return out;
}

// ctx.signal.reason.kind → the scenario's spelling of the core's CancelReason.
const REASON_NAMES = { cancel: 'cancel', cancelTree: 'cancel_tree', cancelAll: 'cancel_all', run: 'run', timeout: 'timeout', shutdown: 'shutdown', grace: 'grace' };

function errorJson(e) {
  if (e instanceof BgTasksError) return { error: e.code, message: e.message };
  throw e;
}

// Id order, as the core lists ids: bg_N by N, then the other ids by their UTF-8 bytes.
function idOrder(a, b) {
  const na = /^bg_\+?(\d+)$/.exec(a);
  const nb = /^bg_\+?(\d+)$/.exec(b);
  if (na && nb) {
    const x = BigInt(na[1]);
    const y = BigInt(nb[1]);
    if (x !== y) return x < y ? -1 : 1;
  } else if (na || nb) return na ? -1 : 1;
  return Buffer.compare(utf8(a), utf8(b));
}

function skippedIds(stored, snapshot) {
  const had = new Set(stored);
  return Object.keys(snapshot?.tasks ?? {}).filter((id) => had.has(id)).sort(idOrder);
}

// Every task is host-driven: its body parks on a promise that a complete/fail step settles.
function hostBody(rec) {
  return (ctx) => {
    rec.ctx = ctx;
    return new Promise((resolve, reject) => {
      rec.resolve = resolve;
      rec.reject = reject;
    });
  };
}

class Runner {
  constructor(mgr) {
    this.mgr = mgr;
    this.aliases = new Map(); // alias → id
    this.records = new Map(); // id → { ctx, resolve, reject }
    this.fired = []; // [alias, slept] in the order the sleeps settled
  }

  ref(step, key = 'task') {
    const r = step[key];
    if (typeof r !== 'string') throw new Error(`step ${JSON.stringify(step)}: missing '${key}'`);
    if (r.startsWith('=')) return r.slice(1);
    if (!this.aliases.has(r)) throw new Error(`step ${JSON.stringify(step)}: unbound alias '${r}'`);
    return this.aliases.get(r);
  }

  // The body of a task spawned in this scenario (emit, sleep, settle and inbox need it).
  rec(step, key = 'task') {
    const id = this.ref(step, key);
    const rec = this.records.get(id);
    if (!rec?.ctx) throw new Error(`step ${JSON.stringify(step)}: ${id} has no started body in this scenario`);
    return rec;
  }

  spawn(step, agent) {
    const options = { thread: step.thread, description: step.description };
    if (!agent) options.type = step.type;
    if ('name' in step) options.name = step.name;
    if ('parent' in step) options.parent = step.parent;
    if ('timeout_ms' in step) options.timeoutMs = step.timeout_ms;
    const rec = {};
    let id;
    try {
      if ('child_of' in step) {
        // Inside that task's body: its ctx.spawn makes it the ambient parent.
        const parent = this.rec(step, 'child_of');
        id = agent ? parent.ctx.spawnAgent(options, hostBody(rec)) : parent.ctx.spawn(options, hostBody(rec));
      } else {
        id = agent ? this.mgr.spawnAgent(options, hostBody(rec)) : this.mgr.spawn(options, hostBody(rec));
      }
    } catch (e) {
      return errorJson(e);
    }
    this.records.set(id, rec);
    if ('as' in step) this.aliases.set(step.as, id);
    return { id };
  }

  async sleep(step) {
    const rec = this.rec(step);
    const outcome = { error: null };
    rec.ctx.sleep(step.ms).then(
      () => this.fired.push([step.as, true]),
      (e) => {
        if (e instanceof BgTasksError) outcome.error = e;
        else if (e?.name === 'AbortError') this.fired.push([step.as, false]);
        else outcome.error = e;
      },
    );
    await this.mgr.runUntilIdle();
    return outcome.error ? errorJson(outcome.error) : null;
  }

  async apply(step) {
    const mgr = this.mgr;
    switch (step.op) {
      case 'spawn':
        return this.spawn(step, false);
      case 'spawn_agent':
        return this.spawn(step, true);
      case 'emit':
        return this.rec(step).ctx.emit(step.event_type, step.payload ?? null);
      case 'complete':
        this.rec(step).resolve(step.result ?? null);
        return null;
      case 'fail':
        this.rec(step).reject(new Error(step.error));
        return null;
      case 'sleep':
        return this.sleep(step);
      case 'timers':
        return this.fired.splice(0);
      case 'advance':
        mgr.advance(step.ms);
        return null;
      case 'run':
        return null;
      case 'cancel':
        return mgr.cancel(this.ref(step));
      case 'cancel_tree':
        return mgr.cancelTree(this.ref(step));
      case 'cancel_all':
        return mgr.cancelAll(step.thread);
      case 'send':
        try {
          mgr.sendMessage(this.ref(step), step.thread, step.from, step.content);
          return null;
        } catch (e) {
          return errorJson(e);
        }
      case 'take_messages': {
        const inbox = this.rec(step).ctx.inbox;
        if (!inbox) throw new Error(`step ${JSON.stringify(step)}: not a sub-agent`);
        const out = [];
        for (let m = inbox.tryRecv(); m !== null; m = inbox.tryRecv()) out.push(m);
        return out;
      }
      case 'get':
        return mgr.get(this.ref(step));
      case 'list':
        return mgr.list(step.thread);
      case 'has_running':
        return mgr.hasRunning(step.thread);
      case 'drain':
        return 'thread' in step ? mgr.drain(step.thread) : mgr.drain();
      case 'snapshot':
        return 'thread' in step ? mgr.snapshot(step.thread) : mgr.snapshot();
      case 'restore':
        try {
          const stored = Object.keys(mgr.snapshot().tasks);
          const report = mgr.restore(step.thread, step.snapshot);
          // A package whose restore still answers a bare count: the skipped ids are the
          // snapshot's ids that were stored before (a refused restore threw instead).
          if (typeof report === 'number') return { added: report, skipped: skippedIds(stored, step.snapshot) };
          return { added: report.added, skipped: report.skipped };
        } catch (e) {
          return errorJson(e);
        }
      case 'forget':
        return mgr.forget(this.ref(step));
      case 'stats':
        return mgr.stats();
      case 'tree':
        return 'thread' in step ? mgr.taskTree(step.thread) : mgr.taskTree();
      case 'set_concurrency':
        try {
          mgr.setConcurrency(concurrencyLimits(step));
          return null;
        } catch (e) {
          return errorJson(e);
        }
      // JS has one shutdown() call: begin starts it with a grace that finish then cuts to 0, and
      // it leaves the manager open (dispose: false) so that the steps after it can read.
      case 'begin_shutdown': {
        if (this.shutdown) return 0;
        const before = mgr.stats();
        this.shutdown = mgr.shutdown({ graceMs: 2 ** 40, dispose: false });
        return before.running - before.cancel_requested_running;
      }
      case 'finish_shutdown': {
        const before = mgr.stats();
        if (!this.shutdown) this.shutdown = mgr.shutdown({ graceMs: 0, dispose: false });
        else mgr.shutdown({ graceMs: 0 });
        await this.shutdown;
        return before.running - mgr.stats().running;
      }
      case 'cancel_reason': {
        const signal = this.rec(step).ctx.signal;
        return signal.aborted ? (REASON_NAMES[signal.reason?.kind] ?? null) : null;
      }
      default:
        throw new Error(`unknown op '${step.op}'`);
    }
  }
}

async function runScenario(scenario) {
  const options = { clock: 'manual', now: scenario.start_ms ?? 0 };
  for (const [key, value] of Object.entries(scenario.options ?? {})) {
    const map = MANAGER_OPTIONS[key];
    if (!map) throw new Error(`unknown option ${key}`);
    Object.assign(options, map(value));
  }
  const mgr = await createTaskManager(options);
  const runner = new Runner(mgr);
  const transcript = [];
  try {
    for (const step of scenario.steps) {
      transcript.push(await runner.apply(step));
      await mgr.runUntilIdle();
    }
  } finally {
    // Bodies the scenario never settled stay pending; dispose aborts them (their sleeps reject
    // after the transcript is complete).
    mgr.dispose();
  }
  return transcript;
}

// ---- one test per file ---------------------------------------------------------------------------
const files = readdirSync(SCENARIO_DIR)
  .filter((f) => f.endsWith('.json'))
  .sort();

test('at least 22 scenario files', () => {
  assert.ok(files.length >= 22, `${files.length} scenario files`);
});

for (const file of files) {
  const stem = file.slice(0, -'.json'.length);
  test(`scenario ${stem}`, async () => {
    const scenario = JSON.parse(readFileSync(join(SCENARIO_DIR, file), 'utf8'));
    assert.equal(scenario.name, stem, "a scenario's name is its file name");
    assert.equal(scenario.steps.length, scenario.expected.length, 'one expected output per step');

    const transcript = await runScenario(scenario);
    const text = canonical(transcript);
    mkdirSync(OUT_DIR, { recursive: true });
    writeFileSync(join(OUT_DIR, file), text);

    const mismatches = [];
    scenario.steps.forEach((step, i) => {
      const got = canonical(transcript[i]);
      const want = canonical(scenario.expected[i]);
      if (got !== want) mismatches.push(`step ${i} ${JSON.stringify(step)}\n  expected ${want}\n  actual   ${got}`);
    });
    assert.equal(mismatches.length, 0, `${stem}:\n${mismatches.join('\n')}`);
    assert.equal(text, canonical(scenario.expected));

    const nativeFile = join(NATIVE_DIR, file);
    if (existsSync(nativeFile)) {
      assert.equal(text, readFileSync(nativeFile, 'utf8'), `${stem}: Node and native transcripts differ`);
    }
  });
}
