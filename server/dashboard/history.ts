/**
 * The dashboard's history, kept by the server: one point a second for the
 * last 15 minutes, so that a reload, or a second operator opening the page,
 * starts with full charts (`GET /history`).
 *
 * A {@link HistorySampler} reads the server's {@link MetricsSnapshot} once a
 * second on an injected {@link Clock}, turns counters into rates and
 * histogram buckets into quantiles ({@link derivePoint}, pure), and writes
 * the point into a {@link HistoryRing}: preallocated typed arrays, so its
 * memory is fixed at start ({@link HistoryRing.bytes}: 259,200 bytes for the
 * default 900 points of {@link SERIES}) whatever the load or the uptime.
 *
 * @module
 */

import type { Clock, TimerId } from "../../common/clock.ts";
import { ErrorCode, type ErrorName } from "../../protocol/errors.ts";
import {
  type Counters,
  LATENCY_BUCKETS,
  type MetricsSnapshot,
  type PromHistogram,
} from "../metrics.ts";

/** Time between two points (ms). */
export const HISTORY_STEP_MS = 1000;
/** Points kept: 15 minutes at one a second. */
export const HISTORY_CAPACITY = 900;

/** Every handshake refusal code, each with a series of its own. */
export const REFUSAL_CODES: readonly ErrorName[] = Object.keys(ErrorCode)
  .map((k) => k.toLowerCase() as ErrorName);

/**
 * The series of a point, in storage order: gauges as read, `_per_s` rates
 * of counters over the step, `_ms` latencies from histogram deltas over the
 * step (null when nothing was observed).
 */
export const SERIES = [
  "sessions",
  "connections",
  "numbers_per_s",
  "resumes_per_s",
  "takeovers_per_s",
  "completions_per_s",
  "expiries_per_s",
  "busy_per_s",
  "rate_limited_per_s",
  "client_timeouts_per_s",
  "slow_consumers_per_s",
  "store_errors_per_s",
  "store_p99_ms",
  "store_mean_ms",
  "welcome_p50_ms",
  "welcome_p99_ms",
  "loop_p99_ms",
  "loop_mean_ms",
  ...REFUSAL_CODES.map((c) => `refused_${c}_per_s` as const),
] as const;

/** A series name. */
export type SeriesName = typeof SERIES[number];

const INDEX = new Map<string, number>(SERIES.map((s, i) => [s, i]));

/** The JSON of `GET /history`: times (ms since the epoch) and one array per series, oldest first. */
export interface HistoryJson {
  stepMs: number;
  capacity: number;
  /** Bytes the ring holds, fixed at start. */
  bytes: number;
  t: number[];
  series: Record<string, (number | null)[]>;
}

/**
 * A fixed-size ring of points: one `Float64Array` of times and one of
 * `capacity × SERIES.length` values; NaN stands for "no value".
 */
export class HistoryRing {
  readonly capacity: number;
  readonly #t: Float64Array;
  readonly #v: Float64Array;
  #head = 0; // next slot to write
  #size = 0;

  /** @param capacity points kept; the oldest is overwritten beyond it */
  constructor(capacity = HISTORY_CAPACITY) {
    this.capacity = capacity;
    this.#t = new Float64Array(capacity);
    this.#v = new Float64Array(capacity * SERIES.length);
  }

  /** Bytes of the preallocated arrays: constant for the ring's life. */
  get bytes(): number {
    return this.#t.byteLength + this.#v.byteLength;
  }

  /** Points held. */
  get size(): number {
    return this.#size;
  }

  /** Time of the newest point, or undefined when empty. */
  get last(): number | undefined {
    return this.#size === 0 ? undefined : this.#t[this.#slot(this.#size - 1)];
  }

