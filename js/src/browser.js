// bgtasks for browsers, Web Workers and extensions (the package's "browser" condition). Every
// import below it is relative, with no package-internal `#` specifier and no dependency: a page's
// import map names only `bgtasks`, and a Worker or an extension (no import maps) imports this file
// by its path.
import { loadModule } from './load-browser.js';
import { managerFactory } from './manager.js';

export const createTaskManager = /* @__PURE__ */ managerFactory(loadModule);
export { TaskManager } from './manager.js';
export { BgTasksError, ERROR_CODES } from './errors.js';
export { TaskContext, AgentInbox } from './context.js';
export { FileStore } from './file-store-unavailable.js';
export { IndexedDbStore } from './indexeddb-store.js';
