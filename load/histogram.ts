/**
 * A log-linear histogram of non-negative durations, mergeable across
 * processes: integer microseconds, 64 sub-buckets per power of two (relative
 * error under 1.6%), exact below 128 µs, up to 2^31 µs (about 36 minutes).
 * Recording is O(1) with no allocation, so it can sit on a per-number path.
 *
 * @module
 */

const SUB = 64;
const BUCKETS = SUB * 26 + SUB;
const MAX_US = 2 ** 31 - 1;

function indexOf(us: number): number {
  if (us < 2 * SUB) return us;
  const e = 31 - Math.clz32(us) - 6;
  return SUB * (e + 1) + ((us >>> e) - SUB);
}

/** The highest microsecond value that lands in bucket `i`. */
function upperOf(i: number): number {
  if (i < 2 * SUB) return i;
  const e = Math.floor(i / SUB) - 1;
  return ((i - SUB * (e + 1) + SUB + 1) << e) - 1;
}

/** The wire form of a {@link Histogram}: sparse `[bucket, count]` pairs plus extremes. */
export interface HistogramData {
  /** Non-empty buckets as `[index, count]`. */
  buckets: [number, number][];
  /** Largest value recorded (ms). */
  maxMs: number;
  /** Values recorded. */
  n: number;
}

/**
 * Durations in milliseconds, bucketed for percentiles.
 *
 * @example
 * ```ts
 * const h = new Histogram();
 * h.record(1.5);
 * h.percentile(99); // ≈ 1.5
 * ```
 */
export class Histogram {
  readonly #counts = new Float64Array(BUCKETS);
  #n = 0;
  #max = 0;

  /** Values recorded. */
  get count(): number {
    return this.#n;
  }

  /** Largest value recorded (ms), 0 when empty. */
  get max(): number {
    return this.#max;
  }

  /** Records `ms`; negatives count as 0, values beyond the range as the top. */
  record(ms: number): void {
    const us = ms <= 0 ? 0 : Math.min(MAX_US, Math.round(ms * 1000));
    this.#counts[indexOf(us)]!++;
    this.#n++;
    if (ms > this.#max) this.#max = ms;
  }

  /**
   * The value at percentile `p` (0..100), in ms: the upper edge of the bucket
   * holding it (the exact maximum for p = 100). 0 when empty.
   */
  percentile(p: number): number {
    if (this.#n === 0) return 0;
    if (p >= 100) return this.#max;
    const rank = Math.max(1, Math.ceil((p / 100) * this.#n));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.#counts[i]!;
      if (seen >= rank) return Math.min(this.#max, upperOf(i) / 1000);
    }
    return this.#max;
  }

  /**
   * The distribution in at most `bins` log-spaced bins from the smallest
   * value to the largest: each bin's upper edge (ms) and its count. Empty
   * arrays when nothing was recorded.
   */
  distribution(bins = 30): { le: number[]; count: number[] } {
    const filled: [number, number][] = [];
    for (let i = 0; i < BUCKETS; i++) {
      const c = this.#counts[i]!;
      if (c > 0) filled.push([Math.min(this.#max, upperOf(i) / 1000), c]);
    }
    if (filled.length === 0) return { le: [], count: [] };
    const lo = Math.max(0.001, filled[0]![0]), hi = Math.max(lo, this.#max);
    const n = hi > lo ? bins : 1;
    const le = Array.from(
      { length: n },
      (_, i) => i === n - 1 ? hi : lo * (hi / lo) ** ((i + 1) / n),
    );
    const count = new Array<number>(n).fill(0);
    let b = 0;
    for (const [upper, c] of filled) {
      while (b < n - 1 && upper > le[b]!) b++;
      count[b]! += c;
    }
    return { le: le.map((v) => Math.round(v * 1000) / 1000), count };
  }

  /** A copy, to measure what is recorded after it with {@link since}. */
  clone(): Histogram {
    const h = new Histogram();
    h.#counts.set(this.#counts);
    h.#n = this.#n;
    h.#max = this.#max;
    return h;
  }

  /**
   * What was recorded since `earlier` (a {@link clone} of this histogram),
   * as a histogram of its own; its maximum is the later one's (an upper bound).
   */
  since(earlier: Histogram): Histogram {
    const h = new Histogram();
    for (let i = 0; i < BUCKETS; i++) {
      h.#counts[i] = this.#counts[i]! - earlier.#counts[i]!;
    }
    h.#n = this.#n - earlier.#n;
    h.#max = h.#n > 0 ? this.#max : 0;
    return h;
  }

  /** Adds another histogram's counts (a local one or one from {@link toJSON}). */
  merge(other: Histogram | HistogramData): void {
    const data = other instanceof Histogram ? other.toJSON() : other;
    for (const [i, c] of data.buckets) this.#counts[i]! += c;
    this.#n += data.n;
    if (data.maxMs > this.#max) this.#max = data.maxMs;
  }

  /** A compact serialisable form, for sending between processes. */
  toJSON(): HistogramData {
    const buckets: [number, number][] = [];
    for (let i = 0; i < BUCKETS; i++) {
      const c = this.#counts[i]!;
      if (c > 0) buckets.push([i, c]);
    }
    return { buckets, maxMs: this.#max, n: this.#n };
  }

  /** Rebuilds a histogram from {@link toJSON} output. */
  static from(data: HistogramData): Histogram {
    const h = new Histogram();
    h.merge(data);
    return h;
  }
}