  /** Appends a point: `row` holds one value per {@link SERIES} entry (NaN: none). */
  push(t: number, row: ArrayLike<number>): void {
    const i = this.#head, n = SERIES.length;
    this.#t[i] = t;
    for (let s = 0; s < n; s++) this.#v[s * this.capacity + i] = row[s] ?? NaN;
    this.#head = (i + 1) % this.capacity;
    if (this.#size < this.capacity) this.#size++;
  }

  /** Slot of the `k`th point held, oldest first. */
  #slot(k: number): number {
    return (this.#head - this.#size + k + this.capacity) % this.capacity;
  }

  /**
   * The last `points` values of `name`, oldest first (NaN for none); fewer
   * when fewer are held.
   */
  recent(name: SeriesName, points: number): number[] {
    const s = INDEX.get(name)!, n = Math.min(points, this.#size);
    const out = new Array<number>(n);
    for (let k = 0; k < n; k++) {
      out[k] = this.#v[s * this.capacity + this.#slot(this.#size - n + k)]!;
    }
    return out;
  }

  /** The points after time `since` (ms; all when absent), as JSON. */
  toJson(since = -Infinity): HistoryJson {
    let from = 0;
    while (from < this.#size && this.#t[this.#slot(from)]! <= since) from++;
    const t: number[] = [];
    const series: Record<string, (number | null)[]> = {};
    for (const name of SERIES) series[name] = [];
    for (let k = from; k < this.#size; k++) {
      const i = this.#slot(k);
      t.push(this.#t[i]!);
      SERIES.forEach((name, s) => {
        const v = this.#v[s * this.capacity + i]!;
        series[name]!.push(Number.isNaN(v) ? null : v);
      });
    }
    return {
      stepMs: HISTORY_STEP_MS,
      capacity: this.capacity,
      bytes: this.bytes,
      t,
      series,
    };
  }
}

/**
 * Quantile `q` (0..1) of the observations counted in `counts` (per bucket,
 * not cumulative; the last is +Inf) with upper `bounds`, interpolated inside
 * its bucket like Prometheus `histogram_quantile`. NaN when empty.
 */
export function bucketQuantile(
  bounds: readonly number[],
  counts: ArrayLike<number>,
  q: number,
): number {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i]!;
  if (!(total > 0)) return NaN;
  const rank = q * total;
  let below = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i]!;
    if (below + c >= rank && c > 0) {
      const lo = i === 0 ? 0 : bounds[i - 1]!;
      const hi = i < bounds.length ? bounds[i]! : lo; // +Inf: the last bound
      return lo + (hi - lo) * ((rank - below) / c);
    }
    below += c;
  }
  return bounds.at(-1) ?? NaN;
}

/** The cumulative state a point is the difference of. */
export interface Readings {
  counters: Counters;
  refusals: Record<string, number>;
  /** Per-bucket counts (LATENCY_BUCKETS + Inf), sum and count, summed over labels. */
  store: Float64Array;
  welcome: Float64Array;
  loop: Float64Array;
}

const NB = LATENCY_BUCKETS.length + 1;

/** Buckets, then sum, then count, of histograms summed over their labels. */
function summed(hs: Iterable<PromHistogram>): Float64Array {
  const out = new Float64Array(NB + 2);
  for (const h of hs) {
    for (let i = 0; i < NB; i++) out[i]! += h.counts[i] ?? 0;
    out[NB]! += h.sum;
    out[NB + 1]! += h.count;
  }
  return out;
}

/** The cumulative figures of a snapshot, copied (the snapshot's counters change in place). */
export function readingsOf(m: MetricsSnapshot): Readings {
  const h = m.histograms;
  return {
    counters: { ...m.counters },
    refusals: Object.fromEntries(m.refusals),
    store: summed(h?.storeOps.values() ?? []),
    welcome: summed(h?.welcome.values() ?? []),
    loop: summed(h === undefined ? [] : [h.loopLag]),
  };
}

/** p-quantile (ms) and mean (ms) of the observations between two summed histograms. */
function latency(a: Float64Array, b: Float64Array, q: number): number[] {
  const d = new Float64Array(NB);
  for (let i = 0; i < NB; i++) d[i] = Math.max(0, b[i]! - a[i]!);
  const n = b[NB + 1]! - a[NB + 1]!;
  const mean = n > 0 ? ((b[NB]! - a[NB]!) / n) * 1000 : NaN;
  return [bucketQuantile(LATENCY_BUCKETS, d, q) * 1000, mean];
}

/**
 * One point from two readings `dtS` seconds apart and the gauges of now:
 * one value per {@link SERIES} entry. Rates are NaN without a previous
 * reading. Pure.
 */
export function derivePoint(
  prev: Readings | undefined,
  now: Readings,
  gauges: { sessions: number; connections: number },
  dtS: number,
): Float64Array {
  const row = new Float64Array(SERIES.length).fill(NaN);
  const set = (name: SeriesName, v: number) => row[INDEX.get(name)!] = v;
  set("sessions", gauges.sessions);
  set("connections", gauges.connections);
  if (prev === undefined || !(dtS > 0)) return row;
  const c0 = prev.counters, c1 = now.counters;
  const rate = (name: SeriesName, k: keyof Counters) =>
    set(name, Math.max(0, c1[k] - c0[k]) / dtS);
  rate("numbers_per_s", "numbersSent");
  rate("resumes_per_s", "resumes");
  rate("takeovers_per_s", "sessionsTakenOver");
  rate("completions_per_s", "sessionsCompleted");
  rate("expiries_per_s", "sessionsExpired");
  rate("busy_per_s", "connectionsRejectedBusy");
  rate("rate_limited_per_s", "connectionsRejectedRate");
  rate("client_timeouts_per_s", "clientTimeouts");
  rate("slow_consumers_per_s", "slowConsumersDropped");
  rate("store_errors_per_s", "storeErrors");
  for (const code of REFUSAL_CODES) {
    const d = (now.refusals[code] ?? 0) - (prev.refusals[code] ?? 0);
    set(`refused_${code}_per_s`, Math.max(0, d) / dtS);
  }
  const [sp99, smean] = latency(prev.store, now.store, 0.99);
  set("store_p99_ms", sp99!);
  set("store_mean_ms", smean!);
  set("welcome_p50_ms", latency(prev.welcome, now.welcome, 0.5)[0]!);
  set("welcome_p99_ms", latency(prev.welcome, now.welcome, 0.99)[0]!);
  const [lp99, lmean] = latency(prev.loop, now.loop, 0.99);
  set("loop_p99_ms", lp99!);
  set("loop_mean_ms", lmean!);
  return row;
}

/** Options for {@link HistorySampler}. */
export interface HistorySamplerOptions {
  /**
   * Paces the sampling on its monotonic reading (its timers), over which the
   * rates are taken too, and stamps the points with its wall reading.
   */
  clock: Clock;
  /** The server's metrics, read once a step. */
  metrics(): MetricsSnapshot;
  /** Points kept. Default {@link HISTORY_CAPACITY}. */
  capacity?: number;
}

/**
 * Samples the server's metrics into a {@link HistoryRing} every
 * {@link HISTORY_STEP_MS} on the given clock. One timer per server; stops
 * with `[Symbol.dispose]()`.
 *
 * @example
 * ```ts
 * using sampler = new HistorySampler({ clock: systemClock, metrics: () => server.metrics() });
 * sampler.ring.toJson();
 * ```
 */
export class HistorySampler implements Disposable {
  /** The points taken so far. */
  readonly ring: HistoryRing;
  readonly #clock: Clock;
  readonly #metrics: () => MetricsSnapshot;
  /** The previous reading and its monotonic time. */
  #prev: { mono: number; r: Readings } | undefined;
  #timer: TimerId | undefined;
  /** Monotonic time the next sample is due. */
  #due: number;
  #stopped = false;

