/**
 * The Redis session store, for server processes on several hosts, through
 * the `ioredis` client: one Redis (`redis://`), a Sentinel-managed primary
 * with automatic failover (`redis+sentinel://`) or a Redis Cluster
 * (`redis+cluster://`), each optionally over TLS (`rediss…`). See
 * `redis_spec.ts` for the specs and credentials, `redis_keys.ts` for the key
 * layout: every script declares its keys, and they all hash to one slot, so
 * one layout serves the three topologies.
 *
 * Compare-and-set runs as Lua scripts (EVALSHA, falling back to EVAL), so each
 * check and write is one atomic step on the server, attachment index
 * included. A record with a non-zero `retainUntil` gets `PEXPIREAT
 * retainUntil`: Redis deletes it then. Attached records (`retainUntil = 0`)
 * have no expiry; a dead owner's are deleted by {@link RedisStore.collect},
 * bucket by bucket.
 *
 * **Store clock.** Leases are written and read with Redis's own clock
 * (`TIME` inside the scripts), so servers whose clocks disagree still judge
 * leases and deadlines on one time base. All leases live in one slot, so on a
 * cluster they are judged by one primary's clock.
 *
 * **Confirmed writes.** Replication is asynchronous: a promoted replica may
 * miss the last writes. So every write of a *live* record (a new session, an
 * attach or takeover, a detach with its deadline, a write-back) and of a
 * completion tombstone (its DONE is a promise too: once only) is followed
 * by `WAIT replicas waitMs` on the same connection (on a cluster, the
 * primary of the key's shard; one `WAIT` at a time per connection confirms
 * every write before it, see `redis_confirm.ts`), and resolves only once
 * that many replicas have it; fewer in time rejects with {@link StoreUnconfirmedError}
 * (retriable), so the server never sends a WELCOME that a failover can take
 * back. Reads of records are vouched for the same way (a deposed primary,
 * with no replicas left, may not answer "no such session"). Expiry
 * tombstones, leases and takeover notices are not confirmed: losing
 * one is judged again from what survives (docs/durability.md says why). The
 * `?replicas=N&waitMs=MS` spec parameters set it; Sentinel and Cluster
 * default to 1 replica within 500 ms (or half the command timeout, if
 * shorter), one Redis to none (no `WAIT` at all).
 *
 * **Failover.** What a failover loses anyway (an unconfirmed write, a lease
 * renewal), the server detects by its own lease going back or missing
 * (`server/lease.ts`; on a cluster, the shard that holds `{lease}`), or by
 * finding a record of a session it holds missing (`server/sessions.ts`, any
 * shard), and writes its sessions back; see docs/operations.md "Scaling out".
 *
 * @module
 */

import { Cluster, Redis, type RedisOptions } from "ioredis";
import {
  type Fence,
  type Lease,
  type LeaseRead,
  type SessionRecord,
  type SessionStore,
  StoreUnavailableError,
  StoreUnconfirmedError,
} from "./types.ts";
import {
  type ConfirmOptions,
  DEFAULT_WAIT_MS,
  type RedisStoreOptions,
} from "./redis_options.ts";
import { BUCKETS, hashSlot, RedisKeys } from "./redis_keys.ts";
import { WaitBatcher } from "./redis_confirm.ts";
import {
  type EnvLookup,
  parseRedisSpec,
  redactRedisSpec,
  REDIS_ENV,
  type RedisSpec,
} from "./redis_spec.ts";

export type { RedisStoreOptions } from "./redis_options.ts";
export {
  parseRedisSpec,
  redactRedisSpec,
  REDIS_ENV,
  type RedisNode,
  type RedisSpec,
} from "./redis_spec.ts";

/**
 * The default reconnect backoff: exponential from 50 ms, capped at 2 s, with
 * jitter in the upper half so a restarted Redis is not hit by every server at once.
 *
 * @param attempt the reconnect attempt, 1-based
 * @returns the delay before it, in ms
 */
export function redisReconnectBackoff(attempt: number): number {
  const cap = Math.min(2000, 50 * 2 ** (attempt - 1));
  return cap / 2 + Math.random() * cap / 2;
}

/** Where {@link parseRedisUrl} says to connect. */
export interface RedisTarget {
  /** Host name or address (IPv6 without brackets). */
  readonly host: string;
  /** TCP port, 6379 by default. */
  readonly port: number;
  /** Database number, 0 by default. */
  readonly db: number;
  /** ACL user name, if the URL has one. */
  readonly username?: string;
  /** Password, if the URL has one. */
  readonly password?: string;
}

/**
 * Parses a plain `redis://[user[:password]@]host[:port][/db]` (no TLS, no
 * environment), for tools that talk to one Redis directly.
 *
 * @param url the URL
 * @returns host, port, database and credentials
 * @throws {TypeError} for anything else, saying what is wrong
 *
 * @example
 * ```ts
 * parseRedisUrl("redis://127.0.0.1:6380/2"); // { host: "127.0.0.1", port: 6380, db: 2 }
 * ```
 */
