// The demo's task bodies: what an agent runtime's tools would start in the background.
// Every wait goes through ctx.sleep, so the same bodies run on the system clock (real time) and
// on the manual clock (time moves only when the page steps it). Durations are fixed, never
// random: the same steps give the same events.

/** Shell-like job: one output line now, then one every `stepMs`, as `stdout` events. */
export const SHELL_JOBS = [
  {
    cmd: 'npm test',
    lines: [
      '$ npm test',
      '> app@1.4.0 test',
      '> node --test test/',
      '▶ parser',
      '  ✔ parses an empty document (0.4 ms)',
      '  ✔ keeps comments (1.1 ms)',
      '▶ scheduler',
      '  ✔ runs due jobs in order (2.3 ms)',
      '  ✔ skips cancelled jobs (0.8 ms)',
      'ℹ tests 4  pass 4  fail 0',
      'ℹ duration_ms 2712',
      'exit code 0',
    ],
  },
  {
    cmd: 'cargo build --release',
    lines: [
      '$ cargo build --release',
      '   Compiling libc v0.2.155',
      '   Compiling serde v1.0.203',
      '   Compiling tokio v1.38.0',
      '   Compiling agent-core v0.3.1',
      '   Compiling agent-cli v0.3.1',
      '    Finished `release` profile [optimized] in 2.9s',
      'exit code 0',
    ],
  },
  {
    cmd: 'git log --oneline -5',
    lines: [
      '$ git log --oneline -5',
      'af4593e Full test pipeline',
      '259a8d7 Retention by completion order',
      '7104bc3 Codec: null owner_thread_id refused',
      '210fbeb wasm binding and the npm package',
      '4f353d3 CI: one test command',
      'exit code 0',
    ],
  },
];

export const SHELL_STEP_MS = 250;

export function shellBody(job, stepMs = SHELL_STEP_MS) {
  return async (ctx) => {
    for (let i = 0; i < job.lines.length; i++) {
      if (i > 0) await ctx.sleep(stepMs);
      ctx.emit('stdout', { line: job.lines[i], n: i + 1, of: job.lines.length });
    }
    return { cmd: job.cmd, exit_code: 0, lines: job.lines.length };
  };
}

/** Download: 20 `progress` events, one every 150 ms (3 s in all). */
export const DOWNLOADS = [
  { file: 'llama-3.2-1b-q4.gguf', bytes: 807_694_464 },
  { file: 'dataset-2024-q3.parquet', bytes: 52_428_800 },
  { file: 'node-v20.20.2-linux-x64.tar.xz', bytes: 29_360_128 },
];
export const DOWNLOAD_STEPS = 20;
export const DOWNLOAD_STEP_MS = 150;

export function downloadBody(dl) {
  return async (ctx) => {
    ctx.emit('progress', { received: 0, total: dl.bytes, pct: 0 });
    for (let i = 1; i <= DOWNLOAD_STEPS; i++) {
      await ctx.sleep(DOWNLOAD_STEP_MS);
      const received = Math.round((dl.bytes * i) / DOWNLOAD_STEPS);
      ctx.emit('progress', { received, total: dl.bytes, pct: Math.round((100 * i) / DOWNLOAD_STEPS) });
    }
    return { file: dl.file, bytes: dl.bytes, path: `/downloads/${dl.file}` };
  };
}

/** A flaky API call: two retries, then it fails (a `failed` task with its error message). */
export function flakyBody(endpoint) {
  return async (ctx) => {
    for (let attempt = 1; attempt <= 3; attempt++) {
      ctx.emit('status', { text: `attempt ${attempt}: GET ${endpoint}` });
      await ctx.sleep(500);
    }
    throw new Error(`HTTP 503 Service Unavailable from ${endpoint} (after 3 attempts)`);
  };
}

/**
 * Deadline of every API call (spawn({ timeoutMs })): a call still running then ends failed with
 * "task timed out after 2000 ms" and its ctx.signal aborts with a TimeoutError. The flaky call
 * gives up by itself first (after 1.5 s); the hung one never answers, so the deadline ends it.
 */
export const API_TIMEOUT_MS = 2000;

/** An API call whose server never answers: it waits until the task's signal aborts. */
export function hungBody(endpoint) {
  return async (ctx) => {
    ctx.emit('status', { text: `GET ${endpoint}: waiting for a response…` });
    for (let waited = 0; !ctx.signal.aborted; waited += 1000) {
      await ctx.sleep(1000);
      ctx.emit('status', { text: `GET ${endpoint}: no response after ${waited + 1000} ms` });
    }
    throw ctx.signal.reason;
  };
}

