/**
 * The delivery state machine of one attached session (protocol v2, PROTOCOL.md
 * "Delivery"): what to send and when, acknowledgements, liveness and
 * completion. Events in (`tick`, `ack`, `writerIdle`), actions out (send the
 * numbers `from..to`, complete, close with a code). It holds no socket and
 * reads no clock: every event carries `now` in milliseconds.
 *
 * The scheduler calls it once per number for every live session, so it
 * allocates nothing after construction: an event returns a small
 * {@link StreamAction} code and the details are read from fields
 * ({@link Stream.from}, {@link Stream.to}, {@link Stream.code}).
 *
 * The rules, for a stream attached at offset `s` (`sent = acked = s`):
 * 1. Send the next number only while `sent − acked < window` and the writer
 *    is idle. Paced: one per interval on a fixed grid; a tick with a full
 *    window sends nothing. Burst (`intervalMs = 0`): as many as the window
 *    allows in one batch, then wait for an ACK or the writer.
 * 2. ACK(n) is valid for `acked ≤ n ≤ sent`; otherwise `INVALID_OFFSET`.
 *    `n > acked` is progress. ACK(count), possible only once FINAL was sent,
 *    completes.
 * 3. Nothing heard for `clientTimeoutMs`: `CLIENT_TIMEOUT`.
 * 4. Lag (`sent > acked`) with no progress for `stallMs` since the later of
 *    the last progress and the start of the lag: `SLOW_CONSUMER`.
 * 5. No other deadline.
 *
 * @module
 */

import { ErrorCode } from "../protocol/errors.ts";

/** What a {@link Stream} event asks the connection to do. */
export const StreamAction = {
  /** Nothing now. */
  NONE: 0,
  /** Send NUMBER frames for offsets `from` to `to − 1`. */
  SEND: 1,
  /** Send NUMBER frames for `from` to `to − 2`, then FINAL (`to = count`). */
  SEND_FINAL: 2,
  /** ACK(count) after FINAL: record completion, send DONE, close. */
  COMPLETE: 3,
  /** Send a best-effort ERROR with `code` and close; the session detaches. */
  CLOSE: 4,
} as const;

/** A code from {@link StreamAction}. */
export type StreamAction = typeof StreamAction[keyof typeof StreamAction];

/** Limits of a {@link Stream}, shared by every stream of a server. */
export interface StreamSettings {
  /** Most numbers sent beyond the last ACK (≥ 1). */
  readonly window: number;
  /** Time between numbers (ms); 0 streams in window-sized bursts. */
  readonly intervalMs: number;
  /** Close a client heard nothing from for this long (ms). */
  readonly clientTimeoutMs: number;
  /** Close a client that lags with no ACK progress for this long (ms). */
  readonly stallMs: number;
}

const LIVE = 0, COMPLETING = 1, CLOSED = 2;

/**
 * One attached session's delivery state.
 *
 * @example
 * ```ts
 * const limits = { window: 16, intervalMs: 10, clientTimeoutMs: 10_000, stallMs: 10_000 };
 * const s = new Stream(limits, 3);
 * s.start(0, 0);
 * s.tick(0); // StreamAction.SEND, s.from = 0, s.to = 1
 * s.ack(1, 5); // StreamAction.NONE: progress
 * ```
 */
export class Stream {
  /** The limits. */
  readonly settings: StreamSettings;
  /** Numbers in the session. */
  readonly count: number;
  /** First offset of the last SEND action. */
  from = 0;
  /** One past the last offset of the last SEND action. */
  to = 0;
  /** The error code of the last CLOSE action. */
  code = 0;
  /** Next offset to send (everything below it was handed to the writer). */
  sent = 0;
  /** Offset the client acknowledged (it holds everything below). */
  acked = 0;
  /** Largest `sent − acked` this stream reached. */
  peak = 0;
  #lastHeard = 0;
  #lastProgress = 0;
  /** When `sent` last moved ahead of `acked`. */
  #lagSince = 0;
  /** Next paced send (grid time). */
  #due = 0;
  #busy = false;
  #state = LIVE;
  /** The rejected ACK offset, for the message. */
  #badAck = 0;
  /** When the CLOSE was decided, for the message. */
  #closedAt = 0;

  /**
   * @param settings window, pacing and liveness limits (shared, not copied)
   * @param count numbers in the session
   * @throws {RangeError} for a window below 1 or a count below 1
   */
  constructor(settings: StreamSettings, count: number) {
    if (!(settings.window >= 1) || !Number.isInteger(settings.window)) {
      throw new RangeError(`Window must be at least 1, got ${settings.window}`);
    }
    if (!(count >= 1) || !Number.isInteger(count)) {
      throw new RangeError(`Count must be at least 1, got ${count}`);
    }
    this.settings = settings;
    this.count = count;
  }

  /**
   * The WELCOME at `offset` was sent at `now`. At `offset = count` the client
   * holds FINAL already and only its ACK(count) is awaited (a re-ack).
   */
  start(offset: number, now: number): void {
    this.sent = this.acked = Math.min(offset, this.count);
    this.#lastHeard = this.#lastProgress = this.#lagSince = now;
    this.#due = now;
    this.#busy = false;
    this.#state = LIVE;
  }

  /** Whether FINAL was sent (or the client already had it at WELCOME). */
  get finalSent(): boolean {
    return this.sent === this.count;
  }

  /** Numbers sent and not acknowledged. */
  get unacked(): number {
    return this.sent - this.acked;
  }

