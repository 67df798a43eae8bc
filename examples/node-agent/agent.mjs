#!/usr/bin/env node
// A Node CLI "agent" that hands its long jobs to bgtasks: a build streaming output lines, a
// download reporting progress, and a research sub-agent that spawns child tasks and waits for a
// message from its parent. It shows them live in the terminal, saves the thread's tasks to a
// FileStore after every batch of events, and on the next start reports what a killed run left
// behind: tasks that were running come back `failed` with awaken's orphan message.
//
//   node agent.mjs [--state DIR] [--clock system|manual] [--kill-after N] [--thread ID]
//                  [--display auto|ansi|plain] [--tick MS]
//
//   --state DIR       where the FileStore keeps <thread>.json (default ./agent-state)
//   --clock manual    deterministic mode: time moves only in --tick steps (default 50 ms), as fast
//                     as the CPU allows, so the output is the same on every run
//   --kill-after N    simulate a crash: SIGKILL this process right after the N-th event
//   --display         ansi: a live task panel (default when stdout is a TTY); plain: one line per
//                     event (default otherwise, e.g. in a pipe or a test)
import { parseArgs } from 'node:util';
import { isAbsolute, relative, resolve } from 'node:path';
import { BgTasksError, FileStore, createTaskManager } from 'bgtasks';

const ORPHANED = 'task orphaned: runtime restarted while running';

// ---- command line ---------------------------------------------------------------------------
const USAGE = `usage: node agent.mjs [--state DIR] [--clock system|manual] [--kill-after N] [--thread ID]
                      [--display auto|ansi|plain] [--tick MS]`;
let args;
try {
  args = parseArgs({
    options: {
      state: { type: 'string', default: './agent-state' },
      clock: { type: 'string', default: 'system' },
      'kill-after': { type: 'string' },
      thread: { type: 'string', default: 'main' },
      display: { type: 'string', default: 'auto' },
      tick: { type: 'string', default: '50' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  }).values;
} catch (e) {
  console.error(`${e.message}\n${USAGE}`);
  process.exit(2);
}
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}
const positiveInt = (text, name) => {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) {
    console.error(`${name} must be a positive integer, got ${JSON.stringify(text)}\n${USAGE}`);
    process.exit(2);
  }
  return n;
};
if (!['system', 'manual'].includes(args.clock)) {
  console.error(`--clock must be system or manual\n${USAGE}`);
  process.exit(2);
}
if (!['auto', 'ansi', 'plain'].includes(args.display)) {
  console.error(`--display must be auto, ansi or plain\n${USAGE}`);
  process.exit(2);
}
const killAfter = args['kill-after'] === undefined ? null : positiveInt(args['kill-after'], '--kill-after');
const tick = positiveInt(args.tick, '--tick');
const thread = args.thread;
// `node agent.mjs | head`: a closed pipe ends the program quietly (the store keeps the last save).
process.stdout.on('error', (e) => {
  if (e.code !== 'EPIPE') throw e;
  process.exit(0);
});
const ansi = args.display === 'ansi' || (args.display === 'auto' && process.stdout.isTTY === true);

// ---- the manager and the store --------------------------------------------------------------
const mgr = await createTaskManager({ clock: args.clock });
const store = new FileStore(args.state);
const stateFile = displayPath(store.pathFor(thread));
const t0 = mgr.now();
const ui = ansi ? new AnsiDisplay() : new PlainDisplay();

ui.log(`bgtasks node agent · thread "${thread}" · ${args.clock} clock · state ${stateFile}`);

// 1. What did the previous run leave? restore() takes the saved snapshot (mgr.resume(store, thread)
//    does load + restore in one call): finished tasks stay as they were; tasks that were running
//    have no body any more and come back failed, orphaned.
const saved = await store.load(thread);
const wasRunning = new Set(Object.values(saved?.tasks ?? {}).filter((t) => t.status === 'running').map((t) => t.task_id));
const restored = saved ? mgr.restore(thread, saved).added : 0;
if (restored === 0) {
  ui.log('previous run: none');
} else {
  const old = mgr.list(thread);
  const orphans = old.filter((t) => wasRunning.has(t.task_id) && t.error === ORPHANED);
  const finished = old.filter((t) => !orphans.includes(t));
  ui.log(`previous run: restored ${restored} tasks from ${stateFile}`);
  ui.log(`  ${orphans.length} orphaned (running when that run died):`);
  for (const t of orphans) ui.log(`    ${t.task_id.padEnd(6)} ${t.task_type.padEnd(9)} ${t.description} — ${t.error}`);
  if (finished.length > 0) {
    ui.log(`  ${finished.length} finished before it died: ${finished.map((t) => `${t.task_id} ${t.status}`).join(', ')}`);
  }
}

