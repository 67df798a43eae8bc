// The popup asks the service worker (background.js) by message; it holds no state of its own.
const send = (op, ...args) =>
  chrome.runtime.sendMessage({ op, args }).then((r) => {
    if (r?.error) throw new Error(r.error);
    return r?.value;
  });

async function refresh() {
  const { tasks } = await send('status');
  document.getElementById('tasks').textContent = tasks.map((t) => `${t.task_id} ${t.status} ${t.description}`).join('\n') || 'no tasks yet';
}

document.getElementById('run').addEventListener('click', async () => {
  const id = await send('spawn', document.getElementById('url').value);
  await refresh();
  await send('wait', id);
  await refresh();
});

refresh();
