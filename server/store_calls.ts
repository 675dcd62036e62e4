/**
 * The session layer's calls to its store, in one place: each is counted by
 * its `op` label (`seqstream_store_ops_total`), timed for the latency
 * histogram, its failure turned into the retriable `store_unavailable`
 * refusal (and counted), and tracked until it settles, so that closing the
 * session layer can wait for every call in flight before the store closes.
 *
 * @example
 * ```ts
 * const calls = new StoreCalls(store, { counters, clock: systemClock, log });
 * const rec = await calls.op("get", (s) => s.get(id)); // rejects with ProtocolError
 * await calls.drain();
 * ```
 *
 * @module
 */

import type { Clock } from "../common/clock.ts";
import type { Logger } from "../common/logger.ts";
import { ErrorCode, ProtocolError } from "../protocol/errors.ts";
import {
  type SessionStore,
  StoreUnavailableError,
  StoreUnconfirmedError,
} from "../store/types.ts";
import type { Counters } from "./metrics.ts";

/**
 * The `op` labels of `seqstream_store_ops_total` that the server's heartbeat
 * spends, whatever its sessions do: `lease_check` and `lease_renew` (its own
 * lease), `fence_drain` (takeover notices), `collect` (one bounded batch of
 * a dead server's records) and `resync` (writing its sessions back after the
 * store lost data). Every other label is spent on behalf of a session and is
 * bounded per session.
 */
export const SERVER_STORE_OPS: ReadonlySet<string> = new Set([
  "lease_check",
  "lease_renew",
  "fence_drain",
  "collect",
  "resync",
]);

/** What {@link StoreCalls} reports to. */
export interface StoreCallsOptions {
  /** `storeErrors` and `storeUnconfirmed` are counted here. */
  counters: Counters;
  /** Times each call (monotonic). */
  clock: Clock;
  /** A lifecycle call that failed with something other than a refusal. */
  log: Logger;
  /** Told how long each call took, failed or not. */
  observe?: ((op: string, ms: number) => void) | undefined;
}

/** The refusal a failed store call is answered with. */
export function unavailable(message: string, cause?: unknown): ProtocolError {
  return new ProtocolError(ErrorCode.STORE_UNAVAILABLE, message, { cause });
}

/** Counted, timed, tracked store calls whose failures are refusals. */
export class StoreCalls {
  readonly #store: SessionStore;
  readonly #o: StoreCallsOptions;
  readonly #counts = new Map<string, number>();
  readonly #inflight = new Set<Promise<unknown>>();

  /** @param store the backend; @param opts where calls are reported */
  constructor(store: SessionStore, opts: StoreCallsOptions) {
    this.#store = store;
    this.#o = opts;
  }

  /** Calls made, by `op` label, failed ones included. */
  get counts(): ReadonlyMap<string, number> {
    return this.#counts;
  }

  /**
   * Runs `fn` on the store, counted under `name`.
   *
   * @throws {ProtocolError} `STORE_UNAVAILABLE` when the store call fails
   */
  op<T>(name: string, fn: (s: SessionStore) => Promise<T>): Promise<T> {
    this.#counts.set(name, (this.#counts.get(name) ?? 0) + 1);
    const { clock, counters, observe } = this.#o;
    const t0 = observe === undefined ? 0 : clock.monotonic();
    return this.track((async () => {
      try {
        return await fn(this.#store);
      } catch (cause) {
        counters.storeErrors++;
        if (cause instanceof StoreUnconfirmedError) {
          counters.storeUnconfirmed++;
        }
        const msg = cause instanceof StoreUnavailableError
          ? cause.message
          : String(cause);
        throw unavailable(
          `Session store (${this.#store.kind}) is unavailable: ${msg}`,
          cause,
        );
      } finally {
        observe?.(name, clock.monotonic() - t0);
      }
    })());
  }

  /**
   * Runs a lifecycle call (an open, a resume): tracked, and only ever
   * rejecting with a {@link ProtocolError}; anything else is logged and
   * answered `STORE_UNAVAILABLE`.
   */
  call<T>(fn: () => Promise<T>): Promise<T> {
    return this.track((async () => {
      try {
        return await fn();
      } catch (e) {
        if (e instanceof ProtocolError) throw e;
        this.#o.log.error("session call failed", { error: String(e) });
        throw unavailable(`Session store call failed: ${String(e)}`, e);
      }
    })());
  }

  /** Keeps `p` in flight (for {@link drain}) until it settles. */
  track<T>(p: Promise<T>): Promise<T> {
    this.#inflight.add(p);
    const done = () => this.#inflight.delete(p);
    p.then(done, done);
    return p;
  }

  /** Waits until nothing is in flight, calls started meanwhile included. */
  async drain(): Promise<void> {
    while (this.#inflight.size > 0) {
      await Promise.allSettled([...this.#inflight]);
    }
  }
}
