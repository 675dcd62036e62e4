/**
 * Recording a completion in the store: after the client's ack the session's
 * state is discarded, and only a tombstone remains so that a late resume
 * gets an honest `session_completed`. The tombstone is a compare-and-set
 * over the epoch the attachment holds; if that fails because the store lost
 * the record of a session still attached here, the completion stands and
 * the tombstone is created anew (and the caller treats it as a data loss:
 * every other session it holds is written back).
 *
 * @example
 * ```ts
 * const { ok, lostRecord } = await recordCompletion(rules, op, attached, storeNow);
 * ```
 *
 * @module
 */

import type { SessionRecord, SessionStore } from "../store/types.ts";
import { type LifecycleRules, tombstone } from "./lifecycle.ts";

/** How a completion went: `ok` if the tombstone is in; `lostRecord` if the store had lost the record. */
export interface Completion {
  readonly ok: boolean;
  readonly lostRecord: boolean;
}

/**
 * Writes the tombstone of `rec` (attached here), completed at `storeNow`.
 * `ok` is false when the session moved on (taken over elsewhere).
 *
 * @param op runs a store operation counted under its name
 * @throws {ProtocolError} `STORE_UNAVAILABLE` when a store call fails
 */
export async function recordCompletion(
  rules: LifecycleRules,
  op: <T>(name: string, fn: (s: SessionStore) => Promise<T>) => Promise<T>,
  rec: SessionRecord,
  storeNow: number,
): Promise<Completion> {
  const tomb = tombstone(rules, rec, "completed", storeNow, storeNow);
  if (await op("replace", (s) => s.replace(rec.epoch, tomb))) {
    return { ok: true, lostRecord: false };
  }
  if ((await op("get", (s) => s.get(rec.id))) !== null) {
    return { ok: false, lostRecord: false };
  }
  return { ok: await op("create", (s) => s.create(tomb)), lostRecord: true };
}
