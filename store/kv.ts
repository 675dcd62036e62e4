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
 * | `[prefix, "owned", owner, id]`        | `true`: `id` is attached to `owner` |
 * | `[prefix, "lease", owner]`            | {@link Lease}              |
 * | `[prefix, "lease_by_until", until, owner]` | `true`: leases by deadline, for {@link KvStore.collect} |
 * | `[prefix, "clock"]`                   | the store clock (`Deno.KvU64`, ms) |
 * | `[prefix, "fence", owner, orderKey]`  | {@link Fence}              |
 *
 * Deadlines live inside the values; `expireIn` is only passed as a hint that
 * lets KV delete a detached record or a tombstone physically once its
 * `retainUntil` has passed (KV does that in a background pass, about once a
 * minute). Attached records (`retainUntil = 0`) carry no hint: the owner
 * index, written in the same atomic operation as the record, lets
 * {@link KvStore.collect} delete a dead owner's records.
 *
 * **Store clock.** KV has no clock of its own that a client can read, so the
 * store keeps one: the `clock` key, which every lease renewal advances to the
 * maximum of its stored value and the renewing server's estimate (a `max`
 * mutation, so renewals never conflict on it). Each store client adopts the
 * stored clock at first sight (its estimate is its own clock plus the
 * largest offset it has seen, and only ever moves forward), so all servers
 * judge leases and deadlines on one time base. It tolerates any constant
 * offset between the servers' clocks, of any size. A clock that runs fast,
 * or is stepped forward while the server runs, pushes the store clock
 * forward for everyone (sessions then expire early by that much, never
 * late); one stepped backward is ignored.
 *
 * @module
 */

