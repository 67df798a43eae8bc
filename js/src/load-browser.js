// Browsers and bundlers: the .wasm is fetched from beside the package's build folder. The URL is a
// literal so bundlers (Vite, esbuild, webpack 5) see and copy the asset.
import createBgTasksModule from '../build/bgtasks.mjs';

const wasmUrl = new URL('../build/bgtasks.wasm', import.meta.url).href;

export async function loadModule() {
  return createBgTasksModule({ locateFile: (path) => (path.endsWith('.wasm') ? wasmUrl : path) });
}
