// Copies the installed bgtasks package (its browser files: src/ and build/) into vendor/bgtasks/,
// where background.js imports it from: an extension ships every file it loads.
//   npm install bgtasks && node vendor.mjs            (or: node vendor.mjs <path to the package>)
import { cpSync, existsSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const from = resolve(process.argv[2] ?? join(here, 'node_modules', 'bgtasks'));
const to = join(here, 'vendor', 'bgtasks');
for (const part of ['src', 'build/bgtasks.mjs', 'build/bgtasks.wasm', 'package.json']) {
  if (!existsSync(join(from, part))) throw new Error(`${join(from, part)} is missing: is bgtasks installed (and built)?`);
}
rmSync(to, { recursive: true, force: true });
for (const part of ['src', 'build/bgtasks.mjs', 'build/bgtasks.wasm', 'package.json', 'LICENSE', 'NOTICE']) {
  if (existsSync(join(from, part))) cpSync(join(from, part), join(to, part), { recursive: true });
}
console.log(`bgtasks copied into ${to}`);