export function parseRedisUrl(url: string): RedisTarget {
  if (!/^redis:\/\//i.test(url)) {
    throw new TypeError(
      `Invalid Redis URL "${
        redactRedisSpec(url)
      }": expected redis://host[:port][/db]`,
    );
  }
  const spec = parseRedisSpec(url, () => undefined);
  const target: {
    host: string;
    port: number;
    db: number;
    username?: string;
    password?: string;
  } = { host: spec.nodes[0]!.host, port: spec.nodes[0]!.port, db: spec.db };
  if (spec.username !== undefined) target.username = spec.username;
  if (spec.password !== undefined) target.password = spec.password;
  return target;
}

// The store clock in ms, from TIME.
const NOW = `
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`;

// KEYS[1] record, KEYS[2] its bucket's attachment index;
// ARGV[1] JSON, ARGV[2] retainUntil (0: keep forever), ARGV[3] owner, ARGV[4] id.
const CREATE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 then redis.call('PEXPIREAT', KEYS[1], ARGV[2]) end
if ARGV[3] ~= '' then redis.call('ZADD', KEYS[2], 0, ARGV[3] .. '\\0' .. ARGV[4]) end
return 1`;

// KEYS[1] record, KEYS[2] its bucket's attachment index;
// ARGV[1] expected epoch, ARGV[2] JSON, ARGV[3] retainUntil, ARGV[4] owner.
// SET drops any earlier expiry, so retainUntil 0 makes the record persistent.
const REPLACE = `
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
cur = cjson.decode(cur)
if cur.epoch ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
if tonumber(ARGV[3]) > 0 then redis.call('PEXPIREAT', KEYS[1], ARGV[3]) end
if cur.owner ~= ARGV[4] then
  if cur.owner ~= '' then redis.call('ZREM', KEYS[2], cur.owner .. '\\0' .. cur.id) end
  if ARGV[4] ~= '' then redis.call('ZADD', KEYS[2], 0, ARGV[4] .. '\\0' .. cur.id) end
end
return 1`;

// KEYS[1] lease key, KEYS[2] lease deadlines; ARGV[1] owner, ARGV[2] lease ms.
const RENEW = NOW + `
local t = now()
local untl = t + tonumber(ARGV[2])
redis.call('SET', KEYS[1], string.format('%d %d', t, untl))
redis.call('ZADD', KEYS[2], untl, ARGV[1])
return {t, untl}`;

// KEYS[1] lease key. Returns {lease or false, now}.
const LEASE_OF = NOW + `
return {redis.call('GET', KEYS[1]), now()}`;

// KEYS[1] lease deadlines; ARGV[1] grace ms. One owner whose lease ended
// more than the grace ago, or false.
const DEAD = NOW + `
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now() - tonumber(ARGV[1]), 'LIMIT', 0, 1)
return dead[1] or false`;

// KEYS[1] a bucket's attachment index, KEYS[2..] records in it; ARGV[1] the
// dead owner, ARGV[2..] the records' ids. Drops each from the index and
// deletes the record if it is still attached to that owner.
const SWEEP = `
local n = 0
for i = 2, #KEYS do
  local id = ARGV[i]
  redis.call('ZREM', KEYS[1], ARGV[1] .. '\\0' .. id)
  local cur = redis.call('GET', KEYS[i])
  if cur and cjson.decode(cur).owner == ARGV[1] then
    redis.call('DEL', KEYS[i])
    n = n + 1
  end
