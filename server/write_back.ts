/**
 * The write-back: store writes this server made and the store has not
 * confirmed (a detach or a tombstone during an outage, or one whose reply
 * was lost), retried by the heartbeat, and the resync that writes every
 * session this server holds back into a store that lost its data.
 *
 * A retried compare-and-set that fails is not taken as "someone else moved
 * on" until the stored record has been read: a write that timed out may
 * have been applied (Redis), and then the store already holds exactly what
 * was meant, which counts as written.
 *
 * An unanswered handshake write that took a session over from another
 * server owes that server its takeover notice, but only if it was applied:
 * a notice for a write that never was would end a connection that still
 * holds the session, and leave its record attached with nobody to detach
 * it. So the notice waits here with the write's undoing, and goes out once
 * this server sees the record at the notice's epoch or later (the flush
 * reads it back, a handshake here attaches the session again, or a notice
 * fences it here): from then on the old owner's epoch is stale whichever
 * way the record got there (simulator seed 367710922: the next resume
 * here found the record as its own and told nobody, and the old owner's
 * connection streamed on until its client timeout).
 *
 * @module
 */

import type { Fence, SessionRecord, SessionStore } from "../store/types.ts";

/** A write the store has not confirmed: `rec` if the record's epoch is still `expected`. */
export interface Pending {
  /** The epoch the record must have for the write to apply. */
  readonly expected: number;
  /** What to write. */
  readonly rec: SessionRecord;
  /**
   * It undoes this handshake write, whose answer was lost: that write may
   * never have been applied. The flush then writes only over a record that
   * is still exactly this one (another server may since have written the
   * same epoch), and a record found missing or moved on means only that it
   * was not applied, not a loss or a takeover.
   */
  readonly uncertain?: SessionRecord;
  /**
   * For an uncertain write: the pending write it stands in front of (a
   * detach the store missed, or the undoing of an earlier handshake write
   * that was not answered either), which is this server's again if the
   * handshake write turns out never to have been applied.
   */
  readonly previous?: Pending;
}

/** A takeover notice to `owner`. */
export interface Notice {
  readonly owner: string;
  readonly fence: Fence;
}

/** What the write-back needs from the session manager. */
export interface WriteBackHost {
  /**
   * Runs a store operation counted under `name`; rejects (with a
   * `ProtocolError`) when the store fails.
   */
  op<T>(name: string, fn: (store: SessionStore) => Promise<T>): Promise<T>;
  /** The store now holds `rec`, which was pending. */
  written(rec: SessionRecord): void;
  /** The session moved on past what this server holds (another epoch won). */
  lost(fence: Fence): void;
  /** An unanswered handshake write's takeover notice is due: send it. */
  notify(notice: Notice): void;
  /**
   * The record of `id`, which this server holds, is not in the store at
   * all: the store lost it. The host starts the resync.
   */
  missing(id: string): void;
  /** What this server means the record of `id` to be (attached or detached), if it holds it. */
  held(id: string): SessionRecord | undefined;
  /** The ids this server holds, attached or detached. */
  heldIds(): Iterable<string>;
  /**
   * Whether a handshake for `id` is in flight here: its write may be what
   * the store holds now, identical to an unanswered one's.
   */
  handshaking(id: string): boolean;
  /** Whether the manager is closing (stop between writes). */
  closed(): boolean;
}

/** Whether two records with the same epoch say the same thing about ownership and state. */
export function sameState(a: SessionRecord, b: SessionRecord): boolean {
  return a.epoch === b.epoch && a.owner === b.owner && a.status === b.status &&
    a.expiresAt === b.expiresAt;
}

/** Unconfirmed writes, their retries, and the resync after a data loss. */
export class WriteBack {
  readonly #host: WriteBackHost;
  readonly #pending = new Map<string, Pending>();
  /** Notices that unanswered handshake writes owe if they were applied, by id. */
  readonly #owedNotices = new Map<string, Notice[]>();
  #needResync = false;
  #resyncing: Promise<void> | undefined;
  #flushing: Promise<boolean> | undefined;

  /** @param host the session manager's side */
  constructor(host: WriteBackHost) {
    this.#host = host;
  }

  /** Writes not confirmed yet. */
  get size(): number {
    return this.#pending.size;
  }

  /** Whether a resync is due or running (the store lost data). */
  get resyncing(): boolean {
    return this.#needResync;
  }

  /** The pending write for `id`. */
  get(id: string): Pending | undefined {
    return this.#pending.get(id);
  }

