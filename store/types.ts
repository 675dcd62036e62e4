/**
 * The session-store interface: what a backend must do to hold sessions for one
 * server process or for many. Shaped for shared backends: create-if-absent,
 * compare-and-set on a fencing epoch, deadlines kept inside values, delete.
 * The session lifecycle (who may attach, when a session has expired) lives in
 * `server/sessions.ts`, written once on top of these primitives.
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
  /** Deletes the record for `id` only if its epoch is `expectedEpoch`. */
  remove(id: string, expectedEpoch: number): Promise<boolean>;
  /** Records that server `owner` is alive until `until` (ms since the epoch). */
  renewLease(owner: string, until: number): Promise<void>;
  /** The lease deadline of `owner`, or `null` if it never had one or it is long gone. */
  leaseOf(owner: string): Promise<number | null>;
  /** Tells `owner` it lost session `fence.id` (delivered by {@link drainFences}). */
  fence(owner: string, fence: Fence): Promise<void>;
  /** Takes and clears the takeover notices for `owner`. */
  drainFences(owner: string): Promise<Fence[]>;
  /** Releases connections and timers. Idempotent. */
  close(): Promise<void>;
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
