/**
 * The options of the Redis store, apart from the store itself, so that code
 * which only names them (`openStore`) does not pull the Redis client into its
 * module graph.
 *
 * @module
 */

/** Options for `RedisStore`. */
export interface RedisStoreOptions {
  /**
   * A command without a reply within this long rejects with
   * `StoreUnavailableError` (a hung or black-holed server). Default 2000.
   */
  commandTimeoutMs?: number;
  /** Connecting (TCP plus handshake) gives up after this long. Default 2000. */
  connectTimeoutMs?: number;
  /** Delay before reconnect `attempt` (1-based), in ms. Default `redisReconnectBackoff`. */
  backoff?: (attempt: number) => number;
  /** A fence list not drained for this long expires (its owner is gone). Default 3 600 000. */
  fenceTtlMs?: number;
  /** Prefix of every key, without `{` or `}`. Default `"seqstream"`. */
  prefix?: string;
  /**
   * Where credentials and the CA path are read when the spec has none
   * (`SEQSTREAM_REDIS_PASSWORD` and the others in `REDIS_ENV`). Default: the
   * process environment (nothing, without `--allow-env`).
   */
  env?: (name: string) => string | undefined;
}
