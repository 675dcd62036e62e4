/**
 * The in-memory session store: the default, for one server process.
 *
 * @module
 */

import type { Fence, SessionRecord, SessionStore } from "./types.ts";

/** Options for {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /** How often to delete records past `retainUntil` (ms). Default 1000. */
  sweepIntervalMs?: number;
  /** Clock, for tests. Default `Date.now`. */
  now?: () => number;
}

/**
 * A {@link SessionStore} in a `Map`. Records past `retainUntil` are deleted by
 * one sweep timer per store, which does not keep the process alive.
 *
 * @example
 * ```ts
 * await using store = new MemoryStore();
 * ```
 */
export class MemoryStore implements SessionStore {
  readonly kind = "memory";
  readonly #records = new Map<string, SessionRecord>();
  readonly #leases = new Map<string, number>();
  readonly #fences = new Map<string, Fence[]>();
  readonly #now: () => number;
  #timer: ReturnType<typeof setInterval> | undefined;

  /** @param opts sweep interval and clock */
  constructor(opts: MemoryStoreOptions = {}) {
    this.#now = opts.now ?? Date.now;
    const timer = setInterval(() => this.sweep(), opts.sweepIntervalMs ?? 1000);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  /** Records held, tombstones included (for tests and metrics). */
  get size(): number {
    return this.#records.size;
  }

  /** Deletes records whose `retainUntil` has passed. */
  sweep(): void {
    const now = this.#now();
    for (const [id, r] of this.#records) {
      if (r.retainUntil !== 0 && r.retainUntil <= now) this.#records.delete(id);
    }
  }

  get(id: string): Promise<SessionRecord | null> {
    return Promise.resolve(this.#records.get(id) ?? null);
  }

  create(rec: SessionRecord): Promise<boolean> {
    if (this.#records.has(rec.id)) return Promise.resolve(false);
    this.#records.set(rec.id, rec);
    return Promise.resolve(true);
  }

  replace(expectedEpoch: number, rec: SessionRecord): Promise<boolean> {
    const cur = this.#records.get(rec.id);
    if (!cur || cur.epoch !== expectedEpoch) return Promise.resolve(false);
    this.#records.set(rec.id, rec);
    return Promise.resolve(true);
  }

  remove(id: string, expectedEpoch: number): Promise<boolean> {
    const cur = this.#records.get(id);
    if (!cur || cur.epoch !== expectedEpoch) return Promise.resolve(false);
    this.#records.delete(id);
    return Promise.resolve(true);
  }

  renewLease(owner: string, until: number): Promise<void> {
    this.#leases.set(owner, until);
    return Promise.resolve();
  }

  leaseOf(owner: string): Promise<number | null> {
    return Promise.resolve(this.#leases.get(owner) ?? null);
  }

  fence(owner: string, fence: Fence): Promise<void> {
    const list = this.#fences.get(owner);
    if (list) list.push(fence);
    else this.#fences.set(owner, [fence]);
    return Promise.resolve();
  }

  drainFences(owner: string): Promise<Fence[]> {
    const list = this.#fences.get(owner) ?? [];
    this.#fences.delete(owner);
    return Promise.resolve(list);
  }

  close(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
