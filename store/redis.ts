/**
 * The Redis session store, for server processes on several hosts, through
 * the `ioredis` client.
 *
 * Layout under the key prefix (default `"seqstream"`):
 *
 * | key                       | type   | value                                   |
 * | ------------------------- | ------ | --------------------------------------- |
 * | `{prefix}:s:{id}`         | string | {@link SessionRecord} as JSON           |
 * | `{prefix}:owned:{owner}`  | set    | ids of the records attached to `owner`  |
 * | `{prefix}:lease:{owner}`  | string | `"renewedAt until"` (ms, store time)    |
 * | `{prefix}:lease_until`    | zset   | owners scored by lease deadline         |
 * | `{prefix}:fence:{owner}`  | list   | {@link Fence}s as JSON, oldest first    |
 *
 * Compare-and-set runs as Lua scripts (EVALSHA, falling back to EVAL), so each
 * check and write is one atomic step on the server, owner index included. A
 * record with a non-zero `retainUntil` gets `PEXPIREAT retainUntil`: Redis
 * deletes it then. Attached records (`retainUntil = 0`) have no expiry; a
 * dead owner's are deleted by {@link RedisStore.collect}.
 *
 * **Store clock.** Leases are written and read with Redis's own clock
 * (`TIME` inside the scripts), so servers whose clocks disagree still judge
 * leases and deadlines on one time base: the servers learn the store's time
 * from every lease read and renewal.
 *
 * The scripts build the owner-index and lease keys from the prefix, so they
 * need a standalone Redis (or every key in one hash slot), not a cluster.
 *
 * @module
 */

import { Redis } from "ioredis";
import {
  type Fence,
  type Lease,
  type LeaseRead,
  type SessionRecord,
  type SessionStore,
  StoreUnavailableError,
} from "./types.ts";

import type { RedisStoreOptions } from "./redis_options.ts";

export type { RedisStoreOptions } from "./redis_options.ts";

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
 * Parses `redis://[user[:password]@]host[:port][/db]`.
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
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError(
      `Invalid Redis URL "${url}": expected redis://host[:port][/db]`,
    );
  }
  if (u.protocol !== "redis:") {
    throw new TypeError(
      `Invalid Redis URL "${url}": the scheme must be redis://`,
    );
  }
  const host = u.hostname.replace(/^\[(.*)\]$/, "$1");
  if (host === "") throw new TypeError(`Invalid Redis URL "${url}": no host`);
  if (u.search !== "" || u.hash !== "") {
    throw new TypeError(
      `Invalid Redis URL "${url}": query and fragment are not supported`,
    );
  }
  const path = u.pathname.replace(/^\//, "");
  if (path !== "" && !/^\d{1,5}$/.test(path)) {
    throw new TypeError(
      `Invalid Redis URL "${url}": the path must be a database number`,
    );
  }
  const target: {
    host: string;
    port: number;
    db: number;
    username?: string;
    password?: string;
  } = {
    host,
    port: u.port === "" ? 6379 : Number(u.port),
    db: path === "" ? 0 : Number(path),
  };
  if (u.username !== "") target.username = decodeURIComponent(u.username);
  if (u.password !== "") target.password = decodeURIComponent(u.password);
  return target;
}

// The store clock in ms, from TIME.
const NOW = `
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`;

// KEYS[1] record key; ARGV[1] JSON, ARGV[2] retainUntil (0: keep forever),
// ARGV[3] owner, ARGV[4] prefix.
const CREATE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 then redis.call('PEXPIREAT', KEYS[1], ARGV[2]) end
if ARGV[3] ~= '' then
  redis.call('SADD', ARGV[4] .. ':owned:' .. ARGV[3], cjson.decode(ARGV[1]).id)
end
return 1`;

// KEYS[1] record key; ARGV[1] expected epoch, ARGV[2] JSON, ARGV[3] retainUntil,
// ARGV[4] owner, ARGV[5] prefix.
// SET drops any earlier expiry, so retainUntil 0 makes the record persistent.
const REPLACE = `
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
cur = cjson.decode(cur)
if cur.epoch ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
if tonumber(ARGV[3]) > 0 then redis.call('PEXPIREAT', KEYS[1], ARGV[3]) end
if cur.owner ~= ARGV[4] then
  if cur.owner ~= '' then redis.call('SREM', ARGV[5] .. ':owned:' .. cur.owner, cur.id) end
  if ARGV[4] ~= '' then redis.call('SADD', ARGV[5] .. ':owned:' .. ARGV[4], cur.id) end
