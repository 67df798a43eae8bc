// Combines the bench results (bench/run.sh) into one summary.json: each figure, its peer, the
// ratio, and the issue-6 target where there is one; prints the table.
//   node bench/summarize.mjs --results build/bench/results [--mode full|smoke]
// Inputs (in --results): native.json (Google Benchmark), memory.json (memory_probe),
// driver.json (bench_driver native and wasm, alternated rounds), js.json (bench/js/run.mjs; optional).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const RESULTS = path.resolve(opt('results', path.join(repoRoot, 'build/bench/results')));
const MODE = opt('mode', 'full');
const readJson = (f) => {
  const p = path.join(RESULTS, f);
  return existsSync(p) ? JSON.parse(readFileSync(p, 'utf8')) : null;
};
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const r3 = (x) => (x == null || !Number.isFinite(x) ? null : Number(x.toPrecision(4)));

// ---- Google Benchmark: ns per item (median of the repetitions, or the single run in smoke mode) ----
const native = readJson('native.json');
if (!native) throw new Error(`no native.json in ${RESULTS}`);
const gb = new Map(); // "group/peer/arg" -> entry (median aggregate preferred)
// Google Benchmark appends "/iterations:N", "/repeats:N", "/real_time" to the registered name.
const baseName = (n) => n.split('/').filter((p) => !p.includes(':') && p !== 'real_time' && p !== 'manual_time').join('/');
for (const b of native.benchmarks) {
  const name = baseName(b.run_name ?? b.name);
  if (b.run_type === 'aggregate') {
    if (b.aggregate_name === 'median') gb.set(name, b);
  } else if (!gb.has(name) || gb.get(name).run_type !== 'aggregate') {
    gb.set(name, b);
  }
}
const gbCv = new Map(); // coefficient of variation of the CPU time over the repetitions
for (const b of native.benchmarks)
  if (b.run_type === 'aggregate' && b.aggregate_name === 'cv') gbCv.set(baseName(b.run_name ?? b.name), b.cpu_time);
const cvOf = (name) => (gbCv.has(name) ? `${(gbCv.get(name) * 100).toFixed(0)}%` : 'n/a');
const cvNote = (name, peer) => `cv over repetitions: ${cvOf(name)}${peer ? ` (peer ${cvOf(peer)})` : ''}`;
const nsPerItem = (name) => {
  const b = gb.get(name);
  return b && b.items_per_second ? 1e9 / b.items_per_second : null;
};
const counter = (name, key) => gb.get(name)?.[key] ?? null;
const sizesOf = (prefix) =>
  [...gb.keys()]
    .filter((k) => k.startsWith(`${prefix}/`))
    .map((k) => Number(k.slice(prefix.length + 1)))
    .filter(Number.isFinite)
    .sort((a, b) => a - b);
const firstArg = (prefix) => sizesOf(prefix)[0];

const figures = [];
// ratio = value / peer_value; `target` is the largest ratio the issue accepts (null: informational).
function fig(group, name, value, unit, peer, peerValue, target, note) {
  const ratio = value != null && peerValue ? value / peerValue : null;
  figures.push({
    group,
    figure: name,
    value: r3(value),
    unit,
    peer: peer ?? null,
    peer_value: r3(peerValue),
    ratio: r3(ratio),
    target: target ?? null,
    meets_target: target == null || ratio == null ? null : ratio <= target,
    ...(note ? { note } : {}),
  });
}

// spawn -> complete, per size
for (const n of sizesOf('spawn_complete/bgtasks')) {
  const b = nsPerItem(`spawn_complete/bgtasks/${n}`);
  const asio = nsPerItem(`spawn_complete/asio/${n}`);
  const floor = nsPerItem(`spawn_complete/bare_floor/${n}`);
  const host = nsPerItem(`spawn_complete/bgtasks_host/${n}`);
  const td = nsPerItem(`spawn_complete/bgtasks_teardown/${n}`);
  fig('spawn_complete', `spawn->complete ${n} tasks: bgtasks vs asio co_spawn`, b, 'ns/task', 'asio co_spawn (io_context, 1 thread)', asio, 0.5,
    cvNote(`spawn_complete/bgtasks/${n}`, `spawn_complete/asio/${n}`));
  fig('spawn_complete', `spawn->complete ${n} tasks: bgtasks vs bare floor`, b, 'ns/task', 'bare floor (bench/native/bare_floor.hpp)', floor, 5,
    cvNote(`spawn_complete/bgtasks/${n}`, `spawn_complete/bare_floor/${n}`));
  fig('spawn_complete', `spawn_host+complete ${n} tasks: bgtasks host vs asio`, host, 'ns/task', 'asio co_spawn', asio, null);
  fig('spawn_complete', `spawn_host+complete ${n} tasks: bgtasks host vs bare floor`, host, 'ns/task', 'bare floor', floor, null);
  fig('spawn_complete', `spawn->complete ${n} tasks incl. manager teardown vs asio`, td, 'ns/task', 'asio co_spawn', asio, null,
    'records and handles freed inside the timed region');
}

