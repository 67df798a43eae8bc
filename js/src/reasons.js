// Why a body stopped, in the values it sees: the DOMException its signal aborts with (by the
// core's cancel reason), and the error text a failed body's throw becomes.
import { toWellFormed } from './surrogates.js';

export function abortError(message = 'The task was cancelled') {
  return new DOMException(message, 'AbortError');
}

// The core's cancel reasons, by number (wasm/bindings.cpp).
const CANCEL_KINDS = ['cancel', 'cancelTree', 'cancelAll', 'run', 'timeout', 'shutdown', 'grace'];

/** The reason a task's signal aborts with, for the core's cancel reason `code`; `kind` names it. */
export function cancelReason(code, rec) {
  const kind = CANCEL_KINDS[code] ?? 'cancel';
  let reason;
  if (kind === 'timeout') reason = new DOMException(`task timed out after ${rec.timeoutMs} ms`, 'TimeoutError');
  else if (kind === 'shutdown') reason = new DOMException('interrupted: host shutdown', 'AbortError');
  else if (kind === 'cancelTree') reason = abortError('The task was cancelled with its tree (cancelTree)');
  else if (kind === 'cancelAll') reason = abortError("The task was cancelled with its thread's tasks (cancelAll)");
  else if (kind === 'run') reason = abortError('The task was cancelled with its run');
  else reason = abortError();
  Object.defineProperty(reason, 'kind', { value: kind, enumerable: true });
  return reason;
}

/**
 * The error text of a task whose body threw `e`: an Error's message (its name when empty), a
 * string as it is, any other value as JSON (String() when JSON has none). Nobody can be handed a
 * TypeError here and the task must still fail, so the text is made well-formed instead of being
 * refused: a lone surrogate becomes U+FFFD. A getter or toString that throws leaves the value's tag.
 */
export function failureText(e) {
  let text;
  try {
    if (e instanceof Error) text = String(e.message || e.name);
    else if (typeof e === 'string') text = e;
    else {
      try {
        text = JSON.stringify(e);
      } catch {
        // BigInt, a cycle, a throwing toJSON: String() below
      }
      text ??= String(e);
    }
  } catch {
    try {
      text = Object.prototype.toString.call(e);
    } catch {
      text = '[object Unknown]'; // a revoked Proxy
    }
  }
  return toWellFormed(text);
}
