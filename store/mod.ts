/**
 * Session stores: the interface and its backends, and {@link openStore} to
 * pick one from a spec such as `kv:/var/lib/seqstream/sessions.kv`.
 *
 * The Redis store is its own export (`@seqstream/seqstream/store/redis`,
 * `store/redis.ts`): importing this module never loads the Redis client;
 * {@link openStore} loads it only for a `redis://` spec.
 *
 * @module
 */

export * from "./types.ts";
export { MemoryStore, type MemoryStoreOptions } from "./memory.ts";
export { type KvRetry, KvStore, type KvStoreOptions } from "./kv.ts";
export type { RedisStoreOptions } from "./redis_options.ts";
export { openStore, type OpenStoreOptions, STORE_SPEC_FORMS } from "./open.ts";
