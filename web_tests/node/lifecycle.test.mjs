// Lifecycle through the JS API: spawn → running → completed / failed, summaries and terminal events.
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { manual } from './_helpers.mjs';

// ctx.emit of each [event type, payload]: results[type] is 'accepted' or the error it threw.
function tryEmits(ctx, results, cases) {
  for (const [name, value] of cases) {
    try {
      ctx.emit(name, value);
      results[name] = 'accepted';
    } catch (e) {
      results[name] = `${e.name}: ${e.message}`;
    }
  }
}

test('spawn returns bg_<n> at once and never runs the body inside spawn', async (t) => {
  const mgr = await manual(t);
  let ran = false;
  const id = mgr.spawn({ thread: 't1', type: 'shell' }, async () => {
    ran = true;
  });
  assert.equal(id, 'bg_0');
  assert.equal(ran, false);
  assert.equal(mgr.get(id).status, 'running');
  assert.equal(mgr.hasRunning('t1'), true);
  assert.equal(mgr.spawn({ thread: 't1', type: 'shell' }, async () => {}), 'bg_1');
  await mgr.runUntilIdle();
  assert.equal(ran, true);
  assert.equal(mgr.hasRunning('t1'), false);
});

test('a resolved body completes with its value; summary and event are awaken-shaped', async (t) => {
  const mgr = await manual(t, { now: 1000 });
  const id = mgr.spawn({ thread: 't1', type: 'shell', name: 'build', description: 'Build the app' }, async (ctx) => {
    await ctx.sleep(250);
    return { ok: true, n: [1, 2] };
  });
  await mgr.runUntilIdle();
  assert.deepEqual(mgr.get(id), {
    task_id: id, task_type: 'shell', description: 'Build the app', status: 'running', created_at_ms: 1000,
  });
  mgr.advance(250);
  await mgr.runUntilIdle();
  assert.deepEqual(mgr.get(id), {
    task_id: id, task_type: 'shell', description: 'Build the app', status: 'completed', created_at_ms: 1000,
    completed_at_ms: 1250, result: { ok: true, n: [1, 2] },
  });
  assert.deepEqual(mgr.drain(), [{ kind: 'completed', task_id: id, result: { ok: true, n: [1, 2] } }]);
});

test('undefined becomes a null result; a non-JSON value fails the task', async (t) => {
  const mgr = await manual(t);
  const a = mgr.spawn({ thread: 't', type: 'x' }, async () => undefined);
  const b = mgr.spawn({ thread: 't', type: 'x' }, async () => 10n);
  await mgr.runUntilIdle();
  assert.equal(mgr.get(a).status, 'completed');
  assert.equal(mgr.get(a).result, null);
  assert.ok('result' in mgr.get(a));
  assert.equal(mgr.get(b).status, 'failed');
  assert.match(mgr.get(b).error, /not JSON-serializable/);
  assert.deepEqual(mgr.drain().map((e) => e.kind), ['completed', 'failed']);
});

test('thrown and rejected bodies fail with their message', async (t) => {
  const mgr = await manual(t);
  const bodies = {
    asyncThrow: async () => {
      throw new Error('disk full');
    },
    syncThrow: () => {
      throw new TypeError('bad input');
    },
    rejected: () => Promise.reject(new Error('timeout')),
    rejectedString: () => Promise.reject('plain string'),
    afterAwait: async (ctx) => {
      await ctx.sleep(5);
      throw new Error('late failure');
    },
  };
  const ids = Object.fromEntries(Object.entries(bodies).map(([k, body]) => [k, mgr.spawn({ thread: 't', type: k }, body)]));
  await mgr.runUntilIdle();
  mgr.advance(5);
  await mgr.runUntilIdle();
  const expected = { asyncThrow: 'disk full', syncThrow: 'bad input', rejected: 'timeout', rejectedString: 'plain string', afterAwait: 'late failure' };
  for (const [k, id] of Object.entries(ids)) {
    const s = mgr.get(id);
    assert.equal(s.status, 'failed', k);
    assert.equal(s.error, expected[k], k);
    assert.equal('result' in s, false, k);
    assert.equal(typeof s.completed_at_ms, 'number', k);
  }
  const events = mgr.drain();
  assert.deepEqual(
    events.filter((e) => e.task_id === ids.afterAwait),
    [{ kind: 'failed', task_id: ids.afterAwait, error: 'late failure' }],
  );
  assert.equal(events.length, 5);
  assert.ok(events.every((e) => e.kind === 'failed'));
});

