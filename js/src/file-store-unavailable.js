// FileStore needs node:fs; in browsers use IndexedDbStore.
export class FileStore {
  constructor() {
    throw new Error('FileStore is only available in Node.js; use IndexedDbStore in browsers');
  }
}
