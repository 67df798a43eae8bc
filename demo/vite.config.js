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
  // bgtasks is served as it is, so the glue's URL of the .wasm beside it stays valid.
  optimizeDeps: { exclude: ['bgtasks'] },
  build: { target: 'es2022' },
});
