// The demo page: an agent-runtime control panel over one bgtasks TaskManager.
// Imports the package exactly as an app would (`bgtasks`, resolved by Vite from node_modules).
import { BgTasksError, IndexedDbStore, createTaskManager } from 'bgtasks';
import {
  API_TIMEOUT_MS,
  DOWNLOADS,
  FLAKY_ENDPOINTS,
  HUNG_ENDPOINTS,
  RESEARCH_TOPICS,
  SHELL_JOBS,
  downloadBody,
  flakyBody,
  hungBody,
  researchAgentBody,
  shellBody,
} from './tasks.js';

const ORPHANED = 'task orphaned: runtime restarted while running';
const DB_NAME = 'bgtasks-demo';
const CLOCK_KEY = 'bgtasks-demo:clock';
const THREAD_KEY = 'bgtasks-demo:thread';
const LIMIT_KEY = 'bgtasks-demo:per-thread';
const LIMITS = ['unlimited', '1', '2', '4'];
const POLL_MS = 100;
const SAVE_DEBOUNCE_MS = 250;
// Small id blocks keep ids short (bg_12, not bg_65548); each tab still gets its own blocks.
const ID_BLOCK = 100;
const LOG_LIMIT = 80;

const THREADS = [
  { id: 'chat-release', title: 'Release' },
  { id: 'chat-research', title: 'Research' },
  { id: 'chat-support', title: 'Support' },
];

const TYPE_ICONS = { shell: '▶_', download: '⇩', sub_agent: '✦', web_search: '⌕', fetch_page: '▤', api_call: '⚠' };

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

const store = new IndexedDbStore(DB_NAME);
/** @type {import('bgtasks').TaskManager | null} */
let mgr = null;
let clockMode = localStorage.getItem(CLOCK_KEY) === 'manual' ? 'manual' : 'system';
let manualOrigin = 0;
/** concurrency.perThread of the manager: 'unlimited' or a number as text (the select's values). */
let perThread = LIMITS.includes(localStorage.getItem(LIMIT_KEY)) ? localStorage.getItem(LIMIT_KEY) : 'unlimited';
let current = THREADS.some((t) => t.id === sessionStorage.getItem(THREAD_KEY)) ? sessionStorage.getItem(THREAD_KEY) : THREADS[0].id;
let busy = false; // a clock switch, a reset or a manual step is under way: the poll loop waits
const spawnCounts = { shell: 0, download: 0, agent: 0, flaky: 0, hung: 0 }; // picks the next job of each kind
let callCount = 0;
let saveSeq = 0;
let saveTimer = null;
let saveChain = Promise.resolve();
let lastSnapshotText = '';

/** id → what the page learned from the task's events (output lines, progress, agent notes). */
const extras = new Map();
/** id → owning thread, for the event log's thread tags. */
const owners = new Map();

function extra(id) {
  let x = extras.get(id);
  if (!x) {
    x = { lines: [], progress: null, progressText: '', status: '', messages: [], restored: false };
    extras.set(id, x);
  }
  return x;
}

// ---------------------------------------------------------------------------------------------
// Small DOM helpers
// ---------------------------------------------------------------------------------------------

