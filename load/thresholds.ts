/**
 * `--threshold EXPR` (repeatable), as in k6: a pass/fail criterion on one of
 * the run's figures, checked at the end: `tick_lag_p99<100ms`,
 * `welcome_p95<=250ms`, `failed==0`, `failed_rate<1%`,
 * `server_rss_mib<512`. The metric names, their units and where they come
 * from are in {@link METRICS} (documented in docs/load.md). Pure: parsing
 * and checking take values in and give values out.
 *
 * @module
 */

import { UsageError } from "../cli/usage.ts";

/** A threshold's comparison. */
export type Op = "<" | "<=" | ">" | ">=" | "==" | "!=";

/** What a metric measures, which sets the units a limit may carry. */
export type Kind = "ms" | "count" | "ratio" | "MiB" | "percent" | "us";

/** A parsed `--threshold`. */
export interface Threshold {
  /** As given. */
  expr: string;
  metric: string;
  op: Op;
  /** In the metric's unit (ms for latencies, 0..1 for ratios, MiB, %). */
  limit: number;
}

/** A threshold checked at the end of a run. */
export interface ThresholdResult extends Threshold {
  /** The run's figure, or null when the run could not measure it. */
  value: number | null;
  unit: string;
  pass: boolean;
}

/** A metric a threshold may name: its kind and a one-line description. */
export interface MetricSpec {
  kind: Kind;
  help: string;
}

const LATENCIES: Record<string, string> = {
  welcome: "client start to its first WELCOME",
  first_number: "client start to its first number",
  tick_lag: "lateness of each number against the interval",
  tick_lag_steady: "tick lag of numbers after the ramp",
  resume: "connection lost to the first number after the resume",
};

const STATS = ["p50", "p90", "p95", "p99", "max"] as const;

/** Every metric a threshold may name. */
export const METRICS: Readonly<Record<string, MetricSpec>> = {
  ...Object.fromEntries(
    Object.entries(LATENCIES).flatMap(([name, help]) => [
      ...STATS.map((
        s,
      ) => [`${name}_${s}`, { kind: "ms", help: `${s} of ${help}` }]),
      [`${name}_count`, { kind: "count", help: `samples of ${help}` }],
    ]),
  ),
  failed: { kind: "count", help: "clients that did not PASS" },
  failed_rate: { kind: "ratio", help: "failed / clients" },
  mismatches: { kind: "count", help: "clients whose checksum did not match" },
  errors: { kind: "count", help: "clients that ended in ERROR" },
  reconnects: { kind: "count", help: "reconnects over all clients" },
  server_rss_mib: {
    kind: "MiB",
    help: "largest peak RSS of a server (started here, or from --metrics)",
  },
  server_cpu_pct: {
    kind: "percent",
    help: "largest % of a core a server used after the ramp",
  },
  server_cpu_us_per_number: {
    kind: "us",
    help: "server CPU per number the clients received (µs)",
  },
  loadgen_loop_p99: {
    kind: "ms",
    help: "p99 event-loop delay of the load generators",
  },
  store_ops_per_session: {
    kind: "count",
    help: "store operations per client session (heartbeats excluded)",
  },
};

/** Units a limit may carry, per kind, as factors to the metric's unit. */
const UNITS: Record<Kind, Record<string, number>> = {
  ms: { "": 1, ms: 1, s: 1000, us: 0.001, "µs": 0.001 },
  us: { "": 1, us: 1, "µs": 1, ms: 1000 },
  count: { "": 1 },
  ratio: { "": 1, "%": 0.01 },
  MiB: { "": 1, MiB: 1, GiB: 1024, KiB: 1 / 1024 },
  percent: { "": 1, "%": 1 },
};

/** The unit a metric's values are shown in. */
export function unitOf(kind: Kind): string {
  return kind === "ms"
    ? "ms"
    : kind === "us"
    ? "µs"
    : kind === "MiB"
    ? "MiB"
    : kind === "percent"
    ? "%"
    : "";
}

const EXPR =
  /^\s*([a-z0-9_]+)\s*(<=|>=|==|!=|<|>)\s*(\d+(?:\.\d+)?)\s*([a-zA-Zµ%]*)\s*$/;

/**
 * Parses one `--threshold`.
 *
 * @throws {UsageError} naming the expression and what is wrong with it
 */
export function parseThreshold(expr: string): Threshold {
  const m = EXPR.exec(expr);
  if (!m) {
    throw new UsageError(
      `--threshold must be METRIC OP VALUE, e.g. 'tick_lag_p99<100ms', got "${expr}"`,
    );
  }
  const [, metric, op, num, unit] = m as unknown as [
    string,
    string,
    Op,
    string,
    string,
  ];
  const spec = METRICS[metric];
  if (!spec) {
    throw new UsageError(
      `--threshold "${expr}": unknown metric "${metric}" (see docs/load.md; e.g. tick_lag_p99, welcome_p95, failed, server_rss_mib)`,
    );
  }
  const factor = UNITS[spec.kind][unit];
  if (factor === undefined) {
    const ok = Object.keys(UNITS[spec.kind]).filter((u) => u !== "");
    throw new UsageError(
      `--threshold "${expr}": ${metric} takes ${
        ok.length ? ok.join(", ") + " or no unit" : "no unit"
      }, got "${unit}"`,
    );
  }
  return { expr: expr.trim(), metric, op, limit: Number(num) * factor };
}

function holds(value: number, op: Op, limit: number): boolean {
  switch (op) {
    case "<":
      return value < limit;
    case "<=":
      return value <= limit;
    case ">":
      return value > limit;
    case ">=":
      return value >= limit;
    case "==":
      return value === limit;
    case "!=":
      return value !== limit;
  }
}

/**
 * Checks each threshold against the run's figures (`figures[metric]`, null
 * or absent when unknown). An unknown figure fails its threshold: a
 * criterion that cannot be checked is not met.
 */
export function checkThresholds(
  thresholds: readonly Threshold[],
  figures: Readonly<Record<string, number | null | undefined>>,
): ThresholdResult[] {
  return thresholds.map((t) => {
    const value = figures[t.metric] ?? null;
    return {
      ...t,
      value,
      unit: unitOf(METRICS[t.metric]!.kind),
      pass: value !== null && Number.isFinite(value) &&
        holds(value, t.op, t.limit),
    };
  });
}

/** One line per threshold for a terminal: `✓ tick_lag_p99<100ms  (12.3 ms)`. */
export function thresholdLine(r: ThresholdResult): string {
  const v = r.value === null
    ? "unknown"
    : `${Math.round(r.value * 100) / 100}${r.unit ? " " + r.unit : ""}`;
  return `${r.pass ? "✓ pass" : "✗ FAIL"}  ${r.expr}  (${v})`;
}
