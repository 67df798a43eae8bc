// The agent's side: a bgtasks manager in a dedicated module Worker, persisting its thread to
// IndexedDB. The page talks to it only by messages, so the agent loop never blocks the UI.
//
// A Worker has no import map, so the package is imported by its path: bgtasks' browser entry
// (src/browser.js) imports only files of its own, and the .wasm is fetched from beside it.
import { createTaskManager, IndexedDbStore } from './node_modules/bgtasks/src/browser.js';

const THREAD = 'chat';
const store = new IndexedDbStore('bgtasks-web-worker-example');
// Attached store: ids come from it, the thread is claimed, every change saves itself.
const manager = await createTaskManager({ store });
const resumed = await manager.resume(THREAD);

// Every event of the thread goes to the page as it happens (events are plain JSON: cloneable).
manager.subscribe((event) => postMessage({ kind: 'event', event }), { thread: THREAD });

// A stand-in for a tool call: reports progress, can be cancelled, resolves with a result.
function research(goal, steps) {
  return async (ctx) => {
    for (let step = 1; step <= steps; step++) {
      await ctx.sleep(10); // rejects with AbortError once the task is cancelled
      ctx.emit('progress', { step, of: steps });
    }
    return { goal, answer: `${goal}: ${steps} sources read` };
  };
}

const handlers = {
  spawn: ({ goal, steps = 3 }) => manager.spawn({ thread: THREAD, type: 'tool_call', description: goal }, research(goal, steps)),
  wait: ({ id }) => manager.wait(id),
  cancel: ({ id }) => manager.cancel(id),
  list: () => manager.list(THREAD),
  // Resolves once everything before it is in IndexedDB (e.g. before the page closes the worker).
  flush: () => manager.flush(),
};

self.onmessage = async ({ data }) => {
  const { call, op, args } = data;
  try {
    postMessage({ kind: 'reply', call, value: await handlers[op](args ?? {}) });
  } catch (e) {
    postMessage({ kind: 'reply', call, error: { name: e?.name, message: e?.message } });
  }
};

postMessage({
  kind: 'ready',
  resumed,
  // What the package found around it: a worker scope, no DOM.
  scope: { window: typeof window, document: typeof document, indexedDB: typeof indexedDB },
});