// emit -> drain
{
  const n = firstArg('emit_drain/bgtasks');
  if (n != null) {
    const name = `emit_drain/bgtasks/${n}`;
    fig('emit_drain', `emit->drain_json ${n} events`, nsPerItem(name), 'ns/event', 'nlohmann: build the same event objects + one dump', nsPerItem(`emit_drain/json_floor/${n}`), null,
      `emit ${r3(counter(name, 'emit_ns_per_event'))} ns/event + drain ${r3(counter(name, 'drain_ns_per_event'))} ns/event; ${r3(counter(name, 'json_bytes_per_event'))} JSON bytes/event`);
  }
}
// cancel_tree
for (const [prefix, label] of [['cancel_tree/bgtasks', 'cancel_tree'], ['cancel_tree_settle/bgtasks', 'cancel_tree + run_until_idle (bodies end)']]) {
  const n = firstArg(prefix);
  if (n != null) fig('cancel_tree', `${label}, ${n}-node tree`, nsPerItem(`${prefix}/${n}`), 'ns/node', null, null, null);
}
// snapshot / restore
{
  const n = firstArg('snapshot_json/bgtasks');
  if (n != null) {
    fig('persistence', `snapshot_json ${n} tasks`, nsPerItem(`snapshot_json/bgtasks/${n}`), 'ns/task', 'nlohmann dump of the same DOM', nsPerItem(`snapshot_json/json_floor_dump/${n}`), null,
      `${r3(counter(`snapshot_json/bgtasks/${n}`, 'json_bytes_per_task'))} JSON bytes/task`);
    fig('persistence', `restore_json ${n} tasks`, nsPerItem(`restore_json/bgtasks/${n}`), 'ns/task', 'nlohmann parse of the same text', nsPerItem(`restore_json/json_floor_parse/${n}`), null);
  }
}
// scaling
{
  const lives = sizesOf('scaling/bgtasks');
  for (const l of lives)
    fig('scaling', `spawn->complete with ${l} live idle tasks`, nsPerItem(`scaling/bgtasks/${l}`), 'ns/task', `same, ${lives[0]} live`, nsPerItem(`scaling/bgtasks/${lives[0]}`), null,
      cvNote(`scaling/bgtasks/${l}`));
  if (lives.length > 1) {
    const hi = lives[lives.length - 1];
    fig('scaling', `scaling: ${hi} vs ${lives[0]} live tasks`, nsPerItem(`scaling/bgtasks/${hi}`), 'ns/task', `${lives[0]} live tasks`, nsPerItem(`scaling/bgtasks/${lives[0]}`), 1.3);
  }
}

// ---- memory ----
const memory = readJson('memory.json');
if (memory) {
  const f = memory.figures;
  const idle = f.bgtasks_idle_task;
  figures.push({
    group: 'memory', figure: `bytes per live idle task (coroutine body), ${memory.tasks} tasks`, value: r3(idle.live_bytes_per_task), unit: 'B/task',
    peer: 'target 512 B', peer_value: 512, ratio: r3(idle.live_bytes_per_task / 512), target: 1, meets_target: idle.live_bytes_per_task <= 512,
    note: `${idle.live_blocks_per_task} blocks/task; malloc footprint est. ${r3(idle.live_heap_bytes_per_task)} B; asio idle task ${r3(f.asio_idle_task?.live_bytes_per_task)} B, bare floor ${r3(f.bare_floor_idle_task?.live_bytes_per_task)} B`,
  });
  fig('memory', 'bytes per live idle task vs asio idle task (co_spawn on a steady_timer)', idle.live_bytes_per_task, 'B/task', 'asio', f.asio_idle_task?.live_bytes_per_task, null);
  fig('memory', 'bytes per live idle task vs bare floor frame', idle.live_bytes_per_task, 'B/task', 'bare floor', f.bare_floor_idle_task?.live_bytes_per_task, null);
  fig('memory', 'bytes per live idle host task (spawn_host)', f.bgtasks_host_idle_task.live_bytes_per_task, 'B/task', 'target 512 B', 512, 1);
  fig('memory', 'allocations per spawn->complete vs asio', f.bgtasks_spawn_complete.allocs_per_task, 'allocs/task', 'asio', f.asio_spawn_complete?.allocs_per_task, null,
    `bare floor ${f.bare_floor_spawn_complete?.allocs_per_task}; bytes allocated/task: bgtasks ${r3(f.bgtasks_spawn_complete.bytes_allocated_per_task)}, asio ${r3(f.asio_spawn_complete?.bytes_allocated_per_task)}, floor ${r3(f.bare_floor_spawn_complete?.bytes_allocated_per_task)}`);
  fig('memory', 'bytes retained per finished task (record kept until forget/retention)', f.bgtasks_spawn_complete.live_bytes_per_task, 'B/task', null, null, null);
}

