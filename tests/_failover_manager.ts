/**
 * The {@link SessionManager} the deterministic failover tests
 * (`completed_failover_test.ts`, `expired_failover_test.ts`) run: one
 * {@link FakeClock}, a 1 s TTL and a 300 ms lease, and a way to read the
 * protocol refusal a call ends with.
 *
 * @module
 */

import type { FakeClock } from "../common/fake_clock.ts";
import { silentLogger } from "../common/logger.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { newCounters } from "../server/metrics.ts";
import { SessionManager } from "../server/sessions.ts";
import type { SessionStore } from "../store/types.ts";
import { assert_ } from "./_assert.ts";

/** The managers' session TTL (ms). */
export const TTL = 1000;
/** The managers' lease (ms). */
export const LEASE = 300;

/** A resume token filled with `b`. */
export const tok = (b: number): Uint8Array => new Uint8Array(16).fill(b);

/** A started manager named `id` on `store`, with its counters, closed on dispose. */
export async function manager(
  store: SessionStore,
  clock: FakeClock,
  id: string,
): Promise<
  SessionManager & {
    counters: ReturnType<typeof newCounters>;
    [Symbol.asyncDispose](): Promise<void>;
  }
> {
  const counters = newCounters();
  const m = new SessionManager(store, {
    serverId: id,
    ttlMs: TTL,
    leaseMs: LEASE,
    tombstoneMs: 60_000,
    counters,
    log: silentLogger,
    onFenced: () => {},
    clock,
  });
  await m.start();
  return Object.assign(m, {
    counters,
    [Symbol.asyncDispose]: () => m.close(),
  });
}

/** "ok", or the code of the {@link ProtocolError} `p` rejects with (anything else fails). */
export async function codeOf(p: Promise<unknown>): Promise<number | "ok"> {
  try {
    await p;
    return "ok";
  } catch (e) {
    assert_(e instanceof ProtocolError, `not a ProtocolError: ${e}`);
    return e.code;
  }
}
