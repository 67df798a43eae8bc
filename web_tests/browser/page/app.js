// The browser test page: imports the package's own source (no bundler; the import map in
// index.html names `bgtasks` alone) and exposes scenarios on window.bgtest. Each scenario returns
// plain JSON for the test to assert on, and draws its outcome on the page so the screenshots show
// what ran. The page is served under a strict CSP; any violation is kept for the test to see.
import { createTaskManager, BgTasksError, IndexedDbStore } from 'bgtasks';

window.cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});

// ?probe-eval: the test's check that the policy is enforced (a page's own code, not an evaluate
// call from the test, which DevTools exempts from the policy).
if (new URLSearchParams(location.search).has('probe-eval')) {
  try {
    new Function('return 1');
    window.evalProbe = 'allowed';
  } catch (e) {
    window.evalProbe = e.name;
  }
}

const out = document.getElementById('out');
const esc = (s) => String(s).replace(/[&<>]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;' })[c]);

function show(title, ok, html) {
  const section = document.createElement('section');
  section.className = ok ? 'pass' : 'fail';
  section.dataset.title = title;
  section.innerHTML = `<h2>${esc(title)}</h2>${html}`;
  out.append(section);
}

function table(rows, columns) {
  const head = columns.map((c) => `<th>${esc(c)}</th>`).join('');
  const body = rows
    .map((r) => `<tr>${columns.map((c) => `<td class="${c === 'status' ? esc(r[c]) : ''}">${esc(typeof r[c] === 'object' ? JSON.stringify(r[c]) : r[c] ?? '')}</td>`).join('')}</tr>`)
    .join('');
  return `<table><tr>${head}</tr>${body}</table>`;
}

const errorInfo = (e) => ({ name: e?.name, code: e?.code, message: e?.message, isBgTasksError: e instanceof BgTasksError, causeName: e?.cause?.name });

function tryCall(fn) {
  try {
    fn();
    return null;
  } catch (e) {
    return errorInfo(e);
  }
}

async function untilCancelled(ctx) {
  if (!ctx.signal.aborted) await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
  return 'returned after cancel';
}

/** (a) The core scenario: manual clock; spawn, emit, complete, cancel, cancelTree, sendMessage. */
async function core() {
  const mgr = await createTaskManager({ clock: 'manual', now: 1000 });
  try {
    const T = 't1';
    const build = mgr.spawn({ thread: T, type: 'shell', name: 'build', description: 'Build the app' }, async (ctx) => {
      ctx.emit('progress', { pct: 50 });
      await ctx.sleep(100);
      ctx.emit('progress', { pct: 100 });
      return { ok: true };
    });
    let slowSleepError = null;
    const slow = mgr.spawn({ thread: T, type: 'shell', description: 'slow' }, async (ctx) => {
      try {
        await ctx.sleep(10_000);
      } catch (e) {
        slowSleepError = e.name;
        throw e;
      }
    });
    const inboxGot = [];
    let child = null;
    let childSignalAborted = null;
    const agent = mgr.spawnAgent({ thread: T, name: 'researcher', description: 'find sources' }, async (ctx) => {
      child = ctx.spawn({ thread: T, type: 'fetch', description: 'page' }, async (c) => {
        try {
          await c.sleep(5000);
        } finally {
          childSignalAborted = c.signal.aborted;
        }
        return 'html';
      });
      for await (const msg of ctx.inbox) inboxGot.push(msg);
      return inboxGot.length;
    });
    const spawnedIds = [build, slow, agent];
    const statusAtSpawn = mgr.get(build).status;
    await mgr.runUntilIdle();
    const nowBefore = mgr.now();

    const cancelSlow = mgr.cancel(slow);
    const cancelSlowAgain = mgr.cancel(slow);
    mgr.sendMessage(agent, T, 'parent', 'look at X');
    const sendErrors = {
      notFound: tryCall(() => mgr.sendMessage('bg_99', T, 'parent', 'x')),
      notOwner: tryCall(() => mgr.sendMessage(agent, 't2', 'parent', 'x')),
      noInbox: tryCall(() => mgr.sendMessage(build, T, 'parent', 'x')),
    };
    await mgr.runUntilIdle();
    const buildWhileSleeping = mgr.get(build).status;
    const duplicate = tryCall(() => mgr.spawn({ thread: T, type: 'x', name: 'build' }, async () => {}));
    mgr.advance(100);
    await mgr.runUntilIdle();
    const buildWait = await mgr.wait(build);
    const cancelTreeCount = mgr.cancelTree(agent);
    await mgr.runUntilIdle();
    sendErrors.terminated = tryCall(() => mgr.sendMessage(agent, T, 'parent', 'too late'));
    const spawnErrors = {
      reserved: tryCall(() => mgr.spawn({ thread: T, type: 'x', name: 'parent' }, async () => {})),
      duplicate,
      typeError: tryCall(() => mgr.spawn({ thread: 42, type: 'x' }, async () => {})),
    };

    const events = mgr.drain();
    const result = {
      ids: { build, slow, agent, child },
      spawnedIds,
      statusAtSpawn,
      nowBefore,
      nowAfter: mgr.now(),
      cancelSlow,
      cancelSlowAgain,
      cancelTreeCount,
      slowSleepError,
      childSignalAborted,
      inboxGot,
      sendErrors,
      spawnErrors,
      buildWhileSleeping,
      buildWait,
      events,
      drainAgain: mgr.drain(),
      snapshot: mgr.snapshot(T),
      list: mgr.list(T),
      hasRunning: mgr.hasRunning(T),
      stats: mgr.stats(),
      tree: mgr.taskTree(T),
    };
    show('core scenario (manual clock)', true,
      `${table(result.list, ['task_id', 'task_type', 'description', 'status', 'result', 'parent_context'])}
       <pre>events:\n${esc(events.map((e) => JSON.stringify(e)).join('\n'))}</pre>
       <pre>errors: ${esc(Object.entries({ ...sendErrors, ...spawnErrors }).map(([k, v]) => `${k}=${v?.code ?? v?.name}`).join(', '))}</pre>`);
    return result;
  } catch (e) {
    show('core scenario (manual clock)', false, `<pre>${esc(e.stack)}</pre>`);
    throw e;
  } finally {
    mgr.dispose();
  }
}

// Kept alive across the test's calls on this page load; the reload throws it away with its running task.
let survivor = null;

/** (b) Before the reload: one running, one completed, one failed, one cancelled task; persist. */
async function persistSave({ dbName, thread }) {
  const mgr = await createTaskManager({ clock: 'manual', now: 500 });
  survivor = mgr;
  const running = mgr.spawn({ thread, type: 'shell', name: 'server', description: 'dev server', parent: { run_id: 'run-1', call_id: 'call-1' } }, untilCancelled);
  const completed = mgr.spawn({ thread, type: 'shell', description: 'compile' }, async (ctx) => {
    await ctx.sleep(10);
    return { exit_code: 0 };
  });
  const failed = mgr.spawn({ thread, type: 'http', description: 'fetch' }, async () => {
    throw new Error('boom');
  });
  const cancelled = mgr.spawn({ thread, type: 'shell', description: 'to cancel' }, untilCancelled);
  const other = mgr.spawn({ thread: 'other', type: 'shell', description: 'other thread' }, async () => 'other');
  await mgr.runUntilIdle();
  mgr.cancel(cancelled);
  mgr.advance(10);
  await mgr.runUntilIdle();
  const store = new IndexedDbStore(dbName);
  await mgr.persist(store, thread);
  await mgr.persist(store, 'other');
  const stored = await store.load(thread);
  store.close();
  const result = { ids: { running, completed, failed, cancelled, other }, snapshot: mgr.snapshot(thread), stored, list: mgr.list(thread) };
  show(`IndexedDbStore save (db ${dbName}) — before reload`, true, table(result.list, ['task_id', 'task_type', 'description', 'status', 'result', 'error']));
  return result;
}

/** (b) After the reload (or a browser restart): a fresh manager resumes the thread. */
async function persistLoad({ dbName, thread, title = 'after reload' }) {
  const mgr = await createTaskManager({ clock: 'manual', now: 9000 });
  try {
    const store = new IndexedDbStore(dbName);
    const raw = await store.load(thread);
    const threads = (await store.threads()).sort();
    const restored = await mgr.resume(store, thread);
    const missing = await store.load('never-saved');
    store.close();
    const result = {
      survivorWasReset: survivor === null,
      raw,
      threads,
      restored,
      missing,
      list: mgr.list(thread),
      snapshot: mgr.snapshot(thread),
      hasRunning: mgr.hasRunning(thread),
      events: mgr.drain(),
      nextId: mgr.spawn({ thread, type: 'x' }, async () => 'fresh'),
    };
    await mgr.runUntilIdle();
    result.nextStatus = mgr.get(result.nextId).status;
    show(`IndexedDbStore load + resume (db ${dbName}) — ${title}`, true, table(result.list, ['task_id', 'task_type', 'description', 'status', 'result', 'error']));
    return result;
  } finally {
    mgr.dispose();
  }
}

function randomText(chars) {
  // Random, so IndexedDB's value compression cannot shrink it below the quota.
  const bytes = new Uint8Array(chars / 2);
  for (let i = 0; i < bytes.length; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
  let s = '';
  for (let i = 0; i < bytes.length; i += 8192) s += Array.from(bytes.subarray(i, i + 8192), (b) => b.toString(16).padStart(2, '0')).join('');
  return s;
}

// A save must settle: a hang is reported as such instead of stalling the test.
function settleWithin(promise, ms) {
  let timer;
  return Promise.race([
    promise.then((value) => ({ settled: 'resolved', value }), (error) => ({ settled: 'rejected', error: errorInfo(error) })),
    new Promise((resolve) => (timer = setTimeout(() => resolve({ settled: 'hung' }), ms))),
  ]).finally(() => clearTimeout(timer));
}

/** (c) A small save that must work. */
async function quotaBaseline({ dbName, thread }) {
  const mgr = await createTaskManager({ clock: 'manual' });
  try {
    mgr.spawn({ thread, type: 'shell', description: 'small' }, async () => ({ small: true }));
    await mgr.runUntilIdle();
    const store = new IndexedDbStore(dbName);
    await mgr.persist(store, thread);
    const stored = await store.load(thread);
    store.close();
    const estimate = await navigator.storage.estimate();
    return { stored, estimate: { usage: estimate.usage, quota: estimate.quota } };
  } finally {
    mgr.dispose();
  }
}

/** (c) A save too big for the (overridden) quota: must reject clearly, and the old record stays. */
async function quotaOverflow({ dbName, thread, chars }) {
  const mgr = await createTaskManager({ clock: 'manual' });
  try {
    mgr.spawn({ thread, type: 'shell', description: 'huge' }, async () => randomText(chars));
    await mgr.runUntilIdle();
    const store = new IndexedDbStore(dbName);
    const before = await navigator.storage.estimate();
    const outcome = await settleWithin(mgr.persist(store, thread), 20_000);
    const after = await store.load(thread);
    store.close();
    show(`IndexedDbStore save over quota (${(chars / 1e6).toFixed(1)} MB result)`, outcome.settled === 'rejected',
      `<pre>${esc(JSON.stringify({ pageEstimateQuota: before.quota, outcome }, null, 1))}</pre><pre>record after: ${esc(JSON.stringify(after))}</pre>`);
    return { outcome, after, quota: before.quota };
  } finally {
    mgr.dispose();
  }
}

/** (c) A value IndexedDB cannot clone: the put throws inside the transaction; save must reject. */
async function cloneError({ dbName, thread }) {
  const store = new IndexedDbStore(dbName);
  const outcome = await settleWithin(store.save(thread, { tasks: {}, notCloneable: () => 1 }), 20_000);
  const after = await store.load(thread);
  store.close();
  show('IndexedDbStore save of an uncloneable value', outcome.settled === 'rejected', `<pre>${esc(JSON.stringify(outcome, null, 1))}</pre>`);
  return { outcome, after };
}

/** (c) Once the quota is back, saving works again on a fresh store. */
async function saveAgain({ dbName, thread, value }) {
  const store = new IndexedDbStore(dbName);
  const outcome = await settleWithin(store.save(thread, value), 20_000);
  const after = await store.load(thread);
  store.close();
  return { outcome, after };
}

// ---- a manager with the store attached (createTaskManager({ store })) ------------------------
// One per page load: the tests drive it across calls, and from two tabs at once.
let attached = null;

/** Creates this page's attached manager (system clock); store errors are kept for the test. */
async function attach({ dbName }) {
  const store = new IndexedDbStore(dbName);
  const errors = [];
  const mgr = await createTaskManager({ store, onStoreError: (e, thread) => errors.push({ thread, ...errorInfo(e) }) });
  attached = { mgr, store, errors, dbName };
  show(`attached manager (db ${dbName})`, true, '');
  return true;
}

function attachedManager() {
  if (attached === null) throw new Error('attach() first');
  return attached.mgr;
}

/** A task that runs until cancelled (or until its page goes away). */
function spawnLong({ thread, description = 'long' }) {
  return attachedManager().spawn({ thread, type: 'shell', description }, untilCancelled);
}

/** A task that completes at once; resolves with its id once it has. */
async function spawnQuick({ thread, description = 'quick' }) {
  const mgr = attachedManager();
  const id = mgr.spawn({ thread, type: 'shell', description }, async () => ({ done: description }));
  await mgr.wait(id);
  return id;
}

function settled(promise) {
  return promise.then((value) => ({ value: value ?? null }), (error) => ({ error: errorInfo(error) }));
}

const attachedFlush = () => settled(attachedManager().flush());
const attachedResume = ({ thread }) => settled(attachedManager().resume(thread));
const attachedLoad = ({ thread }) => settled(attached.store.load(thread));

/** What the attached manager knows of the thread, and the store errors it reported. */
function attachedState({ thread }) {
  const mgr = attachedManager();
  const list = mgr.list(thread);
  show(`attached: thread ${thread} is ${mgr.ownership(thread)}`, true, table(list, ['task_id', 'description', 'status', 'error']));
  return { ownership: mgr.ownership(thread), list, snapshot: mgr.snapshot(thread), errors: attached.errors };
}

function markStatus(text) {
  document.getElementById('status').textContent = text;
}

window.bgtest = {
  core, persistSave, persistLoad, quotaBaseline, quotaOverflow, cloneError, saveAgain, markStatus,
  attach, spawnLong, spawnQuick, attachedFlush, attachedResume, attachedLoad, attachedState,
};
const loads = Number(sessionStorage.getItem('loads') ?? 0) + 1;
sessionStorage.setItem('loads', String(loads));
document.getElementById('loads').textContent = `#${loads}`;
markStatus('ready');
window.bgtestReady = true;