end
return n`;

// KEYS[1] lease deadlines, KEYS[2] lease, KEYS[3] fences; ARGV[1] owner,
// ARGV[2] grace ms. Forgets the owner if it is still dead.
const FORGET = NOW + `
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) > now() - tonumber(ARGV[2]) then return 0 end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1`;

// KEYS[1] fence list; ARGV[1] JSON, ARGV[2] list TTL (ms).
const FENCE = `
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`;

// KEYS[1] fence list. Takes and clears it in one step.
const DRAIN = `
local all = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
return all`;

/** The scripts, as ioredis methods once `defineCommand` has run. */
interface Scripts {
  seqCreate(
    key: string,
    attached: string,
    json: string,
    retainUntil: number,
    owner: string,
    id: string,
  ): Promise<number>;
  seqReplace(
    key: string,
    attached: string,
    expected: number,
    json: string,
    retainUntil: number,
    owner: string,
  ): Promise<number>;
  seqRenew(
    key: string,
    zset: string,
    owner: string,
    leaseMs: number,
  ): Promise<[number, number]>;
  seqLeaseOf(key: string): Promise<[string | null, number]>;
  seqDead(zset: string, graceMs: number): Promise<string | null>;
  seqSweep(numKeys: number, ...args: string[]): Promise<number>;
  seqForget(
    zset: string,
    lease: string,
    fence: string,
    owner: string,
    graceMs: number,
  ): Promise<number>;
  seqFence(key: string, json: string, ttlMs: number): Promise<number>;
  seqDrain(key: string): Promise<string[]>;
}

/** The commands the store sends besides its scripts (both client kinds have them). */
interface Commands {
  get(key: string): Promise<string | null>;
  zlexcount(key: string, min: string, max: string): Promise<number>;
  zrangebylex(
    key: string,
    min: string,
    max: string,
    limit: "LIMIT",
    offset: number,
    count: number,
  ): Promise<string[]>;
}

/**
 * A {@link SessionStore} on Redis: one server, a Sentinel-managed primary,
 * or a cluster.
 *
 * Outages: commands are never queued while the connection is down (no
 * offline queue, no retries per request, no re-sending of unanswered
 * commands after a reconnect, since a CAS sent twice could report a false
 * failure). A command while disconnected rejects at once, one in flight when
 * the connection drops rejects when it drops, and one without a reply rejects
 * after {@link RedisStoreOptions.commandTimeoutMs}; all with
 * {@link StoreUnavailableError}. Meanwhile the client reconnects on its own
 * with {@link RedisStoreOptions.backoff} (under Sentinel: asking the
 * sentinels for the current primary; on a cluster: refreshing the slot map),
 * and commands succeed again once it has. A command that timed out may still
 * have been applied.
 *
 * @example
 * ```ts
 * await using store = await RedisStore.connect("redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster");
 * await store.create(record);
 * ```
 */
export class RedisStore implements SessionStore {
  /** Always `"redis"`. */
  readonly kind = "redis";
  /** The spec given to the constructor, password replaced by `***`. */
  readonly url: string;
  /** The parsed spec (credentials included: do not log it). */
  readonly #spec: RedisSpec;
  readonly #redis: Redis | Cluster;
  readonly #scripts: Scripts;
  readonly #cmd: Commands;
  readonly #keys: RedisKeys;
  readonly #fenceTtlMs: number;
  readonly #where: string;
  readonly #connectTimeoutMs: number;
  readonly #confirm: { replicas: number; waitMs: number };
  /** One `WAIT` batcher per connection that confirmed writes. */
  readonly #batchers = new WeakMap<Redis, WaitBatcher>();
  /** Cluster nodes the write scripts are defined on. */
  readonly #scripted = new WeakSet<Redis>();
  #lastError: Error | undefined;
  #closing: Promise<void> | undefined;
  /** When ioredis's sentinel loop wakes up from its current wait (ms since the epoch). */
  #sentinelSleepUntil = 0;
  /** Called when the sentinel loop asks whether to go on while closing (it then stops). */
  #sentinelStopped: (() => void) | undefined;

  /**
   * Connects to `spec` and waits until the connection is ready.
   *
   * @param spec a Redis spec (`redis://`, `redis+sentinel://`, `redis+cluster://`,
   * or their `rediss` TLS forms; see `redis_spec.ts`)
   * @param opts timeouts, reconnect backoff and key prefix
   * @throws {TypeError} for a malformed spec or an unreadable CA file
   * @throws {StoreUnavailableError} when Redis cannot be reached within
   * {@link RedisStoreOptions.connectTimeoutMs} (nothing is left running)
   */
  static async connect(
    spec: string,
    opts: RedisStoreOptions = {},
  ): Promise<RedisStore> {
    const store = new RedisStore(spec, opts);
    try {
      await store.ready();
    } catch (e) {
      await store.close();
      throw e;
    }
    return store;
  }

  /**
   * Creates the store without connecting: {@link ready} makes the first
   * connection ({@link RedisStore.connect} does both). Until then commands
   * reject with {@link StoreUnavailableError}.
   *
   * @param spec a Redis spec (see {@link RedisStore.connect})
   * @param opts timeouts, reconnect backoff and key prefix
   * @throws {TypeError} for a malformed spec or an unreadable CA file
   */
  constructor(spec: string, opts: RedisStoreOptions = {}) {
    const env: EnvLookup | undefined = opts.env;
    this.#spec = parseRedisSpec(spec, env);
    this.url = redactRedisSpec(spec);
    this.#keys = new RedisKeys(opts.prefix ?? "seqstream");
    this.#where = describe(this.#spec);
    this.#fenceTtlMs = opts.fenceTtlMs ?? 3_600_000;
    const backoff = opts.backoff ?? redisReconnectBackoff;
    this.#connectTimeoutMs = opts.connectTimeoutMs ?? 2000;
    const commandTimeoutMs = opts.commandTimeoutMs ?? 2000;
    const { replicas, waitMs } = this.#spec.confirm;
    this.#confirm = {
      replicas,
      waitMs: waitMs ??
        Math.max(
          1,
          Math.min(DEFAULT_WAIT_MS, Math.floor(commandTimeoutMs / 2)),
        ),
    };
    if (replicas > 0 && this.#confirm.waitMs >= commandTimeoutMs) {
      throw new TypeError(
        `Invalid Redis store "${this.url}": ?waitMs=${this.#confirm.waitMs} must be below the command timeout (${commandTimeoutMs} ms)`,
      );
    }
    this.#redis = client(this.#spec, {
      backoff,
      connectTimeoutMs: this.#connectTimeoutMs,
      commandTimeoutMs,
      sentinelRetry: (times) => {
        if (this.#closing) {
          this.#sentinelStopped?.();
          return null;
        }
        const ms = backoff(times);
        this.#sentinelSleepUntil = Date.now() + ms;
        return ms;
      },
    });
    // Without a listener ioredis prints every connection error to the console.
    this.#redis.on("error", (e: Error) => this.#lastError = e);
    const define = (name: string, lua: string, numberOfKeys?: number) =>
      this.#redis.defineCommand(
        name,
        numberOfKeys === undefined ? { lua } : { numberOfKeys, lua },
      );
    define("seqCreate", CREATE, 2);
    define("seqReplace", REPLACE, 2);
    define("seqRenew", RENEW, 2);
    define("seqLeaseOf", LEASE_OF, 1);
    define("seqDead", DEAD, 1);
    define("seqSweep", SWEEP);
    define("seqForget", FORGET, 3);
    define("seqFence", FENCE, 1);
    define("seqDrain", DRAIN, 1);
    this.#scripts = this.#redis as unknown as Scripts;
    this.#cmd = this.#redis as unknown as Commands;
  }

  /** Which topology the spec names. */
  get mode(): RedisSpec["mode"] {
    return this.#spec.mode;
  }

  /**
   * Makes the first connection (the constructor does not) and resolves when
   * it is ready; if the client is already reconnecting, waits for it. Gives up
   * after {@link RedisStoreOptions.connectTimeoutMs} either way (under
   * Sentinel the client would otherwise keep asking unreachable sentinels).
   * Resolves at once when ready.
   *
   * @throws {StoreUnavailableError} when it fails; the client then keeps
   * reconnecting in the background until {@link close}
   */
  async ready(): Promise<void> {
    const r = this.#redis;
    if (r.status === "ready") return;
    if (this.#closing) {
      throw this.#unavailable("connect", new Error("the store is closed"));
    }
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const done = (err?: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        r.off("ready", onReady);
        r.off("end", onEnd);
        if (err) reject(this.#unavailable("connect", err));
        else resolve();
      };
      const onReady = () => done();
      const onEnd = () => done(new Error("the store is closed"));
      const timer = setTimeout(
        () => done(new Error(`not ready within ${this.#connectTimeoutMs} ms`)),
        this.#connectTimeoutMs,
      );
      r.on("ready", onReady);
      r.on("end", onEnd);
      if (r.status === "wait") {
        r.connect().then(() => done(), (e) => done(e));
      }
    });
  }

  /**
   * The record for `id`, or `null`. With confirmation on, the read is
   * vouched for like a write: a `WAIT` after it on the same connection must
   * find the replicas there. A primary that a partition or a failover has
   * deposed has none left, and what it reads may be stale (a session
   * created on the new primary is missing there): answering from it could
   * refuse a promised session for good (`unknown_session`).
   *
   * @throws {StoreUnconfirmedError} when the replicas do not answer in time
   */
  get(id: string): Promise<SessionRecord | null> {
    const key = this.#keys.record(id);
    return this.#run("get", async () => {
      if (this.#confirm.replicas === 0) {
        const json = await this.#cmd.get(key);
        return json === null ? null : decodeRecord(json, id);
      }
      const node = this.#nodeOf(key);
      const json = await node.get(key);
      await this.#vouch("read", id, node, node.stream);
      return json === null ? null : decodeRecord(json, id);
    });
  }

  /** The confirmation this store asks of the writes a client is promised (`waitMs` resolved). */
  get confirm(): Required<ConfirmOptions> {
    return this.#confirm;
  }

  /**
   * Stores `rec` if no record for `rec.id` exists (one Lua script); a live
   * record or a completion tombstone is confirmed (see the module
   * documentation).
   *
   * @throws {StoreUnconfirmedError} when it was written but too few replicas
   * confirmed it in time
   */
  create(rec: SessionRecord): Promise<boolean> {
    const args = [
      this.#keys.record(rec.id),
      this.#keys.attachedOf(rec.id),
      JSON.stringify(rec),
      Math.ceil(rec.retainUntil),
      rec.owner,
      rec.id,
    ] as const;
    return this.#run("create", async () => {
      if (!this.#confirms(rec)) {
        return await this.#scripts.seqCreate(...args) === 1;
      }
      return await this.#confirmed(
        "create",
        rec,
        args[0],
        (s) => s.seqCreate(...args),
      );
    });
  }

  /**
   * Replaces the record if its epoch is `expectedEpoch` (one Lua script); a
   * live record or a completion tombstone is confirmed (see the module
   * documentation).
   *
   * @throws {StoreUnconfirmedError} when it was written but too few replicas
   * confirmed it in time
   */
  replace(expectedEpoch: number, rec: SessionRecord): Promise<boolean> {
    const args = [
      this.#keys.record(rec.id),
      this.#keys.attachedOf(rec.id),
      expectedEpoch,
      JSON.stringify(rec),
      Math.ceil(rec.retainUntil),
      rec.owner,
    ] as const;
    return this.#run("replace", async () => {
      if (!this.#confirms(rec)) {
        return await this.#scripts.seqReplace(...args) === 1;
      }
      return await this.#confirmed(
        "replace",
        rec,
        args[0],
        (s) => s.seqReplace(...args),
      );
    });
  }

  /**
   * Whether a write of `rec` is confirmed, with replicas asked for: a live
   * record (its WELCOME is the promise), or a completion tombstone (its DONE
   * is: lost in a failover, it would leave the attached record behind, and
   * the session could be completed a second time, or resumed past its TTL).
   * An expiry tombstone is not: the confirmed detach's deadline refuses
   * without it.
   */
  #confirms(rec: SessionRecord): boolean {
    return this.#confirm.replicas > 0 && rec.status !== "expired";
  }

  /**
   * Runs one write script on the connection that holds `key` (on a cluster,
   * its shard primary's, found by slot), then has it confirmed by a `WAIT`
   * on that same connection, sent after the write's reply (see
   * `redis_confirm.ts`: one `WAIT` in flight per connection confirms every
   * write before it).
   */
  async #confirmed(
    op: string,
    rec: SessionRecord,
    key: string,
    write: (s: Scripts) => Promise<number>,
  ): Promise<boolean> {
    const node = this.#nodeOf(key);
    let n: number;
    try {
      n = await write(node as unknown as Scripts);
    } catch (e) {
      // A moved slot or a dead node: let the cluster learn the new map.
      if (this.#redis instanceof Cluster) this.#redis.refreshSlotsCache();
      throw e;
    }
    if (n !== 1) return false; // nothing written: nothing to confirm
    await this.#vouch(op, rec.id, node, node.stream);
    return true;
  }

  /**
   * Waits for a `WAIT` sent on `node` after a command whose reply came on
   * socket `on`, and rejects unless enough replicas answered it.
   */
  async #vouch(
    op: string,
    id: string,
    node: Redis,
    on: unknown,
  ): Promise<void> {
    const { replicas, waitMs } = this.#confirm;
    let batcher = this.#batchers.get(node);
    if (batcher === undefined) {
      batcher = new WaitBatcher(node, replicas, waitMs);
      this.#batchers.set(node, batcher);
    }
    let acked: number;
    try {
      acked = await batcher.confirm(on);
    } catch (e) {
      throw new StoreUnconfirmedError(
        `Redis ${op} of session ${id} on ${this.#where} is not confirmed: WAIT failed (${
          (e as Error).message
        })`,
        { cause: e },
      );
    }
    if (acked < replicas) {
      throw new StoreUnconfirmedError(
        `Redis ${op} of session ${id} on ${this.#where} is not confirmed: ${acked} of ${replicas} replica(s) answered within ${waitMs} ms`,
      );
    }
  }

  /**
   * The client connection that holds `key`: the one connection, or on a
   * cluster the node serving its slot, with the scripts defined on it.
   *
   * @throws {Error} when the cluster has no node for the slot yet
   */
  #nodeOf(key: string): Redis {
    const r = this.#redis;
    if (!(r instanceof Cluster)) return r;
    const addr = r.slots[hashSlot(key)]?.[0];
    const pool = (r as unknown as {
      connectionPool?: { getInstanceByKey(k: string): Redis | undefined };
    }).connectionPool;
    const node = addr === undefined ? undefined : pool?.getInstanceByKey(addr);
    if (node === undefined) {
      r.refreshSlotsCache();
      throw new Error(`no node serves the slot of ${key} yet`);
    }
    if (!this.#scripted.has(node)) {
      node.defineCommand("seqCreate", { numberOfKeys: 2, lua: CREATE });
      node.defineCommand("seqReplace", { numberOfKeys: 2, lua: REPLACE });
      this.#scripted.add(node);
    }
    return node;
  }

  /**
   * Reads, once, what the promise of docs/durability.md needs from the
   * topology: on each primary (every shard's, on a cluster) the replicas
   * connected and `min-replicas-to-write`. Resolves one line naming what
   * cannot keep it (no confirmation asked on an HA spec; fewer replicas
   * connected than `?replicas=`; `min-replicas-to-write` above the replicas
   * connected, so every write is refused), or `undefined`. A plain
   * `redis://` spec without `?replicas=` promises nothing across a failover
   * and is not checked. Never rejects (a primary that does not answer, or
   * refuses `CONFIG`, is skipped).
   */
  async durabilityWarning(): Promise<string | undefined> {
    const { replicas } = this.#confirm;
    const ha = this.#spec.mode !== "standalone";
    if (!ha && replicas === 0) return undefined;
    const problems: string[] = [];
    if (replicas === 0) {
      problems.push(
        "?replicas=0: writes are not confirmed, so a failover can lose sessions already welcomed",
      );
    }
    const r = this.#redis;
    const primaries = r instanceof Cluster ? r.nodes("master") : [r];
    for (const node of primaries) {
      const name = r instanceof Cluster
        ? `${node.options.host}:${node.options.port}`
        : "the primary";
      let connected: number;
      try {
        const info = await node.info("replication");
        connected = Number(/connected_slaves:(\d+)/.exec(info)?.[1] ?? NaN);
      } catch {
        continue;
      }
      let minToWrite = 0;
      try {
        const cfg = await node.config("GET", "min-replicas-to-write") as
          | string[]
          | undefined;
        minToWrite = Number(cfg?.[1] ?? 0);
      } catch {
        // CONFIG renamed or refused (a managed Redis): not known.
      }
      if (replicas > 0 && connected < replicas) {
        problems.push(
          `${name} has ${connected} replica(s) connected, fewer than ?replicas=${replicas}: every new session is refused (store_unavailable) until enough connect`,
        );
      }
      if (minToWrite > connected) {
        problems.push(
          `${name} has min-replicas-to-write ${minToWrite} but ${connected} replica(s) connected: it refuses every write`,
        );
      }
    }
    if (problems.length === 0) return undefined;
    return `Redis ${this.#where} cannot keep the promise of docs/durability.md: ${
      problems.join("; ")
    }`;
  }

  /** Renews the lease from Redis's clock (`TIME`); the hint is not needed. */
  renewLease(
    owner: string,
    leaseMs: number,
    _clockHint?: number,
  ): Promise<Lease> {
    return this.#run("renewLease", async () => {
      const [renewedAt, until] = await this.#scripts.seqRenew(
        this.#keys.lease(owner),
        this.#keys.leaseUntil(),
        owner,
        Math.ceil(leaseMs),
      );
      return { renewedAt, until };
    });
  }

  /** The lease of `owner` and Redis's clock, in one script. */
  leaseOf(owner: string): Promise<LeaseRead> {
    return this.#run("leaseOf", async () => {
      const [v, now] = await this.#scripts.seqLeaseOf(this.#keys.lease(owner));
      if (typeof v !== "string") return { lease: null, now };
      const [renewedAt, until] = v.split(" ").map(Number);
      return { lease: { renewedAt: renewedAt!, until: until! }, now };
    });
  }

  /**
   * See {@link SessionStore.collect}. Not one atomic step: the dead owner's
   * records are spread over the buckets (slots). It finds one dead owner,
   * counts its records in every bucket (one `ZLEXCOUNT` each, sent together),
   * deletes up to `limit` of them bucket by bucket (one script per bucket:
   * each record is deleted only if still attached to that owner), and once
   * none is left forgets the owner (lease, fences), unless it renewed
   * meanwhile. At most `BUCKETS + 2 + 2·min(limit, BUCKETS)` commands per call.
   */
  collect(graceMs: number, limit: number): Promise<number> {
    return this.#run("collect", async () => {
      const grace = Math.ceil(graceMs);
      const owner = await this.#scripts.seqDead(this.#keys.leaseUntil(), grace);
      if (typeof owner !== "string") return 0;
      const lo = `[${owner}\0`;
      const hi = `(${owner}\x01`;
      const counts = await Promise.all(
        Array.from(
          { length: BUCKETS },
          (_, b) => this.#cmd.zlexcount(this.#keys.attached(b), lo, hi),
        ),
      );
      let budget = Math.max(1, Math.floor(limit));
      let deleted = 0;
      let left = 0;
      for (const [b, count] of counts.entries()) {
        if (count === 0) continue;
        if (budget === 0) {
          left += count;
          continue;
        }
        const att = this.#keys.attached(b);
        const members = await this.#cmd.zrangebylex(
          att,
          lo,
          hi,
          "LIMIT",
          0,
          budget,
        );
        const ids = members.map((m) => m.slice(owner.length + 1));
        if (ids.length > 0) {
          deleted += await this.#scripts.seqSweep(
            1 + ids.length,
            att,
            ...ids.map((id) => this.#keys.recordIn(b, id)),
            owner,
            ...ids,
          );
        }
        budget -= ids.length;
        left += Math.max(0, count - ids.length);
      }
      if (left === 0) {
        await this.#scripts.seqForget(
          this.#keys.leaseUntil(),
          this.#keys.lease(owner),
          this.#keys.fence(owner),
          owner,
          grace,
        );
      }
      return deleted;
    });
  }

  /** Appends `fence` to `owner`'s list and refreshes the list's expiry. */
  fence(owner: string, fence: Fence): Promise<void> {
    const json = JSON.stringify({ id: fence.id, epoch: fence.epoch });
    return this.#run("fence", async () => {
      await this.#scripts.seqFence(
        this.#keys.fence(owner),
        json,
        Math.max(1, Math.ceil(this.#fenceTtlMs)),
      );
    });
  }

  /** Takes and clears `owner`'s fences in one atomic script, oldest first. */
  drainFences(owner: string): Promise<Fence[]> {
    return this.#run("drainFences", async () => {
      const all = await this.#scripts.seqDrain(this.#keys.fence(owner));
      return all.map((json) => JSON.parse(json) as Fence);
    });
  }

  /**
   * Sends QUIT and waits for the connection to end, or drops it at once when
   * it is not up; stops reconnecting either way. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  /** Same as {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #shutdown(): Promise<void> {
    const r = this.#redis;
    if (r instanceof Redis) forgetClosedSocket(r);
    // No socket is open in these states: disconnect() only cancels a pending reconnect.
    if (
      r.status === "end" || r.status === "wait" ||
      r.status === "reconnecting" || r.status === "close"
    ) {
      r.disconnect();
      if (r instanceof Cluster) await ended(r);
      await this.#sentinelLoopDone();
      return;
    }
    const done = ended(r);
    if (r.status === "ready") {
      try {
        await r.quit();
      } catch {
        r.disconnect();
      }
    } else {
      r.disconnect();
    }
    await done;
    await this.#sentinelLoopDone();
  }

  /**
   * ioredis's loop over the sentinels cannot be cancelled: once its current
   * wait ends it asks every sentinel once more (each within the connect
   * timeout), then asks the retry strategy, which stops it while closing.
   * Wait for that question, so that nothing of this store outlives close()
   * (waiting a fixed 50 ms past the wait left the round's connect timers
   * running on a loaded host), or for as long as such a round can take.
   */
  async #sentinelLoopDone(): Promise<void> {
    if (this.#spec.mode !== "sentinel") return;
    const round = this.#spec.nodes.length * this.#connectTimeoutMs + 100;
    const wait = this.#sentinelSleepUntil - Date.now();
    if (wait <= -round) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.max(0, wait) + round);
      this.#sentinelStopped = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.#sentinelStopped = undefined;
  }

  async #run<T>(op: string, fn: () => Promise<T>): Promise<T> {
    if (this.#closing) {
      throw this.#unavailable(op, new Error("the store is closed"));
    }
    try {
      return await fn();
    } catch (e) {
      throw e instanceof StoreUnavailableError ? e : this.#unavailable(op, e);
    }
  }

  #unavailable(op: string, e: unknown): StoreUnavailableError {
    let msg = e instanceof Error ? e.message : String(e);
    // "Stream isn't writeable…" says nothing useful: name the connection error behind it.
    if (
      this.#redis.status !== "ready" && this.#lastError && !this.#closing &&
      this.#lastError !== e
    ) {
      msg += ` (${this.#lastError.message})`;
    }
    if (this.#spec.tls && /certificate|UnknownIssuer|self.signed/i.test(msg)) {
      msg += this.#spec.caFile
        ? `; the server's certificate is not signed by the CA in ${this.#spec.caFile}`
        : `; the server's certificate is not trusted by the system's roots: give its CA with ?ca=PATH or ${REDIS_ENV.ca}`;
    }
    const secret = this.#spec.password;
    if (secret) msg = msg.split(secret).join("***");
    return new StoreUnavailableError(
      `Redis ${op} failed on ${this.#where}: ${msg}`,
      { cause: e },
    );
  }
}

