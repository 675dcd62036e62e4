/**
 * Test helper: a {@link MemoryStore} that can be taken down (every call
 * rejects), wiped (a restart without persistence), made to apply a replace
 * and then fail (a Redis command that timed out after it ran), or held
 * (writes wait until released).
 *
 * @module
 */

import { MemoryStore, type MemoryStoreOptions } from "./memory.ts";
import {
  type Fence,
  type SessionRecord,
  type SessionStore,
  StoreUnavailableError,
} from "./types.ts";

/** A store that fails on demand, for outage tests. */
export class FlakyStore implements SessionStore {
  readonly kind = "flaky";
  /** Every call rejects while set. */
  down = false;
  /** `create` and `replace` apply the write, then reject, while set. */
  applyThenFail = false;
  /** While set, `replace` waits for it before it runs. */
  hold: Promise<void> | undefined;
  readonly #opts: MemoryStoreOptions;
  #inner: MemoryStore;

  /** @param opts for the memory store inside (its clock) */
  constructor(opts: MemoryStoreOptions = {}) {
    this.#opts = opts;
    this.#inner = new MemoryStore(opts);
  }

  /** The memory store inside. */
  get inner(): MemoryStore {
    return this.#inner;
  }

  #call<T>(fn: (s: MemoryStore) => Promise<T>): Promise<T> {
    return this.down
      ? Promise.reject(new StoreUnavailableError("Store is down"))
      : fn(this.#inner);
  }

  /** Loses every record, lease and fence. */
  wipe(): void {
    void this.#inner.close();
    this.#inner = new MemoryStore(this.#opts);
  }

  /**
   * Loses the record of `id` alone, leases untouched: a failover that lost
   * the last writes of one shard. (Records whose `retainUntil` has passed
   * go with it: the memory store has no delete but its sweep.)
   */
  async lose(id: string): Promise<void> {
    const rec = await this.#inner.get(id);
    if (rec === null) return;
    await this.#inner.replace(rec.epoch, { ...rec, retainUntil: 1 });
    this.#inner.sweep();
  }
  get(id: string): Promise<SessionRecord | null> {
    return this.#call((s) => s.get(id));
  }
  async create(rec: SessionRecord): Promise<boolean> {
    const ok = await this.#call((s) => s.create(rec));
    if (this.applyThenFail) {
      throw new StoreUnavailableError("Command timed out (it was applied)");
    }
    return ok;
  }
  async replace(expected: number, rec: SessionRecord): Promise<boolean> {
    if (this.hold) await this.hold;
    const ok = await this.#call((s) => s.replace(expected, rec));
    if (this.applyThenFail) {
      throw new StoreUnavailableError("Command timed out (it was applied)");
    }
    return ok;
  }
  renewLease(owner: string, leaseMs: number, hint: number) {
    return this.#call((s) => s.renewLease(owner, leaseMs, hint));
  }
  leaseOf(owner: string) {
    return this.#call((s) => s.leaseOf(owner));
  }
  collect(graceMs: number, limit: number): Promise<number> {
    return this.#call((s) => s.collect(graceMs, limit));
  }
  fence(owner: string, f: Fence): Promise<void> {
    return this.#call((s) => s.fence(owner, f));
  }
  drainFences(owner: string): Promise<Fence[]> {
    return this.#call((s) => s.drainFences(owner));
  }
  close(): Promise<void> {
    return this.#inner.close();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
