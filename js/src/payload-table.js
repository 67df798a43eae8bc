// The payload handle table: emitted payloads (and completed results) stay on the JS side while
// the core's events hold their handles. A handle is a number that grows in emission order; slot i
// of the table holds handle `base + i` (undefined once taken), so a handle is found without a map
// and taken slots at the front are dropped in bulk.

export class PayloadTable {
  #pay = [];
  #head = 0; // slots before it are all taken
  #base = 0; // the handle of slot 0
  #live = 0; // values held
  #dropOldestCap; // the owner inbox's capacity when it evicts (dropOldest), else 0

  /** @param dropOldestCap the owner inbox's capacity when it evicts its oldest event, else 0 */
  constructor(dropOldestCap) {
    this.#dropOldestCap = dropOldestCap;
  }

  /** Holds `value`; its handle. */
  put(value) {
    this.#live++;
    return this.#base + this.#pay.push(value) - 1;
  }

  /** The core did not take the event: forget the value just put. */
  unput() {
    this.#pay.pop();
    this.#live--;
  }

  /** Takes back the value of an event the core hands out. */
  take(handle) {
    const i = handle - this.#base;
    const value = this.#pay[i];
    if (value === undefined) return null; // cannot happen: every custom event's handle is held
    this.#pay[i] = undefined;
    this.#live--;
    return value;
  }

  /** A held value, left in place (null when none is held: a result no event holds). */
  peek(handle) {
    const value = this.#pay[handle - this.#base];
    return value === undefined ? null : value;
  }

  /**
   * After an event was queued: when the owner inbox evicts (dropOldest), the evicted values are
   * the oldest held (the core evicts the oldest event; handles grow in emission order), so with
   * at most `capacity` events queued, every value past the newest `capacity` held is gone.
   */
  trim() {
    if (this.#dropOldestCap === 0 || this.#live <= this.#dropOldestCap) return; // nothing evicted
    while (this.#live > this.#dropOldestCap) {
      while (this.#pay[this.#head] === undefined) this.#head++;
      this.#pay[this.#head++] = undefined;
      this.#live--;
    }
    this.#slide();
  }

  /** True when no slot is in use (nothing to compact after a drain). */
  get empty() {
    return this.#pay.length === 0;
  }

  /**
   * After a drain. `nothingQueued`: the core holds no event, so no value is referenced (also
   * those of events the core evicted) and the table starts over.
   */
  compact(nothingQueued) {
    if (nothingQueued) {
      this.#base += this.#pay.length;
      this.#pay = [];
      this.#head = 0;
      this.#live = 0;
      return;
    }
    this.#slide();
  }

  /** Drops every value (the queue went with the manager). */
  clear() {
    this.#pay = [];
    this.#live = 0;
  }

  #slide() {
    while (this.#head < this.#pay.length && this.#pay[this.#head] === undefined) this.#head++;
    if (this.#head > 1024 && this.#head * 2 > this.#pay.length) {
      this.#pay = this.#pay.slice(this.#head);
      this.#base += this.#head;
      this.#head = 0;
    }
  }
}