test('a body that emits N events then returns produces N+1 events', async (t) => {
  const mgr = await manual(t);
  const id = mgr.spawn({ thread: 't', type: 'x' }, async (ctx) => {
    for (let i = 0; i < 3; i++) assert.equal(ctx.emit('progress', { i }), true);
    return 'done';
  });
  await mgr.runUntilIdle();
  assert.deepEqual(mgr.drain(), [
    { kind: 'custom', task_id: id, event_type: 'progress', payload: { i: 0 } },
    { kind: 'custom', task_id: id, event_type: 'progress', payload: { i: 1 } },
    { kind: 'custom', task_id: id, event_type: 'progress', payload: { i: 2 } },
    { kind: 'completed', task_id: id, result: 'done' },
  ]);
});

test('ctx.emit after the task ended returns false and queues nothing', async (t) => {
  const mgr = await manual(t);
  let saved;
  mgr.spawn({ thread: 't', type: 'x' }, async (ctx) => {
    saved = ctx;
  });
  await mgr.runUntilIdle();
  mgr.drain();
  assert.equal(saved.emit('late', 1), false);
  assert.deepEqual(mgr.drain(), []);
});

test('list is in id order (bg_2 before bg_10) and holds only the thread', async (t) => {
  const mgr = await manual(t);
  for (let i = 0; i < 12; i++) mgr.spawn({ thread: i === 5 ? 'other' : 't', type: 'x' }, async () => i);
  await mgr.runUntilIdle();
  const ids = mgr.list('t').map((s) => s.task_id);
  assert.deepEqual(ids, ['bg_0', 'bg_1', 'bg_2', 'bg_3', 'bg_4', 'bg_6', 'bg_7', 'bg_8', 'bg_9', 'bg_10', 'bg_11']);
  assert.deepEqual(mgr.list('other').map((s) => s.task_id), ['bg_5']);
  assert.deepEqual(mgr.list('nobody'), []);
});

test('wait(id) resolves with the terminal summary; at once when finished; null when unknown', async (t) => {
  const mgr = await manual(t);
  const id = mgr.spawn({ thread: 't', type: 'x' }, async (ctx) => {
    await ctx.sleep(10);
    return 7;
  });
  let resolved = null;
  const waiting = mgr.wait(id).then((s) => (resolved = s));
  await mgr.runUntilIdle();
  assert.equal(resolved, null);
  mgr.advance(10);
  await mgr.runUntilIdle();
  await waiting;
  assert.equal(resolved.status, 'completed');
  assert.equal(resolved.result, 7);
  assert.deepEqual(resolved, mgr.get(id));
  assert.deepEqual(await mgr.wait(id), mgr.get(id));
  assert.equal(await mgr.wait('bg_999'), null);
});

test('summary, event and payload keys come out sorted; a payload is copied at emit', async (t) => {
  const mgr = await manual(t);
  const payload = { z: 1, a: 2 };
  const id = mgr.spawn({ thread: 't', type: 'x', parent: { run_id: 'r', agent_id: 'a' } }, async (ctx) => {
    ctx.emit('e', payload);
    return { b: 1, a: 2 };
  });
  await mgr.runUntilIdle();
  const sorted = (o) => assert.deepEqual(Object.keys(o), Object.keys(o).sort());
  const s = mgr.get(id);
  sorted(s);
  sorted(s.parent_context);
  sorted(s.result);
  const events = mgr.drain();
  for (const e of events) sorted(e);
  // Payloads stay on the JS side as a copy with sorted keys: a change after emit does not show.
  payload.z = 99;
  assert.notEqual(events[0].payload, payload);
  assert.deepEqual(Object.keys(events[0].payload), ['a', 'z']);
  assert.deepEqual(events[0].payload, { a: 2, z: 1 });
  sorted(mgr.snapshot().tasks[id]);
});

