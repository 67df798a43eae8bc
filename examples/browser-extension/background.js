// The extension's service worker runs the agent's tasks: a bgtasks manager persisting its thread
// to IndexedDB, so work survives the worker being stopped when idle or the browser restarting
// (what was running then comes back `failed`, orphaned; finished tasks keep their results).
//
// The package is vendored into the extension (vendor.mjs copies it): an extension has no import
// map, and bgtasks' browser entry imports only its own files by relative paths. Under the
// extension's CSP (script-src 'self' 'wasm-unsafe-eval') nothing may eval, and nothing does.
import { createTaskManager, IndexedDbStore } from './vendor/bgtasks/src/browser.js';

const THREAD = 'agent';

// A service worker may not use top-level await; its listeners must be added synchronously.
const started = (async () => {
  const manager = await createTaskManager({ store: new IndexedDbStore('bgtasks-extension-example') });
  const resumed = await manager.resume(THREAD);
  return { manager, resumed };
})();

// A stand-in for a tool call: progress events, cancellable, resolves with a result.
function fetchPage(url, steps) {
  return async (ctx) => {
    for (let step = 1; step <= steps; step++) {
      await ctx.sleep(10);
      ctx.emit('progress', { step, of: steps });
    }
    return { url, words: steps * 100 };
  };
}

const agent = {
  async status() {
    const { manager, resumed } = await started;
    return { resumed, tasks: manager.list(THREAD) };
  },
  async spawn(url, steps = 3) {
    const { manager } = await started;
    return manager.spawn({ thread: THREAD, type: 'tool_call', description: `fetch ${url}` }, fetchPage(url, steps));
  },
  async wait(id) {
    const { manager } = await started;
    return manager.wait(id);
  },
  async cancel(id) {
    const { manager } = await started;
    return manager.cancel(id);
  },
  // Resolves once every change so far is in IndexedDB.
  async flush() {
    const { manager } = await started;
    await manager.flush();
  },
};
// For the popup (messages below) and for a debugger or test evaluating in the worker.
globalThis.agent = agent;

chrome.runtime.onMessage.addListener(({ op, args = [] }, _sender, reply) => {
  if (typeof agent[op] !== 'function') return false;
  agent[op](...args).then(
    (value) => reply({ value }),
    (e) => reply({ error: `${e?.name}: ${e?.message}` }),
  );
  return true; // the reply comes later
});
