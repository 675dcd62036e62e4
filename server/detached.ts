/**
 * The sessions detached here and awaiting resume: their detach writes and,
 * once the deadline comes, their expiry tombstones. The records are queued
 * by deadline ({@link ExpiryQueue}, one timer, on the store's time as seen
 * from here); what to write is {@link detachRecord} and {@link judgeExpiry}
 * in `lifecycle.ts`; a write the store misses is kept by the write-back and
 * retried by the heartbeat.
 *
 * - **Detach.** The session stays resumable for the TTL from now (every
 *   disconnect restarts the clock). The record is queued at once, so this
 *   server refuses a resume past the deadline by what it knows even while
 *   the store is down. A compare-and-set that fails (resumed elsewhere, or
 *   the store lost the record) is kept while the session is still queued:
 *   the takeover notice, drained by the next heartbeat before it flushes,
 *   drops it at no cost, or the flush reads the record back and tells which.
 * - **Expiry.** A tombstone over the detached record; one whose detach never
 *   reached the store is left to the heartbeat, which writes the tombstone
 *   in the detach's place. A tombstone that fails its compare-and-set means
 *   the session was resumed elsewhere, or already expired by a resume that
 *   came too late.
 *
 * @example
 * ```ts
 * const detached = new DetachedSessions(rules, clock, { writeBack, storeNow, expired, track });
 * await detached.detach(attachedRecord); // queued, then written
 * detached.get(id)?.deadline;
 * ```
 *
 * @module
 */

import type { Clock } from "../common/clock.ts";
import type { Fence, SessionRecord } from "../store/types.ts";
import { type ExpiryEntry, ExpiryQueue } from "./expiry.ts";
import {
  detachRecord,
  isFenced,
  judgeExpiry,
  type LifecycleRules,
} from "./lifecycle.ts";
import type { WriteBack } from "./write_back.ts";

/** A session detached here and awaiting resume, as `/sessions` shows it. */
export interface DetachedView {
  readonly id: string;
  readonly count: number;
  readonly epoch: number;
  /** How long it stays resumable (ms). */
  readonly expiresInMs: number;
}

/** What {@link DetachedSessions} needs from the session layer. */
export interface DetachedHost {
  /** Where the writes go, and are kept when the store misses them. */
  readonly writeBack: Pick<WriteBack, "write" | "keep" | "get">;
  /** The store's time, as this server sees it. */
  storeNow(): number;
  /** A session's expiry tombstone was written. */
  expired(id: string): void;
  /** Keeps the expiry writes in flight until they settle (for closing). */
  track(p: Promise<void>): void;
}

/** The sessions detached here, their detach writes and their expiry. */
export class DetachedSessions {
  readonly #rules: LifecycleRules;
  readonly #host: DetachedHost;
  readonly #queue: ExpiryQueue<SessionRecord>;

  /**
   * @param rules the lifecycle settings (TTL, tombstone period)
   * @param clock arms the expiry timer
   * @param host the session layer's side
   */
  constructor(rules: LifecycleRules, clock: Clock, host: DetachedHost) {
    this.#rules = rules;
    this.#host = host;
    this.#queue = new ExpiryQueue(
      clock,
      () => host.storeNow(),
      (due) => host.track(this.#expire(due)),
    );
  }

  /** Sessions detached here. */
  get size(): number {
    return this.#queue.size;
  }

  /** The entry of `id`: the detach record as written (or meant to be) and its deadline. */
  get(id: string): ExpiryEntry<SessionRecord> | undefined {
    return this.#queue.get(id);
  }

  /** The ids detached here, in no particular order. */
  ids(): IterableIterator<string> {
    return this.#queue.ids();
  }

  /** Forgets `id` (attached again, or taken over), with no store write. */
  delete(id: string): void {
    this.#queue.delete(id);
  }

  /**
   * Detaches `rec` (attached here until now): queued at its deadline, then
   * written over `rec`'s epoch. Resolves once the write settled or was kept.
   */
  async detach(rec: SessionRecord): Promise<void> {
    const next = detachRecord(this.#rules, rec, this.#host.storeNow());
    this.#queue.add(rec.id, next.expiresAt, next);
    const wb = this.#host.writeBack;
    const ok = await wb.write(rec.epoch, next);
    if (ok === false && this.#queue.get(rec.id)?.value === next) {
      wb.keep(rec.id, rec.epoch, next);
    }
  }

  /** A takeover notice: a session detached here below its epoch is no longer this server's. */
  fenced(f: Fence): void {
    const d = this.#queue.get(f.id);
    if (d !== undefined && isFenced(f, d.value.epoch)) this.#queue.delete(f.id);
  }

  /** `limit` sessions at most from the `skip`th on, in no particular order. O(skip + limit). */
  *views(skip: number, limit: number): Iterable<DetachedView> {
    const now = this.#host.storeNow();
    let i = 0, n = 0;
    for (const id of this.#queue.ids()) {
      if (n >= limit) return;
      if (i++ < skip) continue;
      n++;
      const e = this.#queue.get(id);
      if (e === undefined) continue;
      yield {
        id,
        count: e.value.count,
        epoch: e.value.epoch,
        expiresInMs: Math.max(0, e.deadline - now),
      };
    }
  }

  /** Stops the expiry timer. Idempotent. */
  close(): void {
    this.#queue.close();
  }

  async #expire(due: ExpiryEntry<SessionRecord>[]): Promise<void> {
    const wb = this.#host.writeBack;
    for (const d of due) {
      const v = judgeExpiry(
        this.#rules,
        d,
        wb.get(d.id),
        this.#host.storeNow(),
      );
      if (v.type === "keep") wb.keep(d.id, v.expected, v.rec);
      else if (v.type === "write") {
        if (await wb.write(v.expected, v.rec)) this.#host.expired(d.id);
      }
    }
  }
}
