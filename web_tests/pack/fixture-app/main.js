// A tiny app importing the installed package by name, bundled by `vite build`.
import { createTaskManager, IndexedDbStore } from 'bgtasks';

const status = document.getElementById('status');
try {
  const mgr = await createTaskManager(); // system clock: the wrapper drives itself
  const id = mgr.spawn({ thread: 'app', type: 'demo', description: 'bundled task' }, async (ctx) => {
    ctx.emit('progress', { pct: 50 });
    await ctx.sleep(5);
    return { answer: 42 };
  });
  const summary = await mgr.wait(id);
  const events = mgr.drain('app');
  const store = new IndexedDbStore('bgtasks-vite-fixture');
  await mgr.persist(store, 'app');
  const stored = await store.load('app');
  store.close();
  mgr.dispose();
  window.__result = { id, summary, events, storedIds: Object.keys(stored.tasks) };
  status.textContent = summary.status;
  document.getElementById('out').textContent = JSON.stringify(window.__result, null, 2);
} catch (e) {
  window.__result = { error: String(e?.stack ?? e) };
  status.textContent = 'error';
  document.getElementById('out').textContent = window.__result.error;
}
