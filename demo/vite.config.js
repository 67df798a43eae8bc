// Vite serves the demo and resolves `bgtasks` from node_modules like any app's dependency.
// `file:../js` installs it as a link to a folder outside this one, so the dev server must be
// allowed to read that folder (its src/ and build/bgtasks.wasm). `bgtasks` is not pre-bundled:
// its loader finds the .wasm beside itself with `new URL('../build/bgtasks.wasm', import.meta.url)`.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig, searchForWorkspaceRoot } from 'vite';

const here = fileURLToPath(new URL('.', import.meta.url));
const bgtasksDir = realpathSync(fileURLToPath(new URL('./node_modules/bgtasks', import.meta.url)));

export default defineConfig({
  root: here,
  server: {
    host: '127.0.0.1',
    fs: { allow: [searchForWorkspaceRoot(here), bgtasksDir] },
  },
  // idb (bgtasks' one dependency) is pre-bundled at start-up: found only at run time, it would make
  // Vite reload the page once on the first visit after an install.
  optimizeDeps: { exclude: ['bgtasks'], include: ['bgtasks > idb'] },
  build: { target: 'es2022' },
});
