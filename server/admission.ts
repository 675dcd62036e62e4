/**
 * Admission of accepted transports: the per-address handshake rate limit and the
 * `--max-connections` ceiling. A refused transport gets a `server_busy` ERROR
 * and is half-closed and drained, so that its unread hello cannot turn the
 * close into a reset that destroys the frame before the peer reads it.
 *
 * @module
 */

import type { Clock } from "../common/clock.ts";
import type { Logger } from "../common/logger.ts";
import { ErrorCode } from "../protocol/errors.ts";
import { encodeMessage } from "../protocol/messages.ts";
import type { Counters } from "./metrics.ts";
import { addressKey, RateLimiter } from "./rate_limit.ts";
import type { Transport } from "./transport.ts";

/** Options for {@link Admission}. */
export interface AdmissionOptions {
  /** Connections held at most. */
  maxConnections: number;
  /** New connections per second from one address; unlimited when absent. */
  maxHandshakesPerSec?: number | undefined;
  /** Counters to update. */
  counters: Counters;
  /** Logger. */
  log: Logger;
  /** Clock of the rate limit (monotonic) and of the refusal time limit. */
  clock: Clock;
}

/** How long a refusal may take before its socket is closed regardless (ms). */
const REFUSAL_LIMIT_MS = 1000;

/** Admits or refuses accepted sockets. */
export class Admission {
  readonly #o: AdmissionOptions;
  readonly #limiter: RateLimiter | undefined;
  readonly #busy: Uint8Array;
  readonly #refusing = new Set<Promise<void>>();

  /**
   * @param opts limits, counters and logger
   * @throws {RangeError} for a rate that is not a positive number
   */
  constructor(opts: AdmissionOptions) {
    this.#o = opts;
    this.#limiter = opts.maxHandshakesPerSec === undefined
      ? undefined
      : new RateLimiter({
        ratePerSec: opts.maxHandshakesPerSec,
        clock: opts.clock,
      });
    this.#busy = encodeMessage({
      type: "error",
      code: ErrorCode.SERVER_BUSY,
      message:
        `Server is at its limit of ${opts.maxConnections} connections; retry later`,
    });
  }

  /**
   * Decides on an accepted transport while `open` connections are held:
   * `true` to serve it; `false` when it was refused (it is being answered
   * and closed).
   */
  admit(conn: Transport, open: number): boolean {
    const { counters, log, maxHandshakesPerSec } = this.#o;
    const host = conn.remoteAddr.hostname;
    if (this.#limiter !== undefined && !this.#limiter.take(addressKey(host))) {
      counters.connectionsRejectedRate++;
      log.debug("handshake rate limit", {
        remote: host,
        limit: maxHandshakesPerSec,
      });
      this.#refuse(
        conn,
        encodeMessage({
          type: "error",
          code: ErrorCode.SERVER_BUSY,
          message:
            `Too many connections from ${host}: the limit is ${maxHandshakesPerSec} per second; retry later`,
        }),
      );
      return false;
    }
    if (open >= this.#o.maxConnections) {
      counters.connectionsRejectedBusy++;
      this.#refuse(conn, this.#busy);
      return false;
    }
    return true;
  }

  /** Resolves when every refusal in progress has closed its transport. */
  async drain(): Promise<void> {
    await Promise.all(this.#refusing);
  }

  /**
   * Answers with an error frame and closes, bounded in time (a TLS peer may
   * never finish its handshake): write, half-close (when the transport
   * can), read until the peer closes, close.
   */
  #refuse(conn: Transport, frame: Uint8Array): void {
    const { clock } = this.#o;
    const close = () => conn.close();
    const timer = clock.setTimeout(close, REFUSAL_LIMIT_MS);
    const p = (async () => {
      try {
        let off = 0;
        while (off < frame.length) off += await conn.write(frame.subarray(off));
        await conn.closeWrite?.();
        const sink = new Uint8Array(512);
        while (await conn.read(sink) !== null) { /* drain */ }
      } catch {
        // the peer went away, or the timer closed the socket
      } finally {
        clock.clearTimeout(timer);
        close();
      }
    })();
    this.#refusing.add(p);
    p.finally(() => this.#refusing.delete(p));
  }
}
