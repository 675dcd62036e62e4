/**
 * The sessions attached here: the record each connection holds, as written
 * at attach time, and the rules that decide when a connection still holds
 * its session. An attachment ends in one of four ways:
 *
 * - **Detach** (the connection ended): the record moves to the sessions
 *   detached here ({@link DetachedSessions}), resumable for the TTL.
 * - **Release** (fenced, or shutting down): forgotten, no store write.
 * - **Adopt** (a handshake here attached the session anew): whatever this
 *   server held about the session (detached, a write pending) is dropped,
 *   and a connection here that still held it is closed at
 *   {@link localFenceEpoch}.
 * - **Fence** (a takeover notice): whatever this server holds below the
 *   notice's epoch is no longer its own; a connection is closed at it.
 *
 * A connection holds its session while the record attached here has its
 * epoch ({@link Attachments.holds}); the manager's later writes are
 * compare-and-sets on that record's epoch.
 *
 * @example
 * ```ts
 * const attached = new Attachments({ detached, writeBack, counters, onFenced });
 * attached.adopt(rec, "resume");
 * attached.holds({ id: rec.id, epoch: rec.epoch }); // true
 * await attached.detach({ id: rec.id, epoch: rec.epoch });
 * ```
 *
 * @module
 */

import type { Fence, SessionRecord } from "../store/types.ts";
import type { DetachedSessions } from "./detached.ts";
import { isFenced, localFenceEpoch } from "./lifecycle.ts";
import type { Counters } from "./metrics.ts";
import type { WriteBack } from "./write_back.ts";

/** What identifies an attachment: its session and the epoch it holds. */
export interface Held {
  readonly id: string;
  readonly epoch: number;
}

/** What {@link Attachments} needs from the session layer. */
export interface AttachmentsHost {
  /** The sessions detached here: where a detach goes, and what a fence or adoption drops. */
  readonly detached: Pick<
    DetachedSessions,
    "detach" | "delete" | "fenced" | "get" | "ids"
  >;
  /** The writes pending: dropped by a fence or an adoption. */
  readonly writeBack: Pick<WriteBack, "adopted" | "fenced" | "get">;
  /** Counts sessions taken over. */
  readonly counters: Pick<Counters, "sessionsTakenOver">;
  /** Closes the connection here that holds `id`, below `epoch`. */
  onFenced(id: string, epoch: number): void;
}

/** The sessions attached here, and what ends an attachment. */
export class Attachments {
  readonly #host: AttachmentsHost;
  readonly #attached = new Map<string, SessionRecord>();

  /** @param host the session layer's side */
  constructor(host: AttachmentsHost) {
    this.#host = host;
  }

  /** Sessions attached here. */
  get size(): number {
    return this.#attached.size;
  }

  /** The record `att` holds, if it still holds its session. */
  record(att: Held): SessionRecord | undefined {
    const rec = this.#attached.get(att.id);
    return rec?.epoch === att.epoch ? rec : undefined;
  }

  /** Whether `att` still holds its session here (not fenced, not ended). */
  holds(att: Held): boolean {
    return this.record(att) !== undefined;
  }

  /** Whether `rec` is still the record attached here for its session. */
  current(rec: SessionRecord): boolean {
    return this.#attached.get(rec.id) === rec;
  }

  /** The record this server means `id` to have: detached here, or attached here. */
  held(id: string): SessionRecord | undefined {
    return this.#host.detached.get(id)?.value ?? this.#attached.get(id);
  }

  /** Whether this server holds `id`: attached, detached here, or a write pending. */
  holdsHere(id: string): boolean {
    return this.held(id) !== undefined ||
      this.#host.writeBack.get(id) !== undefined;
  }

  /** The ids held here, attached or detached, in no particular order. */
  heldIds(): string[] {
    return [...this.#attached.keys(), ...this.#host.detached.ids()];
  }

  /**
   * Attaches `rec` here for a handshake `by`, dropping whatever this server
   * held about the session; a connection here that still held it is closed
   * ({@link localFenceEpoch}).
   */
  adopt(rec: SessionRecord, by: "hello" | "resume"): void {
    const local = this.#attached.get(rec.id);
    this.#host.detached.delete(rec.id);
    this.#host.writeBack.adopted(rec.id, rec.epoch);
    this.#attached.set(rec.id, rec);
    if (local === undefined) return;
    this.#takenOver(rec.id, localFenceEpoch(by, rec.epoch, local.epoch));
  }

  /**
   * Detaches `att` after its connection ended, if it still holds its
   * session: the record moves to the sessions detached here. Resolves once
   * the detach write settled or was kept.
   */
  async detach(att: Held): Promise<void> {
    const rec = this.record(att);
    if (rec === undefined) return;
    this.#attached.delete(att.id);
    await this.#host.detached.detach(rec);
  }

  /** Forgets `att` without touching the store (fenced, or shutting down). */
  release(att: Held): void {
    if (this.holds(att)) this.#attached.delete(att.id);
  }

  /** Forgets `rec` (completed) if it is still the record attached here. */
  forget(rec: SessionRecord): void {
    if (this.current(rec)) this.#attached.delete(rec.id);
  }

  /** A takeover notice: whatever this server holds below its epoch is no longer its own. */
  fenced(f: Fence): void {
    const a = this.#attached.get(f.id);
    if (a !== undefined && isFenced(f, a.epoch)) {
      this.#attached.delete(f.id);
      this.#takenOver(f.id, f.epoch);
    }
    this.#host.detached.fenced(f);
    this.#host.writeBack.fenced(f);
  }

  #takenOver(id: string, epoch: number): void {
    this.#host.counters.sessionsTakenOver++;
    this.#host.onFenced(id, epoch);
  }
}
