// The page's side: starts the agent worker, sends it requests, shows the events it streams back.
// No inline script and no eval: the page works under `script-src 'self' 'wasm-unsafe-eval'`.
const log = document.getElementById('log');
const status = document.getElementById('status');
const show = (text) => {
  log.textContent += `${text}\n`;
};

let worker;
let calls = 0;
const pending = new Map(); // call number -> {resolve, reject}
const events = [];

/** Starts (or restarts) the worker; resolves with its 'ready' message. */
function start() {
  worker?.terminate();
  for (const p of pending.values()) p.reject(new Error('worker restarted'));
  pending.clear();
  worker = new Worker(new URL('./agent-worker.js', import.meta.url), { type: 'module' });
  return new Promise((resolve, reject) => {
    worker.onerror = (e) => reject(new Error(`worker failed to start: ${e.message}`));
    worker.onmessage = ({ data }) => {
      if (data.kind === 'ready') {
        status.textContent = `worker ready (${data.resumed.added} tasks resumed from IndexedDB)`;
        resolve(data);
      } else if (data.kind === 'event') {
        events.push(data.event);
        const { kind, task_id: id, event_type: type, payload, result, error } = data.event;
        show(`${id} ${kind}${type ? ` ${type}` : ''} ${JSON.stringify(payload ?? result ?? error ?? '')}`);
      } else if (data.kind === 'reply') {
        const p = pending.get(data.call);
        pending.delete(data.call);
        if (data.error) p?.reject(Object.assign(new Error(data.error.message), { name: data.error.name }));
        else p?.resolve(data.value);
      }
    };
  });
}

/** One request to the worker: resolves with its handler's value. */
function call(op, args) {
  const id = ++calls;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    worker.postMessage({ call: id, op, args });
  });
}

document.getElementById('run').addEventListener('click', async () => {
  const goal = document.getElementById('goal').value || 'look something up';
  const id = await call('spawn', { goal });
  show(`spawned ${id}`);
});

// For scripts driving the page (the example's test).
window.example = { start, call, events };
window.exampleReady = start();
