/**
 * The session lifecycle, written once over any {@link SessionStore}: open,
 * resume (with fenced takeover), attach, detach, complete. The manager keeps
 * the awaits and the order of the steps; each part below is one idea behind
 * a narrow interface:
 *
 * - `lifecycle.ts`: the rules, as pure functions over plain data (who may
 *   open or resume, what each step writes, every refusal and its message,
 *   races, store time, and why expired means expired);
 * - `judge.ts` ({@link Judge}): gathers the facts those rules ask for (what
 *   this server knows, another server's lease, a data loss);
 * - `claims.ts` ({@link Claims}): a handshake's write, its undoing when the
 *   store did not answer, and the wait after a conflict;
 * - `lease.ts` ({@link LeaseKeeper}): the heartbeat, this server's lease,
 *   draining takeover notices, garbage collection after dead servers,
 *   detection of data lost by the store, and the store's clock seen from here;
 * - `notices.ts` ({@link TakeoverNotices}): the takeover notices sent, and
 *   retried by the heartbeat;
 * - `write_back.ts` ({@link WriteBack}): writes the store missed, their
 *   retries, and the resync after a data loss;
 * - `attachments.ts` ({@link Attachments}): the sessions attached here, and
 *   what ends an attachment (detach, release, adoption, takeover notice);
 * - `detached.ts` ({@link DetachedSessions}): the sessions detached here,
 *   their detach writes and expiry tombstones, on one timer;
 * - `completion.ts`: the completion's tombstone;
 * - `store_calls.ts` ({@link StoreCalls}): every store call counted, timed,
 *   its failure a refusal, and tracked for {@link SessionManager.close}.
 *
 * The manager keeps the record it wrote for every session it holds, so its
 * own later writes are blind compare-and-sets on the epoch, with no read
 * first: a session with `r` reconnects costs at most `2 + 5·r` store
 * operations, and the heartbeat's are per server (the table of what each
 * event costs is in
 * [docs/architecture.md](../docs/architecture.md#store-operations-per-session)).
 *
 * Races are settled by the epoch, and every deadline is written and judged
 * in the store's time ({@link LeaseKeeper.now}), never this host's own (see
 * `lifecycle.ts`). What this server knows (a detach or tombstone it could
 * not write yet) wins over the record. The heartbeat flushes those writes
 * before it renews the lease, so while any is pending the lease lapses, and
 * the others judge a record still attached here by `renewedAt + ttl`, never
 * later than the real deadline; for that the manager uses
 * `min(leaseMs, ttlMs)` as the lease. A record still attached to a crashed
 * server is deleted by the heartbeats' `collect` (see `lease.ts`).
 *
 * Store outages: a session that is streaming needs no store operation, so it
 * keeps going (one taken over elsewhere meanwhile stops at the first
 * heartbeat that reaches the store again: PROTOCOL.md §7 Fencing). A store that lost its data is detected by this server's own
 * lease (`lease.ts`), or by a record missing of a session this server holds
 * (its detach or completion finds none, or its client's resume reaches this
 * server and finds none). The server then writes back every session it
 * holds (`write_back.ts`), and for one lease answers resumes of sessions it
 * cannot find with the retriable `store_unavailable` rather than the final
 * `unknown_session` (a resume that reaches another server first still gets
 * `unknown_session`: nothing there shows the loss). A server cut off for longer than lease + TTL +
 * tombstone period takes that as a loss too (its lease may be gone, or still
 * there while a collect that spans many heartbeats has deleted some of its
 * attached records): its streams went on, and it holds no detached session
 * past its deadline.
 *
 * Shutdown: {@link SessionManager.close} stops the timers and awaits every
 * store call in flight. An open or resume that completes after `close()`
 * began detaches its session itself and refuses with `shutting_down`, so no
 * attachment escapes a closed manager.
 *
 * @module
 */