// 2. New work.
const labels = new Map(); // task id → what the display calls it
const view = new Map(); // task id → { progress, last } for the panel
const mine = new Set(); // root tasks of this run
const label = (id) => labels.get(id) ?? id;

function track(id, name, parent) {
  labels.set(id, name);
  view.set(id, {});
  if (!parent) mine.add(id);
  return id;
}

const build = track(
  mgr.spawn({ thread, type: 'shell', name: 'build', description: 'npm run build' }, async (ctx) => {
    const lines = ['> tsc -p .', 'src/agent.ts -> dist/agent.js', 'src/tools.ts -> dist/tools.js', '> vite build', 'dist/index.html  0.4 kB', 'built in 612ms'];
    for (const text of lines) {
      await ctx.sleep(150); // rejects with an AbortError on cancel: the task then ends cancelled
      ctx.emit('line', { text });
    }
    return { exit_code: 0, lines: lines.length };
  }),
  'build',
);

track(
  mgr.spawn({ thread, type: 'download', name: 'weights', description: 'GET model.bin (4 MiB)' }, async (ctx) => {
    const total = 4 * 1024 * 1024;
    for (let bytes = 512 * 1024; bytes <= total; bytes += 512 * 1024) {
      await ctx.sleep(100);
      ctx.emit('progress', { bytes, total });
    }
    return { bytes: total, file: 'model.bin' };
  }),
  'weights',
);

const sources = ['awaken docs', 'issue tracker', 'design notes'];
track(
  mgr.spawnAgent({ thread, name: 'researcher', description: 'survey background-task designs' }, async (ctx) => {
    ctx.emit('status', { text: `reading ${sources.length} sources` });
    // Child tasks: their parent_context.task_id is this sub-agent.
    const children = sources.map((source, i) =>
      track(
        ctx.spawn({ thread, type: 'fetch', description: `read ${source}` }, async (child) => {
          await child.sleep(200 + 150 * i);
          return { source, notes: 3 + i };
        }),
        `  ${source}`,
        ctx.taskId,
      ),
    );
    const done = await Promise.all(children.map((id) => mgr.wait(id)));
    if (ctx.signal.aborted) return null; // cancel_tree/cancelAll reached the children too
    ctx.emit('status', { text: `read ${done.length} sources; waiting for instructions`, waiting: true });
    const msg = await ctx.inbox.recv(); // an agent_message from sendMessage, or null on cancel
    if (!msg) return null;
    ctx.emit('status', { text: `focusing on "${msg.payload.content}"` });
    await ctx.sleep(200);
    const notes = done.reduce((n, s) => n + s.result.notes, 0);
    return { topic: msg.payload.content, sources: done.length, notes };
  }),
  'researcher',
);

// Ctrl-C: cancel everything, let the bodies end (cancelled), save, exit.
process.once('SIGINT', () => {
  ui.log(`interrupted: cancelAll("${thread}") signalled ${mgr.cancelAll(thread)} tasks`);
});

// 3. The loop: take a batch of events, show it, react to it, save.
let events = 0;
let saves = 0;
async function save() {
  await mgr.persist(store, thread);
  saves++;
}
await save(); // the spawns