test('payloads: plain data is kept as emitted, anything else as its JSON form; the core limits hold', async (t) => {
  const mgr = await manual(t);
  const date = new Date(0);
  const results = {};
  mgr.spawn({ thread: 't', type: 'x' }, async (ctx) => {
    ctx.emit('plain', [1, 'two', { three: [null, true] }]);
    ctx.emit('date', { at: date, gone: undefined });
    ctx.emit('nan', [NaN, Infinity]);
    ctx.emit('undef');
    const deep = (n) => (n === 0 ? 1 : [deep(n - 1)]);
    ctx.emit('deep128', deep(129));
    tryEmits(ctx, results, [['deep129', deep(130)], ['cycle', (() => { const o = {}; o.o = o; return o; })()], ['key', { ['\ud800']: 1 }], ['bigint', { n: 1n }]]);
  });
  await mgr.runUntilIdle();
  const events = mgr.drain();
  assert.deepEqual(events.map((e) => e.event_type ?? e.kind), ['plain', 'date', 'nan', 'undef', 'deep128', 'completed']);
  assert.deepEqual(events[0].payload, [1, 'two', { three: [null, true] }]);
  assert.deepEqual(events[1].payload, { at: '1970-01-01T00:00:00.000Z' }, 'a Date: its JSON form, a copy');
  assert.deepEqual(events[2].payload, [null, null]);
  assert.equal(events[3].payload, null);
  assert.equal(results.deep129, 'TypeError: payload: nesting deeper than 128 levels');
  assert.match(results.cycle, /^TypeError: payload is not JSON-serializable/);
  assert.equal(results.key, 'TypeError: payload contains a lone UTF-16 surrogate');
  assert.match(results.bigint, /^TypeError: payload is not JSON-serializable/);
  assert.equal(mgr.stats().owner_inbox_depth, 0, 'refused payloads never reached the core');
});

test('payload keys are sorted as the native core sorts them, at every level and on every path', async (t) => {
  const mgr = await manual(t);
  mgr.spawn({ thread: 't', type: 'x' }, async (ctx) => {
    // By code point (UTF-8 bytes): U+FF5E sorts before U+1F600, though its UTF-16 unit is larger.
    ctx.emit('nested', { b: { y: [{ d: 1, c: 2 }], x: null }, a: 1, '\u{1F600}': 1, '\uFF5E': 2 });
    ctx.emit('fallback', { z: new Date(0), m: { k: 1, j: undefined, i: 2 } }); // through JSON text
  });
  await mgr.runUntilIdle();
  const [nested, fallback] = mgr.drain();
  assert.deepEqual(Object.keys(nested.payload), ['a', 'b', '\uFF5E', '\u{1F600}']);
  assert.deepEqual(Object.keys(nested.payload.b), ['x', 'y']);
  assert.deepEqual(Object.keys(nested.payload.b.y[0]), ['c', 'd']);
  assert.deepEqual(Object.keys(fallback.payload), ['m', 'z']);
  assert.deepEqual(Object.keys(fallback.payload.m), ['i', 'k']);
});

test('integers up to 2^53 and other numbers round-trip exactly (payloads, results, timestamps)', async (t) => {
  const big = Number.MAX_SAFE_INTEGER;
  const mgr = await manual(t, { now: big - 10 });
  const values = [big, -big, 2 ** 53, 0.1, 1e300, 1.5e-7, 123456789012345, 0];
  const id = mgr.spawn({ thread: 't', type: 'x' }, async (ctx) => {
    ctx.emit('n', values);
    await ctx.sleep(10);
    return values;
  });
  await mgr.runUntilIdle();
  mgr.advance(10);
  await mgr.runUntilIdle();
  const [custom, completed] = mgr.drain();
  assert.deepEqual(custom.payload, values);
  assert.deepEqual(completed.result, values);
  assert.equal(mgr.get(id).created_at_ms, big - 10);
  assert.equal(mgr.get(id).completed_at_ms, big);
  assert.equal(mgr.now(), big);
});

test('non-ASCII strings (emoji, NUL, U+2028) survive every string argument', async (t) => {
  const mgr = await manual(t);
  const s = 'héllo 😀 \u0000 end \u2028';
  const id = mgr.spawnAgent({ thread: s, name: s, description: s }, async (ctx) => {
    ctx.emit(s, s);
    return (await ctx.inbox.recv()).payload;
  });
  await mgr.runUntilIdle();
  mgr.sendMessage(id, s, s, s);
  await mgr.runUntilIdle();
  assert.equal(mgr.get(id).description, s);
  assert.deepEqual(mgr.get(id).result, { from: s, content: s });
  assert.equal(mgr.snapshot(s).tasks[id].name, s);
  assert.equal(mgr.snapshot(s).tasks[id].owner_thread_id, s);
  assert.deepEqual(mgr.drain(s)[0], { kind: 'custom', task_id: id, event_type: s, payload: s });
});

