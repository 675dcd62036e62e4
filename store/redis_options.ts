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

/**
 * How the Redis store confirms a write before the server promises it to a
 * client: `WAIT replicas waitMs` on the connection that made the write (on a
 * cluster, the primary of the key's shard). See docs/durability.md.
 */
export interface ConfirmOptions {
  /**
   * Replicas that must have the write before it counts as done. 0: no
   * confirmation (no `WAIT` is sent).
   */
  readonly replicas: number;
  /**
   * How long `WAIT` may block (ms) before the write counts as unconfirmed;
   * `undefined`: {@link DEFAULT_WAIT_MS}, or half the store's command timeout
   * if that is shorter.
   */
  readonly waitMs: number | undefined;
}

/** The longest a `WAIT` blocks by default (ms). */
export const DEFAULT_WAIT_MS = 500;

/** Replicas that confirm a write for a Sentinel or Cluster spec that names none. */
export const HA_REPLICAS = 1;

/** The URL parameters {@link parseConfirm} reads. */
export const CONFIRM_PARAMS = ["replicas", "waitMs"] as const;

/**
 * Reads `?replicas=N&waitMs=MS` from a Redis spec's query. Each is optional;
 * `replicas` defaults to {@link HA_REPLICAS} for Sentinel and Cluster, and
 * to 0 (no `WAIT`, nothing to pay) for one Redis; `waitMs` to `undefined`
 * (the store's default, {@link DEFAULT_WAIT_MS} at most).
 *
 * @param params the spec's query parameters
 * @param ha whether the spec is a Sentinel or Cluster one
 * @param bad makes the error for a bad value (names the spec)
 * @returns the confirmation settings
 * @throws {TypeError} (from `bad`) for a value that is not a whole number in
 * range: `replicas` 0..16, `waitMs` 1..60000
 *
 * @example
 * ```ts
 * parseConfirm(new URLSearchParams("replicas=2&waitMs=200"), true, (w) => new TypeError(w));
 * // { replicas: 2, waitMs: 200 }
 * ```
 */
export function parseConfirm(
  params: URLSearchParams,
  ha: boolean,
  bad: (why: string) => TypeError,
): ConfirmOptions {
  const int = <D>(name: string, min: number, max: number, dflt: D) => {
    const all = params.getAll(name);
    if (all.length === 0) return dflt;
    if (all.length > 1) throw bad(`?${name}= is given ${all.length} times`);
    const v = all[0]!;
    if (!/^\d{1,6}$/.test(v) || Number(v) < min || Number(v) > max) {
      throw bad(
        `?${name}=${v} is not a whole number from ${min} to ${max}`,
      );
    }
    return Number(v);
  };
  return {
    replicas: int("replicas", 0, 16, ha ? HA_REPLICAS : 0),
    waitMs: int("waitMs", 1, 60_000, undefined),
  };
}
