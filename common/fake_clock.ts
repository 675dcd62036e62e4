/**
 * A manual clock for tests and the simulator: time moves only when the
 * caller says so, and the timers due on the way fire in order, with pending
 * promise callbacks run between them so that async code behind a timer gets
 * to finish.
 *
 * @module
 */

import type { Clock, TimerId } from "./clock.ts";

interface Timer {
  id: number;
  /** Monotonic due time. */
  due: number;
  seq: number;
  fn: () => void;
}

/**
 * A {@link Clock} whose wall reading starts at `wall` and monotonic reading
 * at `monotonic`. {@link FakeClock.advance} moves both readings together and
 * fires the timers due; {@link FakeClock.set} steps the wall reading alone
 * (timers count monotonic time, so it fires or delays nothing).
 *
 * @example
 * ```ts
 * const clock = new FakeClock(1_000_000);
 * clock.setTimeout(() => console.log("fired"), 500);
 * await clock.advance(500); // "fired"
 * ```
 */
export class FakeClock implements Clock {
  #mono: number;
  /** Wall reading minus monotonic reading. */
  #offset: number;
  /** Min-heap by (due, seq); cleared timers stay until they reach the top. */
  #heap: Timer[] = [];
  /** Armed timers by id: a timer not here was cleared or fired. */
  readonly #live = new Map<number, Timer>();
  #nextId = 1;
  #seq = 0;

  /**
   * @param wall the initial wall time, ms since the epoch
   * @param monotonic the initial monotonic time, ms
   */
  constructor(wall = 1_700_000_000_000, monotonic = 0) {
    this.#mono = monotonic;
    this.#offset = wall - monotonic;
  }

  /** The current fake wall time. */
  now(): number {
    return this.#mono + this.#offset;
  }

  /** The current fake monotonic time. */
  monotonic(): number {
    return this.#mono;
  }

  /** Timers armed and not yet fired or cleared. */
  get pending(): number {
    return this.#live.size;
  }

  /** Arms a timer at `monotonic() + ms`; options (`unref`) are ignored. */
  setTimeout(fn: () => void, ms: number): TimerId {
    const id: number = this.#nextId++;
    const t = { id, due: this.#mono + Math.max(0, ms), seq: this.#seq++, fn };
    this.#live.set(id, t);
    this.#push(t);
    return id;
  }

  /** Cancels a timer. */
  clearTimeout(id: TimerId | undefined): void {
    if (id === undefined || !this.#live.delete(id as number)) return;
    // Cleared timers are dropped lazily; rebuild when they dominate.
    if (this.#heap.length > 64 && this.#heap.length > 2 * this.#live.size) {
      // A sorted array is a valid heap.
      this.#heap = [...this.#live.values()].sort((a, b) =>
        a.due - b.due || a.seq - b.seq
      );
    }
  }

  /**
   * Moves both readings forward by `ms`, firing every timer due on the way
   * in due order (ties in arming order), each at its own due time, and
   * letting pending promise callbacks run after each one.
   *
   * @throws {RangeError} for a negative or non-finite `ms`
   */
  async advance(ms: number): Promise<void> {
    if (!(ms >= 0) || !Number.isFinite(ms)) {
      throw new RangeError(`Cannot advance a clock by ${ms} ms`);
    }
    const target = this.#mono + ms;
    for (;;) {
      await flush();
      const next = this.#peek();
      if (next === undefined || next.due > target) break;
      this.#pop();
      this.#live.delete(next.id);
      this.#mono = Math.max(this.#mono, next.due);
      next.fn();
    }
    this.#mono = target;
    await flush();
  }

  /**
   * Steps the wall reading to `wall` (an NTP step, or a skewed host) without
   * touching the monotonic reading or firing anything.
   */
  set(wall: number): void {
    this.#offset = wall - this.#mono;
  }

  /** The earliest armed timer, dropping cleared ones from the top. */
  #peek(): Timer | undefined {
    let top = this.#heap[0];
    while (top !== undefined && !this.#live.has(top.id)) {
      this.#pop();
      top = this.#heap[0];
    }
    return top;
  }

  #push(t: Timer): void {
    const h = this.#heap;
    let i = h.length;
    h.push(t);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(t, h[p]!)) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = t;
  }

  #pop(): void {
    const h = this.#heap;
    const last = h.pop()!;
    const n = h.length;
    if (n === 0) return;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && before(h[c + 1]!, h[c]!)) c++;
      if (!before(h[c]!, last)) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = last;
  }
}

/** Due order, ties in arming order. */
function before(a: Timer, b: Timer): boolean {
  return a.due < b.due || (a.due === b.due && a.seq < b.seq);
}

/** Lets queued promise callbacks (and the ones they queue) run. */
async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}
