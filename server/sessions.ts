/**
 * The session lifecycle, written once over any {@link SessionStore}: create,
 * resume (with fenced takeover), detach, complete, expire, and the server's
 * liveness lease. Store operations per session are O(1) in its length: one
 * write at start, two per reconnect (detach, attach), one at the end.
 *
 * @module
 */

import {
  type ErrorCode as Code,
  ErrorCode,
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
import type { Logger } from "../cli/log.ts";
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

/** A session attached to a connection on this server. */
export interface Attachment {
  readonly id: string;
  readonly seed: Seed;
  readonly count: number;
  readonly token: Uint8Array;
  /** The fencing epoch this attachment holds. */
  readonly epoch: number;
}

interface Detached {
  epoch: number;
  deadline: number;
}

function refuse(code: Code, message: string): ProtocolError {
  return new ProtocolError(code, message);
}

function ago(ms: number): string {
  return ms < 1000 ? `${Math.max(0, Math.round(ms))}ms` : `${Math.round(ms / 1000)}s`;
}

function sameToken(a: string, b: Uint8Array): boolean {
  const x = hexToBytes(a);
  if (x.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i]! ^ b[i]!;
  return diff === 0;
}

/**
 * Runs the session lifecycle on a store, and keeps what this server holds:
 * its attachments and the sessions it detached that are awaiting resume.
 */
export class SessionManager {
  readonly #store: SessionStore;
  readonly #o: Required<Omit<SessionManagerOptions, "seedBase">> & {
    seedBase: number | undefined;
  };
  readonly #attached = new Map<string, number>();
  /** Insertion-ordered; deadlines are now+ttl, so the first entry expires first. */
  readonly #detached = new Map<string, Detached>();
  readonly #ops = new Map<string, number>();
  #expiryTimer: ReturnType<typeof setTimeout> | undefined;
  #leaseTimer: ReturnType<typeof setInterval> | undefined;
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

  /** Store operations by kind, for `seqstream_store_ops_total`. */
  get storeOps(): ReadonlyMap<string, number> {
    return this.#ops;
  }

  /** Starts the lease heartbeat (which also drains takeover notices). */
  async start(): Promise<void> {
    await this.#heartbeat().catch(() => {});
    const every = Math.max(50, Math.floor(this.#o.leaseMs / 3));
    this.#leaseTimer = setInterval(() => {
      this.#heartbeat().catch(() => {});
    }, every);
  }

  /** Stops timers. Sessions in the store stay as they are (resumable). */
  close(): void {
    this.#closed = true;
    clearInterval(this.#leaseTimer);
    clearTimeout(this.#expiryTimer);
  }

  async #op<T>(name: string, fn: () => Promise<T>): Promise<T> {
    this.#ops.set(name, (this.#ops.get(name) ?? 0) + 1);
    try {
      return await fn();
    } catch (cause) {
      this.#o.counters.storeErrors++;
      const msg = cause instanceof StoreUnavailableError
        ? cause.message
        : String(cause);
      throw new ProtocolError(
        ErrorCode.STORE_UNAVAILABLE,
        `Session store (${this.#store.kind}) is unavailable: ${msg}`,
        { cause },
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
   * still expire). `Infinity` while the owner is alive.
   */
  async #deadline(rec: SessionRecord, now: number): Promise<number> {
    if (rec.owner === "") return rec.expiresAt;
    if (rec.owner === this.#o.serverId) return Infinity;
    const lease = await this.#op("lease_get", () => this.#store.leaseOf(rec.owner));
    if (lease === null || lease < now) {
      return (lease ?? now) + this.#o.ttlMs;
    }
    return Infinity;
  }

  /**
   * Starts a new session for a hello. The token is the client's choice; a
   * repeated hello (same id, count and token) for a session that is still
   * live attaches it again, so a lost welcome costs nothing.
   *
   * @throws {ProtocolError} `INVALID_COUNT`, `SESSION_IN_USE`, `STORE_UNAVAILABLE`
   */
  async open(id: string, count: number, token: Uint8Array): Promise<Attachment> {
    if (!Number.isInteger(count) || count < 1 || count > MAX_COUNT) {
      throw refuse(
        ErrorCode.INVALID_COUNT,
        `Count must be between 1 and ${MAX_COUNT}, got ${count}`,
      );
    }
    const now = Date.now();
    const seed = this.#o.seedBase === undefined
      ? randomSeed()
      : deriveSeed(this.#o.seedBase, uuidToBytes(id));
    const existing = await this.#op("get", () => this.#store.get(id));
    const rec: SessionRecord = {
      id,
      seed: seedToHex(seed),
      count,
      token: bytesToHex(token),
      epoch: (existing?.epoch ?? 0) + 1,
      owner: this.#o.serverId,
      status: "live",
      expiresAt: 0,
      retainUntil: this.#horizon(now, count),
    };
    let ok: boolean;
    if (existing === null) {
      ok = await this.#op("create", () => this.#store.create(rec));
    } else {
      if (existing.status === "live" && (await this.#deadline(existing, now)) > now) {
        if (existing.count === count && sameToken(existing.token, token)) {
          // The same hello again (its welcome was lost): attach the same session.
          return await this.resume(id, token, 0);
        }
        throw refuse(
          ErrorCode.SESSION_IN_USE,
          `Session "${id}" is still live or resumable; resume it or use another id`,
        );
      }
      ok = await this.#op("replace", () => this.#store.replace(existing.epoch, rec));
    }
    if (!ok) {
      throw refuse(
        ErrorCode.SESSION_IN_USE,
        `Session "${id}" was created concurrently by another connection`,
      );
    }
    this.#detached.delete(id);
    this.#attached.set(id, rec.epoch);
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
    const now = Date.now();
    const rec = await this.#op("get", () => this.#store.get(id));
    if (rec === null) {
      throw refuse(
        ErrorCode.UNKNOWN_SESSION,
        `Cannot resume session "${id}": this server's store has no such session`,
      );
    }
    if (!sameToken(rec.token, token)) {
      throw refuse(
        ErrorCode.BAD_TOKEN,
        `Cannot resume session "${id}": the resume token does not match`,
      );
    }
    if (rec.status === "completed") {
      throw refuse(
        ErrorCode.SESSION_COMPLETED,
        `Cannot resume session "${id}": it was completed ${ago(now - rec.expiresAt)} ago`,
      );
    }
    let deadline = rec.status === "expired"
      ? rec.expiresAt
      : await this.#deadline(rec, now);
    if (deadline <= now) {
      if (rec.status === "live") {
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
    const ok = await this.#op("replace", () => this.#store.replace(rec.epoch, next));
    if (!ok) {
      throw refuse(
        ErrorCode.SESSION_IN_USE,
        `Cannot resume session "${id}": another connection resumed it at the same moment`,
      );
    }
    const prevOwner = rec.owner;
    this.#detached.delete(id);
    const localEpoch = this.#attached.get(id);
    this.#attached.set(id, next.epoch);
    if (prevOwner === this.#o.serverId && localEpoch !== undefined) {
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
    return this.#attached.get(att.id) === att.epoch;
  }

  /**
   * Detaches after the connection ended: the session stays resumable for the
   * TTL, counted from now (every disconnect restarts the clock).
   */
  async detach(att: Attachment): Promise<void> {
    if (!this.holds(att)) return;
    this.#attached.delete(att.id);
    const now = Date.now();
    const deadline = now + this.#o.ttlMs;
    this.#detached.set(att.id, { epoch: att.epoch, deadline });
    this.#armExpiry();
    const rec = await this.#op("get", () => this.#store.get(att.id)).catch(() => null);
    if (rec === null || rec.epoch !== att.epoch) return;
    const ok = await this.#op("replace", () =>
      this.#store.replace(att.epoch, {
        ...rec,
        owner: "",
        expiresAt: deadline,
        retainUntil: deadline + this.#o.tombstoneMs,
      })).catch((err) => {
        this.#o.log.warn("could not record a detach; the lease will expire it", {
          id: att.id,
          error: String(err),
        });
        return true;
      });
    if (!ok) this.#detached.delete(att.id);
  }

  /**
   * Completes after the client's ack: the session's state is discarded, and
   * only a tombstone remains so a late resume gets an honest answer.
   * Resolves whether this attachment still held the session.
   */
  async complete(att: Attachment): Promise<boolean> {
    if (!this.holds(att)) return false;
    const rec = await this.#op("get", () => this.#store.get(att.id));
    if (rec === null || rec.epoch !== att.epoch) return false;
    const ok = await this.#tombstone(rec, "completed", Date.now());
    if (ok) {
      this.#attached.delete(att.id);
      this.#o.counters.sessionsCompleted++;
    }
    return ok;
  }

  /** Forgets an attachment without touching the store (fenced, or shutting down). */
  release(att: Attachment): void {
    if (this.holds(att)) this.#attached.delete(att.id);
  }

  #tombstone(
    rec: SessionRecord,
    status: "completed" | "expired",
    at: number,
  ): Promise<boolean> {
    return this.#op("replace", () =>
      this.#store.replace(rec.epoch, {
        id: rec.id,
        seed: "",
        count: rec.count,
        token: rec.token,
        epoch: rec.epoch,
        owner: "",
        status,
        expiresAt: at,
        retainUntil: Math.max(at, Date.now()) + this.#o.tombstoneMs,
      }));
  }

  #armExpiry(): void {
    if (this.#closed || this.#expiryTimer !== undefined) return;
    const first = this.#detached.values().next();
    if (first.done) return;
    const delay = Math.max(0, first.value.deadline - Date.now());
    this.#expiryTimer = setTimeout(() => {
      this.#expiryTimer = undefined;
      this.#expireDue().finally(() => this.#armExpiry());
    }, delay);
  }

  async #expireDue(): Promise<void> {
    const now = Date.now();
    const due: [string, Detached][] = [];
    for (const entry of this.#detached) {
      if (entry[1].deadline > now) break;
      due.push(entry);
    }
    for (const [id, d] of due) {
      this.#detached.delete(id);
      try {
        const rec = await this.#op("get", () => this.#store.get(id));
        if (rec === null || rec.epoch !== d.epoch || rec.status !== "live") {
          continue; // resumed elsewhere, or already gone
        }
        if (rec.owner !== "") continue; // re-attached somewhere
        if (await this.#tombstone(rec, "expired", d.deadline)) {
          this.#o.counters.sessionsExpired++;
          this.#o.log.info("session expired", { id });
        }
      } catch (err) {
        // Store down: try again shortly; the deadline inside the record holds anyway.
        this.#detached.set(id, { epoch: d.epoch, deadline: now + 1000 });
        this.#o.log.warn("could not expire a session; will retry", {
          id,
          error: String(err),
        });
      }
    }
  }

  async #heartbeat(): Promise<void> {
    if (this.#closed) return;
    const now = Date.now();
    await this.#op(
      "lease_renew",
      () => this.#store.renewLease(this.#o.serverId, now + this.#o.leaseMs),
    );
    const fences = await this.#op(
      "fence_drain",
      () => this.#store.drainFences(this.#o.serverId),
    );
    for (const f of fences) {
      const local = this.#attached.get(f.id);
      if (local !== undefined && local < f.epoch) {
        this.#attached.delete(f.id);
        this.#o.counters.sessionsTakenOver++;
        this.#o.onFenced(f.id, f.epoch);
      }
      const d = this.#detached.get(f.id);
      if (d && d.epoch < f.epoch) this.#detached.delete(f.id);
    }
  }
}
