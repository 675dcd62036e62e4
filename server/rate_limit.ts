/**
 * Per-address rate limiting of new connections: one token bucket per remote
 * address, so one noisy host cannot spend the server's handshake budget for
 * everyone else. Pure bookkeeping with an injectable clock; no I/O.
 *
 * @module
 */

import { type Clock, systemClock } from "../common/clock.ts";

/** Options for {@link RateLimiter}. */
export interface RateLimiterOptions {
  /** Tokens added per second (the sustained rate per key). Must be > 0. */
  ratePerSec: number;
  /** Bucket size: how many may arrive at once after a quiet spell. Default: `ratePerSec` (at least 1). */
  burst?: number;
  /**
   * Keys tracked at most. Past this (after dropping idle keys) new keys are
   * let through untracked rather than refused: a flood of distinct addresses
   * must not lock everyone out, and `--max-connections` still bounds the total.
   * Default 100000.
   */
  maxKeys?: number;
  /** Clock: buckets refill on its monotonic reading. Default {@link systemClock}. */
  clock?: Clock;
}

interface Bucket {
  tokens: number;
  last: number;
}

/**
 * A token bucket per key.
 *
 * @example
 * ```ts
 * const limiter = new RateLimiter({ ratePerSec: 20 });
 * if (!limiter.take(addressKey(remote.hostname))) refuseAsBusy(conn);
 * ```
 */
export class RateLimiter {
  readonly #rate: number;
  readonly #burst: number;
  readonly #maxKeys: number;
  readonly #clock: Clock;
  readonly #refillMs: number;
  readonly #buckets = new Map<string, Bucket>();
  #lastSweep: number;

  /**
   * @param opts rate, burst, key cap and clock
   * @throws {RangeError} when `ratePerSec` or `burst` is not a positive finite number
   */
  constructor(opts: RateLimiterOptions) {
    if (!(opts.ratePerSec > 0) || !Number.isFinite(opts.ratePerSec)) {
      throw new RangeError(
        `Rate must be a positive number, got ${opts.ratePerSec}`,
      );
    }
    const burst = opts.burst ?? Math.max(1, opts.ratePerSec);
    if (!(burst >= 1) || !Number.isFinite(burst)) {
      throw new RangeError(`Burst must be at least 1, got ${burst}`);
    }
    this.#rate = opts.ratePerSec / 1000;
    this.#burst = burst;
    this.#maxKeys = opts.maxKeys ?? 100_000;
    this.#clock = opts.clock ?? systemClock;
    this.#refillMs = burst / this.#rate;
    this.#lastSweep = this.#clock.monotonic();
  }

  /** Keys currently tracked (buckets that are not full). */
  get size(): number {
    return this.#buckets.size;
  }

  /**
   * Takes one token from `key`'s bucket. Returns `false` (and takes nothing)
   * when the bucket is empty: the caller should refuse.
   */
  take(key: string): boolean {
    const now = this.#clock.monotonic();
    if (now - this.#lastSweep >= this.#refillMs) this.#sweep(now);
    const b = this.#buckets.get(key);
    if (b === undefined) {
      if (this.#buckets.size >= this.#maxKeys) return true;
      this.#buckets.set(key, { tokens: this.#burst - 1, last: now });
      return true;
    }
    b.tokens = Math.min(this.#burst, b.tokens + (now - b.last) * this.#rate);
    b.last = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Drops buckets that have refilled completely: they behave like new keys. */
  #sweep(now: number): void {
    this.#lastSweep = now;
    for (const [key, b] of this.#buckets) {
      if (b.tokens + (now - b.last) * this.#rate >= this.#burst) {
        this.#buckets.delete(key);
      }
    }
  }
}

/**
 * The rate-limit key of a remote address: IPv4 addresses as they are, IPv6
 * addresses by their /64 prefix (one host usually owns a whole /64), and
 * IPv4-mapped IPv6 addresses as the IPv4 address.
 *
 * @example
 * ```ts
 * addressKey("2001:db8::1"); // "2001:db8:0:0::/64"
 * addressKey("::ffff:10.0.0.1"); // "10.0.0.1"
 * ```
 */
export function addressKey(hostname: string): string {
  const host = hostname.replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  if (!host.includes(":")) return host;
  const mapped = /^(?:0{0,4}:){0,5}(?:0{0,4}:)?ffff:(\d+\.\d+\.\d+\.\d+)$/i
    .exec(host);
  if (mapped) return mapped[1]!;
  const [head = "", tail] = host.split("::", 2) as [string, string | undefined];
  const h = head === "" ? [] : head.split(":");
  const t = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = tail === undefined
    ? h
    : [...h, ...Array(Math.max(0, 8 - h.length - t.length)).fill("0"), ...t];
  const prefix = groups.slice(0, 4).map((g) =>
    (parseInt(g, 16) || 0).toString(16)
  );
  while (prefix.length < 4) prefix.push("0");
  return `${prefix.join(":")}::/64`;
}
