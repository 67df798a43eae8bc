// Self time by function from a .cpuprofile: JS functions (file:line), Embind glue, wasm functions
// (C++ names from --profiling-funcs), GC and the rest; top N and a grouping by where the time goes.
import { readFileSync } from 'node:fs';

const file = process.argv[2];
const top = Number(process.argv[3] ?? 40);
const prof = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const self = new Map();
const dt = prof.timeDeltas;
for (let i = 0; i < prof.samples.length; i++) {
  const node = byId.get(prof.samples[i]);
  const cf = node.callFrame;
  const file = cf.url ? cf.url.replace(/^.*\/(js\/src|bench\/js|node_modules|build\/bench-js)\//, '$1/') : '';
  const name = `${cf.functionName || '(anonymous)'}${file ? ` ${file}:${cf.lineNumber + 1}` : ''}`;
  self.set(name, (self.get(name) ?? 0) + (dt[i] ?? 0));
}
const total = [...self.values()].reduce((a, b) => a + b, 0);
const groups = new Map();
const group = (name) => {
  if (name.startsWith('(garbage collector)')) return 'GC';
  if (name.startsWith('(idle)') || name.startsWith('(program)')) return 'idle/program';
  if (/wasm|\$/.test(name) && !name.includes('.mjs') && !name.includes('.js')) return 'wasm (core + binding C++)';
  if (name.includes('bgtasks.mjs')) return 'Embind glue (bgtasks.mjs)';
  if (name.includes('js/src/')) return 'js/src (manager, context, errors)';
  if (name.includes('bench/js/')) return 'bench driver / bodies';
  return 'V8 builtins / runtime (JSON, TextDecoder, promises, ...)';
};
for (const [name, us] of self) groups.set(group(name), (groups.get(group(name)) ?? 0) + us);
console.log(`total sampled ${(total / 1000).toFixed(0)} ms`);
for (const [g, us] of [...groups].sort((a, b) => b[1] - a[1])) console.log(`${((100 * us) / total).toFixed(1).padStart(5)}%  ${g}`);
console.log('--- top self time');
for (const [name, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top))
  console.log(`${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(1).padStart(7)} ms  ${name.slice(0, 150)}`);

// Inclusive time of the binding's methods (Embind's generated `Core$name` wrappers) and of the
// manager's own steps: where each crossing's cost lands, wasm and marshalling included.
const parent = new Map();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const incl = new Map();
const pick = (fn) => /^(Core|ProtoCore)\$/.test(fn) || /^#|^_emit$|^toJson$|^checkString$|^checkOptions$|^createAbortSignal$|^drain$|^spawn$|^TaskContext$|^decode$/.test(fn);
for (let i = 0; i < prof.samples.length; i++) {
  const seen = new Set();
  for (let id = prof.samples[i]; id !== undefined; id = parent.get(id)) {
    const fn = byId.get(id).callFrame.functionName;
    if (pick(fn) && !seen.has(fn)) {
      seen.add(fn);
      incl.set(fn, (incl.get(fn) ?? 0) + (dt[i] ?? 0));
    }
  }
}
console.log('--- inclusive time (binding methods and manager steps)');
for (const [name, us] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, 30))
  console.log(`${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(1).padStart(7)} ms  ${name}`);
