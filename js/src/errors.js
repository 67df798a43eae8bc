// The package's error type: BgTasksError and the codes it carries.

/** Error codes, index = the core's code (wasm/bindings.cpp: Errc + 1). */
export const ERROR_CODES = Object.freeze([
  undefined,
  'TaskNotFound',
  'NotOwner',
  'TaskTerminated',
  'NoInbox',
  'InboxClosed',
  'InboxFull',
  'ReservedName',
  'DuplicateName',
  'StoreNotConfigured',
  'UnknownKey',
  'InvalidSnapshot',
  'NotHostTask',
  'InvalidArgument',
  'IdConflict',
  'IdsUnavailable',
  'StaleOwner',
  'Disposed',
  'ShuttingDown',
]);

/** A failure the core reported: `code` says which (see ERROR_CODES), `message` is awaken's text. */
export class BgTasksError extends Error {
  constructor(code, message, status) {
    super(message);
    this.name = 'BgTasksError';
    this.code = code;
    if (status !== undefined) this.status = status;
  }
}
