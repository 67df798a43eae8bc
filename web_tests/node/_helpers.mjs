// Shared helpers for the node --test suites (not a test file itself).
import { createTaskManager } from 'bgtasks';

/** A manual-clock manager disposed after the test. */
export async function manual(t, options = {}) {
  const mgr = await createTaskManager({ clock: 'manual', ...options });
  t.after(() => mgr.dispose());
  return mgr;
}

/** A body that runs until its cancel is requested, then returns normally. */
export async function untilCancelled(ctx) {
  if (!ctx.signal.aborted) await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
  return 'returned after cancel';
}

/** A body that never looks at cancellation and never ends unless `release` is called. */
export function blocker() {
  let release;
  const gate = new Promise((resolve) => (release = resolve));
  return { body: () => gate, release: (v) => release(v) };
}

/** The snapshot, stats and pending-event count of a manager, as one comparable value. */
export function state(mgr) {
  return JSON.stringify({ snapshot: mgr.snapshot(), stats: mgr.stats() });
}

/** Asserts that `fn` throws a BgTasksError with `code` and (optionally) exactly `message`. */
export function bgError(code, message) {
  return (e) => {
    if (e?.name !== 'BgTasksError' || e.code !== code) return false;
    if (message !== undefined && e.message !== message) return false;
    return true;
  };
}