const $ = (sel) => document.querySelector(sel);

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) el.append(c);
  return el;
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function fmtBytes(n) {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} B`;
}

function fmtMs(ms) {
  if (ms < 1000) return `${ms} ms`;
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

function fmtClock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
}

function threadTitle(id) {
  return THREADS.find((t) => t.id === id)?.title ?? id;
}

function isOrphan(summary) {
  return summary?.status === 'failed' && summary.error === ORPHANED;
}

function say(text, tone = 'info') {
  const el = $('#action-status');
  el.dataset.tone = tone;
  el.textContent = text;
}

// ---------------------------------------------------------------------------------------------
// Manager lifecycle: create, resume every thread from IndexedDB, poll, save
// ---------------------------------------------------------------------------------------------

async function knownThreads() {
  return THREADS.map((t) => t.id); // one IndexedDB record per thread
}

/**
 * Creates the manager for `clockMode` with the store attached (ids come from IndexedDB in blocks,
 * every change is saved as it happens) and resumes every thread: `mgr.resume(thread)` claims it
 * for this tab (a tab that owned it before is told it lost it) and restores its saved tasks.
 * Returns how many tasks came back and how many had been saved while running (they are restored
 * as failed "orphaned").
 */
async function startManager() {
  const options = clockMode === 'manual' ? { clock: 'manual', now: (manualOrigin = Math.floor(Date.now() / 1000) * 1000) } : {};
  if (perThread !== 'unlimited') options.concurrency = { perThread: Number(perThread) };
  let m = null; // null while createTaskManager runs: a failure there rejects it instead
  m = await createTaskManager({ ...options, store, idBlockSize: ID_BLOCK, onStoreError: (e, thread) => storeTrouble(m, e, thread) });
  let restored = 0;
  let orphans = 0;
  for (const thread of await knownThreads()) {
    // Read first only to count what was running: resume() turns those into orphans.
    const saved = await store.load(thread);
    if (saved) orphans += Object.values(saved.tasks).filter((meta) => meta.status === 'running').length;
    try {
      restored += (await m.resume(thread)).added;
    } catch {
      continue; // onStoreError has reported it; the thread shows as not owned
    }
    for (const s of m.list(thread)) {
      owners.set(s.task_id, thread);
      extra(s.task_id).restored = true;
    }
  }
  callCount = Math.max(callCount, restored);
  mgr = m;
  document.body.dataset.clock = clockMode;
  document.body.dataset.perThread = perThread;
  return { restored, orphans };
}

/** onStoreError: a takeover by another tab (StaleOwner) or a failed save or claim. */
function storeTrouble(m, error, thread) {
  if (mgr !== null && m !== mgr) return; // from a manager already replaced
  if (error?.code !== 'StaleOwner') {
    const el = $('#save-status');
    el.dataset.state = 'error';
    el.textContent = `Save failed${thread === undefined ? '' : ` (${thread})`}: ${error?.message ?? error}`;
  }
  if (mgr) render();
}

function restoreBanner({ restored, orphans }, why) {
  if (restored === 0) return;
  const orphanText =
    orphans === 0
      ? 'none was running, so nothing was lost.'
      : `${orphans} ${orphans === 1 ? 'was' : 'were'} still running and came back as <b>failed (orphaned)</b>: the tab that ran ${orphans === 1 ? 'it' : 'them'} was reloaded, closed or taken over.`;
  showBanner(`${why} Restored <b>${restored}</b> task${restored === 1 ? '' : 's'} from IndexedDB; ${orphanText}`);
}

function showBanner(html) {
  $('#banner-text').innerHTML = html;
  $('#banner').hidden = false;
}

/** Saves soon: at most one save per SAVE_DEBOUNCE_MS while events stream, and one after the last. */
function scheduleSave() {
  if (saveTimer !== null) return;
  saveTimer = setTimeout(() => {
    saveTimer = null;
    void saveNow();
  }, SAVE_DEBOUNCE_MS);
}

/**
 * Waits until every change so far is in IndexedDB (the manager saves by itself; flush() says when
 * it is done) and shows it. Serialised: a flush that completes started after the previous one.
 */
function saveNow() {
  if (saveTimer !== null) {
    clearTimeout(saveTimer);
    saveTimer = null;
  }
  const m = mgr;
  saveChain = saveChain.then(async () => {
    if (!m || m.disposed) return;
    const el = $('#save-status');
    try {
      await m.flush();
      saveSeq++;
      el.dataset.seq = String(saveSeq);
      el.dataset.state = 'saved';
      el.textContent = `Saved to IndexedDB · ${fmtClock(Date.now())}`;
    } catch (e) {
      if (m !== mgr) return;
      if (e?.code === 'StaleOwner') {
        el.dataset.state = 'lost';
        el.textContent = 'Not saved: another tab owns a thread this tab changed';
      } else {
        el.dataset.state = 'error';
        el.textContent = `Save failed: ${e.message}`;
      }
    }
  });
  return saveChain;
}

function poll(label) {
  if (!mgr) return;
  const events = mgr.drain();
  if (events.length > 0) {
    applyEvents(events, label);
    render();
    scheduleSave();
  } else if (Date.now() - lastRender > 500 && mgr.stats().running > 0) {
    render(); // keeps "running for …" moving for tasks that emit nothing
  } else {
    renderClock();
  }
}

function applyEvents(events, label) {
  for (const ev of events) {
    const x = extra(ev.task_id);
    if (ev.kind !== 'custom') continue;
    const p = ev.payload ?? {};
    switch (ev.event_type) {
      case 'stdout':
        x.lines.push(String(p.line));
        if (x.lines.length > 200) x.lines.shift();
        break;
      case 'progress':
        x.progress = Number(p.pct) || 0;
        x.progressText = p.total ? `${fmtBytes(p.received)} of ${fmtBytes(p.total)}` : '';
        break;
      case 'status':
        x.status = String(p.text ?? '');
        break;
      case 'message':
        x.messages.push({ from: String(p.from), content: String(p.content) });
        break;
      default:
        break;
    }
  }
  logBatch(events, label);
}

// ---------------------------------------------------------------------------------------------
// Spawning
// ---------------------------------------------------------------------------------------------

function parentFor(thread) {
  callCount++;
  return { run_id: `run-${thread}`, call_id: `call_${String(callCount).padStart(3, '0')}` };
}

/** Spawning into a thread another tab took over would only add work that is never saved. */
function ownedHere(thread) {
  if (mgr.ownership(thread) !== 'lost') return true;
  say(`Another tab owns “${threadTitle(thread)}” now: reload this tab to take it back before starting tasks here.`, 'error');
  return false;
}

async function afterSpawn(id, thread, what) {
  owners.set(id, thread);
  extra(id);
  say(`spawn(…) → ${id}: ${what}`);
  if (clockMode === 'manual') await mgr.runUntilIdle(); // the manual clock runs nothing by itself
  poll(clockMode === 'manual' ? 'after spawn' : undefined);
  render();
  void saveNow();
}

function spawnShell() {
  if (!ownedHere(current)) return undefined;
  const job = SHELL_JOBS[spawnCounts.shell++ % SHELL_JOBS.length];
  const thread = current;
  const id = mgr.spawn({ thread, type: 'shell', description: job.cmd, parent: parentFor(thread) }, shellBody(job));
  return afterSpawn(id, thread, `shell job “${job.cmd}”`);
}

function spawnDownload() {
  if (!ownedHere(current)) return undefined;
  const dl = DOWNLOADS[spawnCounts.download++ % DOWNLOADS.length];
  const thread = current;
  const id = mgr.spawn({ thread, type: 'download', description: `download ${dl.file}`, parent: parentFor(thread) }, downloadBody(dl));
  extra(id).progress = 0;
  extra(id).progressText = `0 B of ${fmtBytes(dl.bytes)}`;
  return afterSpawn(id, thread, `download of ${dl.file}`);
}

function spawnAgent() {
  if (!ownedHere(current)) return undefined;
  const topic = RESEARCH_TOPICS[spawnCounts.agent++ % RESEARCH_TOPICS.length];
  const thread = current;
  const m = mgr;
  const onChild = (childId) => {
    owners.set(childId, thread);
    extra(childId).progress = 0;
  };
  const id = m.spawnAgent(
    { thread, description: `Research: ${topic}`, parent: { ...parentFor(thread), agent_id: 'researcher' } },
    researchAgentBody(topic, thread, m, onChild),
  );
  $('#msg-to').value = id;
  return afterSpawn(id, thread, `research sub-agent on “${topic}” (its id is now in the message box)`);
}

function spawnFlaky() {
  if (!ownedHere(current)) return undefined;
  const endpoint = FLAKY_ENDPOINTS[spawnCounts.flaky++ % FLAKY_ENDPOINTS.length];
  const thread = current;
  const id = mgr.spawn(
    { thread, type: 'api_call', description: `GET ${endpoint}`, parent: parentFor(thread), timeoutMs: API_TIMEOUT_MS },
    flakyBody(endpoint),
  );
  extra(id).timeoutMs = API_TIMEOUT_MS;
  return afterSpawn(id, thread, `API call to ${endpoint} (timeoutMs: ${API_TIMEOUT_MS})`);
}

function spawnHung() {
  if (!ownedHere(current)) return undefined;
  const endpoint = HUNG_ENDPOINTS[spawnCounts.hung++ % HUNG_ENDPOINTS.length];
  const thread = current;
  const id = mgr.spawn(
    { thread, type: 'api_call', description: `GET ${endpoint} (never answers)`, parent: parentFor(thread), timeoutMs: API_TIMEOUT_MS },
    hungBody(endpoint),
  );
  extra(id).timeoutMs = API_TIMEOUT_MS;
  return afterSpawn(id, thread, `API call to ${endpoint} that hangs (timeoutMs: ${API_TIMEOUT_MS})`);
}

// ---------------------------------------------------------------------------------------------
// Cancelling
// ---------------------------------------------------------------------------------------------

async function afterCancel(text) {
  say(text);
  if (clockMode === 'manual') await mgr.runUntilIdle(); // lets the aborted bodies settle
  poll(clockMode === 'manual' ? 'after cancel' : undefined);
  render();
}

function cancelOne(id) {
  const r = mgr.cancel(id);
  return afterCancel(`cancel('${id}') → ${r}${r ? ': its signal is aborted; the task ends cancelled' : ''}`);
}

function cancelTree(id) {
  const n = mgr.cancelTree(id);
  return afterCancel(`cancelTree('${id}') → ${n} task${n === 1 ? '' : 's'} signalled (the task and its descendants)`);
}

function cancelAll() {
  const n = mgr.cancelAll(current);
  return afterCancel(`cancelAll('${current}') → ${n} task${n === 1 ? '' : 's'} signalled (this thread only)`);
}

function forgetFinished() {
  let n = 0;
  for (const s of mgr.list(current)) {
    if (s.status !== 'running' && mgr.forget(s.task_id)) {
      extras.delete(s.task_id);
      n++;
    }
  }
  say(`forget() removed ${n} finished task${n === 1 ? '' : 's'} from this thread`);
  render();
  void saveNow();
}

// ---------------------------------------------------------------------------------------------
// Messages to sub-agents
// ---------------------------------------------------------------------------------------------

const ERROR_HELP = {
  TaskNotFound: 'No task has this id, in any thread.',
  NotOwner: 'That task belongs to another thread. Threads are isolated: one conversation cannot steer the agents of another.',
  TaskTerminated: 'The task has already ended, so nobody reads its inbox any more.',
  NoInbox: 'Only sub-agents (started with spawnAgent) have an inbox; this is a plain background task.',
  InboxClosed: 'The sub-agent has stopped reading messages.',
  InboxFull: "The sub-agent's inbox is full.",
};

function showSendResult(ok, html, code) {
  const el = $('#msg-result');
  el.dataset.state = ok ? 'ok' : 'error';
  if (code) el.dataset.code = code;
  else delete el.dataset.code;
  el.innerHTML = html;
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

async function send(taskId, from, content) {
  const call = `sendMessage('${escapeHtml(taskId)}', '${current}', '${escapeHtml(from)}', …)`;
  try {
    mgr.sendMessage(taskId, current, from, content);
  } catch (e) {
    if (e instanceof BgTasksError) {
      let help = ERROR_HELP[e.code] ?? '';
      if (e.code === 'TaskNotFound' && mgr.get(taskId) !== null)
        help =
          'This task is only a record restored from a snapshot: no live body runs it in this runtime, so, as in awaken, ' +
          'there is nobody to deliver to and it counts as not found.';
      const status = e.status ? ` (status: <b>${e.status}</b>)` : '';
      showSendResult(
        false,
        `<span class="err-code">${e.code}</span> <span class="err-msg">${escapeHtml(e.message)}</span>` +
          `<span class="err-help">${help}${status}</span><code class="err-call">${call}</code>`,
        e.code,
      );
    } else {
      showSendResult(false, `<span class="err-code">${escapeHtml(e.name)}</span> <span class="err-msg">${escapeHtml(e.message)}</span>`, e.name);
    }
    return;
  }
  showSendResult(true, `<span class="ok-mark" aria-hidden="true">✓</span> Delivered to <b>${escapeHtml(taskId)}</b>'s inbox. Watch the agent react in the task tree.<code class="err-call">${call}</code>`);
  if (clockMode === 'manual') await mgr.runUntilIdle();
  poll(clockMode === 'manual' ? 'after sendMessage' : undefined);
  render();
}

