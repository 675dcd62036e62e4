/**
 * A manual clock for tests: time moves only when the test says so, and the
 * timers due on the way fire in order, with pending promise callbacks run
 * between them so that async code behind a timer gets to finish.
 *
 * @module
 */

import type { Clock, TimerId } from "./clock.ts";

interface Timer {
  id: number;
  due: number;
  seq: number;
  fn: () => void;
}

/**
 * A {@link Clock} that starts at `start` and moves with {@link FakeClock.advance}.
 *
 * @example
 * ```ts
 * const clock = new FakeClock(1_000_000);
 * clock.setTimeout(() => console.log("fired"), 500);
 * await clock.advance(500); // "fired"
 * ```
 */
export class FakeClock implements Clock {
  #now: number;
  #timers: Timer[] = [];
  #nextId = 1;
  #seq = 0;

  /** @param start the initial time, ms since the epoch */
  constructor(start = 1_700_000_000_000) {
    this.#now = start;
  }

  /** The current fake time. */
  now(): number {
    return this.#now;
  }

  /** Timers armed and not yet fired or cleared. */
  get pending(): number {
    return this.#timers.length;
  }

  /** Arms a timer at `now + ms` on the fake time line. */
  setTimeout(fn: () => void, ms: number): TimerId {
    const id: number = this.#nextId++;
    this.#timers.push({
      id,
      due: this.#now + Math.max(0, ms),
      seq: this.#seq++,
      fn,
    });
    return id;
  }

  /** Cancels a timer. */
  clearTimeout(id: TimerId | undefined): void {
    if (id === undefined) return;
    this.#timers = this.#timers.filter((t) => t.id !== id);
  }

  /**
   * Moves time forward by `ms`, firing every timer due on the way in due
   * order (ties in arming order), each at its own due time, and letting
   * pending promise callbacks run after each one.
   */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    for (;;) {
      await flush();
      const next = this.#first();
      if (next === undefined || next.due > target) break;
      this.#timers = this.#timers.filter((t) => t !== next);
      this.#now = Math.max(this.#now, next.due);
      next.fn();
    }
    this.#now = target;
    await flush();
  }

  /** Jumps the clock without firing anything (a wall clock stepped by NTP, or a skewed host). */
  set(now: number): void {
    this.#now = now;
  }

  #first(): Timer | undefined {
    let best: Timer | undefined;
    for (const t of this.#timers) {
      if (
        !best || t.due < best.due || (t.due === best.due && t.seq < best.seq)
      ) {
        best = t;
      }
    }
    return best;
  }
}

/** Lets queued promise callbacks (and the ones they queue) run. */
async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}
