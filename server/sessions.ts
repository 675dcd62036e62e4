/**
 * The session lifecycle, written once over any {@link SessionStore}: open,
 * resume (with fenced takeover), attach, detach, complete. Three parts do
 * the rest, each behind a narrow interface:
 *
 * - `lease.ts` ({@link LeaseKeeper}): the heartbeat, this server's lease,
 *   takeover notices, garbage collection after dead servers, detection of
 *   data lost by the store, and the store's clock as seen from here;
 * - `write_back.ts` ({@link WriteBack}): writes the store missed, their
 *   retries, and the resync after a data loss;
 * - `expiry.ts` ({@link ExpiryQueue}): the sessions detached here, in
 *   deadline order, with one timer.
 *
 * Store operations per session are O(1) in its length. The manager keeps the
 * record it wrote for every session it holds, so its own later writes are
 * blind compare-and-sets on the epoch, with no read first:
 *
 * | event                 | operations                                         |
 * | --------------------- | -------------------------------------------------- |
 * | new session           | `create` (+ `get`, `replace` if the id was used)   |
 * | detach                | `replace` (a failed one waits for the heartbeat:   |
 * |                       | dropped by its takeover notice, or `replace` +     |
 * |                       | `get` to tell "moved on" from "lost by the store") |
 * | resume                | `get`, `replace` (+ `lease_get`, `fence` when the  |
 * |                       | record is still attached to another server)        |
 * | complete              | `replace` (a tombstone; + `get`, `create` if the   |
 * |                       | store lost the record)                             |
 * | expiry (if detached)  | `replace` (a tombstone; fails harmlessly if the    |
 * |                       | session was resumed elsewhere)                     |
 * | retried write         | `replace` (+ `get` when it fails: was it applied?) |
 *
 * So a session with `r` reconnects costs at most `2 + 5·r` operations (see
 * `tests/store_ops_test.ts` for what each backend measures). The heartbeat's
 * operations ({@link SERVER_STORE_OPS}) are per server, not per session: a
 * constant number per beat, whatever the number of sessions, plus the
 * resync after a data loss. A resume that loses a race with another
 * attachment adds at most 6 `get`s and one more attach while it waits for
 * the winner to let go.
 *
 * Races: every write is a compare-and-set on the epoch, and every attach
 * and tombstone takes the next epoch, so of two writers exactly one wins and
 * a server that lost a session (fenced) can never write it again. A resume
 * takes over a session attached elsewhere (a half-open connection); the
 * previous owner learns it from a fence, drained by its heartbeat, and
 * closes its connection with `taken_over`.
 *
 * Record lifetime: an attached record has no physical expiry
 * (`retainUntil = 0`), however long it streams; the store indexes it under
 * its owner. A detached record is kept until its deadline plus the tombstone
 * period, a tombstone for the tombstone period. A record still attached to a
 * server whose lease ended more than TTL + tombstone period ago (a crashed
 * server) is deleted by the heartbeats' `collect`, a bounded batch at a time.
 *
 * Time: every deadline is written and judged in the store's time
 * ({@link LeaseKeeper.now}: Redis `TIME`, the KV store clock, the memory
 * store's clock), never this host's own, so servers whose clocks disagree
 * agree on what has expired. Tombstones are refused by status, not by time.
 *
 * Expired means expired: a session whose TTL has run out is never resumed.
 * - This server judges by what it knows first: a detach or tombstone it
 *   could not write yet, with its real deadline, wins over the record.
 * - The heartbeat flushes those writes before it renews the lease, so while
 *   any is pending the lease lapses; another server then treats a record
 *   still attached to this one as expiring TTL after its last renewal
 *   (`renewedAt + ttl`), never later than the real deadline. For that to
 *   hold the lease must not outlast the TTL: the manager uses
 *   `min(leaseMs, ttlMs)`.
 *
 * Store outages: a session that is streaming needs no store operation, so it
 * keeps going. A store that lost its data is detected two ways: this
 * server's own lease vanished or went back (a Redis restarted without
 * persistence, a failover that lost the last renewals), or a record of a
 * session this server holds is missing (a failover that lost a short tail
 * of writes, on any shard): its detach or completion finds no record, or
 * its client's resume reaches this server and finds none. The server then
 * writes back every session it holds, and for one lease answers resumes of
 * sessions it cannot find with the retriable `store_unavailable` rather
 * than the final `unknown_session`. (A resume that reaches another server
 * first still gets `unknown_session`: nothing there shows the loss.) A
 * record can also be gone for a reason that is not a loss: a server cut off
 * from the store for longer than lease + TTL + tombstone period has had its
 * attached records collected by the others. It takes that as a loss too,
 * and writes back what it still holds: its streams went on meanwhile, and
 * it still holds no detached session past its deadline.
 *
 * Shutdown: {@link SessionManager.close} stops the timers and awaits every
 * store call in flight. An open or resume that completes after `close()`
 * began detaches its session itself and refuses with `shutting_down`, so no
 * attachment escapes a closed manager.
 *
 * @module
 */

