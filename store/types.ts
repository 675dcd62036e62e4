/**
 * The session-store interface: what a backend must do to hold sessions for one
 * server process or for many. Shaped for shared backends: create-if-absent,
 * compare-and-set on a fencing epoch, deadlines kept inside values, leases
 * and deadlines in the store's own time. The session lifecycle (who may
 * attach, when a session has expired) lives in `server/sessions.ts`, written
 * once on top of these primitives.
 *
 * Record lifetime: a record with `retainUntil = 0` (every attached record)
 * has no physical expiry. Each backend keeps, inside the same atomic write,
 * an index of the sessions attached to each owner, and {@link
 * SessionStore.collect} deletes the records still attached to an owner whose
 * lease lapsed long ago (a crashed server's), a bounded batch per call.
 * Detached records and tombstones are deleted after their `retainUntil`.
 *
 * Store time: lease deadlines are in the store's clock (Redis: `TIME` inside
 * the scripts; memory: the injected `now`; KV, which has no server clock: a
 * shared clock key that every renewal advances, see `store/kv.ts`). Servers
 * learn the store's time from {@link SessionStore.leaseOf} and {@link
 * SessionStore.renewLease} and write every deadline in it.
 *
 * @module
 */

/** What a session is in the store. Constant size: nothing per number. */
export type SessionStatus = "live" | "completed" | "expired";

/**
 * One session's state. `live` records are attached (`owner` set) or detached
 * (`owner` empty, `expiresAt` the resume deadline). `completed` and `expired`
 * records are tombstones that keep only enough to give an honest refusal.
 */
export interface SessionRecord {
  /** Canonical lowercase UUID. */
  readonly id: string;
  /** The 64-bit PRNG seed as 16 hex digits. */
  readonly seed: string;
  /** Numbers in the session, 1..65535. */
  readonly count: number;
  /** Resume token, 32 hex digits. */
  readonly token: string;
  /**
   * Fencing epoch: 1 at creation, bumped by every attach. Every write is a
   * compare-and-set on it, so a server fenced out by a takeover can no longer
   * change or delete the session.
   */
  readonly epoch: number;
  /** Server instance holding the session, or `""` when detached. */
  readonly owner: string;
  /** Lifecycle state. */
  readonly status: SessionStatus;
  /**
   * Ms since the Unix epoch. Detached live record: the resume deadline.
   * Attached: 0 (the owner's lease decides). Tombstone: when it became one.
   */
  readonly expiresAt: number;
  /** Ms since the epoch after which the backend may physically delete the record. */
  readonly retainUntil: number;
}

/** A server's liveness lease, in store time (ms since the Unix epoch). */
export interface Lease {
  /** When the owner last renewed it. */
  readonly renewedAt: number;
  /** Until when the owner counts as alive. */
  readonly until: number;
}

/** What {@link SessionStore.leaseOf} reads. */
export interface LeaseRead {
  /** The lease, or `null` when the owner has none (never had, or collected). */
  readonly lease: Lease | null;
  /**
   * The store's time at the read, or `null` when it has none yet (a KV
   * database before the first renewal).
   */
  readonly now: number | null;
}

/** A takeover notice: `owner` must close its connection for `id` at or below `epoch`. */
export interface Fence {
  readonly id: string;
  /** The epoch the new attachment holds; the old owner's epoch is lower. */
  readonly epoch: number;
}

/**
 * Storage for sessions. Every method may reject with
 * {@link StoreUnavailableError} when the backend cannot be reached.
 */
export interface SessionStore extends AsyncDisposable {
  /** Backend name for logs and metrics: `memory`, `kv`, `redis`. */
  readonly kind: string;
  /** The record for `id`, or `null`. Deadlines are not applied here. */
  get(id: string): Promise<SessionRecord | null>;
  /** Stores `rec` only if no record for `rec.id` exists. Resolves whether it did. */
  create(rec: SessionRecord): Promise<boolean>;
  /**
   * Replaces the record for `rec.id` only if its current epoch is
   * `expectedEpoch` (compare-and-set). Resolves whether it did.
   */
  replace(expectedEpoch: number, rec: SessionRecord): Promise<boolean>;
  /**
   * Records that server `owner` is alive for `leaseMs` from now, in store
   * time, and resolves the lease written.
   *
   * @param owner the server id
   * @param leaseMs how long the lease lasts
   * @param clockHint the caller's estimate of the store's time now; only a
   * store without a clock of its own (KV) uses it, to advance its shared clock
   */
  renewLease(owner: string, leaseMs: number, clockHint: number): Promise<Lease>;
  /**
   * The lease of `owner` (`null` if it never had one, or it was collected)
   * and the store's time at the read.
   */
  leaseOf(owner: string): Promise<LeaseRead>;
  /**
   * Garbage-collects after a dead server: finds one owner whose lease ended
   * more than `graceMs` ago in store time, deletes up to `limit` records
   * still attached to it (a record attached elsewhere since is only dropped
   * from the index), and once none is left, that owner's index, lease and
   * fences. A per-server operation: the heartbeat calls it once per beat.
   *
   * @param graceMs how long after its lease ended an owner's records are kept
   * @param limit most records deleted in one call
   * @returns how many records it deleted
   */
  collect(graceMs: number, limit: number): Promise<number>;
  /** Tells `owner` it lost session `fence.id` (delivered by {@link drainFences}). */
  fence(owner: string, fence: Fence): Promise<void>;
  /** Takes and clears the takeover notices for `owner`. */
  drainFences(owner: string): Promise<Fence[]>;
  /** Releases connections and timers. Idempotent. */
  close(): Promise<void>;
  /**
   * Optional, for stores that replicate: reads the topology's settings once
   * and resolves a one-line warning when they cannot keep the promise of
   * docs/durability.md (a welcomed session survives a failover), or
   * `undefined` when they can (or the store cannot tell). Never rejects.
   */
  durabilityWarning?(): Promise<string | undefined>;
}

/**
 * The backend could not be reached or failed. Retriable: the server answers
 * with the `store_unavailable` error code and clients retry with backoff.
 */
export class StoreUnavailableError extends Error {
  /** Stable code. */
  readonly code = "store_unavailable";
  /** @param message what failed, sentence case */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StoreUnavailableError";
  }
}

/**
 * A write the store applied but its replicas did not confirm in time (Redis
 * `WAIT` saw fewer replicas than required). A failover could still lose it,
 * so nothing may be promised on it: it is a {@link StoreUnavailableError}
 * (retriable; the client gets `store_unavailable`), told apart only for the
 * `seqstream_store_unconfirmed_total` metric.
 */
export class StoreUnconfirmedError extends StoreUnavailableError {
  /** @param message what was not confirmed, sentence case */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StoreUnconfirmedError";
  }
}
