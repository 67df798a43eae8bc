// The text of a body's failure: the task always fails (whatever was thrown), and its error is a
// well-formed string — a lone UTF-16 surrogate becomes U+FFFD, as String.prototype.toWellFormed
// makes it — the same in get, wait, list, drain and snapshot, and it survives a restore.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { manual } from './_helpers.mjs';

const wellFormed = (s) => !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);

// Spawns one task per [label, body, expected error] on thread 't' and runs them to their end.
async function failAll(mgr, cases) {
  const ids = cases.map(([, body]) => mgr.spawn({ thread: 't', type: 'x' }, body));
  await mgr.runUntilIdle();
  return ids;
}

test('a lone surrogate in a failure text becomes U+FFFD everywhere the text shows; the task fails', async (t) => {
  const mgr = await manual(t);
  const long = `${'x'.repeat(300)}\uDC00`;
  const cases = [
    ['Error message', async () => { throw new Error('\uD800 bad'); }, '\uFFFD bad'],
    ['thrown string', async () => { throw 'lone \uDC00 low'; }, 'lone \uFFFD low'],
    ['sync throw', () => { throw new TypeError('a\uD800'); }, 'a\uFFFD'],
    ['pair kept, lone replaced', () => Promise.reject(new Error('ok \u{1F600} cut \uD83D')), 'ok \u{1F600} cut \uFFFD'],
    ['long text', async () => { throw new Error(long); }, `${'x'.repeat(300)}\uFFFD`],
    ['empty message: the name', async () => { const e = new Error(''); e.name = 'Bad\uD800'; throw e; }, 'Bad\uFFFD'],
  ];
  const waits = [];
  const ids = cases.map(([, body]) => {
    const id = mgr.spawn({ thread: 't', type: 'x' }, body);
    waits.push(mgr.wait(id));
    return id;
  });
  await mgr.runUntilIdle();
  const summaries = await Promise.all(waits);
  const events = mgr.drain();
  const snap = mgr.snapshot('t');
  cases.forEach(([label, , expected], i) => {
    const id = ids[i];
    assert.equal(mgr.get(id).status, 'failed', label);
    assert.equal(mgr.get(id).error, expected, label);
    assert.equal(summaries[i].error, expected, `${label}: wait`);
    assert.equal(mgr.list('t')[i].error, expected, `${label}: list`);
    assert.deepEqual(events[i], { error: expected, kind: 'failed', task_id: id }, `${label}: drain`);
    assert.equal(snap.tasks[id].error, expected, `${label}: snapshot`);
  });
  const restored = await manual(t);
  assert.equal(restored.restore('t', snap).added, cases.length);
  assert.deepEqual(restored.list('t').map((s) => s.error), cases.map(([, , e]) => e), 'the text survives a restore');
});

test('whatever a body throws, the task fails with a well-formed string and the manager stays usable', async (t) => {
  const mgr = await manual(t);
  const throwingMessage = new Error('hidden');
  Object.defineProperty(throwingMessage, 'message', { get() { throw new Error('no message'); } });
  const noText = { toJSON() { throw new Error('no JSON'); }, toString() { throw new Error('no text'); } };
  const cases = [
    ['non-string message', async () => { const e = new Error('x'); e.message = 42; throw e; }, '42'],
    ['object message', async () => { const e = new Error('x'); e.message = { toString: () => 'obj \uD800' }; throw e; }, 'obj \uFFFD'],
    ['message getter throws', async () => { throw throwingMessage; }, '[object Error]'],
    ['neither JSON nor String', async () => { throw noText; }, '[object Object]'],
    ['an object: its JSON', async () => { throw { code: 7, why: '\uD800' }; }, '{"code":7,"why":"\\ud800"}'],
    ['a BigInt: String()', async () => { throw 10n; }, '10'],
    ['a symbol', async () => { throw Symbol('s'); }, 'Symbol(s)'],
    ['undefined', async () => { throw undefined; }, 'undefined'],
  ];
  const ids = await failAll(mgr, cases);
  cases.forEach(([label, , expected], i) => {
    const s = mgr.get(ids[i]);
    assert.equal(s.status, 'failed', label);
    assert.equal(s.error, expected, label);
    assert.ok(wellFormed(s.error), `${label}: well-formed`);
  });
  assert.deepEqual(mgr.drain().map((e) => e.kind), cases.map(() => 'failed'));
  const after = mgr.spawn({ thread: 't', type: 'x' }, async () => 'fine');
  await mgr.runUntilIdle();
  assert.equal(mgr.get(after).result, 'fine');
  assert.equal(mgr.stats().live_bodies ?? 0, 0);
});
