/**
 * Fixtures the unit tests of the session manager's parts share (`claims`,
 * `completion`, `detached`, `judge`, `write_back`): the lifecycle rules of
 * server "a", a session record to vary field by field, a flaky store on a
 * fake clock, and a write-back host that holds nothing.
 *
 * ```ts
 * const { clock, store } = fakeStore();
 * const wb = new WriteBack(writeBackHost(store));
 * await store.create(sessionRecord({ epoch: 3, owner: "b" }));
 * ```
 *
 * @module
 */

import { FakeClock } from "../common/fake_clock.ts";
import { FlakyStore } from "../store/_flaky.ts";
import type { SessionRecord, SessionStore } from "../store/types.ts";
import type { LifecycleRules } from "./lifecycle.ts";
import type { WriteBackHost } from "./write_back.ts";

/** The rules of server "a": a 1 s TTL, tombstones kept 5 s. */
export const RULES: LifecycleRules = {
  serverId: "a",
  ttlMs: 1000,
  tombstoneMs: 5000,
};

/** The fake clock's start (wall and store time, ms). */
export const NOW = 1_000_000;

/**
 * Session "s" (10 numbers, token all zeros), live and attached to server
 * "a" at epoch 2; `over` replaces any field.
 */
export function sessionRecord(
  over: Partial<SessionRecord> = {},
): SessionRecord {
  return {
    id: "s",
    seed: "0123456789abcdef",
    count: 10,
    token: "00".repeat(16),
    epoch: 2,
    owner: "a",
    status: "live",
    expiresAt: 0,
    retainUntil: 0,
    ...over,
  };
}

/** A fault-injecting memory store on a fake clock that starts at {@link NOW}. */
export function fakeStore(): { clock: FakeClock; store: FlakyStore } {
  const clock = new FakeClock(NOW, 0);
  return { clock, store: new FlakyStore({ clock }) };
}

/**
 * A write-back host whose store calls go straight to `store` and that holds
 * no session, has no handshake in flight and ignores what the write-back
 * reports; `over` replaces any of its parts.
 */
export function writeBackHost(
  store: SessionStore,
  over: Partial<WriteBackHost> = {},
): WriteBackHost {
  return {
    op: (_name, fn) => fn(store),
    written: () => {},
    lost: () => {},
    notify: () => {},
    missing: () => {},
    held: () => undefined,
    heldIds: () => [],
    handshaking: () => false,
    closed: () => false,
    ...over,
  };
}
