// Node: the glue is built for web/worker (it must not touch require/__dirname in ESM scope), so
// the wasm bytes are read here and handed over (docs/toolchain.md, "Loading in Node").
import { readFile } from 'node:fs/promises';
import createBgTasksModule from '../build/bgtasks.mjs';

export async function loadModule() {
  const wasmBinary = await readFile(new URL('../build/bgtasks.wasm', import.meta.url));
  return createBgTasksModule({ wasmBinary });
}
