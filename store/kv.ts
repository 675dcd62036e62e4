/**
 * The Deno KV session store: one SQLite file shared by several server
 * processes on a host, an in-process `:memory:` database, or a remote
 * database through KV Connect (`https://…`).
 *
 * Layout under the key prefix (default `"seqstream"`):
 *
 * | key                                   | value                      |
 * | ------------------------------------- | -------------------------- |
 * | `[prefix, "s", id]`                   | {@link SessionRecord}      |
 * | `[prefix, "lease", owner]`            | lease deadline (ms)        |
 * | `[prefix, "fence", owner, orderKey]`  | {@link Fence}              |
 *
 * Deadlines live inside the values; `expireIn` is only passed as a hint that
 * lets KV delete a record physically once its `retainUntil` has passed (KV
 * does that in a background pass, about once a minute).
 *
 * @module
 */

import {
  type Fence,
  type SessionRecord,
  type SessionStore,
  StoreUnavailableError,
} from "./types.ts";

/** Options for {@link KvStore}. */
export interface KvStoreOptions {
  /**
   * How long one operation keeps retrying while SQLite reports the database
   * locked or busy (several processes writing one file) before it rejects with
   * {@link StoreUnavailableError}. 0: no retries. Default 5000 (SQLite's usual
   * busy timeout).
   */
  lockTimeoutMs?: number;
  /** Delay before retry `attempt` (1-based), in ms. Default {@link kvLockBackoff}. */
  backoff?: (attempt: number) => number;
  /**
   * How long after its deadline a lease is kept before KV may delete it, so
   * that {@link KvStore.leaseOf} can still tell a recently dead owner. Default 60 000.
   */
  leaseGraceMs?: number;
  /** Fences not drained within this long may be deleted (their owner is gone). Default 3 600 000. */
  fenceTtlMs?: number;
  /** First key part of every key. Default `"seqstream"`. */
  prefix?: string;
  /** Called before each retry, for metrics and tests. */
  onRetry?: (info: KvRetry) => void;
}

/** What {@link KvStoreOptions.onRetry} is told. */
export interface KvRetry {
  /** The store method, e.g. `"replace"`. */
  readonly op: string;
  /** The attempt that failed, 1-based. */
  readonly attempt: number;
  /** Its error. */
  readonly error: unknown;
}

/**
 * The default lock backoff: exponential from 5 ms, capped at 100 ms, with
 * full jitter (a uniform delay in `[0, cap]`), so that processes that collided
 * once do not collide again in lockstep. The cap is low because the wait is
 * bounded by time ({@link KvStoreOptions.lockTimeoutMs}), not by attempts.
 *
 * @param attempt the failed attempt, 1-based
 * @returns the delay before the next attempt, in ms
 */
export function kvLockBackoff(attempt: number): number {
  return Math.random() * Math.min(100, 5 * 2 ** (attempt - 1));
}

/**
 * Whether a Deno KV error is SQLite lock contention, which goes away on retry
 * (`TypeError: database is locked`, seen with two processes on one file).
 *
 * @param e what a KV call threw
 */
export function isKvLockError(e: unknown): boolean {
  return e instanceof Error &&
    /database (table )?is locked|database is busy|SQLITE_BUSY|SQLITE_LOCKED/i
      .test(e.message);
}

const MAX_CAS_CONFLICTS = 64;
const DRAIN_BATCH = 500;

/**
 * A {@link SessionStore} on Deno KV. Every write is an atomic operation
 * checked against the versionstamp it read, so compare-and-set on the epoch
 * holds across processes. Lock contention on a shared SQLite file is retried
 * with jittered exponential backoff for up to
 * {@link KvStoreOptions.lockTimeoutMs};
 * a failure that persists, or any other KV error, rejects with
 * {@link StoreUnavailableError}.
 *
 * @example
 * ```ts
 * await using store = await KvStore.open("/var/lib/seqstream/sessions.kv");
 * await store.create(record);
 * ```
 */
export class KvStore implements SessionStore {
  /** Always `"kv"`. */
  readonly kind = "kv";
  /** What the database was opened from: a file path, `:memory:` or a URL. */
  readonly path: string;
  readonly #kv: Deno.Kv;
  readonly #prefix: string;
  readonly #lock: LockPolicy;
  readonly #leaseGraceMs: number;
  readonly #fenceTtlMs: number;
  #closed = false;
  #lastFenceTs = 0;
  #fenceSeq = 0;

