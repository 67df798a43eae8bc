// examples/node-agent: a scripted crash-and-restart scenario on the manual clock (no sleeps: the
// agent's time moves in ticks, so every run prints the same text).
//   run 1 is SIGKILLed after its 10th event; its FileStore snapshot still has running tasks;
//   run 2 reports them as orphans (failed, awaken's message), then finishes new work;
//   run 3 finds nothing orphaned (run 2 ended cleanly).
// Needs `npm ci` at the top level (the workspace links `bgtasks` for the example).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const exampleDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples', 'node-agent');
const agent = join(exampleDir, 'agent.mjs');
const ORPHANED = 'task orphaned: runtime restarted while running';
const HANG_GUARD_MS = 60_000; // a run takes well under a second; this only stops a hang

const dirs = [];
function tempDir() {
  const dir = mkdtempSync(join(tmpdir(), 'bgtasks-node-agent-'));
  dirs.push(dir);
  return dir;
}
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** Runs the agent; returns {status, signal, lines}. */
function runAgent(state, ...extra) {
  const r = spawnSync(process.execPath, [agent, '--state', state, '--clock', 'manual', ...extra], {
    cwd: exampleDir,
    encoding: 'utf8',
    timeout: HANG_GUARD_MS,
  });
  assert.equal(r.error, undefined, `could not run the agent: ${r.error}`);
  assert.equal(r.stderr, '', `the agent wrote to stderr:\n${r.stderr}`);
  return { status: r.status, signal: r.signal, stdout: r.stdout, lines: r.stdout.trimEnd().split('\n') };
}

const readState = (dir) => JSON.parse(readFileSync(join(dir, 'main.json'), 'utf8'));
const statuses = (state) => Object.fromEntries(Object.values(state.tasks).map((t) => [t.task_id, t.status]));

before(() => {
  // Resolved as the example resolves it (Node walks up to the workspace's node_modules).
  let found;
  try {
    found = realpathSync(createRequire(agent).resolve('bgtasks/package.json'));
  } catch {
    assert.fail('bgtasks is not installed for examples/node-agent: run `npm ci` at the top of the repository');
  }
  assert.equal(found, realpathSync(join(exampleDir, '..', '..', 'js', 'package.json')), 'bgtasks resolves to this repository\'s js/');
});