import { type Clock, systemClock } from "../common/clock.ts";
import { SERVER_DEFAULTS } from "../common/defaults.ts";
import type { Logger } from "../common/logger.ts";
import { deriveSeed, randomSeed, type Seed } from "../protocol/prng.ts";
import { uuidToBytes } from "../protocol/uuid.ts";
import type { SessionRecord, SessionStore } from "../store/types.ts";
import { Attachments } from "./attachments.ts";
import { Claims } from "./claims.ts";
import { recordCompletion } from "./completion.ts";
import { DetachedSessions, type DetachedView } from "./detached.ts";
import { Judge } from "./judge.ts";
import { LeaseKeeper } from "./lease.ts";
import {
  checkCount,
  type Claim,
  freshRecord,
  refusalError,
  refusals,
} from "./lifecycle.ts";
import type { Counters } from "./metrics.ts";
import { TakeoverNotices } from "./notices.ts";
import { StoreCalls } from "./store_calls.ts";
import { WriteBack } from "./write_back.ts";

/** Settings for {@link SessionManager}. */
export interface SessionManagerOptions {
  /** This server instance's id (unique per process). */
  serverId: string;
  /** How long a detached session stays resumable (ms). */
  ttlMs: number;
  /** Base seed for reproducible sessions (`--seed`), or undefined for random seeds. */
  seedBase?: number | undefined;
  /** How long this server's lease lasts without renewal (ms). Default 3000; at most `ttlMs`. */
  leaseMs?: number;
  /** How long tombstones (completed/expired) are kept for honest refusals (ms). Default 5 min. */
  tombstoneMs?: number;
  /** Counters to update. */
  counters: Counters;
  /** Logger for session events. */
  log: Logger;
  /** Called when a local attachment must close because it was taken over. */
  onFenced: (id: string, epoch: number) => void;
  /** Local time and timers. Default {@link systemClock}. */
  clock?: Clock;
  /** Told of store latencies and resume gaps, for the histograms. */
  observer?: SessionObserver | undefined;
}

/** What the metrics learn from the session layer (both optional). */
export interface SessionObserver {
  /** A store operation `op` settled after `ms` (monotonic), failed or not. */
  storeOp?(op: string, ms: number): void;
  /** A detached session was resumed `ms` (store time) after its detach. */
  resumed?(gapMs: number): void;
}

/** A session attached to a connection on this server. */
export interface Attachment {
  readonly id: string;
  readonly seed: Seed;
  readonly count: number;
  readonly token: Uint8Array;
  /** The fencing epoch this attachment holds. */
  readonly epoch: number;
}

/**
 * Runs the session lifecycle on a store, and keeps what this server holds:
 * its attachments, the sessions it detached that are awaiting resume, and the
 * writes the store has not confirmed yet.
 *
 * @example
 * ```ts
 * const sessions = new SessionManager(store, {
 *   serverId: "a1", ttlMs: 30_000, counters: newCounters(), log: silentLogger,
 *   onFenced: (id) => registry.close(id),
 * });
 * await sessions.start();
 * const att = await sessions.open(id, 1000, token);
 * ```
 */
