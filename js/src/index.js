// bgtasks: background tasks for AI-agent runtimes (ESM only; Node >= 18 and browsers).
// The Node (and default) entry; browsers and bundlers take browser.js through the "browser" condition.
import { loadModule } from '#load-module';
import { managerFactory } from './manager.js';

export const createTaskManager = /* @__PURE__ */ managerFactory(loadModule);
export { TaskManager } from './manager.js';
export { BgTasksError, ERROR_CODES } from './errors.js';
export { TaskContext, AgentInbox } from './context.js';
export { FileStore } from '#file-store';
export { IndexedDbStore } from './indexeddb-store.js';
