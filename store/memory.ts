/**
 * The in-memory session store: the default, for one server process.
 *
 * Its injected clock's wall reading is the store clock: leases and retention are judged by
 * it. Attached records (`retainUntil = 0`) are indexed by owner, so that
 * {@link MemoryStore.collect} can delete a dead owner's records; leases stay
 * until collected.
 *
 * @module
 */

import { type Clock, systemClock, type TimerId } from "../common/clock.ts";
import type {
  Fence,
  Lease,
  LeaseRead,
  SessionRecord,
  SessionStore,
} from "./types.ts";

/** Options for {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /** How often to delete records past `retainUntil` (ms). Default 1000. */
  sweepIntervalMs?: number;
  /**
   * The store clock: its wall reading judges leases and retention, and its
   * timer runs the sweep. Default {@link systemClock}.
   */
  clock?: Clock;
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
  readonly #leases = new Map<string, Lease>();
  readonly #fences = new Map<string, Fence[]>();
  /** Owner → ids of the records attached to it. */
  readonly #owned = new Map<string, Set<string>>();
  readonly #clock: Clock;
  readonly #sweepMs: number;
  #timer: TimerId | undefined;
  #closed = false;

  /** @param opts sweep interval and clock */
  constructor(opts: MemoryStoreOptions = {}) {
    this.#clock = opts.clock ?? systemClock;
    this.#sweepMs = opts.sweepIntervalMs ?? 1000;
    this.#arm();
  }

  /** Arms the next sweep (one unref'd timer, re-armed after each sweep). */
  #arm(): void {
    this.#timer = this.#clock.setTimeout(
      () => {
        this.#timer = undefined;
        if (this.#closed) return;
        this.sweep();
        this.#arm();
      },
      this.#sweepMs,
      { unref: true },
    );
  }

  /** Records held, tombstones included (for tests and metrics). */
  get size(): number {
    return this.#records.size;
  }

  /** Deletes records whose `retainUntil` has passed. */
  sweep(): void {
    const now = this.#clock.now();
    // forEach, not for-of over entries: no [id, record] pair per record
    // (every second, over every record and tombstone; the simulator's
    // largest single source of garbage once).
    this.#records.forEach((r, id) => {
      if (r.retainUntil !== 0 && r.retainUntil <= now) this.#put(id, null);
    });
  }

  get(id: string): Promise<SessionRecord | null> {
    return Promise.resolve(this.#records.get(id) ?? null);
  }

  create(rec: SessionRecord): Promise<boolean> {
    if (this.#records.has(rec.id)) return Promise.resolve(false);
    this.#put(rec.id, rec);
    return Promise.resolve(true);
  }

  replace(expectedEpoch: number, rec: SessionRecord): Promise<boolean> {
    const cur = this.#records.get(rec.id);
    if (!cur || cur.epoch !== expectedEpoch) return Promise.resolve(false);
    this.#put(rec.id, rec);
    return Promise.resolve(true);
  }

  renewLease(
    owner: string,
    leaseMs: number,
    _clockHint?: number,
  ): Promise<Lease> {
    const now = this.#clock.now();
    const lease = { renewedAt: now, until: now + leaseMs };
    this.#leases.set(owner, lease);
    return Promise.resolve(lease);
  }

  leaseOf(owner: string): Promise<LeaseRead> {
    return Promise.resolve({
      lease: this.#leases.get(owner) ?? null,
      now: this.#clock.now(),
    });
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

  /** Scans the leases (one per server) for a dead owner; see {@link SessionStore.collect}. */
  collect(graceMs: number, limit: number): Promise<number> {
    const now = this.#clock.now();
    let deleted = 0;
    for (const owner of this.#leases.keys()) {
      if (this.#leases.get(owner)!.until + graceMs > now) continue;
      const ids = this.#owned.get(owner) ?? new Set<string>();
      for (const id of ids) {
        if (deleted >= limit) return Promise.resolve(deleted);
        if (this.#records.get(id)?.owner === owner) {
          this.#put(id, null);
          deleted++;
        } else ids.delete(id);
      }
      this.#owned.delete(owner);
      this.#leases.delete(owner);
      this.#fences.delete(owner);
      break;
    }
    return Promise.resolve(deleted);
  }

  /**
   * Deletes a record outright, as an operator's `DEL` would: for fault
   * injection (tests, the simulator), not part of {@link SessionStore}.
   */
  delete(id: string): void {
    this.#put(id, null);
  }

  /**
   * Copies every record, lease and takeover notice into `into` (an empty
   * store), as a replica's full resync would: the simulator's asynchronous
   * replica is made this way.
   */
  copyInto(into: MemoryStore): MemoryStore {
    for (const [id, r] of this.#records) into.#put(id, r);
    for (const [o, l] of this.#leases) into.#leases.set(o, l);
    for (const [o, f] of this.#fences) into.#fences.set(o, [...f]);
    return into;
  }

  /** The record of `id` as it is now, read synchronously (tests, the simulator). */
  peek(id: string): SessionRecord | null {
    return this.#records.get(id) ?? null;
  }

  /** The lease of `owner` as it is now, read synchronously (tests, the simulator). */
  peekLease(owner: string): Lease | null {
    return this.#leases.get(owner) ?? null;
  }

  /** Every record, for checks at quiescence (tests, the simulator). */
  records(): IterableIterator<SessionRecord> {
    return this.#records.values();
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Writes (or deletes, `null`) the record and keeps the owner index in step. */
  #put(id: string, rec: SessionRecord | null): void {
    const old = this.#records.get(id)?.owner ?? "";
    const owner = rec?.owner ?? "";
    if (old !== owner && old !== "") {
      const set = this.#owned.get(old);
      set?.delete(id);
      if (set?.size === 0) this.#owned.delete(old);
    }
    if (owner !== "") {
      let set = this.#owned.get(owner);
      if (set === undefined) this.#owned.set(owner, set = new Set());
      set.add(id);
    }
    if (rec === null) this.#records.delete(id);
    else this.#records.set(id, rec);
  }
}