  constructor(opts: HistorySamplerOptions) {
    this.#clock = opts.clock;
    this.#metrics = opts.metrics;
    this.ring = new HistoryRing(opts.capacity);
    this.#due = this.#clock.monotonic();
    this.#tick();
  }

  /**
   * Takes one point now (the timer calls this). Points are stamped with
   * wall time, which never goes backward here: a wall clock stepped back
   * stamps points 1 ms after the previous one until it catches up, so
   * `?since=` never skips a point. Rates are taken over the monotonic time
   * since the previous point, so a wall-clock step does not distort them.
   */
  sample(): void {
    const last = this.ring.last;
    const wall = this.#clock.now();
    const at = last === undefined ? wall : Math.max(wall, last + 1);
    const mono = this.#clock.monotonic();
    const m = this.#metrics();
    const r = readingsOf(m);
    const p = this.#prev;
    this.ring.push(
      at,
      derivePoint(p?.r, r, m, p === undefined ? 0 : (mono - p.mono) / 1000),
    );
    this.#prev = { mono, r };
  }

  #tick(): void {
    this.sample();
    // Steps stay on a fixed grid of monotonic time (a wall-clock step moves
    // nothing); after a stall, the next one is a full step away, with no
    // burst of catch-up samples.
    const now = this.#clock.monotonic();
    this.#due += HISTORY_STEP_MS;
    if (this.#due <= now) this.#due = now + HISTORY_STEP_MS;
    if (!this.#stopped) {
      this.#timer = this.#clock.setTimeout(
        () => this.#tick(),
        this.#due - now,
      );
    }
  }

  /** Stops sampling; the points stay readable. */
  [Symbol.dispose](): void {
    this.#stopped = true;
    this.#clock.clearTimeout(this.#timer);
  }
}