/** A web search: `steps` progress events, `stepMs` apart, then a result. */
export function searchBody(query, steps = 5, stepMs = 300) {
  return async (ctx) => {
    for (let i = 1; i <= steps; i++) {
      await ctx.sleep(stepMs);
      ctx.emit('progress', { pct: Math.round((100 * i) / steps) });
    }
    return { query, hits: 3 + (query.length % 5), top: `https://example.org/search?q=${encodeURIComponent(query)}` };
  };
}

/** Reads a page (a child of the research agent, like the searches). */
export function fetchPageBody(url, steps = 4, stepMs = 400) {
  return async (ctx) => {
    for (let i = 1; i <= steps; i++) {
      await ctx.sleep(stepMs);
      ctx.emit('progress', { pct: Math.round((100 * i) / steps) });
    }
    return { url, words: 1800 + url.length * 7 };
  };
}

export const FINISH_WORDS = /\b(finish|done|wrap up|stop)\b/i;

/**
 * A research sub-agent (spawnAgent). It plans, spawns its own child tasks (two searches and a page
 * read, with ctx.spawn), collects their results, and reacts to messages in its inbox: any message
 * starts a follow-up search for its content; a message saying "finish" makes it write its report
 * and complete. Cancelling the agent alone leaves its children running; cancel-tree stops them all.
 */
export function researchAgentBody(topic, thread, mgr, onChild = () => {}) {
  return async (ctx) => {
    ctx.emit('status', { phase: 'planning', text: `Planning research on “${topic}”` });
    await ctx.sleep(400);

    const pending = new Map(); // child id → promise of its end
    const findings = [];
    const startChild = (type, description, body) => {
      const id = ctx.spawn({ thread, type, description }, body);
      onChild(id, type);
      pending.set(id, mgr.wait(id).then((summary) => ({ kind: 'child', id, summary })));
      return id;
    };
    const children = [
      startChild('web_search', `search: ${topic} overview`, searchBody(`${topic} overview`, 5, 300)),
      startChild('web_search', `search: ${topic} benchmarks`, searchBody(`${topic} benchmarks`, 6, 300)),
      startChild('fetch_page', `read: docs for ${topic}`, fetchPageBody(`https://docs.example.org/${encodeURIComponent(topic)}`)),
    ];
    ctx.emit('status', { phase: 'searching', text: `Spawned ${children.length} child tasks`, children });

    // One pending recv at a time, raced against the children's ends.
    const nextMessage = () => ctx.inbox.recv().then((msg) => ({ kind: 'message', msg }));
    let message = nextMessage();
    let waitingSaid = false;
    for (;;) {
      const event = await Promise.race([message, ...pending.values()]);
      if (event.kind === 'child') {
        pending.delete(event.id);
        const s = event.summary;
        if (s && s.status === 'completed') findings.push(s.result);
        ctx.emit('status', {
          phase: 'collecting',
          text: `${event.id} ended ${s ? s.status : 'unknown'} — ${findings.length} finding${findings.length === 1 ? '' : 's'} so far`,
        });
        if (pending.size === 0 && !waitingSaid) {
          waitingSaid = true;
          ctx.emit('status', { phase: 'waiting', text: 'Waiting for instructions — send a message, or “finish” to write the report' });
        }
        continue;
      }
      const msg = event.msg;
      if (msg === null) return { topic, findings, stopped: true }; // cancelled: the task ends cancelled
      const { from, content } = msg.payload;
      ctx.emit('message', { from, content });
      if (FINISH_WORDS.test(content)) {
        ctx.emit('status', { phase: 'reporting', text: `Writing the report (${findings.length} findings)` });
        await ctx.sleep(300);
        return { topic, findings: findings.length, report: `${topic}: ${findings.length} sources reviewed`, requested_by: from };
      }
      const id = startChild('web_search', `search: ${content}`, searchBody(content, 4, 300));
      waitingSaid = false;
      ctx.emit('status', { phase: 'searching', text: `Following up on “${content}” with ${id}`, children: [id] });
      message = nextMessage();
    }
  };
}

export const RESEARCH_TOPICS = ['vector databases', 'WebAssembly runtimes', 'LLM agent frameworks', 'edge caching'];
export const FLAKY_ENDPOINTS = ['api.weather.example/v2/forecast', 'api.billing.example/invoices', 'api.crm.example/contacts'];
export const HUNG_ENDPOINTS = ['api.search.example/v1/reindex', 'api.ledger.example/export'];
