/**
 * Time as an injected dependency: the state machines take `now` in their
 * events, and the parts that arm timers (expiry queue, lease keeper, the
 * connection loop) take a {@link Clock}, so that tests run them on a
 * {@link FakeClock} without waiting.
 *
 * @module
 */

/** An opaque timer handle from {@link Clock.setTimeout}. */
export type TimerId = ReturnType<typeof setTimeout> | number;

/** Wall-clock time and one-shot timers. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /**
   * Calls `fn` once, `ms` milliseconds from now.
   *
   * @param fn what to call
   * @param ms delay in ms; negative counts as 0
   * @returns a handle for {@link Clock.clearTimeout}
   */
  setTimeout(fn: () => void, ms: number): TimerId;
  /** Cancels a timer; `undefined` and fired timers are ignored. */
  clearTimeout(id: TimerId | undefined): void;
}

/** Longest delay a runtime timer takes before it fires at once instead (2^31 − 1 ms, ~24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The real clock: `Date.now()` and the runtime's timers. Delays beyond
 * {@link MAX_TIMER_MS} are clamped rather than firing at once.
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) =>
    setTimeout(fn, Math.min(MAX_TIMER_MS, Math.max(0, ms))),
  clearTimeout: (id) => clearTimeout(id as number),
};
