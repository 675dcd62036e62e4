/**
 * Reconnect delays: exponential with full jitter and a cap, as a plain
 * replaceable function `(attempt) => ms`.
 *
 * @module
 */

import { CLIENT_DEFAULTS } from "../common/defaults.ts";

/** Options for {@link exponentialBackoff}. */
export interface BackoffOptions {
  /** Ceiling of the first step (ms). Default 100. */
  baseMs?: number;
  /** Largest delay (ms). Default 5000. */
  capMs?: number;
  /** Random source in [0, 1). Default `Math.random`. */
  random?: () => number;
}

/**
 * "Full jitter" backoff: attempt `k` waits a uniform random time in
 * `[0, min(cap, base·2^k)]`, so clients cut at the same moment spread out.
 *
 * @example
 * ```ts
 * const backoff = exponentialBackoff({ baseMs: 50, capMs: 2000 });
 * await new Promise((r) => setTimeout(r, backoff(3)));
 * ```
 */
export function exponentialBackoff(
  opts: BackoffOptions = {},
): (attempt: number) => number {
  const base = opts.baseMs ?? CLIENT_DEFAULTS.backoffBaseMs;
  const cap = opts.capMs ?? CLIENT_DEFAULTS.backoffCapMs;
  const random = opts.random ?? Math.random;
  return (attempt) =>
    Math.floor(random() * Math.min(cap, base * 2 ** Math.min(attempt, 30)));
}
