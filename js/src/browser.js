// bgtasks for browsers, Web Workers and extensions (the package's "browser" condition). Every
// import is relative, so an import map (or an extension's own files) needs to name only `bgtasks`
// and `idb`: no package-internal `#` specifiers.
import { loadModule } from './load-browser.js';
import { managerFactory } from './manager.js';

export const createTaskManager = /* @__PURE__ */ managerFactory(loadModule);
export { TaskManager } from './manager.js';
export { BgTasksError, ERROR_CODES } from './errors.js';
export { TaskContext, AgentInbox } from './context.js';
export { FileStore } from './file-store-unavailable.js';
export { IndexedDbStore } from './indexeddb-store.js';