  /**
   * Opens `path` with `Deno.openKv` (retrying lock contention) and wraps it.
   *
   * @param path a file path, `":memory:"`, or a KV Connect URL (`https://…`)
   * @param opts retries, grace periods and key prefix
   * @throws {TypeError} when `path` is empty
   * @throws {StoreUnavailableError} when the database cannot be opened
   */
  static async open(path: string, opts: KvStoreOptions = {}): Promise<KvStore> {
    if (path === "") throw new TypeError("KV path must not be empty");
    const kv = await retry(
      "open",
      () => Deno.openKv(path),
      lockPolicy(opts),
      `Cannot open KV database "${path}"`,
    );
    return new KvStore(kv, path, opts);
  }

  /**
   * Wraps an open database; the store owns it and closes it in {@link close}.
   *
   * @param kv the database
   * @param path what it was opened from, for messages
   * @param opts retries, grace periods and key prefix
   */
  constructor(kv: Deno.Kv, path: string, opts: KvStoreOptions = {}) {
    this.#kv = kv;
    this.path = path;
    this.#prefix = opts.prefix ?? "seqstream";
    this.#lock = lockPolicy(opts);
    this.#leaseGraceMs = opts.leaseGraceMs ?? 60_000;
    this.#fenceTtlMs = opts.fenceTtlMs ?? 3_600_000;
  }

  /** The record for `id`, or `null`. */
  get(id: string): Promise<SessionRecord | null> {
    return this.#run("get", async () => {
      const e = await this.#kv.get<SessionRecord>(this.#recordKey(id));
      return e.value;
    });
  }

  /** Stores `rec` if no record for `rec.id` exists (atomic check on "no versionstamp"). */
  create(rec: SessionRecord): Promise<boolean> {
    const key = this.#recordKey(rec.id);
    return this.#run("create", async () => {
      const res = await this.#kv.atomic()
        .check({ key, versionstamp: null })
        .set(key, rec, expiry(rec.retainUntil))
        .commit();
      return res.ok;
    });
  }

  /**
   * Replaces the record if its epoch is `expectedEpoch`: reads it, then
   * commits only if its versionstamp is unchanged, re-reading on a conflict.
   */
  replace(expectedEpoch: number, rec: SessionRecord): Promise<boolean> {
    const key = this.#recordKey(rec.id);
    return this.#cas(
      "replace",
      key,
      expectedEpoch,
      (op) => op.set(key, rec, expiry(rec.retainUntil)),
    );
  }

  /** Deletes the record for `id` if its epoch is `expectedEpoch`. */
  remove(id: string, expectedEpoch: number): Promise<boolean> {
    const key = this.#recordKey(id);
    return this.#cas("remove", key, expectedEpoch, (op) => op.delete(key));
  }

  /** Stores the lease; KV may delete it {@link KvStoreOptions.leaseGraceMs} after `until`. */
  renewLease(owner: string, until: number): Promise<void> {
    return this.#run("renewLease", async () => {
      await this.#kv.set(this.#leaseKey(owner), until, {
        expireIn: Math.max(
          1,
          Math.ceil(until + this.#leaseGraceMs - Date.now()),
        ),
      });
    });
  }

  /** The lease deadline of `owner`, or `null`. */
  leaseOf(owner: string): Promise<number | null> {
    return this.#run("leaseOf", async () => {
      const e = await this.#kv.get<number>(this.#leaseKey(owner));
      return e.value;
    });
  }

  /** Appends `fence` to `owner`'s list, under a key that sorts after this store's earlier fences. */
  fence(owner: string, fence: Fence): Promise<void> {
    const key = [this.#prefix, "fence", owner, this.#orderKey()];
    const value: Fence = { id: fence.id, epoch: fence.epoch };
    return this.#run("fence", async () => {
      await this.#kv.set(key, value, {
        expireIn: Math.max(1, Math.ceil(this.#fenceTtlMs)),
      });
    });
  }

  /**
   * Takes `owner`'s fences in order and deletes them, in atomic batches of
   * 500. If a later batch fails, the fences already taken are returned and
   * the rest stay for the next call (at-least-once delivery: a fence is never
   * lost, and acting on one twice is harmless).
   */
  async drainFences(owner: string): Promise<Fence[]> {
    const prefix = [this.#prefix, "fence", owner];
    const out: Fence[] = [];
    for (;;) {
      let batch: Deno.KvEntry<Fence>[];
      try {
        batch = await this.#run("drainFences", async () => {
          const entries: Deno.KvEntry<Fence>[] = [];
          for await (
            const e of this.#kv.list<Fence>({ prefix }, { limit: DRAIN_BATCH })
          ) {
            entries.push(e);
          }
          if (entries.length === 0) return entries;
          const op = this.#kv.atomic();
          for (const e of entries) op.delete(e.key);
          await op.commit();
          return entries;
        });
      } catch (e) {
        if (out.length > 0) return out;
        throw e;
      }
      for (const e of batch) out.push(e.value);
      if (batch.length < DRAIN_BATCH) return out;
    }
  }

  /** Closes the database. Idempotent; later calls on the store reject. */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#kv.close();
    }
    return Promise.resolve();
  }

  /** Same as {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #recordKey(id: string): Deno.KvKey {
    return [this.#prefix, "s", id];
  }

  #leaseKey(owner: string): Deno.KvKey {
    return [this.#prefix, "lease", owner];
  }

  /** ULID-like: 12 hex digits of ms, 6 of a per-store sequence, 8 random. */
  #orderKey(): string {
    const now = Date.now();
    if (now > this.#lastFenceTs) {
      this.#lastFenceTs = now;
      this.#fenceSeq = 0;
    } else {
      this.#fenceSeq++;
    }
    const rand = crypto.getRandomValues(new Uint32Array(1))[0]!;
    return this.#lastFenceTs.toString(16).padStart(12, "0") +
      this.#fenceSeq.toString(16).padStart(6, "0") +
      rand.toString(16).padStart(8, "0");
  }

  /** Compare-and-set on the epoch of the record at `key`; `write` adds the mutation. */
  #cas(
    op: string,
    key: Deno.KvKey,
    expectedEpoch: number,
    write: (atomic: Deno.AtomicOperation) => Deno.AtomicOperation,
  ): Promise<boolean> {
    return this.#run(op, async () => {
      for (let conflicts = 0; conflicts < MAX_CAS_CONFLICTS; conflicts++) {
        const cur = await this.#kv.get<SessionRecord>(key);
        if (cur.value === null || cur.value.epoch !== expectedEpoch) {
          return false;
        }
        const res = await write(this.#kv.atomic().check(cur)).commit();
        if (res.ok) return true;
        // Someone wrote between our read and commit: read again and re-decide.
      }
      throw new StoreUnavailableError(
        `KV ${op} gave up after ${MAX_CAS_CONFLICTS} write conflicts on ${
          JSON.stringify(key)
        }`,
      );
    });
  }

  #run<T>(op: string, fn: () => Promise<T>): Promise<T> {
    if (this.#closed) {
      return Promise.reject(
        new StoreUnavailableError(`KV store "${this.path}" is closed`),
      );
    }
    return retry(op, fn, this.#lock, `KV ${op} failed on "${this.path}"`);
  }
}

