/**
 * A memory store that plays a Redis failover's lost tail, for the
 * deterministic failover tests: writes of one record status are
 * acknowledged and never applied, as a primary that answered and died
 * before any replica had them.
 *
 * @module
 */

import type { MemoryStore } from "../store/memory.ts";
import {
  type Fence,
  type Lease,
  type LeaseRead,
  type SessionRecord,
  type SessionStore,
  StoreUnconfirmedError,
} from "../store/types.ts";

/**
 * Writes of a record whose status is {@link lose} are dropped: acknowledged
 * (an unconfirmed store, `?replicas=0`), or, with {@link confirmed} set,
 * rejected with {@link StoreUnconfirmedError} (a confirmed store: the
 * primary took the write, its `WAIT` found no replica, and the failover
 * lost it).
 */
export class LossyStore implements SessionStore {
  readonly kind = "lossy";
  /** Writes of a record with this status are dropped. */
  lose: SessionRecord["status"] | undefined;
  /** Whether a dropped write is rejected as unconfirmed, not acknowledged. */
  confirmed = false;
  /** How many were dropped. */
  lost = 0;
  constructor(readonly inner: MemoryStore) {}
  get(id: string): Promise<SessionRecord | null> {
    return this.inner.get(id);
  }
  create(rec: SessionRecord): Promise<boolean> {
    if (rec.status === this.lose) return this.#drop(rec);
    return this.inner.create(rec);
  }
  replace(expected: number, rec: SessionRecord): Promise<boolean> {
    if (rec.status === this.lose) return this.#drop(rec);
    return this.inner.replace(expected, rec);
  }
  #drop(rec: SessionRecord): Promise<boolean> {
    this.lost++;
    if (this.confirmed) {
      return Promise.reject(
        new StoreUnconfirmedError(
          `The ${rec.status} record of session ${rec.id} is not confirmed: 0 of 1 replica(s) answered`,
        ),
      );
    }
    return Promise.resolve(true);
  }
  renewLease(owner: string, ms: number, hint: number): Promise<Lease> {
    return this.inner.renewLease(owner, ms, hint);
  }
  leaseOf(owner: string): Promise<LeaseRead> {
    return this.inner.leaseOf(owner);
  }
  collect(graceMs: number, limit: number): Promise<number> {
    return this.inner.collect(graceMs, limit);
  }
  fence(owner: string, f: Fence): Promise<void> {
    return this.inner.fence(owner, f);
  }
  drainFences(owner: string): Promise<Fence[]> {
    return this.inner.drainFences(owner);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