end
return 1`;

// KEYS[1] lease key, KEYS[2] lease_until zset; ARGV[1] owner, ARGV[2] lease ms.
const RENEW = NOW + `
local t = now()
local untl = t + tonumber(ARGV[2])
redis.call('SET', KEYS[1], string.format('%d %d', t, untl))
redis.call('ZADD', KEYS[2], untl, ARGV[1])
return {t, untl}`;

// KEYS[1] lease key. Returns {lease or false, now}.
const LEASE_OF = NOW + `
return {redis.call('GET', KEYS[1]), now()}`;

// KEYS[1] lease_until zset; ARGV[1] prefix, ARGV[2] grace ms, ARGV[3] limit.
const COLLECT = NOW + `
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now() - tonumber(ARGV[2]), 'LIMIT', 0, 1)
if #dead == 0 then return 0 end
local owner = dead[1]
local p = ARGV[1]
local owned = p .. ':owned:' .. owner
local ids = redis.call('SPOP', owned, tonumber(ARGV[3]))
local n = 0
for _, id in ipairs(ids) do
  local k = p .. ':s:' .. id
  local cur = redis.call('GET', k)
  if cur and cjson.decode(cur).owner == owner then
    redis.call('DEL', k)
    n = n + 1
  end
end
if redis.call('SCARD', owned) == 0 then
  redis.call('DEL', owned, p .. ':lease:' .. owner, p .. ':fence:' .. owner)
  redis.call('ZREM', KEYS[1], owner)