import { type Clock, systemClock } from "../common/clock.ts";
import {
  type Fence,
  type Lease,
  type LeaseRead,
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
  /** This process's clock (its wall reading only), for tests. Default {@link systemClock}. */
  clock?: Pick<Clock, "now">;
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
  readonly #fenceTtlMs: number;
  readonly #local: () => number;
  /** Store clock minus local clock, the largest seen; undefined before the first sight. */
  #offset: number | undefined;
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
    const clock = opts.clock ?? systemClock;
    this.#local = () => clock.now();
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
      const op = this.#kv.atomic()
        .check({ key, versionstamp: null })
        .set(key, rec, this.#expiry(rec.retainUntil));
      if (rec.owner !== "") op.set(this.#ownedKey(rec.owner, rec.id), true);
      const res = await op.commit();
      return res.ok;
    });
  }

  /**
   * Replaces the record if its epoch is `expectedEpoch`: reads it, then
   * commits only if its versionstamp is unchanged, re-reading on a conflict.
   * Moves the id between owner indexes in the same commit.
   */
  replace(expectedEpoch: number, rec: SessionRecord): Promise<boolean> {
    const key = this.#recordKey(rec.id);
    return this.#cas("replace", key, expectedEpoch, (op, cur) => {
      op.set(key, rec, this.#expiry(rec.retainUntil));
      if (cur.owner !== rec.owner) {
        if (cur.owner !== "") op.delete(this.#ownedKey(cur.owner, rec.id));
        if (rec.owner !== "") op.set(this.#ownedKey(rec.owner, rec.id), true);
      }
      return op;
    });
  }

  /**
   * Renews the lease from the store clock: `max(stored clock, this client's
   * estimate)`, or `clockHint` when the database has no clock yet, and
   * advances the clock to it in the same commit.
   */
  renewLease(
    owner: string,
    leaseMs: number,
    clockHint: number,
  ): Promise<Lease> {
    const key = this.#leaseKey(owner);
    return this.#run("renewLease", async () => {
      for (let conflicts = 0; conflicts < MAX_CAS_CONFLICTS; conflicts++) {
        const [clock, cur] = await this.#kv.getMany<[Deno.KvU64, Lease]>([
          this.#clockKey(),
          key,
        ]);
        const seen = this.#see(clock.value);
        const now = Math.floor(seen ?? clockHint);
        const lease: Lease = { renewedAt: now, until: now + leaseMs };
        const op = this.#kv.atomic().check(cur)
          .max(this.#clockKey(), BigInt(now))
          .set(key, lease)
          .set(this.#byUntilKey(lease.until, owner), true);
        if (cur.value !== null && cur.value.until !== lease.until) {
          op.delete(this.#byUntilKey(cur.value.until, owner));
        }
        if ((await op.commit()).ok) {
          this.#see(new Deno.KvU64(BigInt(now)));
          return lease;
        }
      }
      throw new StoreUnavailableError(
        `KV renewLease gave up after ${MAX_CAS_CONFLICTS} write conflicts`,
      );
    });
  }

  /** The lease of `owner` and this client's estimate of the store clock. */
  leaseOf(owner: string): Promise<LeaseRead> {
    return this.#run("leaseOf", async () => {
      const [clock, lease] = await this.#kv.getMany<[Deno.KvU64, Lease]>([
        this.#clockKey(),
        this.#leaseKey(owner),
      ]);
      return { lease: lease.value, now: this.#see(clock.value) };
    });
  }

  /**
   * Takes the owner whose lease ended first, if it ended more than `graceMs`
   * ago on the store clock, and deletes up to `limit` of the records still
   * attached to it, one atomic check-and-delete each; once its index is
   * empty, its lease and fences go too.
   */
  collect(graceMs: number, limit: number): Promise<number> {
    return this.#run("collect", async () => {
      const now = this.#see(
        (await this.#kv.get<Deno.KvU64>(this.#clockKey())).value,
      );
      if (now === null) return 0;
      const byUntil = [this.#prefix, "lease_by_until"];
      let dead: Deno.KvKey | undefined;
      for await (
        const e of this.#kv.list({
          prefix: byUntil,
          end: [...byUntil, now - graceMs + 1],
        }, { limit: 1 })
      ) dead = e.key;
      if (dead === undefined) return 0;
      const owner = String(dead[3]);
      // Every deletion below is checked against the owner's lease as read
      // here: an owner that renews meanwhile (it was cut off, not dead)
      // keeps its lease and what is left of its records. Without it, a
      // renewal between finding the owner and deleting its lease lost the
      // live lease and left its new index entry behind, which had the
      // owner's records collected a grace period later (review of issue
      // 17; Redis's FORGET re-checks too).
      const lease = await this.#kv.get<Lease>(this.#leaseKey(owner));
      if (lease.value !== null && lease.value.until + graceMs > now) {
        // Renewed since: only the index entry found is stale.
        if (Number(dead[2]) !== lease.value.until) {
          await this.#kv.atomic().check(lease).delete(dead).commit();
        }
        return 0;
      }
      let deleted = 0;
      let seen = 0;
      for await (
        const e of this.#kv.list({ prefix: [this.#prefix, "owned", owner] }, {
          limit,
        })
      ) {
        seen++;
        const id = String(e.key[3]);
        const rec = await this.#kv.get<SessionRecord>(this.#recordKey(id));
        const op = this.#kv.atomic().check(lease).check(rec).check(e)
          .delete(e.key);
        if (rec.value?.owner === owner) op.delete(rec.key);
        if ((await op.commit()).ok) {
          if (rec.value?.owner === owner) deleted++;
        } else if (
          (await this.#kv.get(lease.key)).versionstamp !== lease.versionstamp
        ) return deleted; // renewed meanwhile: alive after all
      }
      if (seen < limit) {
        const op = this.#kv.atomic().check(lease).delete(lease.key)
          .delete(dead);
        if (lease.value !== null) {
          op.delete(this.#byUntilKey(lease.value.until, owner));
        }
        if (!(await op.commit()).ok) return deleted;
        for await (
          const f of this.#kv.list({ prefix: [this.#prefix, "fence", owner] })
        ) await this.#kv.delete(f.key);
      }
      return deleted;
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

  #ownedKey(owner: string, id: string): Deno.KvKey {
    return [this.#prefix, "owned", owner, id];
  }

  #byUntilKey(until: number, owner: string): Deno.KvKey {
    return [this.#prefix, "lease_by_until", until, owner];
  }

  #clockKey(): Deno.KvKey {
    return [this.#prefix, "clock"];
  }

  /**
   * Takes note of the stored clock and returns this client's estimate of
   * the store time now (`null` before any clock was seen).
   */
  #see(stored: Deno.KvU64 | null): number | null {
    const local = this.#local();
    if (stored !== null) {
      this.#offset = Math.max(
        this.#offset ?? -Infinity,
        Number(stored.value) - local,
      );
    }
    return this.#offset === undefined ? null : local + this.#offset;
  }

  /** The `expireIn` hint for a record: none when `retainUntil` is 0. */
  #expiry(retainUntil: number): { expireIn?: number } {
    if (retainUntil === 0) return {};
    const now = this.#local() + (this.#offset ?? 0);
    return { expireIn: Math.max(1, Math.ceil(retainUntil - now)) };
  }

  /** ULID-like: 12 hex digits of ms, 6 of a per-store sequence, 8 random. */
  #orderKey(): string {
    const now = this.#local();
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
    write: (
      atomic: Deno.AtomicOperation,
      cur: SessionRecord,
    ) => Deno.AtomicOperation,
  ): Promise<boolean> {
    return this.#run(op, async () => {
      for (let conflicts = 0; conflicts < MAX_CAS_CONFLICTS; conflicts++) {
        const cur = await this.#kv.get<SessionRecord>(key);
        if (cur.value === null || cur.value.epoch !== expectedEpoch) {
          return false;
        }
        const res = await write(this.#kv.atomic().check(cur), cur.value)
          .commit();
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