async function tryErrorCase(kind) {
  let target = null;
  let note = '';
  if (kind === 'unknown') target = 'bg_9999';
  else if (kind === 'other-thread') {
    for (const t of THREADS) {
      if (t.id === current) continue;
      const list = mgr.list(t.id).filter((s) => !extra(s.task_id).restored); // restored records have no live handle
      const pick = list.find((s) => s.task_type === 'sub_agent' && s.status === 'running') ?? list.find((s) => s.task_type === 'sub_agent') ?? list[0];
      if (pick) {
        target = pick.task_id;
        note = ` (owned by “${t.title}”)`;
        break;
      }
    }
    if (!target) {
      showSendResult(false, 'No other thread has a task yet: open another thread tab, start a task there, and come back.', 'NoTarget');
      return;
    }
  } else if (kind === 'no-inbox') {
    const pick = mgr.list(current).find((s) => s.task_type !== 'sub_agent' && s.status === 'running');
    if (pick) target = pick.task_id;
    else {
      await spawnShell();
      target = mgr.list(current).at(-1).task_id;
      note = ' (a shell job just started for this)';
    }
  } else if (kind === 'finished') {
    const pick = mgr.list(current).find((s) => s.task_type === 'sub_agent' && s.status !== 'running' && !extra(s.task_id).restored);
    if (!pick) {
      showSendResult(false, 'No sub-agent of this thread has ended yet: cancel one, or send it “finish”, then try again.', 'NoTarget');
      return;
    }
    target = pick.task_id;
  }
  $('#msg-to').value = target;
  say(`Sending to ${target}${note}`);
  await send(target, $('#msg-from').value || 'user', $('#msg-text').value || 'hello');
}