function onEvent(ev) {
  events++;
  const v = view.get(ev.task_id) ?? {};
  view.set(ev.task_id, v);
  if (ev.kind === 'custom' && ev.event_type === 'progress') {
    v.progress = ev.payload.bytes / ev.payload.total;
    ui.event(ev, `download ${pct(v.progress)} (${mib(ev.payload.bytes)} of ${mib(ev.payload.total)} MiB)`, { quiet: true });
  } else if (ev.kind === 'custom' && ev.event_type === 'line') {
    v.last = ev.payload.text;
    ui.event(ev, `| ${ev.payload.text}`);
  } else if (ev.kind === 'custom' && ev.event_type === 'status') {
    v.last = ev.payload.text;
    ui.event(ev, `status: ${ev.payload.text}`);
    if (ev.payload.waiting) instruct(ev.task_id);
  } else if (ev.kind === 'custom') {
    ui.event(ev, `${ev.event_type} ${JSON.stringify(ev.payload)}`);
  } else if (ev.kind === 'completed') {
    ui.event(ev, `completed ${JSON.stringify(ev.result)}`);
  } else if (ev.kind === 'failed') {
    ui.event(ev, `failed: ${ev.error}`);
  } else {
    ui.event(ev, ev.kind);
  }
  if (killAfter !== null && events === killAfter) {
    // Abrupt death: no cleanup, no final save — what the next run finds is the last batch's save.
    ui.log(`simulated crash: SIGKILL after ${events} events (last save: #${saves})`);
    ui.close();
    process.kill(process.pid, 'SIGKILL');
  }
}

// The parent answers the researcher; a message to a task without an inbox is a readable error.
function instruct(agentId) {
  const content = 'compare cancellation semantics';
  mgr.sendMessage(agentId, thread, 'parent', content);
  ui.log(`${stamp()} -> ${agentId} ${label(agentId).trim()}: sent "${content}"`);
  try {
    mgr.sendMessage(build, thread, 'parent', 'hurry up');
  } catch (e) {
    if (!(e instanceof BgTasksError)) throw e;
    ui.log(`${stamp()} -> ${build} ${label(build)}: sendMessage refused: ${e.code} (${e.message})`);
  }
}

async function handle(batch) {
  for (const ev of batch) onEvent(ev);
  ui.update(mgr, mine);
  await save();
}

if (args.clock === 'manual') {
  // Deterministic: run everything that is ready, handle what it emitted, and only when a step
  // produced nothing move time by one tick.
  for (;;) {
    await mgr.runUntilIdle();
    const batch = mgr.drain(thread);
    if (batch.length > 0) await handle(batch);
    if (!mgr.hasRunning(thread)) break;
    if (batch.length > 0) continue; // reactions (a message) may make more work ready now
    if (mgr.now() - t0 > 10 * 60_000) throw new Error('stuck: still running after 10 manual minutes');
    mgr.advance(tick);
  }
} else {
  // System clock: the manager pumps by itself; wait for one event, then take what else is queued.
  const it = mgr.events(thread);
  while (mgr.hasRunning(thread)) {
    const first = await it.next();
    if (first.done) break;
    await handle([first.value, ...mgr.drain(thread)]);
  }
  await it.return();
  const rest = mgr.drain(thread); // the last tasks may have ended while the previous batch was saved
  if (rest.length > 0) await handle(rest);
}

// 4. Report.
const ours = [...mine].flatMap((id) => [id, ...descendants(id)]).map((id) => mgr.get(id));
const count = (list, status) => list.filter((t) => t.status === status).length;
ui.close();
ui.log(`done at ${stamp()}: ${ours.length} tasks this run — ${count(ours, 'completed')} completed, ${count(ours, 'failed')} failed, ${count(ours, 'cancelled')} cancelled; ${events} events`);
const all = mgr.list(thread);
const orphanCount = all.filter((t) => t.error === ORPHANED).length;
ui.log(`state: ${stateFile} holds ${all.length} tasks (${count(all, 'completed')} completed, ${count(all, 'failed')} failed of which ${orphanCount} orphaned, ${count(all, 'cancelled')} cancelled); saved ${saves} times`);
mgr.dispose();
process.exitCode = ours.every((t) => t.status === 'completed') ? 0 : 1;

// ---- helpers --------------------------------------------------------------------------------
function descendants(id) {
  const find = (nodes) => {
    for (const n of nodes) {
      if (n.task_id === id) return n;
      const hit = find(n.children);
      if (hit) return hit;
    }
    return null;
  };
  const ids = [];
  const walk = (n) => n.children.forEach((c) => (ids.push(c.task_id), walk(c)));
  const node = find(mgr.taskTree(thread));
  if (node) walk(node);
  return ids;
}