// ---- wasm vs native, same driver ----
const driver = readJson('driver.json');
if (driver) {
  const nat = driver.filter((d) => d.platform === 'native');
  const wasm = driver.filter((d) => d.platform === 'wasm');
  const keys = [
    ['spawn_complete_ns_per_task', 'spawn->complete', 'ns/task', 1.5],
    ['host_spawn_complete_ns_per_task', 'spawn_host+complete', 'ns/task', 1.5],
    ['emit_drain_ns_per_event', 'emit->drain_json', 'ns/event', 1.5],
    ['bare_floor_ns_per_task', 'bare floor spawn->complete', 'ns/task', null],
  ];
  for (const [k, label, unit, target] of keys) {
    if (!nat.length || !wasm.length) break;
    const med = (xs, key) => median(xs.map((d) => d[key]).filter((x) => x != null));
    const wallRatio = med(wasm, `${k}_wall`) / med(nat, `${k}_wall`);
    const minRatio = med(wasm, `${k}_min`) / med(nat, `${k}_min`);
    fig('wasm_vs_native', `driver ${label} (${nat[0].tasks} tasks / ${nat[0].events} events): wasm vs native`, med(wasm, k), unit, 'native (g++ -O3)', med(nat, k), target,
      `CPU time, median of ${wasm.length} alternated rounds x ${nat[0].reps} reps; wall-time ratio ${r3(wallRatio)}, ratio of minima ${r3(minRatio)}; wasm: em++ 3.1.6 -O3 -fno-exceptions, Node ${process.version}`);
  }
}

// ---- instruction counts (callgrind on the native driver): repeatable ratios on a noisy machine ----
const icount = readJson('icount.json');
if (icount && existsSync(path.join(RESULTS, 'icount.txt'))) {
  const per = {}; // work function -> instructions per task/event (max over the annotate lines of that function)
  for (const line of readFileSync(path.join(RESULTS, 'icount.txt'), 'utf8').split('\n')) {
    const m = line.match(/^\s*([\d,]+)\s.*?(work_[a-z_]+)/);
    if (!m) continue;
    const v = Number(m[1].replace(/,/g, '')) / (icount.runs * icount.n);
    per[m[2]] = Math.max(per[m[2]] ?? 0, v);
  }
  const n = icount.n;
  const note = `callgrind Ir, inclusive, ${n} tasks x ${icount.runs} runs`;
  fig('instructions', `spawn->complete ${n} tasks: bgtasks vs asio (instructions)`, per.work_spawn_complete, 'instr/task', 'asio co_spawn', per.work_asio, 0.5, note);
  fig('instructions', `spawn->complete ${n} tasks: bgtasks vs bare floor (instructions)`, per.work_spawn_complete, 'instr/task', 'bare floor', per.work_bare_floor, 5, note);
  fig('instructions', `spawn_host+complete ${n} tasks: bgtasks host vs asio (instructions)`, per.work_host_spawn_complete, 'instr/task', 'asio co_spawn', per.work_asio, null, note);
  fig('instructions', `emit->drain_json ${n} events (instructions)`, per.work_emit_drain, 'instr/event', null, null, null, note);
}

// ---- JS bench (bench/js/run.mjs), merged as is; its ratios listed too ----
const js = readJson('js.json');
if (js) {
  for (const w of Object.values(js.workload ?? {})) {
    const u = w.us_per_task ?? {};
    fig('js', `JS workload ${w.tasks} tasks x ${w.emits_per_task} emits: bgtasks vs plain-JS floor`, u.bgtasks, 'us/task', 'plain-JS floor', u.floor, 1.5);
    fig('js', `JS workload ${w.tasks} tasks: bgtasks vs p-queue+EventEmitter`, u.bgtasks, 'us/task', 'p-queue', u['p-queue'], 1, 'target: strictly faster');
    fig('js', `JS workload ${w.tasks} tasks: bgtasks vs Effection 4`, u.bgtasks, 'us/task', 'effection', u.effection, 1, 'target: strictly faster');
    if (u['floor-values'] !== undefined) {
      fig('js', `JS workload ${w.tasks} tasks: plain-JS floor with bgtasks' value copies vs floor`, u['floor-values'], 'us/task', 'plain-JS floor', u.floor, null,
        'what copying payloads and results costs plain JS (bench/js/README.md)');
      fig('js', `JS workload ${w.tasks} tasks: bgtasks vs plain-JS floor with value copies`, u.bgtasks, 'us/task', 'plain-JS floor with value copies', u['floor-values'], null);
    }
  }
  if (js.drain) fig('js', `JS drain ${js.drain.events} events vs JSON.parse`, js.drain.drain_ms, 'ms', 'JSON.parse of the same text', js.drain.json_parse_ms, 1.5);
  if (js.snapshot) {
    const s = js.snapshot;
    fig('js', `JS snapshot+restore ${s.tasks} tasks vs JSON.stringify+parse`, s.snapshot_ms + s.restore_ms, 'ms', 'JSON.stringify+JSON.parse', s.json_stringify_ms + s.json_parse_ms, 2);
  }
}