test('node-agent example: a killed run leaves orphans that the next run reports, then new work finishes', () => {
  const state = tempDir();
  const file = join(state, 'main.json');

  // ---- run 1: killed after 10 events -------------------------------------------------------
  const run1 = runAgent(state, '--kill-after', '10');
  assert.equal(run1.signal, 'SIGKILL', `run 1 should die by SIGKILL:\n${run1.stdout}`);
  assert.equal(run1.status, null);
  assert.deepEqual(run1.lines, [
    `bgtasks node agent · thread "main" · manual clock · state ${file}`,
    'previous run: none',
    '[    0ms] bg_2   researcher       status: reading 3 sources',
    '[  100ms] bg_1   weights          download  13% (0.5 of 4.0 MiB)',
    '[  150ms] bg_0   build            | > tsc -p .',
    '[  200ms] bg_1   weights          download  25% (1.0 of 4.0 MiB)',
    '[  200ms] bg_3     awaken docs    completed {"notes":3,"source":"awaken docs"}',
    '[  300ms] bg_0   build            | src/agent.ts -> dist/agent.js',
    '[  300ms] bg_1   weights          download  38% (1.5 of 4.0 MiB)',
    '[  350ms] bg_4     issue tracker  completed {"notes":4,"source":"issue tracker"}',
    '[  400ms] bg_1   weights          download  50% (2.0 of 4.0 MiB)',
    '[  450ms] bg_0   build            | src/tools.ts -> dist/tools.js',
    'simulated crash: SIGKILL after 10 events (last save: #8)',
  ]);

  // What the crash left on disk: the last batch's save (awaken's {tasks: {id: meta}}), with the
  // tasks that were running still marked running, and no temp file from an unfinished write.
  assert.deepEqual(readdirSync(state), ['main.json']);
  const s1 = readState(state);
  assert.deepEqual(statuses(s1), {
    bg_0: 'running',
    bg_1: 'running',
    bg_2: 'running',
    bg_3: 'completed',
    bg_4: 'completed',
    bg_5: 'running',
  });
  assert.equal(s1.tasks.bg_2.task_type, 'sub_agent');
  assert.equal(s1.tasks.bg_2.name, 'researcher');
  for (const id of ['bg_3', 'bg_4', 'bg_5']) assert.deepEqual(s1.tasks[id].parent_context, { task_id: 'bg_2' });
  assert.deepEqual(s1.tasks.bg_3.result, { notes: 3, source: 'awaken docs' });
  for (const t of Object.values(s1.tasks)) assert.equal(t.owner_thread_id, 'main');

  // ---- run 2: reports the orphans, then runs new work to the end --------------------------
  const run2 = runAgent(state);
  assert.equal(run2.status, 0, run2.stdout);
  assert.deepEqual(run2.lines.slice(0, 8), [
    `bgtasks node agent · thread "main" · manual clock · state ${file}`,
    `previous run: restored 6 tasks from ${file}`,
    '  4 orphaned (running when that run died):',
    `    bg_0   shell     npm run build — ${ORPHANED}`,
    `    bg_1   download  GET model.bin (4 MiB) — ${ORPHANED}`,
    `    bg_2   sub_agent survey background-task designs — ${ORPHANED}`,
    `    bg_5   fetch     read design notes — ${ORPHANED}`,
    '  2 finished before it died: bg_3 completed, bg_4 completed',
  ]);
  // New ids continue after the restored ones; the sub-agent gets its message; a message to a
  // task without an inbox is a readable error.
  for (const line of [
    '[    0ms] bg_8   researcher       status: reading 3 sources',
    '[  500ms] bg_8   researcher       status: read 3 sources; waiting for instructions',
    '[  500ms] -> bg_8 researcher: sent "compare cancellation semantics"',
    '[  500ms] -> bg_6 build: sendMessage refused: NoInbox (task has no inbox (not a sub-agent))',
    '[  700ms] bg_8   researcher       completed {"notes":12,"sources":3,"topic":"compare cancellation semantics"}',
    '[  800ms] bg_7   weights          completed {"bytes":4194304,"file":"model.bin"}',
    '[  900ms] bg_6   build            completed {"exit_code":0,"lines":6}',
  ]) {
    assert.ok(run2.lines.includes(line), `run 2 should print ${JSON.stringify(line)}:\n${run2.stdout}`);
  }
  assert.equal(run2.lines.at(-2), 'done at [  900ms]: 6 tasks this run — 6 completed, 0 failed, 0 cancelled; 23 events');
  assert.match(run2.lines.at(-1), new RegExp(`^state: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} holds 12 tasks \\(8 completed, 4 failed of which 4 orphaned, 0 cancelled\\); saved \\d+ times$`));

  const s2 = readState(state);
  assert.deepEqual(statuses(s2), {
    bg_0: 'failed',
    bg_1: 'failed',
    bg_2: 'failed',
    bg_3: 'completed',
    bg_4: 'completed',
    bg_5: 'failed',
    bg_6: 'completed',
    bg_7: 'completed',
    bg_8: 'completed',
    bg_9: 'completed',
    bg_10: 'completed',
    bg_11: 'completed',
  });
  for (const id of ['bg_0', 'bg_1', 'bg_2', 'bg_5']) {
    assert.equal(s2.tasks[id].error, ORPHANED);
    assert.equal(s2.tasks[id].completed_at_ms, undefined, 'an orphan has no completion time');
    assert.deepEqual(s2.tasks[id], { ...s1.tasks[id], status: 'failed', error: ORPHANED }, 'otherwise as saved');
  }
  assert.deepEqual(s2.tasks.bg_3, s1.tasks.bg_3, 'finished tasks restore unchanged');
  assert.deepEqual(s2.tasks.bg_8.result, { notes: 12, sources: 3, topic: 'compare cancellation semantics' });
  for (const id of ['bg_9', 'bg_10', 'bg_11']) assert.deepEqual(s2.tasks[id].parent_context, { task_id: 'bg_8' });
  assert.deepEqual(readdirSync(state), ['main.json']);

  // ---- run 3: run 2 ended cleanly, so nothing new is orphaned ------------------------------
  const run3 = runAgent(state);
  assert.equal(run3.status, 0, run3.stdout);
  assert.deepEqual(run3.lines.slice(1, 4), [
    `previous run: restored 12 tasks from ${file}`,
    '  0 orphaned (running when that run died):',
    '  12 finished before it died: bg_0 failed, bg_1 failed, bg_2 failed, bg_3 completed, bg_4 completed, bg_5 failed, bg_6 completed, bg_7 completed, bg_8 completed, bg_9 completed, bg_10 completed, bg_11 completed',
  ]);
  assert.ok(run3.lines.includes('[    0ms] bg_14  researcher       status: reading 3 sources'), run3.stdout);
  assert.equal(Object.keys(readState(state).tasks).length, 18);
});

test('node-agent example: the manual clock makes the output identical from run to run', () => {
  const a = tempDir();
  const b = tempDir();
  const strip = (r, dir) => r.stdout.replaceAll(dir, '<state>');
  const ra = runAgent(a);
  const rb = runAgent(b);
  assert.equal(ra.status, 0, ra.stdout);
  assert.equal(strip(ra, a), strip(rb, b));
  assert.deepEqual(readState(a), readState(b));
});

test('node-agent example: --display ansi draws a live panel; --kill-after and --clock are validated', () => {
  const dir = tempDir();
  const r = runAgent(dir, '--display', 'ansi');
  assert.equal(r.status, 0, r.stdout);
  // eslint-disable-next-line no-control-regex -- the ANSI escapes are what is checked
  assert.match(r.stdout, /\x1b\[\d+A\x1b\[0J/, 'the panel is redrawn in place (cursor up, clear)');
  assert.match(r.stdout, /this run: running 0 · completed 6 · failed 0 · cancelled 0/);
  assert.match(r.stdout, /done at \[ {2}900ms\]: 6 tasks this run — 6 completed/);

  const bad = spawnSync(process.execPath, [agent, '--state', dir, '--kill-after', 'soon'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--kill-after must be a positive integer/);
  const badClock = spawnSync(process.execPath, [agent, '--state', dir, '--clock', 'fast'], { encoding: 'utf8' });
  assert.equal(badClock.status, 2);
  assert.match(badClock.stderr, /--clock must be system or manual/);
});