test('payload copies keep an own "__proto__" key, and bad payloads fail as JSON.stringify finds them (review)', async (t) => {
  const mgr = await manual(t);
  const results = {};
  mgr.spawn({ thread: 't', type: 'x' }, async (ctx) => {
    ctx.emit('proto', JSON.parse('{"__proto__":{"x":1},"a":2}'));
    tryEmits(ctx, results, [
      ['getter', { get a() { throw new Error('boom'); } }],
      ['bigint-after-surrogate', { a: '\ud800', b: 1n }],
    ]);
  });
  await mgr.runUntilIdle();
  const [proto] = mgr.drain();
  assert.equal(JSON.stringify(proto.payload), '{"__proto__":{"x":1},"a":2}');
  assert.equal(Object.getPrototypeOf(proto.payload), Object.prototype);
  assert.equal(results.getter, 'TypeError: payload is not JSON-serializable: boom');
  assert.match(results['bigint-after-surrogate'], /^TypeError: payload is not JSON-serializable: .*BigInt/);
});

test('payload objects are copied by the shape of their key list: any key text, many shapes, many keys', async (t) => {
  const mgr = await manual(t);
  const results = {};
  // Keys that a copier's source must escape; one would end the string literal and run code.
  const odd = ['a"b', 'back\\slash', 'line\nbreak', '\u2028', '${x}', '</script>', 'x"]: 1}); globalThis.pwned = 1; ({["'];
  const oddPayload = Object.fromEntries(odd.map((k, i) => [k, i]));
  const many = Array.from({ length: 300 }, (_, i) => ({ [`k${i}`]: i, a: i })); // past the shape table's bound
  const wide = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`w${39 - i}`, i])); // past a copier's key bound
  mgr.spawn({ thread: 't', type: 'x' }, async (ctx) => {
    ctx.emit('odd', oddPayload);
    ctx.emit('odd', { ...oddPayload, a: 'again' });
    for (const p of many) ctx.emit('many', p);
    ctx.emit('wide', wide);
    ctx.emit('order', { b: 1, a: 2 });
    ctx.emit('order', { a: 3, b: 4 });
    const shared = { step: 1, pct: 10 };
    ctx.emit('same', shared);
    shared.step = 2;
    ctx.emit('same', shared);
    const long = 'k'.repeat(5000); // a key list too long to keep: copied each time, not kept
    ctx.emit('long', { [long]: 1, a: 2 });
    ctx.emit('long', { [long]: 3, a: 4 });
    tryEmits(ctx, results, [
      ['lone1', { ['\udc00']: 1, z: 2 }],
      ['lone2', { ['\udc00']: 1, z: 2 }],
      // docs/js-api.md: a key with a lone surrogate is refused whatever its value (also when
      // JSON.stringify would drop the member, and whatever a sibling is).
      ['lone3', { a: () => 1, ['\udc00']: undefined }],
      ['lone4', { a: new Date(0), ['\udc00']: undefined }],
    ]);
  });
  await mgr.runUntilIdle();
  const events = mgr.drain();
  assert.equal(globalThis.pwned, undefined);
  const byType = (type) => events.filter((e) => e.event_type === type).map((e) => e.payload);
  const [odd1, odd2] = byType('odd');
  assert.deepEqual(odd1, oddPayload);
  assert.deepEqual(Object.keys(odd1), [...odd].sort());
  assert.deepEqual(odd2, { ...oddPayload, a: 'again' });
  const manyOut = byType('many');
  assert.equal(manyOut.length, 300);
  manyOut.forEach((p, i) => {
    assert.deepEqual(p, many[i]);
    assert.deepEqual(Object.keys(p), Object.keys(many[i]).sort());
  });
  const [wideOut] = byType('wide');
  assert.deepEqual(wideOut, wide);
  assert.deepEqual(Object.keys(wideOut), Object.keys(wide).sort());
  assert.deepEqual(byType('order').map((p) => JSON.stringify(p)), ['{"a":2,"b":1}', '{"a":3,"b":4}']);
  assert.deepEqual(byType('same'), [{ pct: 10, step: 1 }, { pct: 10, step: 2 }], 'each emit is its own copy');
  assert.equal(results.lone1, 'TypeError: payload contains a lone UTF-16 surrogate');
  assert.equal(results.lone2, 'TypeError: payload contains a lone UTF-16 surrogate', 'a refused key list is refused again');
  assert.equal(results.lone3, 'TypeError: payload contains a lone UTF-16 surrogate');
  assert.equal(results.lone4, 'TypeError: payload contains a lone UTF-16 surrogate');
  assert.deepEqual(byType('long').map((p) => Object.values(p)), [[2, 1], [4, 3]]);
});