function displayPath(p) {
  const rel = relative(process.cwd(), p);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : resolve(p);
}

function stamp() {
  const ms = mgr.now() - t0;
  return `[${String(ms).padStart(5)}ms]`;
}
function pct(x) {
  return `${Math.round(x * 100)}%`.padStart(4);
}
function mib(bytes) {
  return (bytes / 1024 / 1024).toFixed(1);
}

// One line per event; nothing but text (logs, pipes, tests).
function PlainDisplay() {
  return {
    log: (line) => console.log(line),
    event: (ev, text) => console.log(`${stamp()} ${ev.task_id.padEnd(6)} ${label(ev.task_id).padEnd(16)} ${text}`),
    update() {},
    close() {},
  };
}

// A live panel under a scrolling log: each redraw moves the cursor up over the previous panel,
// clears to the end of the screen and draws it again.
function AnsiDisplay() {
  const out = process.stdout;
  const esc = (code) => (s) => `\x1b[${code}m${s}\x1b[0m`;
  const dim = esc('2');
  const bold = esc('1');
  const chip = { running: esc('36'), completed: esc('32'), failed: esc('31'), cancelled: esc('33') };
  let height = 0;
  let panel = [];
  const width = () => Math.max(40, (out.columns || 100) - 1);
  const fit = (s) => (s.length > width() ? `${s.slice(0, width() - 1)}…` : s);
  const clear = () => {
    if (height > 0) out.write(`\x1b[${height}A\x1b[0J`);
    height = 0;
  };
  const draw = () => {
    if (panel.length === 0) return;
    out.write(`${panel.join('\n')}\n`);
    height = panel.length;
  };
  const bar = (x, n = 20) => {
    const full = Math.round(x * n);
    return `${'█'.repeat(full)}${dim('░'.repeat(n - full))}`;
  };
  const row = (node, depth) => {
    const v = view.get(node.task_id) ?? {};
    const name = (node.name ?? node.description).slice(0, 18).padEnd(18);
    const head = fit(`${'  '.repeat(depth)}${node.task_id.padEnd(6)} ${name} ${node.status.padEnd(9)} `);
    const status = chip[node.status](node.status.padEnd(9));
    let tail = '';
    if (v.progress !== undefined) tail = `${bar(v.progress)} ${pct(v.progress)}`;
    else if (v.last) tail = dim(v.last.slice(0, Math.max(0, width() - head.length)));
    return `${head.slice(0, head.length - 10)}${status} ${tail}`;
  };
  return {
    log(line) {
      clear();
      out.write(`${fit(line)}\n`);
      draw();
    },
    event(ev, text, { quiet = false } = {}) {
      if (quiet) return; // progress shows in the panel's bar
      const line = fit(`${stamp()} ${ev.task_id.padEnd(6)} ${label(ev.task_id).padEnd(16)} ${text}`);
      const color = ev.kind === 'completed' ? chip.completed : ev.kind === 'failed' ? chip.failed : ev.kind === 'cancelled' ? chip.cancelled : (s) => s;
      clear();
      out.write(`${color(line)}\n`);
      draw();
    },
    update(manager, roots) {
      const rows = [];
      const statuses = [];
      const walk = (node, depth) => {
        rows.push(row(node, depth));
        statuses.push(node.status);
        node.children.forEach((c) => walk(c, depth + 1));
      };
      manager.taskTree(thread).filter((n) => roots.has(n.task_id)).forEach((n) => walk(n, 0));
      const n = (status) => statuses.filter((s) => s === status).length;
      const counts = ['running', 'completed', 'failed', 'cancelled'].map((s) => `${s} ${n(s)}`).join(' · ');
      panel = [dim('─'.repeat(Math.min(width(), 72))), bold(`${stamp()} this run: ${counts}`), ...rows];
      clear();
      draw();
    },
    close() {
      panel = [];
      height = 0; // leave the last panel on screen
    },
  };
}
