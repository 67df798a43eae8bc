// The README's JS snippet, run by examples/readme/check.mjs. The text between the two marker
// lines must equal the README's ```js block byte for byte; check.mjs compares them.
//
// Wrapper: the block persists to ./state, so it runs in a fresh temp dir (its imports are hoisted;
// the chdir still happens before any of its statements), and afterwards checks what it left.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dir = mkdtempSync(join(tmpdir(), 'bgtasks-readme-js-'));
process.chdir(dir);

// ---- README ```js block begin ----
import { createTaskManager, BgTasksError, FileStore } from 'bgtasks';

const mgr = await createTaskManager({ clock: 'system' });        // or { clock: 'manual', now: 0 }
const id = mgr.spawn({ thread: 't1', type: 'shell', name: 'build', description: 'Build the app' },
  async (ctx) => {
    ctx.emit('progress', { pct: 50 });             // → {kind:'custom', task_id, event_type, payload}
    await ctx.sleep(1000);                         // rejects with AbortError on cancel
    if (ctx.signal.aborted) return null;           // ctx.signal is an AbortSignal
    return { ok: true };                           // → completed; throw → failed with the message
  });                                              // 'bg_0', returned at once; the body starts at the next poll

const agent = mgr.spawnAgent({ thread: 't1', name: 'researcher', description: 'find sources' },
  async (ctx) => {
    ctx.spawn({ thread: 't1', type: 'fetch', description: 'page' }, async () => 'html'); // child of this agent
    for await (const msg of ctx.inbox) return msg.payload.content;                      // awaken's agent_message
  });
mgr.sendMessage(agent, 't1', 'parent', 'look at X');   // throws BgTasksError: TaskNotFound | NotOwner | …

for await (const ev of mgr.events('t1')) { console.log(ev.kind, ev.task_id); if (ev.kind !== 'custom') break; }
await mgr.wait(id);                                  // the terminal TaskSummary
mgr.cancelTree(agent);                               // how many live tasks were signalled
await mgr.persist(new FileStore('./state'), 't1');   // awaken's {tasks: {bg_0: meta}} in ./state/t1.json
mgr.dispose();

// Durable: ids from the store, every change saved by itself, one owner per thread.
const durable = await createTaskManager({ store: new FileStore('./state') });
const { added } = await durable.resume('t1');        // the saved tasks come back, running ones orphaned
durable.spawn({ thread: 't1', type: 'shell' }, async () => 'done');
await durable.flush();                               // everything before it is on disk
// ---- README ```js block end ----

// The wrapper's checks (check.mjs also checks the printed events).
const saved = JSON.parse(readFileSync(join(dir, 'state', 't1.json'), 'utf8'));
assert.equal(added, 3);
assert.equal(Object.keys(saved.tasks).length, 4, 'the durable manager saved its task next to the resumed ones');
await durable.wait('bg_3');
await durable.flush();
assert.equal(JSON.parse(readFileSync(join(dir, 'state', 't1.json'), 'utf8')).tasks.bg_3.result, 'done');
durable.dispose();
assert.equal(saved.tasks[id].status, 'completed');
assert.deepEqual(saved.tasks[id].result, { ok: true });
assert.equal(saved.tasks[agent].status, 'completed');
assert.equal(saved.tasks[agent].result, 'look at X');
const child = Object.values(saved.tasks).find((t) => t.task_type === 'fetch');
assert.equal(child.parent_context.task_id, agent);
assert.equal(child.result, 'html');
assert.ok(mgr.disposed);
assert.ok(typeof BgTasksError === 'function');
process.chdir(tmpdir());
rmSync(dir, { recursive: true, force: true });
console.log(`readme-js: ${id} completed, ${agent} -> ${JSON.stringify(saved.tasks[agent].result)}`);