test('the package makes no code: a manager runs where strings cannot be compiled (a strict CSP)', async () => {
  // --disallow-code-generation-from-strings refuses eval and new Function as a CSP without
  // 'unsafe-eval' does: the Embind glue, the payload copies and the rest must not need them.
  const script = `
    import { createTaskManager } from ${JSON.stringify(new URL('../../js/src/index.js', import.meta.url).href)};
    let evalRefused = false;
    try { new Function('return 1'); } catch { evalRefused = true; }
    const mgr = await createTaskManager({ clock: 'manual' });
    const ids = [];
    for (let i = 0; i < 3; i++)
      ids.push(mgr.spawn({ thread: 't', type: 'x' }, async (ctx) => {
        ctx.emit('progress', { step: i, pct: i * 10, nested: { b: [i], a: null } });
        return { ok: true, n: i };
      }));
    await mgr.runUntilIdle();
    const events = mgr.drain('t');
    let refused = '';
    mgr.spawn({ thread: 't', type: 'x' }, async (ctx) => {
      try { ctx.emit('bad', { ['\\udc00']: 1 }); } catch (e) { refused = e.message; }
    });
    await mgr.runUntilIdle();
    mgr.dispose();
    console.log(JSON.stringify({ evalRefused, events, keys: events.filter((e) => e.payload).map((e) => Object.keys(e.payload).join()), refused }));`;
  const text = execFileSync(process.execPath, ['--disallow-code-generation-from-strings', '--input-type=module', '-e', script], { encoding: 'utf8' });
  const r = JSON.parse(text);
  assert.equal(r.evalRefused, true, 'the flag refuses new Function, as a CSP does');
  assert.deepEqual(
    r.events.filter((e) => e.kind === 'custom').map((e) => e.payload),
    [0, 1, 2].map((i) => ({ nested: { a: null, b: [i] }, pct: i * 10, step: i })),
  );
  assert.deepEqual(r.keys, ['nested,pct,step', 'nested,pct,step', 'nested,pct,step']);
  assert.deepEqual(r.events.filter((e) => e.kind === 'completed').map((e) => e.result), [0, 1, 2].map((n) => ({ n, ok: true })));
  assert.equal(r.refused, 'payload contains a lone UTF-16 surrogate');
});

test('payload copies: every key list, with its own copier or the shared one, sorts and checks alike', async () => {
  // copy.js gives the first few key lists of 1 to 4 keys a copier of their own; later and longer
  // ones take the shared copier. A copy must not depend on which one a key list got.
  const { payloadValue } = await import(new URL('../../js/src/copy.js', import.meta.url).href);
  const limits = { depth: 128, bytes: 1 << 20 };
  const sortDeep = (v) =>
    Array.isArray(v) ? v.map(sortDeep) : v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortDeep(v[k])])) : v;
  for (let size = 1; size <= 5; size++) {
    for (let list = 0; list < 7; list++) {
      const keys = Array.from({ length: size }, (_, i) => `k${size}_${list}_${String.fromCharCode(122 - i)}`); // reverse order
      for (let round = 0; round < 3; round++) {
        const value = Object.fromEntries(keys.map((k, i) => [k, i === 0 ? { b: [-0, round], a: 'x' } : i * round]));
        const copy = payloadValue(value, 'payload', limits);
        assert.deepEqual(Object.keys(copy), [...keys].sort(), `${size} keys, list ${list}: sorted`);
        assert.deepEqual(JSON.stringify(copy), JSON.stringify(sortDeep(JSON.parse(JSON.stringify(value)))));
        assert.ok(Object.is(copy[keys[0]].b[0], 0), '-0 is 0');
        value[keys[0]].a = 'changed';
        assert.equal(copy[keys[0]].a, 'x', 'a later change does not show');
      }
      const bad = Object.fromEntries(keys.map((k) => [k, '\udc00']));
      assert.throws(() => payloadValue(bad, 'payload', limits), /lone UTF-16 surrogate/);
      const notJson = Object.fromEntries(keys.map((k) => [k, undefined]));
      assert.deepEqual(payloadValue(notJson, 'payload', limits), {}, 'undefined members vanish, as in JSON');
    }
  }
});
