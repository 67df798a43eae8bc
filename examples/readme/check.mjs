#!/usr/bin/env node
// Keeps the README's code honest:
//   1. extracts the ```js and ```cpp blocks from README.md and fails if either differs from the
//      text embedded (between marker lines) in readme-js.mjs / readme-cpp.cpp;
//   2. runs readme-js.mjs (Node, with the `bgtasks` package the npm workspace links: `npm ci` at
//      the top of the repository first);
//   3. builds readme-cpp.cpp — the README's ```cpp block, a whole program, and nothing else —
//      against an installed bgtasks, as examples/native does (find_package(bgtasks) +
//      bgtasks::core after `cmake --install`), with the default C++ compiler and with clang++ when
//      there is one, and runs each build.
// Exits non-zero on any failure.
//
//   node examples/readme/check.mjs            everything
//   node examples/readme/check.mjs --no-cpp   steps 1 and 2 only (no C++ build)
// BGTASKS_PREFIX=<dir>: use the bgtasks installed there (e.g. by examples/native/test.sh) when it
// holds lib/cmake/bgtasks/bgtasksConfig.cmake; otherwise the core is built and installed into a
// temp dir. BGTASKS_BUILD_TYPE: the core's build type (default RelWithDebInfo).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..', '..');
const skipCpp = process.argv.includes('--no-cpp');
const RUN_TIMEOUT_MS = 15_000; // each run takes about a second; this only stops a hang

let failed = false;
const ok = (msg) => console.log(`ok   ${msg}`);
const fail = (msg) => {
  console.error(`FAIL ${msg}`);
  failed = true;
};

// ---- 1. the README's blocks vs the embedded copies -------------------------------------------
/** Fenced code blocks of a Markdown text: [{lang, text, line}] (text ends with a newline). */
function codeBlocks(markdown) {
  const blocks = [];
  let open = null;
  markdown.split('\n').forEach((line, i) => {
    if (open === null) {
      const m = /^```(\S*)\s*$/.exec(line);
      if (m) open = { lang: m[1], lines: [], line: i + 1 };
    } else if (/^```\s*$/.test(line)) {
      blocks.push({ lang: open.lang, text: open.lines.map((l) => `${l}\n`).join(''), line: open.line });
      open = null;
    } else {
      open.lines.push(line);
    }
  });
  if (open) throw new Error(`README.md: the code block opened at line ${open.line} is never closed`);
  return blocks;
}

/** The text between `// ---- README ```<lang> block begin ----` and `... end ----` lines. */
function embedded(file, lang, { onlyBlock = false } = {}) {
  const text = readFileSync(join(here, file), 'utf8');
  const begin = `// ---- README \`\`\`${lang} block begin ----\n`;
  const end = `// ---- README \`\`\`${lang} block end ----\n`;
  const b = text.indexOf(begin);
  const e = text.indexOf(end, b + begin.length);
  if (b < 0 || e < 0) throw new Error(`${file}: marker lines for the ${lang} block are missing`);
  if (onlyBlock) {
    // The README's block must be the whole program: around it, only comments and blank lines.
    const outside = (text.slice(0, b) + text.slice(e + end.length)).split('\n');
    const code = outside.find((l) => l.trim() !== '' && !l.trim().startsWith('//'));
    if (code !== undefined) throw new Error(`${file}: code outside the README block: ${JSON.stringify(code)}`);
  }
  return text.slice(b + begin.length, e);
}

function firstDifference(want, got) {
  const a = want.split('\n');
  const b = got.split('\n');
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) return `block line ${i + 1}:\n  README: ${JSON.stringify(a[i])}\n  file:   ${JSON.stringify(b[i])}`;
  }
  return '(no line differs)';
}

const blocks = codeBlocks(readFileSync(join(repo, 'README.md'), 'utf8'));
const wrappers = { js: 'readme-js.mjs', cpp: 'readme-cpp.cpp' };
for (const [lang, file] of Object.entries(wrappers)) {
  const found = blocks.filter((b) => b.lang === lang);
  if (found.length !== 1) {
    fail(`README.md has ${found.length} \`\`\`${lang} blocks; check.mjs tests exactly one (in ${file})`);
    continue;
  }
  const copy = embedded(file, lang, { onlyBlock: lang === 'cpp' });
  if (copy === found[0].text) ok(`README \`\`\`${lang} block (line ${found[0].line}) == examples/readme/${file}`);
  else fail(`README \`\`\`${lang} block (line ${found[0].line}) differs from examples/readme/${file}; first difference at ${firstDifference(found[0].text, copy)}`);
}
const untested = blocks.filter((b) => ['javascript', 'mjs', 'ts', 'typescript', 'c++', 'cc', 'cxx'].includes(b.lang));
for (const b of untested) fail(`README.md line ${b.line}: a \`\`\`${b.lang} block that check.mjs does not run (use js or cpp)`);
if (failed) process.exit(1);

