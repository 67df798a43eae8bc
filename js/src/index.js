// bgtasks: background tasks for AI-agent runtimes (ESM only; Node >= 18 and browsers).
export { createTaskManager, TaskManager } from './manager.js';
export { BgTasksError, ERROR_CODES } from './errors.js';
export { TaskContext, AgentInbox } from './context.js';
export { FileStore } from '#file-store';
export { IndexedDbStore } from './indexeddb-store.js';