// ---- write + print ----
let commit = null;
let dirty = null;
try {
  commit = execFileSync('git', ['-C', repoRoot, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  dirty = execFileSync('git', ['-C', repoRoot, 'status', '--porcelain', '--', 'core', 'bench', 'wasm', 'js/src'], { encoding: 'utf8' }).trim() !== '';
} catch {
  // Not a git checkout (an unpacked copy): the summary records commit and dirty as null.
}
const summary = {
  bench: 'bgtasks',
  mode: MODE,
  date: new Date().toISOString(),
  commit,
  worktree_dirty: dirty,
  machine: {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    mem_gb: Number((os.totalmem() / 2 ** 30).toFixed(1)),
    load_avg_at_gbench_start: native.context?.load_avg ?? null,
    load_avg_at_summary: os.loadavg().map((x) => Number(x.toFixed(2))),
  },
  how: {
    native: 'bench/run.sh: g++ -O3 (CMake Release), Google Benchmark 1.7.1, CPU time, 5 repetitions randomly interleaved, medians; asio 1.22 standalone; setup/teardown outside the timed region unless named',
    wasm: 'same bench/native/driver.cpp built with em++ 3.1.6 -O3 -fno-exceptions -sENVIRONMENT=node, run by Node alternately with the native build; process CPU time (steady_clock wall time alongside)',
    memory: 'bench/native/memory_probe.cpp: global operator new/delete counting requested bytes; per-task deltas over N tasks',
  },
  figures,
  raw: { memory, driver, icount: icount ?? null, gbench_context: native.context ?? null },
  js: js ?? null,
};
writeFileSync(path.join(RESULTS, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);

const fmt = (x) => (x == null ? '-' : String(x));
const rows = figures.map((f) => [
  f.figure,
  `${fmt(f.value)} ${f.unit}`,
  f.peer_value == null ? '-' : `${fmt(f.peer_value)}`,
  f.ratio == null ? '-' : `${f.ratio}x`,
  f.target == null ? '' : `<= ${f.target}x`,
  f.meets_target == null ? '' : f.meets_target ? 'ok' : 'MISS',
]);
const head = ['figure', 'bgtasks', 'peer', 'ratio', 'target', ''];
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
console.log(`bgtasks bench summary (${MODE}) — ${summary.machine.cpu} x${summary.machine.cores}, commit ${commit}${dirty ? ' (dirty)' : ''}, load ${summary.machine.load_avg_at_gbench_start ?? '?'}`);
console.log(line(head));
console.log(widths.map((w) => '-'.repeat(w)).join('  '));
for (const r of rows) console.log(line(r));
console.log(`results: ${path.relative(process.cwd(), path.join(RESULTS, 'summary.json'))}`);

// The same table as Markdown (summary.md), for bench/README.md and the closing note.
const md = [
  `Run: ${summary.date}, ${MODE} mode, commit ${commit}${dirty ? ' (dirty)' : ''}, ${summary.machine.cpu} x${summary.machine.cores}, load average at start ${fmt(summary.machine.load_avg_at_gbench_start?.map((x) => x.toFixed(2)).join(' '))}.`,
  '',
  '| figure | bgtasks | peer | peer value | ratio | target | |',
  '|---|---|---|---|---|---|---|',
  ...figures.map((f) =>
    `| ${f.figure} | ${fmt(f.value)} ${f.unit} | ${f.peer ?? '-'} | ${fmt(f.peer_value)} | ${f.ratio == null ? '-' : `${f.ratio}x`} | ${f.target == null ? '' : `≤ ${f.target}x`} | ${f.meets_target == null ? '' : f.meets_target ? 'met' : 'missed'} |`),
  '',
];
writeFileSync(path.join(RESULTS, 'summary.md'), md.join('\n'));