import { type Clock, systemClock } from "../common/clock.ts";
import type { Logger } from "../common/logger.ts";
import {
  ErrorCode,
  type ErrorCode as Code,
  ProtocolError,
} from "../protocol/errors.ts";
import { MAX_COUNT } from "../protocol/messages.ts";
import {
  deriveSeed,
  randomSeed,
  type Seed,
  seedFromHex,
  seedToHex,
} from "../protocol/prng.ts";
import { bytesToHex, hexToBytes, uuidToBytes } from "../protocol/uuid.ts";
import {
  type Fence,
  type SessionRecord,
  type SessionStore,
  StoreUnavailableError,
  StoreUnconfirmedError,
} from "../store/types.ts";
import { ExpiryQueue } from "./expiry.ts";
import { LeaseKeeper } from "./lease.ts";
import type { Counters } from "./metrics.ts";
import { WriteBack } from "./write_back.ts";
import { SERVER_DEFAULTS } from "../common/defaults.ts";

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

/** A session detached here and awaiting resume, as `/sessions` shows it. */
export interface DetachedView {
  readonly id: string;
  readonly count: number;
  readonly epoch: number;
  /** How long it stays resumable (ms). */
  readonly expiresInMs: number;
}

/**
 * The `op` labels of `seqstream_store_ops_total` that the server's heartbeat
 * spends, whatever its sessions do: `lease_check` and `lease_renew` (its own
 * lease), `fence_drain` (takeover notices), `collect` (one bounded batch of
 * a dead server's records) and `resync` (writing its sessions back after the
 * store lost data). Every other label is spent on behalf of a session and is
 * bounded per session.
 */
export const SERVER_STORE_OPS: ReadonlySet<string> = new Set([
  "lease_check",
  "lease_renew",
  "fence_drain",
  "collect",
  "resync",
]);

/** A session attached to a connection on this server. */
export interface Attachment {
  readonly id: string;
  readonly seed: Seed;
  readonly count: number;
  readonly token: Uint8Array;
  /** The fencing epoch this attachment holds. */
  readonly epoch: number;
}

function refuse(code: Code, message: string): ProtocolError {
  return new ProtocolError(code, message);
}

function ago(ms: number): string {
  return ms < 1000
    ? `${Math.max(0, Math.round(ms))}ms`
    : `${Math.round(ms / 1000)}s`;
}

function sameToken(a: string, b: Uint8Array): boolean {
  let x: Uint8Array;
  try {
    x = hexToBytes(a);
  } catch {
    return false;
  }
  if (x.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i]! ^ b[i]!;
  return diff === 0;
}

/** How long a resume that lost a race waits for the winner to let go (ms). */
const CONFLICT_WAIT_MS = 1000;

function inUse(id: string): never {
  throw refuse(
    ErrorCode.SESSION_IN_USE,
    `Cannot resume session "${id}": another connection resumed it at the same moment`,
  );
}

function unavailable(message: string, cause?: unknown): ProtocolError {
  return new ProtocolError(ErrorCode.STORE_UNAVAILABLE, message, { cause });
}