/** What a spec names, for messages: no credentials. */
function describe(spec: RedisSpec): string {
  const nodes = spec.nodes.map((n) =>
    n.host.includes(":") ? `[${n.host}]:${n.port}` : `${n.host}:${n.port}`
  ).join(",");
  const tls = spec.tls ? " (TLS)" : "";
  switch (spec.mode) {
    case "standalone":
      return `${nodes}/${spec.db}${tls}`;
    case "sentinel":
      return `master "${spec.masterName}" via sentinels ${nodes}, db ${spec.db}${tls}`;
    case "cluster":
      return `cluster ${nodes}${tls}`;
  }
}

/** Builds the ioredis client for `spec`, not connected yet. */
function client(
  spec: RedisSpec,
  t: {
    backoff: (attempt: number) => number;
    connectTimeoutMs: number;
    commandTimeoutMs: number;
    sentinelRetry: (attempt: number) => number | null;
  },
): Redis | Cluster {
  const tls = spec.tls ? tlsOptions(spec) : undefined;
  const common: RedisOptions = {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: t.commandTimeoutMs,
    connectTimeout: t.connectTimeoutMs,
    ...spec.username !== undefined ? { username: spec.username } : {},
    ...spec.password !== undefined ? { password: spec.password } : {},
    ...tls ? { tls } : {},
  };
  if (spec.mode === "cluster") {
    return new Cluster(spec.nodes.map((n) => ({ ...n })), {
      lazyConnect: true,
      enableOfflineQueue: false,
      clusterRetryStrategy: (times: number) => t.backoff(times),
      // A node that fails over answers with redirections and CLUSTERDOWN for
      // a moment: retry those briefly rather than fail the request.
      retryDelayOnFailover: 100,
      retryDelayOnClusterDown: 100,
      retryDelayOnTryAgain: 100,
      maxRedirections: 16,
      slotsRefreshTimeout: t.connectTimeoutMs,
      redisOptions: common,
    });
  }
  const opts: RedisOptions = {
    ...common,
    db: spec.db,
    enableOfflineQueue: false,
    retryStrategy: (times: number) => t.backoff(times),
  };
  if (spec.mode === "sentinel") {
    const r = new Redis({
      ...opts,
      sentinels: spec.nodes.map((n) => ({ ...n })),
      name: spec.masterName!,
      role: "master",
      // When no sentinel answers, ask them all again after the backoff. (A
      // null here would end the client for good: ioredis does not reconnect
      // after its sentinel connector gives up.)
      sentinelRetryStrategy: (times: number) => t.sentinelRetry(times),
      sentinelCommandTimeout: t.commandTimeoutMs,
      ...spec.sentinelPassword !== undefined
        ? { sentinelPassword: spec.sentinelPassword }
        : {},
      ...tls ? { enableTLSForSentinelMode: true, sentinelTLS: tls } : {},
    });
    quietSentinelClients(r);
    return r;
  }
  return new Redis({ ...opts, ...spec.nodes[0]! });
}