// ---------------------------------------------------------------------------------------------
// Time control
// ---------------------------------------------------------------------------------------------

async function switchClock(mode) {
  if (mode === clockMode || busy) return;
  await recreate(
    () => {
      clockMode = mode;
      localStorage.setItem(CLOCK_KEY, mode);
    },
    mode === 'manual' ? 'Switched to the manual clock: the manager was recreated.' : 'Switched back to the system clock: the manager was recreated.',
    mode === 'manual' ? 'Manual clock: time moves only when you press +100 ms or +1 s.' : 'System clock: tasks run in real time.',
  );
}

/** The concurrency select: a manager's limits are fixed at creation, so it is recreated as for a clock switch. */
async function setPerThread(value) {
  if (value === perThread || busy || !LIMITS.includes(value)) return;
  const limit = value === 'unlimited' ? 'no limit' : `at most ${value} running per thread`;
  await recreate(
    () => {
      perThread = value;
      localStorage.setItem(LIMIT_KEY, value);
    },
    `Concurrency set to ${limit}: the manager was recreated with <code>concurrency: ${value === 'unlimited' ? '{}' : `{ perThread: ${value} }`}</code>.`,
    value === 'unlimited'
      ? 'No concurrency limit: every task starts at once.'
      : `Concurrency ${value} per thread: a task over the limit waits “queued” and starts when a slot frees.`,
  );
}

/** Saves, disposes the manager, applies `change`, and starts a new one from the saved snapshots. */
async function recreate(change, what, status) {
  if (busy) return;
  busy = true;
  try {
    await saveNow();
    const old = mgr;
    mgr = null;
    old.dispose();
    change();
    const result = await startManager();
    await saveNow();
    showBanner(
      `${what} Every thread was restored from its saved snapshot; ` +
        (result.orphans > 0
          ? `${result.orphans} task${result.orphans === 1 ? ' that was' : 's that were'} running came back <b>failed (orphaned)</b>.`
          : 'nothing was running, so nothing was lost.'),
    );
    say(status);
  } finally {
    busy = false;
  }
  render();
}

/**
 * Moves the manual clock by `ms` in ticks of TICK_MS: after each tick the due timers fire and the
 * woken bodies run (`advance(TICK_MS)` then `runUntilIdle()`). Ticking matters for bodies that sleep
 * in a loop: one `advance(1000)` fires only the timers due by then, and a sleep armed while that
 * runs starts from the new time; ticks give the same timeline as real time for durations that are
 * multiples of TICK_MS (all of this page's are).
 */