/** What this server knows about a session that the store may not. */
interface Known {
  status: "live" | "completed" | "expired";
  /** Resume deadline (store time) for a live one; when it ended for a tombstone. */
  deadline: number;
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
    onFenced: (id: string, epoch: number) => void;
    clock: Clock;
    observer: SessionObserver | undefined;
  };
  /** Attached here: the record as written at attach time. */
  readonly #attached = new Map<string, SessionRecord>();
  /** Detached here, by deadline: the record as written (or meant to be). */
  readonly #detached: ExpiryQueue<SessionRecord>;
  readonly #writeBack: WriteBack;
  readonly #lease: LeaseKeeper;
  readonly #ops = new Map<string, number>();
  /** Every store call and lifecycle call in flight, for {@link close}. */
  readonly #inflight = new Set<Promise<unknown>>();
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
      onFenced: opts.onFenced,
      clock: opts.clock ?? systemClock,
      observer: opts.observer,
    };
    const op = <T>(name: string, fn: (s: SessionStore) => Promise<T>) =>
      this.#op(name, fn);
    this.#writeBack = new WriteBack({
      op,
      closed: () => this.#closed,
      written: (rec) => {
        if (rec.status === "expired") this.#expired(rec.id);
      },
      lost: (f) => this.#fenced(f),
      missing: (id) => this.#lease.dataLost(`the record of session ${id}`),
      held: (id) => this.#held(id),
      heldIds: () => [...this.#attached.keys(), ...this.#detached.ids()],
    });
    this.#lease = new LeaseKeeper({
      op,
      flush: () => this.#settle(),
      lostData: () => this.#writeBack.startResync(),
      fenced: (f) => this.#fenced(f),
    }, {
      serverId: this.#o.serverId,
      leaseMs: this.#o.leaseMs,
      collectGraceMs: ttlMs + this.#o.tombstoneMs,
      clock: this.#o.clock,
      log: this.#o.log,
    });
    this.#detached = new ExpiryQueue(
      this.#o.clock,
      () => this.#lease.now(),
      (due) => void this.#track(this.#expireDue(due)),
    );
  }

  /**
   * The heartbeat's step before it renews the lease: resolves whether every
   * write the store missed is now in. After a data loss the resync writes
   * them (and every held session) back; one that an outage interrupted is
   * started again here, and the lease is not renewed while writes wait for
   * it, so a lapsed lease keeps meaning "this server may have writes pending".
   */
  #settle(): Promise<boolean> {
    const wb = this.#writeBack;
    if (wb.resyncing) {
      wb.startResync(); // a no-op while one runs
      return Promise.resolve(wb.size === 0);
    }
    return wb.size === 0 ? Promise.resolve(true) : this.#track(wb.flush());
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
    return this.#ops;
  }

  /**
   * Sessions detached here and awaiting resume, in no particular order:
   * `limit` at most from the `skip`th on. O(skip + limit).
   */
  *detachedViews(skip: number, limit: number): Iterable<DetachedView> {
    const now = this.#now();
    let i = 0, n = 0;
    for (const id of this.#detached.ids()) {
      if (n >= limit) return;
      if (i++ < skip) continue;
      n++;
      const e = this.#detached.get(id);
      if (e === undefined) continue;
      yield {
        id,
        count: e.value.count,
        epoch: e.value.epoch,
        expiresInMs: Math.max(0, e.deadline - now),
      };
    }
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
    while (this.#inflight.size > 0) {
      await Promise.allSettled([...this.#inflight]);
    }
    await this.#writeBack.running;
  }

  /** Keeps `p` in the in-flight set until it settles. */
  #track<T>(p: Promise<T>): Promise<T> {
    this.#inflight.add(p);
    const done = () => this.#inflight.delete(p);
    p.then(done, done);
    return p;
  }

  #op<T>(name: string, fn: (s: SessionStore) => Promise<T>): Promise<T> {
    this.#ops.set(name, (this.#ops.get(name) ?? 0) + 1);
    const observe = this.#o.observer?.storeOp;
    const t0 = observe === undefined ? 0 : performance.now();
    return this.#track((async () => {
      try {
        return await fn(this.#store);
      } catch (cause) {
        this.#o.counters.storeErrors++;
        if (cause instanceof StoreUnconfirmedError) {
          this.#o.counters.storeUnconfirmed++;
        }
        const msg = cause instanceof StoreUnavailableError
          ? cause.message
          : String(cause);
        throw unavailable(
          `Session store (${this.#store.kind}) is unavailable: ${msg}`,
          cause,
        );
      } finally {
        observe?.(name, performance.now() - t0);
      }
    })());
  }

  /** The store's time, as this server sees it. */
  #now(): number {
    return this.#lease.now();
  }

  /**
   * When a live record stops being resumable (store time): its detach
   * deadline; for an attachment here, never; for one elsewhere, never while
   * its owner's lease runs, else TTL after the owner's last renewal (it may
   * have detached it since without being able to write it). An owner with
   * no lease at all died long ago (its lease was collected), unless the
   * store itself lost data recently.
   */
  async #deadline(rec: SessionRecord): Promise<number> {
    if (rec.owner === "") return rec.expiresAt;
    if (rec.owner === this.#o.serverId) return Infinity;
    const { lease, now } = await this.#lease.leaseOf(rec.owner, "lease_get");
    const t = now ?? this.#now();
    if (lease === null) {
      return (await this.#lease.storeLostData()) ? Infinity : t;
    }
    return lease.until > t ? Infinity : lease.renewedAt + this.#o.ttlMs;
  }

  /** Sessions may only be attached once other servers can see this one's lease. */
  async #ensureLease(): Promise<void> {
    if (this.#closed) {
      throw refuse(ErrorCode.SHUTTING_DOWN, "The server is shutting down");
    }
    if (this.#lease.registered) return;
    await this.#lease.beat();
    if (!this.#lease.registered) {
      throw unavailable(
        `Session store (${this.#store.kind}) is unavailable: cannot register this server's lease`,
      );
    }
  }

  /** Runs a lifecycle call: tracked for close(), and only ever rejecting with ProtocolError. */
  #call<T>(fn: () => Promise<T>): Promise<T> {
    return this.#track((async () => {
      try {
        return await fn();
      } catch (e) {
        if (e instanceof ProtocolError) throw e;
        this.#o.log.error("session call failed", { error: String(e) });
        throw unavailable(`Session store call failed: ${String(e)}`, e);
      }
    })());
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
    return this.#call(() => this.#open(id, count, token));
  }

  async #open(
    id: string,
    count: number,
    token: Uint8Array,
  ): Promise<Attachment> {
    if (!Number.isInteger(count) || count < 1 || count > MAX_COUNT) {
      throw refuse(
        ErrorCode.INVALID_COUNT,
        `Count must be between 1 and ${MAX_COUNT}, got ${count}`,
      );
    }
    await this.#ensureLease();
    const seed = this.#o.seedBase === undefined
      ? randomSeed()
      : deriveSeed(this.#o.seedBase, uuidToBytes(id));
    const fresh: SessionRecord = {
      id,
      seed: seedToHex(seed),
      count,
      token: bytesToHex(token),
      epoch: 1,
      owner: this.#o.serverId,
      status: "live",
      expiresAt: 0,
      retainUntil: 0,
    };
    // Create first: a new id (the usual case) costs one operation.
    let rec = fresh;
    let ok = await this.#op("create", (s) => s.create(fresh));
    if (!ok) {
      const existing = await this.#op("get", (s) => s.get(id));
      if (existing !== null) {
        if (existing.status === "live" && !(await this.#isOver(existing))) {
          if (existing.count === count && sameToken(existing.token, token)) {
            // The same hello again (its welcome was lost): attach the same session.
            return await this.#attach(existing, token, 0) ??
              await this.#afterConflict(id, token, 0);
          }
          throw refuse(
            ErrorCode.SESSION_IN_USE,
            `Session "${id}" is still live or resumable; resume it or use another id`,
          );
        }
        rec = { ...fresh, epoch: existing.epoch + 1 };
        ok = await this.#op("replace", (s) => s.replace(existing.epoch, rec));
      }
    }
    if (!ok) {
      throw refuse(
        ErrorCode.SESSION_IN_USE,
        `Session "${id}" was created concurrently by another connection`,
      );
    }
    this.#forget(id);
    this.#attached.set(id, rec);
    this.#o.counters.sessionsStarted++;
    const att = { id, seed, count, token, epoch: rec.epoch };
    await this.#unlessClosing(att);
    return att;
  }

  /** Whether a live record is past its deadline, by what this server knows first. */
  async #isOver(rec: SessionRecord): Promise<boolean> {
    const known = this.#known(rec);
    if (known !== undefined) {
      return known.status !== "live" || known.deadline <= this.#now();
    }
    return (await this.#deadline(rec)) <= this.#now();
  }

  /**
   * What this server knows about `rec` beyond the store: a write it could
   * not make yet at this epoch (a detach with its real deadline, a
   * tombstone), or the deadline of its own detach.
   */
  #known(rec: SessionRecord): Known | undefined {
    const p = this.#writeBack.get(rec.id);
    if (p !== undefined && p.expected === rec.epoch) {
      if (p.rec.status !== "live") {
        return { status: p.rec.status, deadline: p.rec.expiresAt };
      }
      if (p.rec.owner === "") {
        return { status: "live", deadline: p.rec.expiresAt };
      }
    }
    const d = this.#detached.get(rec.id);
    if (d !== undefined && d.value.epoch === rec.epoch) {
      return { status: "live", deadline: d.deadline };
    }
    return undefined;
  }

  /** An attachment made while close() ran is detached again here and refused. */
  async #unlessClosing(att: Attachment): Promise<void> {
    if (!this.#closed) return;
    await this.#detach(att);
    throw refuse(
      ErrorCode.SHUTTING_DOWN,
      `The server is shutting down; session "${att.id}" stays resumable`,
    );
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
    return this.#call(() => this.#resume(id, token, nextOffset));
  }

  async #resume(
    id: string,
    token: Uint8Array,
    nextOffset: number,
  ): Promise<Attachment> {
    await this.#ensureLease();
    const rec = await this.#op("get", (s) => s.get(id));
    if (rec === null) {
      if (this.#holdsHere(id)) {
        // This server holds it, so the store lost it (a failover that lost
        // a short tail of writes, perhaps on a shard the lease is not on).
        this.#lease.dataLost(`the record of session ${id}, held here`);
        throw unavailable(
          `Cannot resume session "${id}" yet: the session store (${this.#store.kind}) lost its record ` +
            `and this server is writing it back; retry shortly`,
        );
      }
      if (await this.#lease.storeLostData()) {
        throw unavailable(
          `Cannot resume session "${id}" yet: the session store (${this.#store.kind}) lost data ` +
            `and the servers are writing their sessions back; retry shortly`,
        );
      }
      throw refuse(
        ErrorCode.UNKNOWN_SESSION,
        `Cannot resume session "${id}": this server's store has no such session`,
      );
    }
    return await this.#attach(rec, token, nextOffset) ??
      await this.#afterConflict(id, token, nextOffset);
  }

  /**
   * A resume lost its compare-and-set to another attachment. It does not
   * fight the winner (which could be a live connection), but the winner is
   * often the same client's previous attempt, cut off while its server was
   * still working on it: that server detaches the session as soon as it
   * finds the socket gone. So watch the record for a moment (reads 10, 20,
   * 40… ms apart, about {@link CONFLICT_WAIT_MS} in all) and take the session
   * if it is let go; otherwise refuse with `session_in_use`.
   */
  async #afterConflict(
    id: string,
    token: Uint8Array,
    nextOffset: number,
  ): Promise<Attachment> {
    const clock = this.#o.clock;
    const started = clock.now();
    for (
      let wait = 10;
      !this.#closed && clock.now() + wait - started <= CONFLICT_WAIT_MS;
      wait *= 2
    ) {
      await new Promise((r) => clock.setTimeout(() => r(undefined), wait));
      const rec = await this.#op("get", (s) => s.get(id));
      if (rec === null) break;
      if (rec.status === "live" && rec.owner !== "") continue; // still held
      const att = await this.#attach(rec, token, nextOffset);
      if (att !== null) return att;
    }
    return inUse(id);
  }

  /**
   * Attaches `rec` here if its epoch is unchanged; resolves `null` when
   * another attachment changed it first. Tombstones are refused by their
   * status, whatever any clock says.
   */
  async #attach(
    rec: SessionRecord,
    token: Uint8Array,
    nextOffset: number,
  ): Promise<Attachment | null> {
    const id = rec.id;
    if (!sameToken(rec.token, token)) {
      throw refuse(
        ErrorCode.BAD_TOKEN,
        `Cannot resume session "${id}": the resume token does not match`,
      );
    }
    const now = this.#now();
    const known = this.#known(rec);
    const status = rec.status === "live" && known !== undefined
      ? known.status
      : rec.status;
    if (status === "completed") {
      throw refuse(
        ErrorCode.SESSION_COMPLETED,
        `Cannot resume session "${id}": it was completed ${
          ago(now - (known?.deadline ?? rec.expiresAt))
        } ago`,
      );
    }
    if (status === "expired") {
      throw this.#expiredError(id, now, known?.deadline ?? rec.expiresAt);
    }
    const deadline = known?.deadline ?? await this.#deadline(rec);
    if (deadline <= now) {
      if (known === undefined) {
        // Best effort: the deadline the servers judge by decides anyway.
        await this.#tombstone(rec, "expired", deadline).catch(() => {});
      }
      throw this.#expiredError(id, now, deadline);
    }
    if (nextOffset > rec.count) {
      throw refuse(
        ErrorCode.INVALID_OFFSET,
        `Cannot resume session "${id}" at offset ${nextOffset}: it has ${rec.count} numbers`,
      );
    }
    let seed: Seed;
    try {
      seed = seedFromHex(rec.seed);
      if (
        !Number.isInteger(rec.count) || rec.count < 1 || rec.count > MAX_COUNT
      ) {
        throw new RangeError(`count ${rec.count}`);
      }
    } catch (cause) {
      // A record no server of ours writes: refuse it here, as a retriable
      // store failure, before anything is attached.
      throw unavailable(
        `Cannot resume session "${id}": its stored record is malformed`,
        cause,
      );
    }
    const next: SessionRecord = {
      ...rec,
      epoch: rec.epoch + 1,
      owner: this.#o.serverId,
      expiresAt: 0,
      retainUntil: 0,
    };
    // Detached (here, by what this server knows, or anywhere, by the record): since when.
    const detachedAt = known?.status === "live"
      ? known.deadline - this.#o.ttlMs
      : rec.owner === ""
      ? rec.expiresAt - this.#o.ttlMs
      : undefined;
    const ok = await this.#op("replace", (s) => s.replace(rec.epoch, next));
    if (!ok) return null;
    if (detachedAt !== undefined) this.#o.observer?.resumed?.(now - detachedAt);
    const prevOwner = rec.owner;
    const local = this.#attached.get(id);
    this.#forget(id);
    this.#attached.set(id, next);
    if (local !== undefined) {
      // Taken over from a connection on this very server (or one that had
      // already lost the session elsewhere, its notice not drained yet).
      this.#o.counters.sessionsTakenOver++;
      this.#o.onFenced(id, next.epoch);
    }
    if (prevOwner !== "" && prevOwner !== this.#o.serverId) {
      // The record says another server holds it, whatever this one still
      // lists: tell that server, or its connection streams on.
      const fence: Fence = { id, epoch: next.epoch };
      await this.#op("fence", (s) => s.fence(prevOwner, fence)).catch(
        (err) =>
          this.#o.log.warn("could not notify the previous owner", {
            id,
            owner: prevOwner,
            error: String(err),
          }),
      );
      // Taken over again while the notice was on its way: a fence drained in
      // the meantime found no connection to close, so refuse this one here.
      // (Nothing is awaited between this check and the connection's
      // registration, so no later fence can slip in the same way.)
      if (this.#attached.get(id) !== next) {
        throw refuse(
          ErrorCode.TAKEN_OVER,
          `Session "${id}" was resumed by another connection while this one attached`,
        );
      }
    }
    this.#o.counters.resumes++;
    const att = { id, seed, count: rec.count, token, epoch: next.epoch };
    await this.#unlessClosing(att);
    return att;
  }

  #expiredError(id: string, now: number, at: number): ProtocolError {
    return refuse(
      ErrorCode.SESSION_EXPIRED,
      `Cannot resume session "${id}": it expired ${ago(now - at)} ago`,
    );
  }

  /** Whether `att` still holds its session here (not fenced, not ended). */
  holds(att: Attachment): boolean {
    return this.#attached.get(att.id)?.epoch === att.epoch;
  }

  /**
   * Detaches after the connection ended: the session stays resumable for the
   * TTL, counted from now (every disconnect restarts the clock). If the store
   * cannot be reached the write is retried by the heartbeat (before it
   * renews the lease); meanwhile this server refuses a resume past the
   * deadline by what it knows.
   */
  detach(att: Attachment): Promise<void> {
    return this.#track(this.#detach(att));
  }

  async #detach(att: Attachment): Promise<void> {
    const rec = this.#attached.get(att.id);
    if (rec === undefined || rec.epoch !== att.epoch) return;
    this.#attached.delete(att.id);
    const deadline = this.#now() + this.#o.ttlMs;
    const next: SessionRecord = {
      ...rec,
      owner: "",
      expiresAt: deadline,
      retainUntil: deadline + this.#o.tombstoneMs,
    };
    this.#detached.add(att.id, deadline, next);
    const ok = await this.#writeBack.write(rec.epoch, next);
    if (ok === false && this.#detached.get(att.id)?.value === next) {
      // Resumed elsewhere (its takeover notice, drained by the next
      // heartbeat before it flushes, drops this write at no cost), or the
      // store lost the record: the flush reads it back and tells which.
      this.#writeBack.keep(att.id, rec.epoch, next);
    }
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
    return this.#track((async () => {
      const rec = this.#attached.get(att.id);
      if (rec === undefined || rec.epoch !== att.epoch) return false;
      const tomb = this.#tombRecord(rec, "completed", this.#now());
      let ok = await this.#op("replace", (s) => s.replace(rec.epoch, tomb));
      let lostRecord = false;
      if (!ok && (await this.#op("get", (s) => s.get(att.id))) === null) {
        // The store lost the record of a session still attached here: the
        // completion stands and its tombstone is written anew.
        ok = await this.#op("create", (s) => s.create(tomb));
        lostRecord = true;
      }
      if (this.#attached.get(att.id) === rec) this.#attached.delete(att.id);
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
    if (this.holds(att)) this.#attached.delete(att.id);
  }

  /** Whether this server holds `id`: attached, detached here, or a write pending. */
  #holdsHere(id: string): boolean {
    return this.#held(id) !== undefined ||
      this.#writeBack.get(id) !== undefined;
  }

  /** The record this server means `id` to have: detached here, or attached here. */
  #held(id: string): SessionRecord | undefined {
    return this.#detached.get(id)?.value ?? this.#attached.get(id);
  }

  /** Drops everything held locally about `id`. */
  #forget(id: string): void {
    this.#attached.delete(id);
    this.#detached.delete(id);
    this.#writeBack.delete(id);
  }

  /**
   * A tombstone for `rec`. It takes the next epoch, so that whoever still
   * holds `rec.epoch` (a fenced server, a stale detach) can no longer write.
   */
  #tombRecord(
    rec: SessionRecord,
    status: "completed" | "expired",
    at: number,
  ): SessionRecord {
    return {
      id: rec.id,
      seed: "",
      count: rec.count,
      token: rec.token,
      epoch: rec.epoch + 1,
      owner: "",
      status,
      expiresAt: at,
      retainUntil: Math.max(at, this.#now()) + this.#o.tombstoneMs,
    };
  }

  #tombstone(
    rec: SessionRecord,
    status: "completed" | "expired",
    at: number,
  ): Promise<boolean> {
    const tomb = this.#tombRecord(rec, status, at);
    return this.#op("replace", (s) => s.replace(rec.epoch, tomb));
  }

  async #expireDue(
    due: { id: string; deadline: number; value: SessionRecord }[],
  ): Promise<void> {
    for (const d of due) {
      const id = d.id;
      const expected = d.value.epoch;
      const tomb = this.#tombRecord(d.value, "expired", d.deadline);
      const pending = this.#writeBack.get(id);
      if (pending !== undefined) {
        // The detach never reached the store: the heartbeat writes the tombstone instead.
        if (pending.expected === expected) {
          this.#writeBack.keep(id, expected, tomb);
        }
        continue;
      }
      const ok = await this.#writeBack.write(expected, tomb);
      if (ok) this.#expired(id);
      // False: resumed elsewhere, or already expired by a resume that came too late.
    }
  }

  #expired(id: string): void {
    this.#o.counters.sessionsExpired++;
    this.#o.log.info("session expired", { id });
  }

  /** A takeover notice: whatever this server holds at a lower epoch is no longer its own. */
  #fenced(f: Fence): void {
    const a = this.#attached.get(f.id);
    if (a !== undefined && a.epoch < f.epoch) {
      this.#attached.delete(f.id);
      this.#o.counters.sessionsTakenOver++;
      this.#o.onFenced(f.id, f.epoch);
    }
    const d = this.#detached.get(f.id);
    if (d !== undefined && d.value.epoch < f.epoch) this.#detached.delete(f.id);
    this.#writeBack.fenced(f);
  }
}
