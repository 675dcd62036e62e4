/**
 * Opens a session store from a one-line spec: what the server's `--store`
 * flag takes.
 *
 * @module
 */

import { KvStore, type KvStoreOptions } from "./kv.ts";
import { MemoryStore, type MemoryStoreOptions } from "./memory.ts";
import type { RedisStoreOptions } from "./redis_options.ts";
import { isRedisSpec, parseRedisSpec, redactRedisSpec } from "./redis_spec.ts";
import type { SessionStore } from "./types.ts";

/**
 * The Redis backend, loaded only when a `redis://` spec asks for it. The
 * specifier is computed on purpose: Deno prefetches literal dynamic imports,
 * and ioredis would then be downloaded by every program that can open a
 * store, memory and KV users included. (`deno compile` needs
 * `--include store/redis.ts` for the same reason; the compile task has it.)
 */
const REDIS_MODULE = new URL("./redis.ts", import.meta.url).href;

/** What {@link openStore} uses of the Redis module. */
interface RedisModule {
  RedisStore: {
    connect(url: string, opts?: RedisStoreOptions): Promise<SessionStore>;
  };
}

/** Per-backend options for {@link openStore}; only the chosen backend's are used. */
export interface OpenStoreOptions {
  /** For `memory`. */
  memory?: MemoryStoreOptions;
  /** For `kv:…`. */
  kv?: KvStoreOptions;
  /** For `redis://…`. */
  redis?: RedisStoreOptions;
}

/** The accepted forms, for messages and `--help`. */
export const STORE_SPEC_FORMS =
  "memory, kv:PATH, kv::memory:, kv:https://HOST/…, " +
  "redis[s]://HOST[:PORT][/DB], redis[s]+sentinel://HOST:PORT[,…]/MASTER[?db=N] " +
  "or redis[s]+cluster://HOST:PORT[,…]";

/**
 * Opens the store that `spec` names:
 *
 * - `memory`: a {@link MemoryStore}, for one server process;
 * - `kv:PATH`: a {@link KvStore} on a SQLite file, shared by processes on one host;
 * - `kv::memory:`: a {@link KvStore} in memory (tests);
 * - `kv:https://…` (or `kv:http://…` for a self-hosted denokv): KV Connect,
 *   with the token in `DENO_KV_ACCESS_TOKEN`;
 * - `redis://[user[:password]@]host[:port][/db]`: a `RedisStore`, for
 *   processes on several hosts. Connects before resolving.
 * - `redis+sentinel://host:port[,host:port…]/MASTER[?db=N]`: a `RedisStore`
 *   on the primary that the sentinels name, following its failovers;
 * - `redis+cluster://host:port[,host:port…]`: a `RedisStore` on a Redis
 *   Cluster (the hosts are seed nodes);
 * - `rediss…` for each: TLS to Redis, with `?ca=PATH` (or
 *   `SEQSTREAM_REDIS_CA`). Credentials from the URL or
 *   `SEQSTREAM_REDIS_USERNAME` / `SEQSTREAM_REDIS_PASSWORD` (see
 *   `store/redis_spec.ts`); messages never carry the password.
 *
 * @param spec the store spec
 * @param opts per-backend options
 * @returns the open store; the caller closes it
 * @throws {TypeError} when `spec` is none of the forms above, saying which are accepted
 * @throws {StoreUnavailableError} when the backend cannot be opened or reached
 *
 * @example
 * ```ts
 * await using store = await openStore("kv:/var/lib/seqstream/sessions.kv");
 * ```
 */
export async function openStore(
  spec: string,
  opts: OpenStoreOptions = {},
): Promise<SessionStore> {
  if (spec === "memory") return new MemoryStore(opts.memory);
  if (spec.startsWith("kv:")) {
    const path = spec.slice(3);
    if (path === "") {
      throw new TypeError(
        `Invalid store "${spec}": kv: needs a path, :memory: or a URL`,
      );
    }
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(path)) {
      let url: URL | undefined;
      try {
        url = new URL(path);
      } catch {
        // Reported below.
      }
      if (
        !url || (url.protocol !== "https:" && url.protocol !== "http:") ||
        url.hostname === ""
      ) {
        throw new TypeError(
          `Invalid store "${spec}": a KV Connect URL is https://HOST/…`,
        );
      }
    }
    return await KvStore.open(path, opts.kv);
  }
  if (isRedisSpec(spec)) {
    // A malformed spec is refused here, before the client is loaded.
    parseRedisSpec(spec, opts.redis?.env);
    // Loaded on demand: the Redis client (and its environment reads) stays
    // out of processes that never use it.
    const { RedisStore } = await import(REDIS_MODULE) as RedisModule;
    return await RedisStore.connect(spec, opts.redis);
  }
  throw new TypeError(
    `Unknown store "${redactRedisSpec(spec)}": expected ${STORE_SPEC_FORMS}`,
  );
}