  /** Notices held until their write is seen applied. */
  get owedNotices(): number {
    let n = 0;
    for (const l of this.#owedNotices.values()) n += l.length;
    return n;
  }

  /**
   * Keeps `rec` to retry, unless a write for a later epoch is already
   * pending. `uncertain`: see {@link Pending.uncertain}; `notice`: the
   * takeover notice it owes if it was applied.
   */
  keep(
    id: string,
    expected: number,
    rec: SessionRecord,
    uncertain?: SessionRecord,
    notice?: Notice,
  ): void {
    const cur = this.#pending.get(id);
    if (cur === undefined || cur.expected <= expected) {
      if (uncertain === undefined) {
        this.#pending.set(id, { expected, rec });
        this.#prune(id);
        return;
      }
      // Keep what it may replace: never lose a write the store missed for
      // one it may never have seen (review of the seed-7 fix), nor the
      // undoing of an earlier unanswered handshake write that was applied
      // (simulator seed 591850393: a re-sent hello's attach, never
      // applied, dropped the undoing of the first, which was, and left the
      // record attached here forever). The same write again replaces itself.
      const previous =
        cur?.uncertain !== undefined && sameState(cur.uncertain, uncertain)
          ? cur.previous
          : cur;
      this.#pending.set(
        id,
        previous === undefined
          ? { expected, rec, uncertain }
          : { expected, rec, uncertain, previous },
      );
      const owed = this.#owedNotices.get(id) ?? [];
      if (
        notice !== undefined &&
        !owed.some((n) =>
          n.owner === notice.owner && n.fence.epoch === notice.fence.epoch
        )
      ) this.#owedNotices.set(id, [...owed, notice]);
    }
  }

  /** The write this server still owes for `id`, given the record `rec` found (see {@link Pending.uncertain}). */
  owed(id: string, rec: SessionRecord): Pending | undefined {
    let p = this.#pending.get(id);
    while (p?.uncertain !== undefined && !sameState(rec, p.uncertain)) {
      p = p.previous;
    }
    return p;
  }

