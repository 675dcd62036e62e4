/**
 * One time model, injected wherever time is read or a timer is armed: a
 * {@link Clock} has a wall reading ({@link Clock.now}: ms since the epoch,
 * may jump when the host's clock is stepped) and a monotonic reading
 * ({@link Clock.monotonic}: ms from an arbitrary origin, never goes back),
 * and arms one-shot timers, which count monotonic time. Pacing, deadlines
 * and latencies use the monotonic reading; anything stored or compared
 * across hosts (TTLs, leases, `attachedAt`) uses the wall reading. A
 * parameter named `now` says which base it means.
 *
 * Production code takes {@link systemClock}; tests and the simulator take a
 * {@link FakeClock} (`common/fake_clock.ts`), so that nothing waits.
 *
 * @module
 */

/** An opaque timer handle from {@link Clock.setTimeout}. */
export type TimerId = ReturnType<typeof setTimeout> | number;

/** Options for {@link Clock.setTimeout}. */
export interface TimerOptions {
  /**
   * The timer does not keep the process alive (`Deno.unrefTimer`): for
   * housekeeping such as a store's sweep or a lag probe. A fake clock
   * ignores it.
   */
  unref?: boolean;
}

/** Wall and monotonic time, and one-shot timers. */
export interface Clock {
  /** Wall time: milliseconds since the Unix epoch. May jump, either way. */
  now(): number;
  /**
   * Monotonic time in milliseconds from an arbitrary origin: never goes
   * back, unaffected by wall-clock steps. Only differences mean anything.
   */
  monotonic(): number;
  /**
   * Calls `fn` once, `ms` milliseconds (of monotonic time) from now.
   *
   * @param fn what to call
   * @param ms delay in ms; negative counts as 0
   * @param opts `unref`
   * @returns a handle for {@link Clock.clearTimeout}
   */
  setTimeout(fn: () => void, ms: number, opts?: TimerOptions): TimerId;
  /** Cancels a timer; `undefined` and fired timers are ignored. */
  clearTimeout(id: TimerId | undefined): void;
}

/** Longest delay a runtime timer takes before it fires at once instead (2^31 − 1 ms, ~24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The real clock: `Date.now()`, `performance.now()` and the runtime's
 * timers. Delays beyond {@link MAX_TIMER_MS} are clamped rather than firing
 * at once.
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout: (fn, ms, opts) => {
    const id = setTimeout(fn, Math.min(MAX_TIMER_MS, Math.max(0, ms)));
    if (opts?.unref) Deno.unrefTimer(id);
    return id;
  },
  clearTimeout: (id) => clearTimeout(id as number),
};