// ---- 2. the JS snippet -----------------------------------------------------------------------
function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: RUN_TIMEOUT_MS, ...options });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (r.error || r.status !== 0) {
    const why = r.error ? r.error.message : r.signal ? `signal ${r.signal}` : `exit code ${r.status}`;
    throw new Error(`${cmd} ${args.join(' ')}: ${why}\n${out}`);
  }
  return r.stdout;
}

/** Asserts the printed lines, in order, match `patterns`. */
function expectLines(name, stdout, patterns) {
  const lines = stdout.trimEnd().split('\n');
  const bad = patterns.findIndex((re, i) => !re.test(lines[i] ?? ''));
  if (bad < 0 && lines.length === patterns.length) ok(`${name} printed what the README says`);
  else fail(`${name} output, line ${bad + 1}: ${JSON.stringify(lines[bad])} does not match ${patterns[bad]}\n${stdout}`);
}

try {
  createRequire(join(here, 'readme-js.mjs')).resolve('bgtasks/package.json');
} catch {
  fail('bgtasks is not installed for examples/readme: run `npm ci` at the top of the repository');
  process.exit(1);
}
try {
  const started = Date.now();
  const out = run(process.execPath, [join(here, 'readme-js.mjs')], { cwd: here });
  process.stdout.write(out);
  expectLines(`readme-js.mjs (${Date.now() - started} ms)`, out, [
    /^custom bg_0$/,
    /^completed bg_[12]$/,
    /^readme-js: bg_0 completed, bg_1 -> "look at X"$/,
  ]);
} catch (e) {
  fail(e.message);
}

// ---- 3. the C++ snippet ----------------------------------------------------------------------
if (!skipCpp) {
  const work = mkdtempSync(join(tmpdir(), 'bgtasks-readme-cpp-'));
  try {
    const cmake = (...args) => execFileSync('cmake', args, { stdio: ['ignore', 'inherit', 'inherit'] });
    const ninja = spawnSync('ninja', ['--version']).status === 0 ? ['-G', 'Ninja'] : [];
    const jobs = `-j${availableParallelism()}`;
    let prefix = process.env.BGTASKS_PREFIX;
    if (prefix && existsSync(join(prefix, 'lib', 'cmake', 'bgtasks', 'bgtasksConfig.cmake'))) {
      console.log(`== using the bgtasks installed in ${prefix}`);
    } else {
      prefix = join(work, 'prefix');
      const type = process.env.BGTASKS_BUILD_TYPE || 'RelWithDebInfo';
      console.log(`== core: configure + build (${type}), cmake --install → ${prefix}`);
      cmake('-S', repo, '-B', join(work, 'core'), ...ninja, `-DCMAKE_BUILD_TYPE=${type}`,
        '-DBGTASKS_BUILD_TESTS=OFF', '-DBGTASKS_BUILD_BENCH=OFF');
      cmake('--build', join(work, 'core'), jobs);
      cmake('--install', join(work, 'core'), '--prefix', prefix);
    }
    // The default compiler (g++ on Debian), then clang++: the README says it compiles with both.
    const compilers = [['default', []]];
    if (spawnSync('clang++', ['--version']).status === 0) compilers.push(['clang++', ['-DCMAKE_CXX_COMPILER=clang++']]);
    for (const [name, extra] of compilers) {
      console.log(`== readme-cpp.cpp (${name} compiler): configure against the installed package, build, run`);
      const dir = join(work, `snippet-${name.replace(/\W/g, '')}`);
      cmake('-S', here, '-B', dir, ...ninja, ...extra, `-DCMAKE_PREFIX_PATH=${prefix}`,
        '-DCMAKE_CXX_FLAGS=-Wall -Wextra -Werror');
      cmake('--build', dir);
      const started = Date.now();
      const out = run(join(dir, 'readme-cpp'), []);
      process.stdout.write(out);
      expectLines(`readme-cpp, ${name} compiler (${Date.now() - started} ms)`, out, [
        /^\{"event_type":"progress","kind":"custom","payload":\{"pct":50\},"task_id":"bg_0"\}$/,
        /^\{"kind":"completed","result":\{"ok":true\},"task_id":"bg_0"\}$/,
        /^bg_0 completed$/,
      ]);
    }
  } catch (e) {
    fail(`C++ snippet: ${e.message}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (failed) process.exit(1);
console.log('== README snippets: passed');