  /**
   * Whether this server holds `id` attached as `rec` says: an attachment
   * here made the same write since (the same hello again, answered before
   * the first one's timeout: simulator seed 591850281). The record is then
   * its own, not one to undo.
   */
  #mine(id: string, rec: SessionRecord): boolean {
    const held = this.#host.held(id);
    return held !== undefined && sameState(held, rec);
  }

  /** An uncertain write was not applied: what it stood in front of is pending again. */
  #notApplied(id: string, p: Pending): void {
    if (this.#pending.get(id) !== p) return;
    if (p.previous !== undefined) this.#pending.set(id, p.previous);
    else this.#pending.delete(id);
    this.#prune(id);
  }

  /** The record of `id` is at `epoch` or later: the notices owed up to it are due. */
  #reached(id: string, epoch: number): void {
    const owed = this.#owedNotices.get(id);
    if (owed === undefined) return;
    const due = owed.filter((n) => n.fence.epoch <= epoch);
    if (due.length === 0) return;
    const rest = owed.filter((n) => n.fence.epoch > epoch);
    if (rest.length > 0) this.#owedNotices.set(id, rest);
    else this.#owedNotices.delete(id);
    for (const n of due) this.#host.notify(n);
  }

  /** Drops the notices of `id` once no write that owes them is pending. */
  #prune(id: string): void {
    for (let p = this.#pending.get(id); p !== undefined; p = p.previous) {
      if (p.uncertain !== undefined) return;
    }
    this.#owedNotices.delete(id);
  }

  /**
   * A handshake here attached `id` at `epoch`: its pending write is void,
   * and the notices owed up to that epoch are due.
   */
  adopted(id: string, epoch: number): void {
    this.#reached(id, epoch);
    this.#pending.delete(id);
    this.#owedNotices.delete(id);
  }

  /** Forgets a pending write made below `fence.epoch`; the notices owed up to it are due. */
  fenced(fence: Fence): void {
    this.#reached(fence.id, fence.epoch);
    const p = this.#pending.get(fence.id);
    if (p !== undefined && p.expected < fence.epoch) {
      this.#pending.delete(fence.id);
      this.#prune(fence.id);
    }
  }

  /**
   * Compare-and-set `rec` over `expected` now; on a store failure keeps it
   * for {@link flush} and resolves `undefined`.
   */
  async write(
    expected: number,
    rec: SessionRecord,
  ): Promise<boolean | undefined> {
    try {
      return await this.#host.op(
        "replace",
        (s) => s.replace(expected, rec),
      );
    } catch {
      this.keep(rec.id, expected, rec);
      return undefined;
    }
  }

  /**
   * Retries the pending writes, oldest first, and stops at the first store
   * failure. A failed compare-and-set reads the record back: if it holds
   * what was meant (a write that timed out but was applied) it counts as
   * written; if it is missing the store lost it ({@link WriteBackHost.missing},
   * and the flush stops); otherwise the session moved on. Resolves whether
   * nothing is left pending. One at a time (the heartbeat's and a resync's
   * meet): a call while one runs gets that one.
   */
  flush(): Promise<boolean> {
    this.#flushing ??= this.#flush().finally(() => this.#flushing = undefined);
    return this.#flushing;
  }

  async #flush(): Promise<boolean> {
    for (const [id, p] of [...this.#pending]) {
      if (this.#host.closed()) return false;
      let outcome: "written" | "lost" | "missing";
      try {
        if (this.#pending.get(id) !== p) continue; // replaced meanwhile
        if (p.uncertain !== undefined) {
          // A handshake for the id in flight here may write the very
          // record to undo (the same hello again): its own outcome settles
          // the entry (an attachment forgets it), so leave it to the next
          // flush rather than undo a session that is being welcomed.
          if (this.#host.handshaking(id)) continue;
          if (this.#mine(id, p.uncertain)) {
            this.#notApplied(id, p);
            continue;
          }
          const cur = await this.#host.op("get", (s) => s.get(id));
          if (cur !== null) this.#reached(id, cur.epoch);
          // A new attachment here while the store answered (#forget), or
          // one still on its way (its write applied, its answer not yet
          // in: simulator seeds 591850281, 591850438): the record read may
          // be its own, the same as the one to undo. Once the record is
          // read as that one, no new handshake can write it again.
          if (this.#pending.get(id) !== p || this.#host.handshaking(id)) {
            continue;
          }
          if (this.#mine(id, p.uncertain)) {
            this.#notApplied(id, p);
            continue;
          }
          if (cur === null || !sameState(cur, p.uncertain)) {
            // Never applied (or someone else's write now): nothing to undo;
            // a write it stood in front of goes out at the next flush.
            this.#notApplied(id, p);
            continue;
          }
        }
        if (
          await this.#host.op("replace", (s) => s.replace(p.expected, p.rec))
        ) {
          outcome = "written";
        } else {
          const cur = await this.#host.op("get", (s) => s.get(id));
          outcome = cur === null
            ? "missing"
            : sameState(cur, p.rec)
            ? "written"
            : "lost";
        }
      } catch {
        return false; // still down: the next heartbeat tries again
      }
      // Replaced or forgotten while the store answered (a newer write, a new
      // attachment here): this server has moved on, and what the store said
      // of the older write must not fence the newer state.
      if (this.#pending.get(id) !== p) continue;
      if (p.uncertain !== undefined && outcome !== "written") {
        // Moved on between the read and the write: not ours to judge.
        this.#notApplied(id, p);
        continue;
      }
      if (outcome === "missing") {
        // Lost by the store, not moved on: the resync writes it back (and
        // every other session held here); it stays pending.
        this.#host.missing(id);
        return false;
      }
      this.#pending.delete(id);
      this.#prune(id);
      if (outcome === "written") this.#host.written(p.rec);
      else this.#host.lost({ id, epoch: p.expected + 1 });
    }
    return this.#pending.size === 0;
  }

  /** Starts the resync (the store lost data), off the caller; at most one runs. */
  startResync(): void {
    this.#needResync = true;
    this.#resyncing ??= this.#resync().finally(() =>
      this.#resyncing = undefined
    );
  }

  /** The resync in flight, if any. */
  get running(): Promise<void> | undefined {
    return this.#resyncing;
  }

  /**
   * Writes back every session this server holds: missing records are
   * created, older ones replaced, and a newer one means the session was
   * taken over (this server lets go of it). Done when every session has
   * been written; a failure leaves it to the next heartbeat's resync.
   *
   * Once done, it flushes what it left: the undoing of an unanswered
   * handshake write (the flush's alone) and writes kept while it ran. The
   * heartbeat does not flush while a resync is due or running, and until it
   * renews, every beat finds its lease still as the store lost it and
   * starts a resync again: with those writes left to the heartbeat, the
   * lease was never renewed, and a server that reached the store went 12 s
   * without a renewal and was judged dead, its sessions expired (simulator
   * seed 859261497).
   */
  async #resync(): Promise<void> {
    const h = this.#host;
    const ids = new Set([...h.heldIds(), ...this.#pending.keys()]);
    for (const id of ids) {
      // A session that changes here while its write-back is in flight is written again.
      for (let round = 0; round < 3; round++) {
        if (h.closed()) return;
        const found = this.#pending.get(id);
        // The undoing of an unanswered handshake write is the flush's to
        // make, and only over that very record: a resync would write it
        // over whatever holds the epoch now (simulator seed 22). What this
        // server holds of the id is still written back.
        const pending = found?.uncertain !== undefined ? undefined : found;
        const want = pending?.rec ?? h.held(id);
        if (want === undefined) break; // gone meanwhile
        const mine = pending?.expected ?? want.epoch;
        let ok: boolean;
        try {
          const cur = await h.op("resync", (s) => s.get(id));
          if (cur === null) {
            ok = await h.op("resync", (s) => s.create(want));
          } else if (
            cur.epoch < mine || (cur.epoch === mine && !sameState(cur, want))
          ) {
            ok = await h.op("resync", (s) => s.replace(cur.epoch, want));
          } else {
            // Already there (or applied before the loss); a newer epoch is someone else's.
            ok = cur.epoch === mine || sameState(cur, want);
          }
        } catch {
          return; // down again: the next heartbeat starts over
        }
        const now = this.#pending.get(id)?.rec ?? h.held(id);
        if (now !== want) continue;
        if (pending !== undefined && this.#pending.get(id) === pending) {
          this.#pending.delete(id);
          if (ok) h.written(want);
        }
        if (!ok) h.lost({ id, epoch: mine + 1 });
        break;
      }
    }
    // Done before the flush: a loss it finds asks for a resync again.
    this.#needResync = false;
    await this.flush();
  }
}
