// The shared bad-input catalogue (scenarios/bad_inputs/catalogue.json), run through the public JS
// API: every row that is not "native_only". A refused row must throw the expected BgTasksError code
// (or a TypeError) with a message naming the problem and leave the manager unchanged (snapshot,
// stats, the next spawned id); an accepted row must have its documented effect. Rows whose text is
// not JSON reach the core the only way the JS API takes text: a FileStore file and mgr.resume().
// Rows with a "known_bug" for JS run as todo. Format: scenarios/bad_inputs/README.md.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BgTasksError, createTaskManager, FileStore } from 'bgtasks';

const catalogue = JSON.parse(readFileSync(new URL('../../scenarios/bad_inputs/catalogue.json', import.meta.url), 'utf8'));
const { setup, rows } = catalogue;

const dir = mkdtempSync(join(tmpdir(), 'bgtasks-bad-input-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// ---- decoding ----------------------------------------------------------------------------------
function expand(s, row) {
  for (const e of row.expand ?? []) s = s.split(e.marker).join(e.repeat.repeat(e.times));
  return s;
}

// A JSON value from the catalogue as the JS value it stands for.
function decode(v, row) {
  if (typeof v === 'string') return expand(v, row);
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    if (v.$undefined === true) return undefined;
    if (Array.isArray(v.$code_units)) return String.fromCharCode(...v.$code_units);
    if (typeof v.$bigint === 'string') return BigInt(v.$bigint);
  }
  return v;
}

function input(row, field, fallback) {
  return field in row ? decode(row[field], row) : fallback;
}

function expectation(row) {
  const merged = { ...row, ...(row.js ?? {}) };
  return {
    error: merged.error ?? null,
    messageContains: merged.message_contains ?? [],
    accepted: merged.accepted ?? {},
    knownBug: merged.known_bug,
  };
}

const idNumber = (id) => Number(/^bg_(\d+)$/.exec(id)?.[1] ?? NaN);

// restore() answers {added, skipped}; a package that still answers the bare count is read as one.
const addedBy = (report) => (typeof report === 'number' ? report : report.added);

// ---- the fixture ---------------------------------------------------------------------------------
const pending = () => new Promise(() => {});

async function world() {
  const mgr = await createTaskManager({ clock: 'manual' });
  const ctxs = {};
  const refs = { ...setup.refs };
  assert.equal(addedBy(mgr.restore(setup.thread, setup.snapshot)), Object.keys(setup.snapshot.tasks).length);
  for (const t of setup.tasks) {
    const body = (ctx) => {
      ctxs[`@${t.as}`] = ctx;
      return 'complete' in t ? t.complete : pending();
    };
    const options = { thread: setup.thread, description: t.description };
    if ('task_name' in t) options.name = t.task_name;
    const id = t.agent ? mgr.spawnAgent(options, body) : mgr.spawn({ ...options, type: t.type ?? 'shell' }, body);
    assert.equal(id, t.expect_id);
    refs[`@${t.as}`] = id;
  }
  await mgr.runUntilIdle();
  return { mgr, ctxs, refs, resolve: (ref) => (typeof ref === 'string' && ref in refs ? refs[ref] : ref) };
}

const state = (mgr) => JSON.stringify({ snapshot: mgr.snapshot(), stats: mgr.stats() });

let fileCounter = 0;
async function restoreText(mgr, thread, bytes) {
  // Text that is not JSON: only a store hands text to the API.
  const store = new FileStore(join(dir, String(++fileCounter)));
  mkdirSync(store.dir, { recursive: true });
  writeFileSync(store.pathFor(thread), bytes);
  return mgr.resume(store, thread);
}

async function runOp(w, row) {
  const { mgr, ctxs, resolve } = w;
  const thread = input(row, 'thread', setup.thread);
  switch (row.op) {
    case 'restore': {
      if ('bytes_hex' in row) return restoreText(mgr, thread, Buffer.from(row.bytes_hex, 'hex'));
      if ('value' in row) return mgr.restore(thread, decode(row.value, row));
      const text = input(row, 'text', '');
      let value;
      try {
        value = JSON.parse(text);
      } catch {
        return restoreText(mgr, thread, Buffer.from(text, 'utf8'));
      }
      return mgr.restore(thread, value);
    }
    case 'spawn': {
      const options = { thread };
      if (!row.agent) options.type = input(row, 'type', 'shell');
      for (const [field, key] of [['task_name', 'name'], ['description', 'description'], ['parent', 'parent']])
        if (field in row) options[key] = decode(row[field], row);
      Object.assign(options, row.extra_options ?? {});
      const body = 'body' in row ? decode(row.body, row) : pending;
      return row.agent ? mgr.spawnAgent(options, body) : mgr.spawn(options, body);
    }
    case 'send':
      return mgr.sendMessage(resolve(input(row, 'task', '@agent')), thread, input(row, 'from', 'parent'), input(row, 'content', 'hi'));
    case 'emit': {
      const ctx = ctxs[input(row, 'task', '@plain')];
      assert.ok(ctx, `no context for ${row.task}`);
      const payload = 'payload_value' in row ? decode(row.payload_value, row) : JSON.parse(input(row, 'payload_text', 'null'));
      return ctx.emit(input(row, 'event_type', 'progress'), payload);
    }
    default:
      throw new Error(`unknown op ${row.op}`);
  }
}

test('the catalogue has at least 30 rows for both targets, with unique names', () => {
  const names = new Set();
  for (const row of rows) {
    assert.ok(!names.has(row.name), `duplicate ${row.name}`);
    names.add(row.name);
    assert.match(row.name, /^[a-z0-9_]+$/);
    assert.ok(['restore', 'spawn', 'send', 'emit'].includes(row.op), row.name);
  }
  assert.ok(rows.filter((r) => !r.js_only && !r.native_only).length >= 30);
});

for (const row of rows.filter((r) => !r.native_only)) {
  const want = expectation(row);
  test(`bad input: ${row.name}`, { todo: want.knownBug }, async () => {
    const w = await world();
    const { mgr } = w;
    try {
      const before = state(mgr);
      const depthBefore = mgr.stats().owner_inbox_depth;
      let error;
      let value;
      try {
        value = await runOp(w, row);
      } catch (e) {
        error = e;
      }

      let nextId = setup.next_id;
      if (want.error !== null) {
        assert.ok(error !== undefined, `accepted, answered ${JSON.stringify(value)}`);
        if (want.error === 'TypeError') assert.ok(error instanceof TypeError, `expected a TypeError, got ${error}`);
        else {
          assert.ok(error instanceof BgTasksError, `expected BgTasksError ${want.error}, got ${error?.stack ?? error}`);
          assert.equal(error.code, want.error, error.message);
        }
        for (const s of want.messageContains) assert.ok(error.message.includes(s), `message lacks ${JSON.stringify(s)}: ${error.message}`);
        assert.equal(state(mgr), before, 'state changed');
        if (row.op === 'send') assert.equal(w.ctxs['@agent'].inbox.tryRecv(), null, 'a refused message reached the inbox');
      } else {
        assert.equal(error, undefined, `refused: ${error?.stack ?? error}`);
        const a = want.accepted;
        if (row.op === 'restore') {
          assert.equal(addedBy(value), a.added);
          if ('skipped' in a && typeof value !== 'number') assert.deepEqual(value.skipped, a.skipped);
          nextId = a.next_id;
        } else if (row.op === 'spawn') {
          assert.equal(value, a.id);
          assert.equal(mgr.get(value).status, 'running');
          nextId = `bg_${idNumber(value) + 1}`;
        } else if (row.op === 'send') {
          const msg = w.ctxs['@agent'].inbox.tryRecv();
          assert.equal(msg?.payload?.content?.length, input(row, 'content', 'hi').length);
        } else if (row.op === 'emit') {
          assert.equal(value, a.delivered);
          assert.equal(mgr.stats().owner_inbox_depth, depthBefore + (a.delivered ? 1 : 0));
        }
      }

      // The next id is what it should be, and the manager still works.
      const probe = mgr.spawn({ thread: setup.thread, type: 'probe' }, async () => ({ ok: true }));
      assert.equal(probe, nextId, 'the next spawned id');
      await mgr.runUntilIdle();
      assert.equal(mgr.get(probe).status, 'completed');
      assert.ok(Array.isArray(mgr.drain()));
      assert.ok(Array.isArray(mgr.taskTree()));
    } finally {
      mgr.dispose();
    }
  });
}
