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
  #timers: Timer[] = [];
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
    return this.#timers.length;
  }

  /** Arms a timer at `monotonic() + ms`; options (`unref`) are ignored. */
  setTimeout(fn: () => void, ms: number): TimerId {
    const id: number = this.#nextId++;
    this.#timers.push({
      id,
      due: this.#mono + Math.max(0, ms),
      seq: this.#seq++,
      fn,
    });
    return id;
  }

  /** Cancels a timer. */
  clearTimeout(id: TimerId | undefined): void {
    if (id === undefined) return;
    const i = this.#timers.findIndex((t) => t.id === id);
    if (i >= 0) this.#timers.splice(i, 1);
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
      const i = this.#firstIndex();
      const next = this.#timers[i];
      if (next === undefined || next.due > target) break;
      this.#timers.splice(i, 1);
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

  #firstIndex(): number {
    let best = -1;
    for (let i = 0; i < this.#timers.length; i++) {
      const t = this.#timers[i]!, b = this.#timers[best];
      if (
        b === undefined || t.due < b.due || (t.due === b.due && t.seq < b.seq)
      ) {
        best = i;
      }
    }
    return best;
  }
}

/** Lets queued promise callbacks (and the ones they queue) run. */
async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}
