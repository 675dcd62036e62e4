/**
 * The session lifecycle, written once over any {@link SessionStore}: create,
 * resume (with fenced takeover), detach, complete, expire, and the server's
 * liveness lease.
 *
 * Store operations per session are O(1) in its length. The manager keeps the
 * record it wrote for every session it holds, so its own later writes are
 * blind compare-and-sets on the epoch, with no read first:
 *
 * | event                 | operations                                         |
 * | --------------------- | -------------------------------------------------- |
 * | new session           | `create` (+ `get`, `replace` if the id was used)   |
 * | detach                | `replace`                                          |
 * | resume                | `get`, `replace` (+ `lease_get`, `fence` when the  |
 * |                       | record is still attached to another server)        |
 * | complete              | `replace` (a tombstone)                            |
 * | expiry (if detached)  | `replace` (a tombstone; fails harmlessly if the    |
 * |                       | session was resumed elsewhere)                     |
 *
 * So a session with `r` reconnects costs at most `2 + 5·r` operations (see
 * `tests/store_ops_test.ts` for what each backend measures). The heartbeat's
 * operations ({@link SERVER_STORE_OPS}) are per server, not per session.
 * A resume that loses a race with another attachment adds at most 6 `get`s
 * and one more attach while it waits for the winner to let go.
 *
 * Races: every write is a compare-and-set on the epoch, and every attach
 * and tombstone takes the next epoch, so of two writers exactly one wins and
 * a server that lost a session (fenced) can never write it again. A resume
 * takes over a session attached elsewhere (a half-open connection); the
 * previous owner learns it from a fence, drained by its heartbeat, and
 * closes its connection with `taken_over`.
 *
 * Store outages: a session that is streaming needs no store operation, so it
 * keeps going. A write that fails (detach, expiry tombstone) is kept and
 * retried by the heartbeat once the store answers again. A store that lost
 * its data (a Redis restarted without persistence, a failover to a replica
 * that missed writes) is detected by this server's own lease having
 * vanished; the server then writes back every session it holds, and for one
 * lease length answers resumes of sessions it cannot find with the
 * retriable `store_unavailable` rather than the final `unknown_session`, so
 * that other servers have time to write back theirs.
 *
 * @module
 */

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
import type { Logger } from "../common/logger.ts";
import type { Counters } from "./metrics.ts";
import {
  type Fence,
  type SessionRecord,
  type SessionStore,
  StoreUnavailableError,
} from "../store/types.ts";

/** Settings for {@link SessionManager}. */
export interface SessionManagerOptions {
  /** This server instance's id (unique per process). */
  serverId: string;
  /** How long a detached session stays resumable (ms). */
  ttlMs: number;
  /** Interval between numbers (ms); bounds how long an attachment can last. */
  intervalMs: number;
  /** Base seed for reproducible sessions (`--seed`), or undefined for random seeds. */
  seedBase?: number | undefined;
  /** How long this server's lease lasts without renewal (ms). Default 3000. */
  leaseMs?: number;
  /** How long tombstones (completed/expired) are kept for honest refusals (ms). Default 5 min. */
  tombstoneMs?: number;
  /** Longest a client may stall its reads before it is dropped (ms). */
  stallMs: number;
  /** Counters to update. */
  counters: Counters;
  /** Logger for session events. */
  log: Logger;
  /** Called when a local attachment must close because it was taken over. */
  onFenced: (id: string, epoch: number) => void;
}

/**
 * The `op` labels of `seqstream_store_ops_total` that the server's heartbeat
 * spends, whatever its sessions do: `lease_check` and `lease_renew` (its own
 * lease), `fence_drain` (takeover notices) and `resync` (writing its sessions
 * back after the store lost data). Every other label is spent on behalf of a
 * session and is bounded per session.
 */
