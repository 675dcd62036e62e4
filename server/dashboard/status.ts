/**
 * The dashboard's status line: green, amber or red, from the conditions the
 * operations guide says to alert on (store errors and latency, refusals,
 * slow handshakes, event-loop lag, capacity, slow consumers and client
 * timeouts). Pure: it reads the last minutes of the history and the gauges
 * of now, and says which rule fired and which tile it colours. The rules
 * and their thresholds live in {@link RULES}, and nowhere else.
 *
 * @module
 */

import { REFUSAL_CODES, type SeriesName } from "./history.ts";

/** How bad: `ok` green, `warn` amber, `crit` red. */
export type Level = "ok" | "warn" | "crit";

/** One rule that fired. */
export interface Finding {
  /** Stable rule id, e.g. `store_errors`. */
  rule: string;
  level: Exclude<Level, "ok">;
  /** The dashboard tile it colours (a metric or series name). */
  tile: string;
  /** A sentence for the status line, e.g. `3 store errors in the last minute`. */
  message: string;
}

/** The status line. */
export interface Status {
  level: Level;
  findings: Finding[];
}

/** What the rules read. */
export interface StatusInput {
  /**
   * The newest `n` points of a series, oldest first, one a second (NaN: no
   * value); fewer when the server is younger.
   */
  recent(name: SeriesName, n: number): ArrayLike<number>;
  connections: number;
  maxConnections: number;
  /** Open and most file descriptors, when the process may read them. */
  openFds?: number | undefined;
  maxFds?: number | undefined;
}

/** Seconds a rule looks back by default. */
export const WINDOW_S = 60;

/** The thresholds, in one place (documented in docs/dashboard.md). */
export const THRESHOLDS = {
  /** Store errors: red within the last minute, amber within the last 5. */
  storeErrorsWarnS: 300,
  /** Store p99 (ms) above this for `sustainedS` of the last minute: amber. */
  storeP99Ms: 100,
  /** Handshake (HELLO/RESUME to WELCOME) p99 (ms): amber. */
  welcomeP99Ms: 500,
  /** Event-loop lag p99 (ms): amber above the first, red above the second. */
  loopP99WarnMs: 50,
  loopP99CritMs: 250,
  /** Seconds of the last minute a latency must exceed its threshold. */
  sustainedS: 10,
  /** Connections / --max-connections: amber, red. */
  capacityWarn: 0.8,
  capacityCrit: 0.95,
  /** Open / most fds: amber, red. */
  fdsWarn: 0.8,
  fdsCrit: 0.95,
  /** Slow consumers or client timeouts in this many seconds of the last minute: red (any: amber). */
  unhealthyCritS: 10,
} as const;

/** Sum of the values (NaN counts as 0). */
function total(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) if (a[i]! > 0) s += a[i]!;
  return s;
}

/** Seconds whose value is above `limit`. */
function secondsAbove(a: ArrayLike<number>, limit: number): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i]! > limit) n++;
  return n;
}

/** Events in a per-second series over its points (one a second). */
const events = (a: ArrayLike<number>) => Math.round(total(a));

type Rule = (s: StatusInput) => Finding | undefined;

/** Handshake refusals the `refusals` rule counts (store_unavailable has its own). */
const REFUSAL_SERIES: readonly SeriesName[] = REFUSAL_CODES
  .filter((c) => c !== "store_unavailable")
  .map((c) => `refused_${c}_per_s` as const);

const T = THRESHOLDS;