end
return n`;

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
    json: string,
    retainUntil: number,
    owner: string,
    prefix: string,
  ): Promise<number>;
  seqReplace(
    key: string,
    expected: number,
    json: string,
    retainUntil: number,
    owner: string,
    prefix: string,
  ): Promise<number>;
  seqRenew(
    key: string,
    zset: string,
    owner: string,
    leaseMs: number,
  ): Promise<[number, number]>;
  seqLeaseOf(key: string): Promise<[string | null, number]>;
  seqCollect(
    zset: string,
    prefix: string,
    graceMs: number,
    limit: number,
  ): Promise<number>;
  seqFence(key: string, json: string, ttlMs: number): Promise<number>;
  seqDrain(key: string): Promise<string[]>;
}

/**
 * A {@link SessionStore} on Redis.
 *
 * Outages: commands are never queued while the connection is down (no
 * offline queue, no retries per request, no re-sending of unanswered
 * commands after a reconnect, since a CAS sent twice could report a false
 * failure). A command while disconnected rejects at once, one in flight when
 * the connection drops rejects when it drops, and one without a reply rejects
 * after {@link RedisStoreOptions.commandTimeoutMs}; all with
 * {@link StoreUnavailableError}. Meanwhile the client reconnects on its own
 * with {@link RedisStoreOptions.backoff}, and commands succeed again once it has.
 * A command that timed out may still have been applied.
 *
 * @example
 * ```ts
 * await using store = await RedisStore.connect("redis://127.0.0.1:6379/0");
 * await store.create(record);
 * ```
 */
export class RedisStore implements SessionStore {
  /** Always `"redis"`. */
  readonly kind = "redis";
  /** The URL given to the constructor (credentials included, if any: do not log it blindly). */
  readonly url: string;
  readonly #redis: Redis;
  readonly #scripts: Scripts;
  readonly #prefix: string;
  readonly #fenceTtlMs: number;
  readonly #where: string;
  readonly #connectTimeoutMs: number;
  #lastError: Error | undefined;
  #closing: Promise<void> | undefined;

  /**
   * Connects to `url` and waits until the connection is ready.
   *
   * @param url `redis://[user[:password]@]host[:port][/db]`
   * @param opts timeouts, reconnect backoff and key prefix
   * @throws {TypeError} for a malformed URL
   * @throws {StoreUnavailableError} when Redis cannot be reached within
   * {@link RedisStoreOptions.connectTimeoutMs} (nothing is left running)
   */
  static async connect(
    url: string,
    opts: RedisStoreOptions = {},
  ): Promise<RedisStore> {
    const store = new RedisStore(url, opts);
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
   * @param url `redis://[user[:password]@]host[:port][/db]`
   * @param opts timeouts, reconnect backoff and key prefix
   * @throws {TypeError} for a malformed URL
   */
  constructor(url: string, opts: RedisStoreOptions = {}) {
    const target = parseRedisUrl(url);
    this.url = url;
    this.#where = `${target.host}:${target.port}/${target.db}`;
    this.#prefix = opts.prefix ?? "seqstream";
    this.#fenceTtlMs = opts.fenceTtlMs ?? 3_600_000;
    const backoff = opts.backoff ?? redisReconnectBackoff;
    this.#connectTimeoutMs = opts.connectTimeoutMs ?? 2000;
    this.#redis = new Redis({
      ...target,
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      commandTimeout: opts.commandTimeoutMs ?? 2000,
      connectTimeout: this.#connectTimeoutMs,
      retryStrategy: (times: number) => backoff(times),
    });
    // Without a listener ioredis prints every connection error to the console.
    this.#redis.on("error", (e: Error) => this.#lastError = e);
    this.#redis.defineCommand("seqCreate", { numberOfKeys: 1, lua: CREATE });
    this.#redis.defineCommand("seqReplace", { numberOfKeys: 1, lua: REPLACE });
    this.#redis.defineCommand("seqRenew", { numberOfKeys: 2, lua: RENEW });
    this.#redis.defineCommand("seqLeaseOf", { numberOfKeys: 1, lua: LEASE_OF });
    this.#redis.defineCommand("seqCollect", { numberOfKeys: 1, lua: COLLECT });
    this.#redis.defineCommand("seqFence", { numberOfKeys: 1, lua: FENCE });
    this.#redis.defineCommand("seqDrain", { numberOfKeys: 1, lua: DRAIN });
    this.#scripts = this.#redis as unknown as Scripts;
  }

  /**
   * Makes the first connection (the constructor does not) and resolves when
   * it is ready; if the client is already reconnecting, waits for it, up to
   * {@link RedisStoreOptions.connectTimeoutMs}. Resolves at once when ready.
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
    if (r.status === "wait") {
      try {
        await r.connect();
        return;
      } catch (e) {
        throw this.#unavailable("connect", e);
      }
    }
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
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
    });
  }

  /** The record for `id`, or `null`. */
  get(id: string): Promise<SessionRecord | null> {
    return this.#run("get", async () => {
      const json = await this.#redis.get(this.#recordKey(id));
      return json === null ? null : decodeRecord(json, id);
    });
  }

  /** Stores `rec` if no record for `rec.id` exists (one Lua script). */
  create(rec: SessionRecord): Promise<boolean> {
    return this.#run("create", async () => {
      const n = await this.#scripts.seqCreate(
        this.#recordKey(rec.id),
        JSON.stringify(rec),
        Math.ceil(rec.retainUntil),
        rec.owner,
        this.#prefix,
      );
      return n === 1;
    });
  }

  /** Replaces the record if its epoch is `expectedEpoch` (one Lua script). */
  replace(expectedEpoch: number, rec: SessionRecord): Promise<boolean> {
    return this.#run("replace", async () => {
      const n = await this.#scripts.seqReplace(
        this.#recordKey(rec.id),
        expectedEpoch,
        JSON.stringify(rec),
        Math.ceil(rec.retainUntil),
        rec.owner,
        this.#prefix,
      );
      return n === 1;
    });
  }

  /** Renews the lease from Redis's clock (`TIME`); the hint is not needed. */
  renewLease(
    owner: string,
    leaseMs: number,
    _clockHint?: number,
  ): Promise<Lease> {
    return this.#run("renewLease", async () => {
      const [renewedAt, until] = await this.#scripts.seqRenew(
        this.#leaseKey(owner),
        this.#leaseUntilKey(),
        owner,
        Math.ceil(leaseMs),
      );
      return { renewedAt, until };
    });
  }

  /** The lease of `owner` and Redis's clock, in one script. */
  leaseOf(owner: string): Promise<LeaseRead> {
    return this.#run("leaseOf", async () => {
      const [v, now] = await this.#scripts.seqLeaseOf(this.#leaseKey(owner));
      if (typeof v !== "string") return { lease: null, now };
      const [renewedAt, until] = v.split(" ").map(Number);
      return { lease: { renewedAt: renewedAt!, until: until! }, now };
    });
  }

  /** One atomic script: see {@link SessionStore.collect}. */
  collect(graceMs: number, limit: number): Promise<number> {
    return this.#run("collect", () =>
      this.#scripts.seqCollect(
        this.#leaseUntilKey(),
        this.#prefix,
        Math.ceil(graceMs),
        Math.max(1, Math.floor(limit)),
      ));
  }

  /** Appends `fence` to `owner`'s list and refreshes the list's expiry. */
  fence(owner: string, fence: Fence): Promise<void> {
    const json = JSON.stringify({ id: fence.id, epoch: fence.epoch });
    return this.#run("fence", async () => {
      await this.#scripts.seqFence(
        this.#fenceKey(owner),
        json,
        Math.max(1, Math.ceil(this.#fenceTtlMs)),
      );
    });
  }

  /** Takes and clears `owner`'s fences in one atomic script, oldest first. */
  drainFences(owner: string): Promise<Fence[]> {
    return this.#run("drainFences", async () => {
      const all = await this.#scripts.seqDrain(this.#fenceKey(owner));
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
    forgetClosedSocket(r);
    // No socket is open in these states: disconnect() only cancels a pending reconnect.
    if (
      r.status === "end" || r.status === "wait" ||
      r.status === "reconnecting" || r.status === "close"
    ) {
      r.disconnect();
      return;
    }
    const ended = new Promise<void>((resolve) =>
      r.once("end", () => resolve())
    );
    if (r.status === "ready") {
      try {
        await r.quit();
      } catch {
        r.disconnect();
      }
    } else {
      r.disconnect();
    }
    await ended;
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
    if (this.#redis.status !== "ready" && this.#lastError && !this.#closing) {
      msg += ` (${this.#lastError.message})`;
    }
    return new StoreUnavailableError(
      `Redis ${op} failed on ${this.#where}: ${msg}`,
      { cause: e },
    );
  }

  #recordKey(id: string): string {
    return `${this.#prefix}:s:${id}`;
  }

  #leaseKey(owner: string): string {
    return `${this.#prefix}:lease:${owner}`;
  }

  #leaseUntilKey(): string {
    return `${this.#prefix}:lease_until`;
  }

  #fenceKey(owner: string): string {
    return `${this.#prefix}:fence:${owner}`;
  }
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