export const SERVER_STORE_OPS: ReadonlySet<string> = new Set([
  "lease_check",
  "lease_renew",
  "fence_drain",
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

/** A session detached here and awaiting resume. */
interface Detached {
  /** The record as this server wrote (or means to write) it. */
  rec: SessionRecord;
  deadline: number;
}

/** A write the store has not confirmed: `rec` if the record's epoch is still `expected`. */
interface Pending {
  expected: number;
  rec: SessionRecord;
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
  const x = hexToBytes(a);
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

/**
 * Runs the session lifecycle on a store, and keeps what this server holds:
 * its attachments, the sessions it detached that are awaiting resume, and the
 * writes the store has not confirmed yet.
 */
export class SessionManager {
  readonly #store: SessionStore;
  readonly #o: Required<Omit<SessionManagerOptions, "seedBase">> & {
    seedBase: number | undefined;
  };
  /** Attached here: the record as written at attach time. */
  readonly #attached = new Map<string, SessionRecord>();
  /** Insertion-ordered; deadlines are now+ttl, so the first entry expires first. */
  readonly #detached = new Map<string, Detached>();
  /** Failed writes, retried by the heartbeat. */
  readonly #unsynced = new Map<string, Pending>();
  readonly #ops = new Map<string, number>();
  #expiryTimer: ReturnType<typeof setTimeout> | undefined;
  #leaseTimer: ReturnType<typeof setInterval> | undefined;
  #beating: Promise<void> | undefined;
  #expiring: Promise<void> | undefined;
  #resyncing: Promise<void> | undefined;
  /** The lease deadline last confirmed written; 0 before the first. */
  #leaseWritten = 0;
  /** Until then, a missing session may be one the store lost and a server has yet to write back. */
  #recoveringUntil = 0;
  /** A store operation failed since the last successful heartbeat. */
  #failed = false;
  /** The store lost data and this server has not written all its sessions back yet. */
  #needResync = false;
  #closed = false;

  /** @param store the backend; @param opts lifecycle settings */
  constructor(store: SessionStore, opts: SessionManagerOptions) {
    this.#store = store;
    this.#o = {
      leaseMs: 3000,
      tombstoneMs: 300_000,
      ...opts,
      seedBase: opts.seedBase,
    };
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

  /** Writes the store has not confirmed yet (detaches or tombstones made during an outage). */
  get unsynced(): number {
    return this.#unsynced.size;
  }

  /**
   * Writes the lease once (a store that is down is not fatal: sessions are
   * refused until it answers) and starts the heartbeat, every `leaseMs / 3`,
   * which renews the lease, drains takeover notices and retries failed writes.
   */
  async start(): Promise<void> {
    await this.#beat();
    const every = Math.max(20, Math.floor(this.#o.leaseMs / 3));
    this.#leaseTimer = setInterval(() => void this.#beat(), every);
  }

  /**
   * Stops timers and waits for the heartbeat and write-back in flight.
   * Sessions in the store stay as they are (resumable). Idempotent.
   */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#leaseTimer);
    clearTimeout(this.#expiryTimer);
    this.#expiryTimer = undefined;
    await Promise.all([this.#beating, this.#resyncing, this.#expiring]);
  }

  async #op<T>(name: string, fn: () => Promise<T>): Promise<T> {
    this.#ops.set(name, (this.#ops.get(name) ?? 0) + 1);
    try {
      return await fn();
    } catch (cause) {
      this.#failed = true;
      this.#o.counters.storeErrors++;
      const msg = cause instanceof StoreUnavailableError
        ? cause.message
        : String(cause);
      throw unavailable(
        `Session store (${this.#store.kind}) is unavailable: ${msg}`,
        cause,
      );
    }
  }

  #horizon(now: number, remaining: number): number {
    // An attachment cannot outlive its remaining numbers plus stalls; past
    // this the record of a crashed owner may be collected by the backend.
    return now + remaining * this.#o.intervalMs + this.#o.stallMs +
      this.#o.ttlMs + this.#o.leaseMs + 60_000;
  }

  /**
   * When a live record stops being resumable: its detach deadline, or for an
   * attachment, its owner's lease plus the TTL (so a crashed owner's sessions
   * still expire). `Infinity` while the owner is alive. An owner whose lease
   * is gone altogether died long ago (stores keep a lease well past its end),
   * unless the store itself lost data recently.
   */
  async #deadline(rec: SessionRecord, now: number): Promise<number> {
    if (rec.owner === "") return rec.expiresAt;
    if (rec.owner === this.#o.serverId) return Infinity;
    const lease = await this.#op(
      "lease_get",
      () => this.#store.leaseOf(rec.owner),
    );
    if (lease === null) return now < this.#recoveringUntil ? Infinity : now;
    return lease < now ? lease + this.#o.ttlMs : Infinity;
  }

  /** Sessions may only be attached once other servers can see this one's lease. */
  async #ensureLease(): Promise<void> {
    if (this.#leaseWritten > 0) return;
    await this.#beat();
    if (this.#leaseWritten === 0) {
      throw unavailable(
        `Session store (${this.#store.kind}) is unavailable: cannot register this server's lease`,
      );
    }
  }

  /**
   * Starts a new session for a hello. The token is the client's choice; a
   * repeated hello (same id, count and token) for a session that is still
   * live attaches it again, so a lost welcome costs nothing.
   *
   * @throws {ProtocolError} `INVALID_COUNT`, `SESSION_IN_USE`, `STORE_UNAVAILABLE`
   */
  async open(
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
    const now = Date.now();
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
      retainUntil: this.#horizon(now, count),
    };
    // Create first: a new id (the usual case) costs one operation.
    let rec = fresh;
    let ok = await this.#op("create", () => this.#store.create(fresh));
    if (!ok) {
      const existing = await this.#op("get", () => this.#store.get(id));
      if (existing !== null) {
        if (
          existing.status === "live" &&
          (await this.#deadline(existing, now)) > now
        ) {
          if (existing.count === count && sameToken(existing.token, token)) {
            // The same hello again (its welcome was lost): attach the same session.
            return await this.#attach(existing, token, 0, now) ??
              await this.#afterConflict(id, token, 0, now);
          }
          throw refuse(
            ErrorCode.SESSION_IN_USE,
            `Session "${id}" is still live or resumable; resume it or use another id`,
          );
        }
        rec = { ...fresh, epoch: existing.epoch + 1 };
        ok = await this.#op(
          "replace",
          () => this.#store.replace(existing.epoch, rec),
        );
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
    return { id, seed, count, token, epoch: rec.epoch };
  }

  /**
   * Re-attaches a session for a resume, fencing out any earlier attachment.
   *
   * @throws {ProtocolError} `UNKNOWN_SESSION`, `BAD_TOKEN`, `SESSION_EXPIRED`,
   * `SESSION_COMPLETED`, `INVALID_OFFSET`, `SESSION_IN_USE`, `STORE_UNAVAILABLE`
   */
  async resume(
    id: string,
    token: Uint8Array,
    nextOffset: number,
  ): Promise<Attachment> {
    await this.#ensureLease();
    const now = Date.now();
    const rec = await this.#op("get", () => this.#store.get(id));
    if (rec === null) {
      if (await this.#storeLostData(now)) {
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
    return await this.#attach(rec, token, nextOffset, now) ??
      await this.#afterConflict(id, token, nextOffset, now);
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
    started: number,
  ): Promise<Attachment> {
    for (
      let wait = 10;
      !this.#closed && Date.now() + wait - started <= CONFLICT_WAIT_MS;
      wait *= 2
    ) {
      await new Promise((r) => setTimeout(r, wait));
      const rec = await this.#op("get", () => this.#store.get(id));
      if (rec === null) break;
      if (rec.status === "live" && rec.owner !== "") continue; // still held
      const att = await this.#attach(rec, token, nextOffset, Date.now());
      if (att !== null) return att;
    }
    return inUse(id);
  }

  /**
   * Attaches `rec` here if its epoch is unchanged; resolves `null` when
   * another attachment changed it first.
   */

  async #attach(
    rec: SessionRecord,
    token: Uint8Array,
    nextOffset: number,
    now: number,
  ): Promise<Attachment | null> {
    const id = rec.id;
    if (!sameToken(rec.token, token)) {
      throw refuse(
        ErrorCode.BAD_TOKEN,
        `Cannot resume session "${id}": the resume token does not match`,
      );
    }
    if (rec.status === "completed") {
      throw refuse(
        ErrorCode.SESSION_COMPLETED,
        `Cannot resume session "${id}": it was completed ${
          ago(now - rec.expiresAt)
        } ago`,
      );
    }
    let deadline = rec.status === "expired"
      ? rec.expiresAt
      : await this.#deadline(rec, now);
    if (deadline <= now) {
      if (rec.status === "live") {
        // Best effort: the deadline inside the record decides anyway.
        await this.#tombstone(rec, "expired", deadline).catch(() => {});
      }
      deadline = Math.min(deadline, now);
      throw refuse(
        ErrorCode.SESSION_EXPIRED,
        `Cannot resume session "${id}": it expired ${ago(now - deadline)} ago`,
      );
    }
    if (nextOffset > rec.count) {
      throw refuse(
        ErrorCode.INVALID_OFFSET,
        `Cannot resume session "${id}" at offset ${nextOffset}: it has ${rec.count} numbers`,
      );
    }
    const next: SessionRecord = {
      ...rec,
      epoch: rec.epoch + 1,
      owner: this.#o.serverId,
      expiresAt: 0,
      retainUntil: this.#horizon(now, rec.count - nextOffset),
    };
    const ok = await this.#op(
      "replace",
      () => this.#store.replace(rec.epoch, next),
    );
    if (!ok) return null;
    const prevOwner = rec.owner;
    const local = this.#attached.get(id);
    this.#forget(id);
    this.#attached.set(id, next);
    if (local !== undefined) {
      // Taken over from a connection on this very server.
      this.#o.counters.sessionsTakenOver++;
      this.#o.onFenced(id, next.epoch);
    } else if (prevOwner !== "" && prevOwner !== this.#o.serverId) {
      const fence: Fence = { id, epoch: next.epoch };
      await this.#op("fence", () => this.#store.fence(prevOwner, fence)).catch(
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
    return {
      id,
      seed: seedFromHex(rec.seed),
      count: rec.count,
      token,
      epoch: next.epoch,
    };
  }

  /** Whether `att` still holds its session here (not fenced, not ended). */
  holds(att: Attachment): boolean {
    return this.#attached.get(att.id)?.epoch === att.epoch;
  }

  /**
   * Detaches after the connection ended: the session stays resumable for the
   * TTL, counted from now (every disconnect restarts the clock). If the store
   * cannot be reached the write is retried by the heartbeat; meanwhile the
   * record still names this server, which stays its owner.
   */
  async detach(att: Attachment): Promise<void> {
    const rec = this.#attached.get(att.id);
    if (rec === undefined || rec.epoch !== att.epoch) return;
    this.#attached.delete(att.id);
    const deadline = Date.now() + this.#o.ttlMs;
    const next: SessionRecord = {
      ...rec,
      owner: "",
      expiresAt: deadline,
      retainUntil: deadline + this.#o.tombstoneMs,
    };
    const entry: Detached = { rec: next, deadline };
    this.#detached.delete(att.id); // keep the map in deadline order
    this.#detached.set(att.id, entry);
    this.#armExpiry();
    const ok = await this.#write(
      att.id,
      rec.epoch,
      next,
      "could not record a detach; will retry",
    );
    if (ok === false && this.#detached.get(att.id) === entry) {
      if (this.#needResync) {
        // The record may be missing because the store lost it: the write-back decides.
        this.#unsynced.set(att.id, { expected: rec.epoch, rec: next });
      } else {
        // Resumed elsewhere or expired by another server in the meantime.
        this.#detached.delete(att.id);
      }
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
  async complete(att: Attachment): Promise<boolean> {
    const rec = this.#attached.get(att.id);
    if (rec === undefined || rec.epoch !== att.epoch) return false;
    const ok = await this.#tombstone(rec, "completed", Date.now());
    if (this.#attached.get(att.id) === rec) this.#attached.delete(att.id);
    if (ok) this.#o.counters.sessionsCompleted++;
    return ok;
  }

  /** Forgets an attachment without touching the store (fenced, or shutting down). */
  release(att: Attachment): void {
    if (this.holds(att)) this.#attached.delete(att.id);
  }

  /** Drops everything held locally about `id`. */
  #forget(id: string): void {
    this.#attached.delete(id);
    this.#detached.delete(id);
    this.#unsynced.delete(id);
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
      retainUntil: Math.max(at, Date.now()) + this.#o.tombstoneMs,
    };
  }

  #tombstone(
    rec: SessionRecord,
    status: "completed" | "expired",
    at: number,
  ): Promise<boolean> {
    const tomb = this.#tombRecord(rec, status, at);
    return this.#op("replace", () => this.#store.replace(rec.epoch, tomb));
  }

  /**
   * Compare-and-set `rec` over `expected`; on a store failure keeps it for
   * the heartbeat to retry and resolves `undefined`.
   */
  async #write(
    id: string,
    expected: number,
    rec: SessionRecord,
    warning: string,
  ): Promise<boolean | undefined> {
    try {
      return await this.#op(
        "replace",
        () => this.#store.replace(expected, rec),
      );
    } catch (err) {
      this.#o.log.warn(warning, {
        id,
        error: err instanceof Error ? err.message : String(err),
      });
      // Unless the session moved on while the write was in flight.
      const cur = this.#unsynced.get(id);
      if (cur === undefined || cur.expected <= expected) {
        this.#unsynced.set(id, { expected, rec });
      }
      return undefined;
    }
  }

  #armExpiry(): void {
    if (this.#closed || this.#expiryTimer !== undefined) return;
    const first = this.#detached.values().next();
    if (first.done) return;
    const delay = Math.max(0, first.value.deadline - Date.now());
    this.#expiryTimer = setTimeout(() => {
      this.#expiryTimer = undefined;
      const p = this.#expireDue().finally(() => {
        if (this.#expiring === p) this.#expiring = undefined;
        this.#armExpiry();
      });
      this.#expiring = p;
    }, delay);
  }

  async #expireDue(): Promise<void> {
    const now = Date.now();
    const due: Detached[] = [];
    for (const [id, d] of this.#detached) {
      if (d.deadline > now) break;
      due.push(d);
      this.#detached.delete(id);
    }
    for (const d of due) {
      const id = d.rec.id;
      const expected = d.rec.epoch;
      const tomb = this.#tombRecord(d.rec, "expired", d.deadline);
      const pending = this.#unsynced.get(id);
      if (pending !== undefined) {
        // The detach never reached the store: the heartbeat writes the tombstone instead.
        if (pending.expected === expected) {
          this.#unsynced.set(id, { expected, rec: tomb });
        }
        continue;
      }
      const ok = await this.#write(
        id,
        expected,
        tomb,
        "could not expire a session; will retry",
      );
      if (ok) this.#expired(id);
      // False: resumed elsewhere, or already expired by a resume that came too late.
    }
  }

  #expired(id: string): void {
    this.#o.counters.sessionsExpired++;
    this.#o.log.info("session expired", { id });
  }

  /**
   * Whether the store lost data: this server's own lease, which it renews
   * every `leaseMs / 3`, is missing or older than the last one written. Opens
   * a recovery window of one lease, in which every live server's heartbeat
   * has written its sessions back.
   */
  async #storeLostData(now: number): Promise<boolean> {
    if (now < this.#recoveringUntil) return true;
    if (this.#leaseWritten === 0) return false;
    const seen = await this.#op(
      "lease_get",
      () => this.#store.leaseOf(this.#o.serverId),
    );
    if (seen !== null && seen >= this.#leaseWritten) return false;
    this.#recoveringUntil = Date.now() + this.#o.leaseMs;
    void this.#beat();
    return true;
  }

  /** One heartbeat, or the one in flight. Never rejects. */
  #beat(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#beating ??= this.#heartbeat()
      .catch(() => {
        this.#failed = true;
      })
      .finally(() => this.#beating = undefined);
    return this.#beating;
  }

  async #heartbeat(): Promise<void> {
    const self = this.#o.serverId;
    const seen = await this.#op("lease_check", () => this.#store.leaseOf(self));
    const lost = this.#leaseWritten > 0 &&
      (seen === null || seen < this.#leaseWritten);
    const failedBefore = this.#failed;
    this.#failed = false;
    const until = Date.now() + this.#o.leaseMs;
    await this.#op("lease_renew", () => this.#store.renewLease(self, until));
    this.#leaseWritten = until;
    const fences = await this.#op(
      "fence_drain",
      () => this.#store.drainFences(self),
    );
    for (const f of fences) this.#fenced(f);
    if (lost) {
      this.#recoveringUntil = Math.max(
        this.#recoveringUntil,
        Date.now() + this.#o.leaseMs,
      );
      this.#needResync = true;
      this.#o.log.warn(
        "the session store lost data; writing this server's sessions back",
        {
          store: this.#store.kind,
          sessions: this.#attached.size + this.#detached.size +
            this.#unsynced.size,
        },
      );
    }
    if (this.#needResync) {
      // Off the heartbeat, so that lease renewals go on while it runs.
      this.#resyncing ??= this.#resync().finally(() =>
        this.#resyncing = undefined
      );
    } else if (failedBefore || this.#unsynced.size > 0) {
      await this.#flush();
    }
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
    if (d !== undefined && d.rec.epoch < f.epoch) this.#detached.delete(f.id);
    const u = this.#unsynced.get(f.id);
    if (u !== undefined && u.expected < f.epoch) this.#unsynced.delete(f.id);
  }

  /** Retries the writes the store missed, oldest first; stops at the first failure. */
  async #flush(): Promise<void> {
    for (const [id, p] of [...this.#unsynced]) {
      if (this.#closed) return;
      let ok: boolean;
      try {
        ok = await this.#op(
          "replace",
          () => this.#store.replace(p.expected, p.rec),
        );
      } catch {
        return; // still down: the next heartbeat tries again
      }
      if (this.#unsynced.get(id) === p) this.#unsynced.delete(id);
      if (ok && p.rec.status === "expired") this.#expired(id);
      if (!ok) {
        // Someone else moved the session on (resumed it, or expired it).
        const d = this.#detached.get(id);
        if (d !== undefined && d.rec.epoch <= p.expected) {
          this.#detached.delete(id);
        }
      }
    }
  }

  /**
   * Writes back every session this server holds after the store lost data:
   * missing records are created, older ones replaced, and a newer one means
   * the session was taken over (this server lets go of it). Done when every
   * session has been written; a failure leaves it to the next heartbeat.
   */
  async #resync(): Promise<void> {
    const ids = new Set([
      ...this.#attached.keys(),
      ...this.#detached.keys(),
      ...this.#unsynced.keys(),
    ]);
    for (const id of ids) {
      // A session that changes here while its write-back is in flight is written again.
      for (let round = 0; round < 3; round++) {
        if (this.#closed) return;
        const pending = this.#unsynced.get(id);
        const want = pending?.rec ?? this.#detached.get(id)?.rec ??
          this.#attached.get(id);
        if (want === undefined) break; // gone meanwhile
        const mine = pending?.expected ?? want.epoch;
        let ok: boolean;
        try {
          const cur = await this.#op("resync", () => this.#store.get(id));
          if (cur === null) {
            ok = await this.#op("resync", () => this.#store.create(want));
          } else if (
            cur.epoch < mine || (cur.epoch === mine && !sameState(cur, want))
          ) {
            ok = await this.#op(
              "resync",
              () => this.#store.replace(cur.epoch, want),
            );
          } else {
            ok = cur.epoch === mine; // already there; a newer epoch is someone else's
          }
        } catch {
          return; // down again: the next heartbeat after it comes back starts over
        }
        const now = this.#unsynced.get(id)?.rec ??
          this.#detached.get(id)?.rec ?? this.#attached.get(id);
        if (now !== want) continue;
        if (this.#unsynced.get(id) === pending) this.#unsynced.delete(id);
        if (!ok) this.#fenced({ id, epoch: mine + 1 });
        else if (want.status === "expired" && pending !== undefined) {
          this.#expired(id);
        }
        break;
      }
    }
    this.#needResync = false;
  }
}

/** Whether two records with the same epoch say the same thing about ownership and state. */
function sameState(a: SessionRecord, b: SessionRecord): boolean {
  return a.owner === b.owner && a.status === b.status &&
    a.expiresAt === b.expiresAt;
}