function tlsOptions(spec: RedisSpec): { ca?: string } {
  if (spec.caFile === undefined) return {};
  try {
    return { ca: Deno.readTextFileSync(spec.caFile) };
  } catch (e) {
    throw new TypeError(
      `Cannot read the Redis CA file ${spec.caFile}: ${(e as Error).message}`,
    );
  }
}

/**
 * The short-lived clients ioredis opens to ask a sentinel for the primary
 * are disconnected after each question; one whose connection was refused
 * would keep the process alive 2 s (see {@link forgetClosedSocket}).
 */
function quietSentinelClients(r: Redis): void {
  const connector = (r as unknown as {
    connector?: {
      connectToSentinel?: (endpoint: unknown, options?: unknown) => Redis;
    };
  }).connector;
  const open = connector?.connectToSentinel?.bind(connector);
  if (!connector || !open) return;
  connector.connectToSentinel = (endpoint, options) => {
    const c = open(endpoint, options);
    const disconnect = c.disconnect.bind(c);
    c.disconnect = (reconnect?: boolean) => {
      forgetClosedSocket(c);
      disconnect(reconnect);
    };
    return c;
  };
}

function ended(r: Redis | Cluster): Promise<void> {
  if (r.status === "end") return Promise.resolve();
  return new Promise<void>((resolve) => r.once("end", () => resolve()));
}

function decodeRecord(json: string, id: string): SessionRecord {
  let rec: unknown;
  try {
    rec = JSON.parse(json);
  } catch (e) {
    throw new StoreUnavailableError(
      `Redis record for session ${id} is not JSON`,
      { cause: e },
    );
  }
  if (
    typeof rec !== "object" || rec === null ||
    typeof (rec as SessionRecord).epoch !== "number"
  ) {
    throw new StoreUnavailableError(
      `Redis record for session ${id} is malformed`,
    );
  }
  return rec as SessionRecord;
}

/**
 * ioredis 5's `disconnect()` arms a timer (`disconnectTimeout`, 2 s) that
 * destroys the socket unless the socket's `close` event clears it first. When
 * the socket has already closed (Redis down, a refused connect), that event
 * is in the past, and the timer keeps the process alive for 2 s after
 * `close()`. A socket that is already destroyed needs no such timer: forget
 * it before disconnecting.
 */
function forgetClosedSocket(r: Redis): void {
  const connector = (r as unknown as {
    connector?: { stream?: { destroyed?: boolean } };
  }).connector;
  if (connector?.stream?.destroyed) connector.stream = undefined;
}
