/**
 * Session stores: the interface and its backends, and {@link openStore} to
 * pick one from a spec such as `kv:/var/lib/seqstream/sessions.kv`.
 *
 * @module
 */

export * from "./types.ts";
export { MemoryStore, type MemoryStoreOptions } from "./memory.ts";
export { type KvRetry, KvStore, type KvStoreOptions } from "./kv.ts";
export { RedisStore, type RedisStoreOptions } from "./redis.ts";
export { openStore, type OpenStoreOptions, STORE_SPEC_FORMS } from "./open.ts";