export class SessionManager {
  readonly #store: SessionStore;
  readonly #o: {
    serverId: string;
    ttlMs: number;
    seedBase: number | undefined;
    leaseMs: number;
    tombstoneMs: number;
    counters: Counters;
    log: Logger;
    clock: Clock;
    observer: SessionObserver | undefined;
  };
  /** Attached here, and what ends an attachment. */
  readonly #attached: Attachments;
  /** Detached here, by deadline: the record as written (or meant to be). */
  readonly #detached: DetachedSessions;
  readonly #writeBack: WriteBack;
  readonly #lease: LeaseKeeper;
  readonly #calls: StoreCalls;
  readonly #notices: TakeoverNotices;
  readonly #claims: Claims;
  readonly #judge: Judge;
  #closed = false;

  /** @param store the backend; @param opts lifecycle settings */
  constructor(store: SessionStore, opts: SessionManagerOptions) {
    this.#store = store;
    const ttlMs = opts.ttlMs;
    this.#o = {
      serverId: opts.serverId,
      ttlMs,
      seedBase: opts.seedBase,
      leaseMs: Math.min(opts.leaseMs ?? SERVER_DEFAULTS.leaseMs, ttlMs),
      tombstoneMs: opts.tombstoneMs ?? SERVER_DEFAULTS.tombstoneMs,
      counters: opts.counters,
      log: opts.log,
      clock: opts.clock ?? systemClock,
      observer: opts.observer,
    };
    this.#calls = new StoreCalls(store, {
      counters: opts.counters,
      clock: this.#o.clock,
      log: opts.log,
      observe: opts.observer?.storeOp,
    });
    const op = <T>(name: string, fn: (s: SessionStore) => Promise<T>) =>
      this.#calls.op(name, fn);
    this.#notices = new TakeoverNotices({
      op,
      closed: () => this.#closed,
      log: opts.log,
    });
    this.#writeBack = new WriteBack({
      op,
      closed: () => this.#closed,
      written: (rec) => {
        if (rec.status === "expired") this.#expired(rec.id);
      },
      lost: (f) => this.#attached.fenced(f),
      notify: (n) =>
        void this.#calls.track(this.#notices.send(n.owner, n.fence)),
      missing: (id) => this.#lease.dataLost(`the record of session ${id}`),
      held: (id) => this.#attached.held(id),
      heldIds: () => this.#attached.heldIds(),
      handshaking: (id) => this.#claims.handshaking(id),
    });
    this.#lease = new LeaseKeeper({
      op,
      flush: () => this.#settle(),
      lostData: () => this.#writeBack.startResync(),
      fenced: (f) => this.#attached.fenced(f),
    }, {
      serverId: this.#o.serverId,
      leaseMs: this.#o.leaseMs,
      collectGraceMs: ttlMs + this.#o.tombstoneMs,
      clock: this.#o.clock,
      log: this.#o.log,
    });
    this.#claims = new Claims(this.#o, this.#o.clock, {
      op,
      writeBack: this.#writeBack,
      live: () => this.#lease.live,
      storeKind: store.kind,
      storeNow: () => this.#now(),
      closed: () => this.#closed,
    });
    this.#detached = new DetachedSessions(this.#o, this.#o.clock, {
      writeBack: this.#writeBack,
      storeNow: () => this.#now(),
      expired: (id) => this.#expired(id),
      track: (p) => void this.#calls.track(p),
    });
    this.#attached = new Attachments({
      detached: this.#detached,
      writeBack: this.#writeBack,
      counters: opts.counters,
      onFenced: opts.onFenced,
    });
    this.#judge = new Judge({
      rules: this.#o,
      storeKind: store.kind,
      writeBack: this.#writeBack,
      detached: this.#detached,
      lease: this.#lease,
      holdsHere: (id) => this.#attached.holdsHere(id),
    });
  }

  /**
   * The heartbeat's step before it renews the lease: writes the takeover
   * notices that failed, then resolves whether every write the store missed
   * is now in. After a data loss the resync writes
   * them (and every held session) back; one that an outage interrupted is
   * started again here, and the lease is not renewed while writes wait for
   * it, so a lapsed lease keeps meaning "this server may have writes pending".
   */
  async #settle(): Promise<boolean> {
    await this.#notices.retry();
    const wb = this.#writeBack;
    if (wb.resyncing) {
      wb.startResync(); // a no-op while one runs
      return Promise.resolve(wb.size === 0);
    }
    return wb.size === 0 ? true : await this.#calls.track(wb.flush());
  }

  /** Sessions this server holds: attached here or detached here and not yet expired. */
  get sessions(): number {
    return this.#attached.size + this.#detached.size;
  }

  /**
   * Store operations by kind, for `seqstream_store_ops_total`, failed ones
   * included. {@link SERVER_STORE_OPS} names the per-server ones.
   */
  get storeOps(): ReadonlyMap<string, number> {
    return this.#calls.counts;
  }

  /**
   * Sessions detached here and awaiting resume, in no particular order:
   * `limit` at most from the `skip`th on. O(skip + limit).
   */
  detachedViews(skip: number, limit: number): Iterable<DetachedView> {
    return this.#detached.views(skip, limit);
  }

  /** Sessions detached here and awaiting resume. */
  get detachedCount(): number {
    return this.#detached.size;
  }

  /** Whether this server's lease is in the store (sessions can attach). */
  get storeRegistered(): boolean {
    return this.#lease.registered;
  }

  /** Writes the store has not confirmed yet (detaches or tombstones made during an outage). */
  get unsynced(): number {
    return this.#writeBack.size;
  }

  /**
   * Writes the lease once (a store that is down is not fatal: sessions are
   * refused until it answers) and starts the heartbeat, every `leaseMs / 3`.
   */
  async start(): Promise<void> {
    await this.#lease.start();
  }

  /**
   * Stops the timers and waits for every store write in flight (detaches
   * included), so the store can be closed after it. Sessions in the store
   * stay as they are (resumable). Idempotent.
   */
  async close(): Promise<void> {
    this.#closed = true;
    this.#detached.close();
    await this.#lease.close();
    await this.#calls.drain();
    await this.#writeBack.running;
  }

  /** The store's time, as this server sees it. */
  #now(): number {
    return this.#lease.now();
  }

  /**
   * Sessions may only be attached while other servers see this one's lease
   * running. Once it lapsed (its renewals failed, or were held back by
   * pending writes), they judge what is attached here by its last renewal:
   * a session attached after that would be expired before it even
   * detached (found by the simulator, seed 591850050).
   */
  async #ensureLease(): Promise<void> {
    if (this.#closed) throw refusalError(refusals.shuttingDown());
    if (this.#lease.live) return;
    await this.#lease.beat();
    if (!this.#lease.live) {
      throw refusalError(refusals.noLease(this.#store.kind));
    }
  }

  /**
   * Starts a new session for a hello. The token is the client's choice; a
   * repeated hello (same id, count and token) for a session that is still
   * live attaches it again, so a lost welcome costs nothing.
   *
   * @throws {ProtocolError} `INVALID_COUNT`, `SESSION_IN_USE`,
   * `STORE_UNAVAILABLE`, `SHUTTING_DOWN`; never anything else
   */
  open(id: string, count: number, token: Uint8Array): Promise<Attachment> {
    return this.#calls.call(() =>
      this.#claims.run(id, () => this.#open(id, count, token))
    );
  }

  async #open(
    id: string,
    count: number,
    token: Uint8Array,
  ): Promise<Attachment> {
    const bad = checkCount(count);
    if (bad !== undefined) throw refusalError(bad);
    await this.#ensureLease();
    const seed = this.#o.seedBase === undefined
      ? randomSeed()
      : deriveSeed(this.#o.seedBase, uuidToBytes(id));
    const fresh = freshRecord(this.#o, { id, seed, count, token });
    // Create first: a new id (the usual case) costs one operation.
    let claim: Claim = { op: "create", rec: fresh };
    let ok = await this.#claims.write(claim);
    if (!ok) {
      const existing = await this.#calls.op("get", (s) => s.get(id));
      const v = await this.#judge.hello(fresh, token, existing);
      if (v.type === "refuse") throw refusalError(v.refusal);
      if (v.type === "reattach") {
        // The same hello again (its welcome was lost): attach the same session.
        return await this.#attach(v.rec, token, 0) ??
          await this.#claims.afterConflict(
            id,
            (r) => this.#attach(r, token, 0),
          );
      }
      claim = v.claim;
      ok = await this.#claims.write(claim);
    }
    if (!ok) throw refusalError(refusals.createdConcurrently(id));
    this.#attached.adopt(claim.rec, "hello");
    this.#o.counters.sessionsStarted++;
    const att = { id, seed, count, token, epoch: claim.rec.epoch };
    await this.#unlessClosing(att);
    return att;
  }

  /** An attachment made while close() ran is detached again here and refused. */
  async #unlessClosing(att: Attachment): Promise<void> {
    if (!this.#closed) return;
    await this.#attached.detach(att);
    throw refusalError(refusals.shuttingDown(att.id));
  }

  /**
   * Re-attaches a session for a resume, fencing out any earlier attachment.
   *
   * @throws {ProtocolError} `UNKNOWN_SESSION`, `BAD_TOKEN`, `SESSION_EXPIRED`,
   * `SESSION_COMPLETED`, `INVALID_OFFSET`, `SESSION_IN_USE`, `TAKEN_OVER`,
   * `STORE_UNAVAILABLE`, `SHUTTING_DOWN`; never anything else
   */
  resume(
    id: string,
    token: Uint8Array,
    nextOffset: number,
  ): Promise<Attachment> {
    return this.#calls.call(() =>
      this.#claims.run(id, () => this.#resume(id, token, nextOffset))
    );
  }

  async #resume(
    id: string,
    token: Uint8Array,
    nextOffset: number,
  ): Promise<Attachment> {
    await this.#ensureLease();
    const rec = await this.#calls.op("get", (s) => s.get(id));
    if (rec === null) {
      const v = await this.#judge.missing(id);
      if (v.dataLost) {
        this.#lease.dataLost(`the record of session ${id}, held here`);
      }
      throw refusalError(v.refusal);
    }
    return await this.#attach(rec, token, nextOffset) ??
      await this.#claims.afterConflict(
        id,
        (r) => this.#attach(r, token, nextOffset),
      );
  }

  /**
   * Attaches `rec` here as the rules decide (`judgeResume`), if its epoch is
   * unchanged; resolves `null` when another attachment changed it first.
   */
  async #attach(
    rec: SessionRecord,
    token: Uint8Array,
    nextOffset: number,
  ): Promise<Attachment | null> {
    const id = rec.id;
    const v = await this.#judge.resume(rec, token, nextOffset);
    if (v.type === "refuse") {
      const t = v.tombstone;
      if (t !== undefined) {
        // Best effort: the deadline the servers judge by decides anyway.
        await this.#calls.op("replace", (s) => s.replace(t.expected, t.rec))
          .catch(() => {});
      }
      throw refusalError(v.refusal);
    }
    const next = v.claim.rec;
    if (!(await this.#claims.write(v.claim, v.notify))) return null;
    if (v.resumedAfterMs !== undefined) {
      this.#o.observer?.resumed?.(v.resumedAfterMs);
    }
    this.#attached.adopt(next, "resume");
    if (v.notify !== undefined) {
      await this.#notices.send(v.notify.owner, v.notify.fence);
      // Taken over again while the notice was on its way: a fence drained in
      // the meantime found no connection to close, so refuse this one here.
      // (Nothing is awaited between this check and the connection's
      // registration, so no later fence can slip in the same way.)
      if (!this.#attached.current(next)) {
        throw refusalError(refusals.takenOverWhileAttaching(id));
      }
    }
    this.#o.counters.resumes++;
    const att = {
      id,
      seed: v.seed,
      count: rec.count,
      token,
      epoch: next.epoch,
    };
    await this.#unlessClosing(att);
    return att;
  }

  /** Whether `att` still holds its session here (not fenced, not ended). */
  holds(att: Attachment): boolean {
    return this.#attached.holds(att);
  }

  /**
   * Detaches after the connection ended: the session stays resumable for the
   * TTL, counted from now (every disconnect restarts the clock). If the store
   * cannot be reached the write is retried by the heartbeat (before it
   * renews the lease); meanwhile this server refuses a resume past the
   * deadline by what it knows.
   */
  detach(att: Attachment): Promise<void> {
    return this.#calls.track(this.#attached.detach(att));
  }

  /**
   * Completes after the client's ack: the session's state is discarded, and
   * only a tombstone remains so a late resume gets an honest answer.
   * Resolves whether this attachment still held the session.
   *
   * @throws {ProtocolError} `STORE_UNAVAILABLE`; the session stays attached
   * (the client retries, and its resume at the end acks again)
   */
  complete(att: Attachment): Promise<boolean> {
    return this.#calls.track((async () => {
      const rec = this.#attached.record(att);
      if (rec === undefined) return false;
      const { ok, lostRecord } = await recordCompletion(
        this.#o,
        (name, fn) => this.#calls.op(name, fn),
        rec,
        this.#now(),
      );
      this.#attached.forget(rec);
      // Then every other session this server holds is written back.
      if (lostRecord) {
        this.#lease.dataLost(`the record of session ${att.id}, completed here`);
      }
      if (ok) this.#o.counters.sessionsCompleted++;
      return ok;
    })());
  }

  /** Forgets an attachment without touching the store (fenced, or shutting down). */
  release(att: Attachment): void {
    this.#attached.release(att);
  }

  #expired(id: string): void {
    this.#o.counters.sessionsExpired++;
    this.#o.log.info("session expired", { id });
  }
}
