// The payload handle table: emitted payloads (and completed results) stay on the JS side while
// the core's events hold their handles. A handle is a number that grows in emission order; slot i
// of the table holds handle `base + i` (undefined once taken), so a handle is found without a map
// and taken slots at the front are dropped in bulk.
//
// Its state is in plain properties, not #private fields: every ctx.emit and every drained event
// goes through here, and #private fields made ctx.emit about 8% slower on Node 20 (interleaved
// in-process A/B). A table is only ever held in a manager's private state (Bodies, Marshal), so
// nothing outside the package reaches it.

export class PayloadTable {
  slots = [];
  head = 0; // slots before it are all taken
  base = 0; // the handle of slots[0]
  live = 0; // values held
  dropOldestCap; // the owner inbox's capacity when it evicts (dropOldest), else 0

  /** @param dropOldestCap the owner inbox's capacity when it evicts its oldest event, else 0 */
  constructor(dropOldestCap) {
    this.dropOldestCap = dropOldestCap;
  }

  /** Holds `value`; its handle. */
  put(value) {
    this.live++;
    return this.base + this.slots.push(value) - 1;
  }

  /** The core did not take the event: forget the value just put. */
  unput() {
    this.slots.pop();
    this.live--;
  }

  /** Takes back the value of an event the core hands out. */
  take(handle) {
    const i = handle - this.base;
    const value = this.slots[i];
    if (value === undefined) return null; // cannot happen: every custom event's handle is held
    this.slots[i] = undefined;
    this.live--;
    return value;
  }

  /** A held value, left in place (null when none is held: a result no event holds). */
  peek(handle) {
    const value = this.slots[handle - this.base];
    return value === undefined ? null : value;
  }

  /**
   * After an event was queued: when the owner inbox evicts (dropOldest), the evicted values are
   * the oldest held (the core evicts the oldest event; handles grow in emission order), so with
   * at most `capacity` events queued, every value past the newest `capacity` held is gone.
   */
  trim() {
    if (this.dropOldestCap === 0 || this.live <= this.dropOldestCap) return; // nothing evicted
    while (this.live > this.dropOldestCap) {
      while (this.slots[this.head] === undefined) this.head++;
      this.slots[this.head++] = undefined;
      this.live--;
    }
    this.slide();
  }

  /** True when no slot is in use (nothing to compact after a drain). */
  get empty() {
    return this.slots.length === 0;
  }

  /**
   * After a drain. `nothingQueued`: the core holds no event, so no value is referenced (also
   * those of events the core evicted) and the table starts over.
   */
  compact(nothingQueued) {
    if (nothingQueued) {
      this.base += this.slots.length;
      this.slots = [];
      this.head = 0;
      this.live = 0;
      return;
    }
    this.slide();
  }

  /** Drops every value (the queue went with the manager). */
  clear() {
    this.slots = [];
    this.live = 0;
  }

  /** Skips taken slots at the front; drops them once they are most of the table. */
  slide() {
    while (this.head < this.slots.length && this.slots[this.head] === undefined) this.head++;
    if (this.head > 1024 && this.head * 2 > this.slots.length) {
      this.slots = this.slots.slice(this.head);
      this.base += this.head;
      this.head = 0;
    }
  }
}
