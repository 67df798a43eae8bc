// Vite serves the demo and resolves `bgtasks` from node_modules like any app's dependency.
// The repository's npm workspace installs it as a link to js/, a folder outside this one, so the
// dev server must be allowed to read that folder (its src/ and build/bgtasks.wasm). `bgtasks` is
// not pre-bundled: its loader finds the .wasm beside itself with
// `new URL('../build/bgtasks.wasm', import.meta.url)`.
import { realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, searchForWorkspaceRoot } from 'vite';

const here = fileURLToPath(new URL('.', import.meta.url));
const bgtasksDir = dirname(realpathSync(createRequire(import.meta.url).resolve('bgtasks/package.json')));

export default defineConfig({
  root: here,
  server: {
    host: '127.0.0.1',
    fs: { allow: [searchForWorkspaceRoot(here), bgtasksDir] },
  },
  // bgtasks is served as it is, so the glue's URL of the .wasm beside it stays valid.
  optimizeDeps: { exclude: ['bgtasks'] },
  build: { target: 'es2022' },
});
