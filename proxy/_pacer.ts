/**
 * The pacing of the proxy's slow links (`bandwidth`, `bloat`, `pushback`),
 * kept pure: it reads no clock and arms no timer. The caller asks, with the
 * current monotonic time, whether a piece may leave; the answer is "now" or
 * "ask again in so many ms".
 *
 * The bound it keeps: in ANY window of `w` ms, the pieces it lets go carry at
 * most `bytesPerSecond * w / 1000 + burstBytes` bytes. It holds whatever the
 * caller's lateness, because the link is booked from the time a piece really
 * left, never from the time it was due: a link starved by a busy CPU (timers
 * firing late, a stalled event loop) resumes at the rate, and does not catch
 * up in a burst. Time the link spent idle is not credit either.
 *
 * A piece leaves once the link has had the time to carry it: `bytes / rate`
 * after the later of the previous piece's departure and the moment it was
 * first asked for. So `n` bytes ready at once take `n / rate` to deliver, the
 * way a real link of that rate would.
 *
 * @module
 */

/** One piece carries at most this much of the link's time: 10 ms worth of bytes. */
export const BURST_MS = 10;

/**
 * Paces pieces of data onto a link of `bytesPerSecond`. Ask with
 * {@link Pacer.take} for a piece until it answers 0, then send the piece.
 *
 * @example
 * ```ts
 * const pacer = new Pacer(100_000); // pieces of at most 1000 bytes
 * for (let wait; (wait = pacer.take(piece.length, performance.now())) > 0;) {
 *   await sleep(wait);
 * }
 * send(piece);
 * ```
 */
export class Pacer {
  /** The link's rate. */
  readonly bytesPerSecond: number;
  /**
   * The largest piece {@link Pacer.take} accepts, and the burst of the bound:
   * {@link BURST_MS} worth of bytes at the rate, at least 1.
   */
  readonly burstBytes: number;
  /** When the previous piece left (monotonic ms). */
  #lastLeft = -Infinity;
  /** When the piece asked for may leave, once it has been asked for. */
  #due: number | undefined;

  /**
   * @param bytesPerSecond the link's rate
   * @throws {RangeError} If `bytesPerSecond` is not a finite number > 0.
   */
  constructor(bytesPerSecond: number) {
    if (!(Number.isFinite(bytesPerSecond) && bytesPerSecond > 0)) {
      throw new RangeError(
        `Invalid pacer rate: ${bytesPerSecond} bytes per second`,
      );
    }
    this.bytesPerSecond = bytesPerSecond;
    this.burstBytes = Math.max(
      1,
      Math.floor((bytesPerSecond * BURST_MS) / 1000),
    );
  }

  /**
   * Asks whether the next piece, of `bytes`, may leave at `monotonicMs`.
   * Ask again for the same piece until the answer is 0: the first ask fixes
   * when it is due, later asks only compare the time with that.
   *
   * @param bytes the piece's size, in `[1, burstBytes]`
   * @param monotonicMs the current time on a monotonic clock, in ms
   *   (`performance.now()`); never earlier than at the previous call
   * @returns 0 if the piece may leave now (it is then counted as gone), else
   *   how many ms to wait before asking again
   * @throws {RangeError} If `bytes` is not an integer in `[1, burstBytes]`.
   */
  take(bytes: number, monotonicMs: number): number {
    if (!(Number.isInteger(bytes) && bytes >= 1 && bytes <= this.burstBytes)) {
      throw new RangeError(
        `Invalid piece: ${bytes} bytes is not in [1, ${this.burstBytes}]`,
      );
    }
    this.#due ??= Math.max(this.#lastLeft, monotonicMs) +
      (bytes * 1000) / this.bytesPerSecond;
    if (monotonicMs < this.#due) return this.#due - monotonicMs;
    // Booked from the real departure, however late: no catching up.
    this.#lastLeft = monotonicMs;
    this.#due = undefined;
    return 0;
  }
}