/** Every rule, in the order the status line names them. */
export const RULES: readonly Rule[] = [
  (s) => {
    const minute = events(s.recent("store_errors_per_s", WINDOW_S));
    const five = events(s.recent("store_errors_per_s", T.storeErrorsWarnS));
    if (minute > 0) {
      return {
        rule: "store_errors",
        level: "crit",
        tile: "seqstream_store_errors_total",
        message: `${minute} store errors in the last minute`,
      };
    }
    if (five > 0) {
      return {
        rule: "store_errors",
        level: "warn",
        tile: "seqstream_store_errors_total",
        message: `${five} store errors in the last 5 minutes`,
      };
    }
  },
  (s) => {
    const n = events(s.recent("refused_store_unavailable_per_s", WINDOW_S));
    if (n > 0) {
      return {
        rule: "store_unavailable",
        level: "crit",
        tile: "refusals",
        message: `${n} handshakes refused: store unavailable`,
      };
    }
  },
  (s) => {
    const slow = secondsAbove(s.recent("store_p99_ms", WINDOW_S), T.storeP99Ms);
    if (slow >= T.sustainedS) {
      return {
        rule: "store_latency",
        level: "warn",
        tile: "store_p99_ms",
        message:
          `store p99 above ${T.storeP99Ms} ms for ${slow} s of the last minute`,
      };
    }
  },
  (s) => {
    const busy = events(s.recent("busy_per_s", WINDOW_S));
    if (busy > 0) {
      return {
        rule: "busy",
        level: "crit",
        tile: "seqstream_connections_rejected_busy_total",
        message: `${busy} connections refused busy in the last minute`,
      };
    }
  },
  (s) => {
    let n = events(s.recent("rate_limited_per_s", WINDOW_S));
    for (const name of REFUSAL_SERIES) {
      n += events(s.recent(name, WINDOW_S));
    }
    if (n > 0) {
      return {
        rule: "refusals",
        level: "warn",
        tile: "refusals",
        message: `${n} refusals in the last minute`,
      };
    }
  },
  (s) => {
    const n = secondsAbove(
      s.recent("welcome_p99_ms", WINDOW_S),
      T.welcomeP99Ms,
    );
    if (n >= T.sustainedS) {
      return {
        rule: "slow_handshakes",
        level: "warn",
        tile: "welcome_p99_ms",
        message:
          `handshake p99 above ${T.welcomeP99Ms} ms for ${n} s of the last minute`,
      };
    }
  },
  (s) => {
    const lag = s.recent("loop_p99_ms", WINDOW_S);
    const crit = secondsAbove(lag, T.loopP99CritMs);
    const warn = secondsAbove(lag, T.loopP99WarnMs);
    if (crit >= T.sustainedS || warn >= T.sustainedS) {
      const [level, ms, n] = crit >= T.sustainedS
        ? ["crit" as const, T.loopP99CritMs, crit]
        : ["warn" as const, T.loopP99WarnMs, warn];
      return {
        rule: "loop_lag",
        level,
        tile: "loop_p99_ms",
        message:
          `event-loop lag p99 above ${ms} ms for ${n} s of the last minute`,
      };
    }
  },
  (s) => {
    if (!(s.maxConnections > 0)) return;
    const f = s.connections / s.maxConnections;
    if (f >= T.capacityWarn) {
      return {
        rule: "capacity",
        level: f >= T.capacityCrit ? "crit" : "warn",
        tile: "seqstream_connections",
        message: `${s.connections} of ${s.maxConnections} connections (${
          Math.round(f * 100)
        }% of --max-connections)`,
      };
    }
  },
  (s) => {
    if (s.openFds === undefined || !(s.maxFds! > 0)) return;
    const f = s.openFds / s.maxFds!;
    if (f >= T.fdsWarn) {
      return {
        rule: "fds",
        level: f >= T.fdsCrit ? "crit" : "warn",
        tile: "process_open_fds",
        message: `${s.openFds} of ${s.maxFds} file descriptors open`,
      };
    }
  },
  unhealthy(
    "slow_consumers",
    "slow_consumers_per_s",
    "seqstream_slow_consumers_dropped_total",
    "slow consumers dropped",
  ),
  unhealthy(
    "client_timeouts",
    "client_timeouts_per_s",
    "seqstream_client_timeouts_total",
    "client timeouts",
  ),
];

function unhealthy(
  rule: string,
  series: SeriesName,
  tile: string,
  what: string,
): Rule {
  return (s) => {
    const a = s.recent(series, WINDOW_S);
    const n = events(a), secs = secondsAbove(a, 0);
    if (n > 0) {
      return {
        rule,
        level: secs >= T.unhealthyCritS ? "crit" : "warn",
        tile,
        message: `${n} ${what} in the last minute`,
      };
    }
  };
}

/** Evaluates every rule: the worst level and what fired, worst first. */
export function evaluateStatus(s: StatusInput): Status {
  const findings = RULES.map((r) => r(s)).filter((f): f is Finding =>
    f !== undefined
  );
  findings.sort((a, b) => rank(b.level) - rank(a.level));
  return {
    level: findings.reduce<Level>(
      (l, f) => rank(f.level) > rank(l) ? f.level : l,
      "ok",
    ),
    findings,
  };
}

function rank(l: Level): number {
  return l === "crit" ? 2 : l === "warn" ? 1 : 0;
}