interface LockPolicy {
  readonly timeoutMs: number;
  readonly backoff: (attempt: number) => number;
  readonly onRetry: ((info: KvRetry) => void) | undefined;
}

function lockPolicy(opts: KvStoreOptions): LockPolicy {
  return {
    timeoutMs: Math.max(0, opts.lockTimeoutMs ?? 5_000),
    backoff: opts.backoff ?? kvLockBackoff,
    onRetry: opts.onRetry,
  };
}

/**
 * Runs `fn`, retrying lock errors until `policy.timeoutMs` has passed; maps
 * every final failure to {@link StoreUnavailableError}.
 */
async function retry<T>(
  op: string,
  fn: () => Promise<T>,
  policy: LockPolicy,
  what: string,
): Promise<T> {
  const start = performance.now();
  for (let attempt = 1;; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (error instanceof StoreUnavailableError) throw error;
      const elapsed = performance.now() - start;
      if (!isKvLockError(error) || elapsed >= policy.timeoutMs) {
        const tries = attempt > 1
          ? ` after ${attempt} attempts in ${Math.round(elapsed)} ms`
          : "";
        throw new StoreUnavailableError(
          `${what}${tries}: ${(error as Error)?.message ?? error}`,
          { cause: error },
        );
      }
      policy.onRetry?.({ op, attempt, error });
      const delay = Math.min(
        policy.backoff(attempt),
        policy.timeoutMs - elapsed,
      );
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/** The `expireIn` hint for a record: none when `retainUntil` is 0. */
function expiry(retainUntil: number): { expireIn?: number } {
  return retainUntil === 0
    ? {}
    : { expireIn: Math.max(1, Math.ceil(retainUntil - Date.now())) };
}
