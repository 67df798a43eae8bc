// ESLint for every JavaScript file of the repository: the package (js/), its tests, the demo, the
// examples and the JS benchmarks. `npm ci && npm run lint` at the top level; the test command runs
// it. An .mjs file: the top-level package.json stays CommonJS, so that build outputs under build/
// (the wasm bench driver's driver.js) still load as scripts.
import js from '@eslint/js';
import globals from 'globals';

export default [
  {
    ignores: ['**/node_modules/', 'build/', 'js/build/', '**/dist/', 'web_tests/build/'],
  },
  js.configs.recommended,
  {
    languageOptions: {
      ecmaVersion: 2024,
      sourceType: 'module',
      // The package runs in Node, browsers and Workers; its tests drive both.
      globals: { ...globals.node, ...globals.browser },
    },
    rules: {
      // Unused parameters named _x are placeholders of a callback's signature.
      'no-unused-vars': ['error', { argsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  {
    // Emscripten JS libraries (--js-library): scripts evaluated by Emscripten's linker, with its
    // library globals and the runtime functions they call.
    files: ['wasm/**/*.js'],
    languageOptions: {
      sourceType: 'script',
      globals: {
        mergeInto: 'readonly',
        LibraryManager: 'readonly',
        throwBindingError: 'readonly',
        runDestructors: 'readonly',
      },
    },
  },
  {
    // Extension pages and the extension's service worker see the `chrome` API.
    files: ['examples/browser-extension/**'],
    languageOptions: { globals: { ...globals.webextensions, ...globals.serviceworker } },
  },
];