const TICK_MS = 10;
async function step(ms) {
  if (clockMode !== 'manual' || busy || !mgr) return;
  busy = true;
  try {
    poll(); // anything left from before the step gets its own log entry
    for (let done = 0; done < ms; done += TICK_MS) {
      mgr.advance(Math.min(TICK_MS, ms - done));
      await mgr.runUntilIdle();
    }
    poll(`after +${fmtMs(ms)} (${Math.ceil(ms / TICK_MS)} × advance(${TICK_MS}) + runUntilIdle)`);
  } finally {
    busy = false;
  }
  render();
}

async function reset() {
  if (busy) return;
  busy = true;
  try {
    await saveChain;
    mgr.dispose();
    mgr = null;
    for (const t of await knownThreads()) await store.delete(t);
    extras.clear();
    owners.clear();
    $('#event-log').replaceChildren();
    $('#banner').hidden = true;
    $('#msg-result').replaceChildren();
    delete $('#msg-result').dataset.state;
    await startManager();
    say('Saved state cleared; a fresh manager started.');
  } finally {
    busy = false;
  }
  render();
  await saveNow();
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

function renderClock() {
  if (!mgr) return;
  const now = mgr.now();
  const out = $('#clock-now');
  if (clockMode === 'manual') {
    out.dataset.offset = String(now - manualOrigin);
    setText(out, `+${(now - manualOrigin).toLocaleString('en-US')} ms`);
  } else {
    delete out.dataset.offset;
    setText(out, fmtClock(now));
  }
}

function renderRuntimeBar() {
  const manual = clockMode === 'manual';
  for (const input of document.querySelectorAll('input[name="clock"]')) input.checked = input.value === clockMode;
  if ($('#per-thread').value !== perThread) $('#per-thread').value = perThread;
  $('#step-buttons').hidden = !manual;
  $('#clock-note').textContent = manual
    ? 'Nothing moves until you step (10 ms ticks of advance + runUntilIdle): the same steps give the same events.'
    : 'Real time. Switching clocks recreates the manager from the saved snapshots: running tasks come back orphaned.';
  renderClock();
  const s = mgr.stats();
  const items = [
    ['running', s.running - s.queued],
    ['queued', s.queued],
    ['completed', s.completed],
    ['failed', s.failed],
    ['cancelled', s.cancelled],
    ['inbox', s.owner_inbox_depth],
  ];
  const dl = $('#stats');
  if (dl.children.length === 0) {
    for (const [k] of items) dl.append(h('div', { class: `stat stat-${k}` }, h('dt', { text: k }), h('dd', { 'data-stat': k })));
  }
  for (const [k, v] of items) setText(dl.querySelector(`[data-stat="${k}"]`), String(v));
}

function renderTabs() {
  const bar = $('#thread-tabs');
  if (bar.children.length === 0) {
    for (const t of THREADS) {
      const tab = h(
        'button',
        { type: 'button', role: 'tab', id: `tab-${t.id}`, 'aria-controls': 'thread-panel', 'data-thread': t.id, class: 'thread-tab' },
        h('span', { class: 'tab-avatar', 'aria-hidden': 'true', text: t.title[0] }),
        h('span', { class: 'tab-text' }, h('span', { class: 'tab-title', text: t.title }), h('span', { class: 'tab-id', text: t.id })),
        h('span', { class: 'tab-badge', 'data-badge': t.id }),
        h('span', { class: 'tab-owner', 'data-owner': t.id }),
      );
      tab.addEventListener('click', () => selectThread(t.id));
      tab.addEventListener('keydown', onTabKey);
      bar.append(tab);
    }
  }
  let total = 0;
  for (const t of THREADS) {
    const list = mgr.list(t.id);
    total += list.length;
    const running = list.filter((s) => s.status === 'running' && !s.queued).length;
    const queued = list.filter((s) => s.queued).length;
    const tab = $(`#tab-${t.id}`);
    const selected = t.id === current;
    tab.setAttribute('aria-selected', String(selected));
    tab.tabIndex = selected ? 0 : -1;
    const badge = tab.querySelector('.tab-badge');
    setText(
      badge,
      running + queued > 0
        ? `${running} running${queued > 0 ? ` · ${queued} queued` : ''}`
        : `${list.length} task${list.length === 1 ? '' : 's'}`,
    );
    badge.dataset.running = String(running + queued > 0);
    const ownership = mgr.ownership(t.id);
    tab.dataset.ownership = ownership;
    const owner = tab.querySelector('.tab-owner');
    owner.hidden = ownership !== 'lost';
    setText(owner, 'other tab');
    owner.title = 'Another tab took this thread over';
  }
  $('#thread-panel').setAttribute('aria-labelledby', `tab-${current}`);
  const mine = mgr.list(current).length;
  $('#isolation-note').innerHTML =
    `<code>list('${current}')</code> → ${mine} task${mine === 1 ? '' : 's'}; the manager holds ${total} across ${THREADS.length} threads. ` +
    'Each thread sees, cancels and messages only its own tasks.';
  setText($('#spawn-thread-label'), `in thread “${threadTitle(current)}”`);
  setText($('#msg-as'), `as thread ${current}`);
}

function onTabKey(e) {
  const ids = THREADS.map((t) => t.id);
  let i = ids.indexOf(current);
  if (e.key === 'ArrowRight') i = (i + 1) % ids.length;
  else if (e.key === 'ArrowLeft') i = (i - 1 + ids.length) % ids.length;
  else if (e.key === 'Home') i = 0;
  else if (e.key === 'End') i = ids.length - 1;
  else return;
  e.preventDefault();
  selectThread(ids[i]);
  $(`#tab-${ids[i]}`).focus();
}

function selectThread(id) {
  if (id === current) return;
  current = id;
  sessionStorage.setItem(THREAD_KEY, id);
  $('#msg-to').value = '';
  render();
}

/** id → the elements of its tree node, reused across renders (focus and transitions survive). */
const nodeViews = new Map();

function nodeView(id) {
  let v = nodeViews.get(id);
  if (v) return v;
  const chip = h('span', { class: 'chip' });
  const title = h('h3', { class: 'task-title', id: `title-${id}` });
  const idEl = h('code', { class: 'task-id', text: id });
  const icon = h('span', { class: 'task-icon', 'aria-hidden': 'true' });
  const meta = h('p', { class: 'task-meta small muted' });
  const progress = h('progress', { max: '100', value: '0', 'aria-labelledby': `title-${id}` });
  const progressLabel = h('span', { class: 'progress-label small' });
  const progressRow = h('div', { class: 'progress-row' }, progress, progressLabel);
  const output = h('pre', { class: 'task-output', tabindex: '0', 'aria-label': `Output of ${id}` });
  const statusLine = h('p', { class: 'task-status-line small' });
  const messages = h('ul', { class: 'task-messages small', 'aria-label': `Messages ${id} received` });
  const outcome = h('p', { class: 'task-outcome small' });
  const cancelBtn = h('button', { type: 'button', class: 'btn btn-small', 'data-action': 'cancel', 'aria-label': `Cancel ${id}` }, 'Cancel');
  const treeBtn = h('button', { type: 'button', class: 'btn btn-small', 'data-action': 'cancel-tree', 'aria-label': `Cancel ${id} and its descendants` }, 'Cancel tree');
  const msgBtn = h('button', { type: 'button', class: 'btn btn-small btn-ghost', 'data-action': 'message', 'aria-label': `Write a message to ${id}` }, 'Message…');
  cancelBtn.addEventListener('click', () => cancelOne(id));
  treeBtn.addEventListener('click', () => cancelTree(id));
  msgBtn.addEventListener('click', () => {
    $('#msg-to').value = id;
    $('#msg-text').focus();
    $('#msg-text').select();
  });
  const actions = h('div', { class: 'task-actions' }, cancelBtn, treeBtn, msgBtn);
  const card = h(
    'article',
    { class: 'task-card', 'aria-labelledby': `title-${id}` },
    h('div', { class: 'task-head' }, icon, title, idEl, chip),
    meta,
    progressRow,
    output,
    statusLine,
    messages,
    outcome,
    actions,
  );
  const children = h('ul', { class: 'tree-children' });
  const li = h('li', { class: 'task-node', 'data-task-id': id }, card, children);
  v = { li, card, actions, chip, title, icon, meta, progress, progressLabel, progressRow, output, statusLine, messages, outcome, cancelBtn, treeBtn, msgBtn, children, lineCount: -1, msgCount: -1 };
  nodeViews.set(id, v);
  return v;
}

function anyRunning(node) {
  return node.status === 'running' || node.children.some(anyRunning);
}

function updateNode(v, node, now) {
  const s = mgr.get(node.task_id);
  const x = extra(node.task_id);
  const orphan = isOrphan(s);
  const running = node.status === 'running';
  const queued = running && s?.queued === true;
  v.li.dataset.status = node.status;
  v.li.dataset.queued = String(queued);
  v.li.dataset.type = node.task_type;
  v.li.dataset.orphaned = String(orphan);
  v.li.dataset.restored = String(x.restored);
  setText(v.title, node.description || node.task_type);
  setText(v.icon, TYPE_ICONS[node.task_type] ?? '•');
  const chip = orphan ? 'orphaned' : queued ? 'queued' : node.status;
  v.chip.className = `chip chip-${chip}`;
  setText(v.chip, chip);
  v.chip.title = queued ? `Waiting for a concurrency slot (at most ${perThread} running per thread)` : '';

  const parts = [node.task_type === 'sub_agent' ? 'sub-agent' : node.task_type];
  const pc = s?.parent_context ?? {};
  if (pc.call_id) parts.push(pc.call_id);
  if (s) {
    if (s.completed_at_ms !== undefined) parts.push(`took ${fmtMs(Math.max(0, s.completed_at_ms - s.created_at_ms))}`);
    else if (queued) parts.push(`queued for ${fmtMs(Math.max(0, now - s.created_at_ms))}: waits for a slot`);
    else if (running) parts.push(`running for ${fmtMs(Math.max(0, now - s.created_at_ms))}`);
  }
  if (x.timeoutMs !== undefined) parts.push(`timeout ${fmtMs(x.timeoutMs)}`);
  if (x.restored) parts.push('restored from IndexedDB');
  setText(v.meta, parts.join(' · '));

  const showProgress = x.progress !== null && (running || node.status === 'completed' || x.progress > 0);
  v.progressRow.hidden = !showProgress;
  if (showProgress) {
    const value = node.status === 'completed' ? 100 : x.progress;
    if (v.progress.value !== value) v.progress.value = value;
    v.progress.dataset.value = String(value);
    setText(v.progressLabel, `${value}%${x.progressText ? ` · ${x.progressText}` : ''}`);
  }

  v.output.hidden = x.lines.length === 0;
  if (v.lastStatus !== node.status) {
    v.lastStatus = node.status;
    v.lineCount = -1; // the box shrinks when the task ends: scroll to its last line again
  }
  if (x.lines.length !== v.lineCount) {
    v.lineCount = x.lines.length;
    v.output.textContent = x.lines.slice(-12).join('\n');
    v.output.dataset.lines = String(x.lines.length);
    v.output.scrollTop = v.output.scrollHeight;
  }

  v.statusLine.hidden = !x.status || !running;
  setText(v.statusLine, x.status);

  v.messages.hidden = x.messages.length === 0;
  if (x.messages.length !== v.msgCount) {
    v.msgCount = x.messages.length;
    v.messages.replaceChildren(
      ...x.messages.map((m) => h('li', {}, h('span', { class: 'msg-from', text: `${m.from}:` }), ` ${m.content}`)),
    );
  }

  let outcome = '';
  let tone = '';
  if (orphan) {
    outcome = 'Was running when the page went away: restored as failed, “task orphaned: runtime restarted while running”. Its work is lost and must be started again.';
    tone = 'orphan';
  } else if (node.status === 'failed') {
    outcome = `Error: ${s?.error ?? ''}`;
    tone = 'error';
  } else if (node.status === 'completed') {
    outcome = `Result: ${JSON.stringify(s?.result ?? null)}`;
    tone = 'ok';
  } else if (node.status === 'cancelled') {
    outcome = 'Cancelled: its signal was aborted and its body stopped.';
    tone = 'cancelled';
  }
  v.outcome.hidden = outcome === '';
  v.outcome.dataset.tone = tone;
  setText(v.outcome, outcome);
  if (v.outcome.title !== outcome) v.outcome.title = outcome;

  const liveTree = anyRunning(node);
  v.cancelBtn.hidden = !running;
  v.treeBtn.hidden = node.children.length === 0 || !liveTree;
  v.msgBtn.hidden = node.task_type !== 'sub_agent' || !running;
  v.actions.hidden = !running && !liveTree;
}

function renderTree() {
  const roots = mgr.taskTree(current).reverse(); // newest first; children stay in spawn order
  const seen = new Set();
  const now = mgr.now();
  const sync = (ul, nodes) => {
    nodes.forEach((node, i) => {
      const v = nodeView(node.task_id);
      seen.add(node.task_id);
      updateNode(v, node, now);
      if (ul.children[i] !== v.li) ul.insertBefore(v.li, ul.children[i] ?? null);
      sync(v.children, node.children);
      v.children.hidden = node.children.length === 0;
    });
  };
  sync($('#task-tree'), roots);
  for (const [id, v] of nodeViews) {
    if (!seen.has(id)) {
      v.li.remove();
      nodeViews.delete(id);
    }
  }
  $('#tree-empty').hidden = roots.length > 0;
  const running = mgr.list(current).some((s) => s.status === 'running');
  $('#cancel-all').disabled = !running;
  $('#forget-finished').disabled = !mgr.list(current).some((s) => s.status !== 'running');
}

function renderMessageTargets() {
  const agents = mgr.list(current).filter((s) => s.task_type === 'sub_agent' && s.status === 'running');
  const dl = $('#agent-ids');
  const key = agents.map((a) => a.task_id).join(',');
  if (dl.dataset.key === key) return;
  dl.dataset.key = key;
  dl.replaceChildren(...agents.map((a) => h('option', { value: a.task_id, label: a.description })));
}

function snapshotScope() {
  return document.querySelector('input[name="snap-scope"]:checked')?.value ?? 'thread';
}

function currentSnapshot() {
  return snapshotScope() === 'all' ? mgr.snapshot() : mgr.snapshot(current);
}

function renderSnapshot() {
  const snap = currentSnapshot();
  const text = JSON.stringify(snap, null, 2);
  setText($('#snapshot-call'), snapshotScope() === 'all' ? 'mgr.snapshot()' : `mgr.snapshot('${current}')`);
  if (text === lastSnapshotText) return;
  lastSnapshotText = text;
  $('#snapshot-json').textContent = text;
  const n = Object.keys(snap.tasks).length;
  setText($('#snapshot-size'), `${n} task${n === 1 ? '' : 's'}, ${fmtBytes(new Blob([text]).size)}.`);
}

/**
 * Which tab owns the current thread. Every tab that opens the demo claims the threads (the newest
 * tab wins); the one that lost them is told at once (a stolen Web Lock) and says so here instead
 * of saving over the new owner's state.
 */
function renderOwnership() {
  const state = mgr.ownership(current);
  const box = $('#owner-note');
  const title = threadTitle(current);
  const lost = state === 'lost';
  box.dataset.ownership = state;
  let html;
  if (state === 'owned') html = `This tab owns “${escapeHtml(title)}”: its changes are saved to IndexedDB as they happen. Open the demo in another tab and that tab takes the threads over.`;
  else if (lost)
    html = `<b>Another tab took over “${escapeHtml(title)}”.</b> It owns the saved state now; what this tab does to the thread is no longer saved. Reload to take it back.`;
  else if (state === 'claiming') html = `Claiming “${escapeHtml(title)}” for this tab…`;
  else if (state === 'failed') html = `This tab could not claim “${escapeHtml(title)}”: its changes are not saved. Reload to try again.`;
  else html = `“${escapeHtml(title)}” is not claimed by this tab yet.`;
  if (box.dataset.html !== html) {
    box.dataset.html = html;
    $('#owner-text').innerHTML = html;
  }
  $('#owner-reload').hidden = !(lost || state === 'failed');
  for (const b of document.querySelectorAll('.spawn-btn')) b.disabled = lost;
}

let lastRender = 0;
function render() {
  if (!mgr) return;
  lastRender = Date.now();
  renderRuntimeBar();
  renderOwnership();
  renderTabs();
  renderTree();
  renderMessageTargets();
  renderSnapshot();
}

// ---------------------------------------------------------------------------------------------
// Event log
// ---------------------------------------------------------------------------------------------

function describeEvent(ev) {
  switch (ev.kind) {
    case 'custom':
      return `${ev.event_type} ${JSON.stringify(ev.payload)}`;
    case 'completed':
      return `result ${JSON.stringify(ev.result)}`;
    case 'failed':
      return `error “${ev.error}”`;
    default:
      return '';
  }
}

function logBatch(events, label) {
  const log = $('#event-log');
  const when = clockMode === 'manual' ? `+${mgr.now() - manualOrigin} ms` : fmtClock(mgr.now());
  const head = h(
    'div',
    { class: 'log-head' },
    h('time', { text: when }),
    h('span', { text: `drain() → ${events.length} event${events.length === 1 ? '' : 's'}` }),
    label ? h('span', { class: 'log-label', text: label }) : null,
  );
  const items = h(
    'ul',
    { class: 'log-events' },
    ...events.map((ev) =>
      h(
        'li',
        { 'data-kind': ev.kind, 'data-task-id': ev.task_id },
        h('span', { class: `kind kind-${ev.kind}`, text: ev.kind }),
        h('code', { class: 'log-id', text: ev.task_id }),
        h('span', { class: 'log-thread', text: owners.get(ev.task_id) ?? '' }),
        h('span', { class: 'log-detail', text: describeEvent(ev) }),
      ),
    ),
  );
  log.prepend(h('li', { class: 'log-batch' }, head, items));
  while (log.children.length > LOG_LIMIT) log.lastElementChild.remove();
}

// ---------------------------------------------------------------------------------------------
// Wiring
// ---------------------------------------------------------------------------------------------

function guard(fn) {
  return async (...args) => {
    if (busy || !mgr) return;
    try {
      await fn(...args);
    } catch (e) {
      say(`${e.name}: ${e.message}`, 'error');
    }
  };
}

function wire() {
  $('#spawn-shell').addEventListener('click', guard(spawnShell));
  $('#spawn-download').addEventListener('click', guard(spawnDownload));
  $('#spawn-agent').addEventListener('click', guard(spawnAgent));
  $('#spawn-flaky').addEventListener('click', guard(spawnFlaky));
  $('#spawn-hung').addEventListener('click', guard(spawnHung));
  $('#per-thread').addEventListener('change', (e) => void setPerThread(e.target.value));
  $('#cancel-all').addEventListener('click', guard(cancelAll));
  $('#forget-finished').addEventListener('click', guard(forgetFinished));
  $('#msg-form').addEventListener('submit', (e) => {
    e.preventDefault();
    guard(() => send($('#msg-to').value.trim(), $('#msg-from').value, $('#msg-text').value))();
  });
  for (const b of document.querySelectorAll('[data-error-case]')) b.addEventListener('click', guard(() => tryErrorCase(b.dataset.errorCase)));
  for (const input of document.querySelectorAll('input[name="clock"]')) {
    input.addEventListener('change', () => {
      if (input.checked) void switchClock(input.value);
    });
  }
  $('#step-100').addEventListener('click', () => step(100));
  $('#step-1000').addEventListener('click', () => step(1000));
  $('#reset').addEventListener('click', () => reset());
  $('#owner-reload').addEventListener('click', () => location.reload());
  $('#banner-close').addEventListener('click', () => {
    $('#banner').hidden = true;
  });
  $('#log-clear').addEventListener('click', () => $('#event-log').replaceChildren());
  for (const input of document.querySelectorAll('input[name="snap-scope"]')) input.addEventListener('change', () => renderSnapshot());
  $('#snapshot-download').addEventListener('click', () => {
    if (!mgr) return;
    const text = JSON.stringify(currentSnapshot(), null, 2);
    const url = URL.createObjectURL(new Blob([text + '\n'], { type: 'application/json' }));
    const a = h('a', { href: url, download: `bgtasks-snapshot-${snapshotScope() === 'all' ? 'all-threads' : current}.json` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  });
}

async function main() {
  wire();
  const result = await startManager();
  restoreBanner(result, 'Welcome back.');
  render();
  if (result.restored > 0) await saveNow(); // the orphans are now failed in the saved state too
  setInterval(() => {
    if (!busy) poll();
  }, POLL_MS);
  document.body.dataset.ready = 'true';
}

main().catch((e) => {
  document.body.dataset.ready = 'error';
  showBanner(`The demo could not start: ${escapeHtml(e.message)}`);
  throw e;
});