  /**
   * Time passes: checks the liveness limits, then sends if the window, the
   * writer and (paced) the grid allow.
   */
  tick(now: number): StreamAction {
    if (this.#state !== LIVE) return StreamAction.NONE;
    const s = this.settings;
    // Deadlines are compared as nextWake() computes them: `now - t >= d`
    // can stay false at `now === t + d` by a rounding step, and a timer due
    // then would find nothing to do and be re-armed for the same instant
    // (found by the simulator, seed 46: a livelock at one instant).
    if (now >= this.#lastHeard + s.clientTimeoutMs) {
      return this.#close(ErrorCode.CLIENT_TIMEOUT, now);
    }
    if (
      this.sent > this.acked &&
      now >= Math.max(this.#lastProgress, this.#lagSince) + s.stallMs
    ) {
      return this.#close(ErrorCode.SLOW_CONSUMER, now);
    }
    if (s.intervalMs === 0) return this.#burst(now);
    if (now < this.#due || this.sent === this.count) return StreamAction.NONE;
    // This grid point is used up whether or not it sends (a full window or a
    // busy writer pauses the stream; it does not catch up later).
    const next = this.#due + s.intervalMs;
    this.#due = next > now ? next : now + s.intervalMs;
    if (this.#busy || this.sent - this.acked >= s.window) {
      return StreamAction.NONE;
    }
    return this.#send(this.sent + 1, now);
  }

  /**
   * The client acknowledged every offset below `n` at `now`. Any frame from
   * the client counts as being heard from.
   */
  ack(n: number, now: number): StreamAction {
    if (this.#state !== LIVE) return StreamAction.NONE;
    this.#lastHeard = now;
    if (n < this.acked || n > this.sent) {
      this.#badAck = n;
      return this.#close(ErrorCode.INVALID_OFFSET, now);
    }
    if (n > this.acked) {
      this.acked = n;
      this.#lastProgress = now;
    }
    if (n === this.count) {
      this.#state = COMPLETING;
      return StreamAction.COMPLETE;
    }
    return this.settings.intervalMs === 0
      ? this.#burst(now)
      : StreamAction.NONE;
  }

  /** The writer has handed every queued frame to the kernel. */
  writerIdle(now: number): StreamAction {
    this.#busy = false;
    if (this.#state !== LIVE || this.settings.intervalMs !== 0) {
      return StreamAction.NONE;
    }
    return this.#burst(now);
  }

  /**
   * When the next {@link tick} has something to do: the next paced send, the
   * client-timeout deadline or the stall deadline, whichever is first.
   * `Infinity` once the stream completed or closed. A burst stream sends from
   * `ack` and `writerIdle`, so only its deadlines count.
   */
  nextWake(): number {
    const wake = this.deadline();
    const s = this.settings;
    if (s.intervalMs !== 0 && this.sent < this.count && this.#due < wake) {
      return this.#due;
    }
    return wake;
  }

  /**
   * The earliest liveness deadline: when {@link tick} closes with
   * `CLIENT_TIMEOUT` (or `SLOW_CONSUMER`, while lagging) unless the client
   * is heard from (or acknowledges) first. `Infinity` once the stream
   * completed or closed.
   */
  deadline(): number {
    if (this.#state !== LIVE) return Infinity;
    const s = this.settings;
    let wake = this.#lastHeard + s.clientTimeoutMs;
    if (this.sent > this.acked) {
      const stall = Math.max(this.#lastProgress, this.#lagSince) + s.stallMs;
      if (stall < wake) wake = stall;
    }
    return wake;
  }

  /**
   * The ERROR message for the last CLOSE: a sentence for the client and the
   * logs (built only when closing).
   */
  message(): string {
    const s = this.settings;
    switch (this.code) {
      case ErrorCode.CLIENT_TIMEOUT:
        return `Heard nothing from the client for ${
          Math.round(this.#closedAt - this.#lastHeard)
        }ms (limit ${s.clientTimeoutMs}ms); the session stays resumable`;
      case ErrorCode.SLOW_CONSUMER:
        return `The client acknowledged none of ${
          this.sent - this.acked
        } numbers in flight for ${
          Math.round(
            this.#closedAt - Math.max(this.#lastProgress, this.#lagSince),
          )
        }ms (limit ${s.stallMs}ms); the session stays resumable`;
      case ErrorCode.INVALID_OFFSET:
        return `ACK ${this.#badAck} is outside ${this.acked}..${this.sent}, the offsets acknowledged and sent`;
      default:
        return `Stream closed with code ${this.code}`;
    }
  }

  #burst(now: number): StreamAction {
    const s = this.settings;
    if (this.#busy || this.sent === this.count) return StreamAction.NONE;
    const end = Math.min(this.count, this.acked + s.window);
    if (end <= this.sent) return StreamAction.NONE;
    return this.#send(end, now);
  }

  #send(to: number, now: number): StreamAction {
    if (this.sent === this.acked) this.#lagSince = now;
    this.from = this.sent;
    this.to = this.sent = to;
    const lag = to - this.acked;
    if (lag > this.peak) this.peak = lag;
    this.#busy = true;
    return to === this.count ? StreamAction.SEND_FINAL : StreamAction.SEND;
  }

  #close(code: number, now: number): StreamAction {
    this.#state = CLOSED;
    this.code = code;
    this.#closedAt = now;
    return StreamAction.CLOSE;
  }
}
