/**
 * The expiry queue: the sessions this server detached, in deadline order,
 * with one timer for the earliest. Deadlines are on whatever time line `now`
 * gives (the session manager uses its estimate of the store's clock); the
 * timer runs on the injected {@link Clock} and is re-armed when it fires
 * early, so a time line that moves against the local clock only delays or
 * hastens a check, never skips one.
 *
 * @module
 */

import type { Clock, TimerId } from "../common/clock.ts";

/** One queued session. */
export interface ExpiryEntry<T> {
  /** The session id. */
  readonly id: string;
  /** When it expires (ms, on the queue's time line). */
  readonly deadline: number;
  /** What the owner keeps with it. */
  readonly value: T;
}

interface Slot<T> extends ExpiryEntry<T> {
  readonly seq: number;
}

/**
 * Sessions by deadline. {@link ExpiryQueue.add} is O(1) when deadlines come
 * in order (the usual case: every deadline is now + TTL) and O(n) otherwise;
 * removal is O(1) (lazy).
 *
 * @example
 * ```ts
 * const q = new ExpiryQueue<string>(clock, () => clock.now(), (due) => {
 *   for (const e of due) console.log("expired", e.id);
 * });
 * q.add("a", clock.now() + 30_000, "rec");
 * ```
 */
export class ExpiryQueue<T> {
  readonly #clock: Clock;
  readonly #now: () => number;
  readonly #onDue: (due: ExpiryEntry<T>[]) => void;
  readonly #live = new Map<string, Slot<T>>();
  /** Sorted by (deadline, seq) from `#head`; may hold stale slots. */
  #order: Slot<T>[] = [];
  #head = 0;
  #seq = 0;
  #timer: TimerId | undefined;
  #armedFor = Infinity;
  #closed = false;

  /**
   * @param clock arms the one timer
   * @param now the time line of the deadlines
   * @param onDue called with the entries whose deadline has come, already removed
   */
  constructor(
    clock: Clock,
    now: () => number,
    onDue: (due: ExpiryEntry<T>[]) => void,
  ) {
    this.#clock = clock;
    this.#now = now;
    this.#onDue = onDue;
  }

  /** Entries queued. */
  get size(): number {
    return this.#live.size;
  }

  /** The entry for `id`, if queued. */
  get(id: string): ExpiryEntry<T> | undefined {
    return this.#live.get(id);
  }

  /** Queued ids, in no particular order. */
  ids(): IterableIterator<string> {
    return this.#live.keys();
  }

  /** Queues `id` (replacing any entry it had) to expire at `deadline`. */
  add(id: string, deadline: number, value: T): void {
    const slot: Slot<T> = { id, deadline, value, seq: this.#seq++ };
    this.#live.set(id, slot);
    const o = this.#order;
    const last = o[o.length - 1];
    if (last === undefined || last.deadline <= deadline) o.push(slot);
    else {
      let lo = this.#head;
      let hi = o.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (o[mid]!.deadline <= deadline) lo = mid + 1;
        else hi = mid;
      }
      o.splice(lo, 0, slot);
    }
    this.#arm();
  }

  /** Removes `id`; resolves whether it was queued. */
  delete(id: string): boolean {
    return this.#live.delete(id);
  }

  /** Stops the timer; nothing fires after this. Idempotent. */
  close(): void {
    this.#closed = true;
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** The first live slot, dropping stale ones on the way. */
  #first(): Slot<T> | undefined {
    const o = this.#order;
    while (this.#head < o.length) {
      const s = o[this.#head]!;
      if (this.#live.get(s.id) === s) return s;
      this.#head++;
    }
    this.#order = [];
    this.#head = 0;
    return undefined;
  }

  #arm(): void {
    if (this.#closed) return;
    const first = this.#first();
    if (first === undefined) return;
    if (this.#timer !== undefined && this.#armedFor <= first.deadline) return;
    this.#clock.clearTimeout(this.#timer);
    this.#armedFor = first.deadline;
    this.#timer = this.#clock.setTimeout(
      () => this.#fire(),
      first.deadline - this.#now(),
    );
  }

  #fire(): void {
    this.#timer = undefined;
    this.#armedFor = Infinity;
    const now = this.#now();
    const due: ExpiryEntry<T>[] = [];
    for (let s = this.#first(); s !== undefined; s = this.#first()) {
      if (s.deadline > now) break;
      this.#live.delete(s.id);
      this.#head++;
      due.push({ id: s.id, deadline: s.deadline, value: s.value });
    }
    if (this.#head > 1024 && this.#head * 2 > this.#order.length) {
      this.#order = this.#order.slice(this.#head);
      this.#head = 0;
    }
    if (due.length > 0) this.#onDue(due);
    this.#arm();
  }
}
