/**
 * The load tool's command line: its flags, their ranges, and the run
 * {@link Config} they describe.
 *
 * @module
 */

import {
  durationFlag,
  type FlagSpec,
  type FlagValues,
  intFlag,
  UsageError,
} from "../cli/usage.ts";
import {
  CLIENT_DEFAULTS,
  DURATION_RANGES,
  formatMs,
  type MsRange,
  SERVER_DEFAULTS,
} from "../common/defaults.ts";
import { FD_BOUND_MAX_CONNECTIONS } from "../internal/server_process.ts";
import { MAX_COUNT } from "../protocol/messages.ts";
import { parseThreshold, type Threshold } from "./thresholds.ts";
import type { Target } from "./worker.ts";

/** The load tool's flags. */
export const FLAGS = {
  clients: {
    type: "string",
    short: "n",
    default: "100",
    help: "N  simulated clients",
  },
  ramp: {
    type: "string",
    default: "60s",
    help: "DURATION  clients start at random times within this window",
  },
  window: {
    type: "string",
    default: "60s",
    help:
      "DURATION  every session is live at once for this long after the ramp (sets the default count)",
  },
  count: {
    type: "string",
    help:
      "N  numbers per client (sets --count-min and --count-max; default ⌈(ramp + window) / interval⌉ + 1)",
  },
  "count-min": {
    type: "string",
    help: "N  smallest per-client count",
  },
  "count-max": {
    type: "string",
    help: "N  largest per-client count",
  },
  client: {
    type: "string",
    default: "lean",
    help:
      "lean|real  loop for the clients outside the fault fraction (lean: the session state machine on a minimal loop)",
  },
  kill: {
    type: "string",
    help:
      "I@TIME  kill -9 server I (from 0) TIME after the ramp began (a failover storm)",
  },
  interval: {
    type: "string",
    default: formatMs(SERVER_DEFAULTS.intervalMs),
    help: "DURATION  server interval (also used to compute tick lag)",
  },
  target: {
    type: "string",
    multiple: true,
    help: "HOST:PORT  use a running server (repeatable) instead of --servers",
  },
  metrics: {
    type: "string",
    multiple: true,
    help: "HOST:PORT  /metrics of a --target server, for the zero-state check",
  },
  servers: {
    type: "string",
    default: "1",
    help: "K  server processes to start (reuse-port)",
  },
  hosts: {
    type: "string",
    help:
      "H  loopback addresses 127.0.0.1..H the servers share out (default: enough for ports)",
  },
  store: {
    type: "string",
    default: "auto",
    help:
      "SPEC  servers' --store (auto: memory, or a shared kv file when servers share an address; redis: a redis-server of the run's own)",
  },
  "session-ttl": {
    type: "string",
    default: formatMs(SERVER_DEFAULTS.ttlMs),
    help: "DURATION  servers' --session-ttl",
  },
  "max-connections": {
    type: "string",
    default: String(FD_BOUND_MAX_CONNECTIONS),
    help: "N  servers' --max-connections (fd limit is 20,000)",
  },
  workers: {
    type: "string",
    help: "W  load-generator processes (default: one per 14,000 sockets)",
  },
  "fault-fraction": {
    type: "string",
    default: "0",
    help: "F  fraction of clients sent through the fault proxy",
  },
  "fault-lifetime": {
    type: "string",
    default: "2s..20s",
    help: "MIN..MAX  proxied connections are cut after this",
  },
  "fault-reset": {
    type: "string",
    default: "0.3",
    help: "P  probability that a cut is a RST",
  },
  "idle-timeout": {
    type: "string",
    help:
      `DURATION  clients reconnect after this much silence (default: the client's, max(${
        formatMs(CLIENT_DEFAULTS.minIdleTimeoutMs)
      }, 3 intervals))`,
  },
  "handshake-timeout": {
    type: "string",
    help: `DURATION  clients' connect + welcome limit (default: the client's, ${
      formatMs(CLIENT_DEFAULTS.handshakeTimeoutMs)
    })`,
  },
  "backoff-base": {
    type: "string",
    help:
      `DURATION  client backoff first step ceiling (default: the client's, ${
        formatMs(CLIENT_DEFAULTS.backoffBaseMs)
      })`,
  },
  "backoff-cap": {
    type: "string",
    default: formatMs(CLIENT_DEFAULTS.backoffCapMs),
    help: "DURATION  client backoff ceiling, with --backoff-base",
  },
  duration: {
    type: "string",
    help:
      "DURATION  stop the clients after this (default: ramp + 1.25 × longest session + 30s)",
  },
  settle: {
    type: "string",
    help:
      "DURATION  wait this long for zero state (default 5s; TTL+5s after faults or failures)",
  },
  seed: { type: "string", help: "N  seed for start times, counts and faults" },
  "server-log-level": {
    type: "string",
    default: "warn",
    help: "LEVEL  servers' --log-level",
  },
  "cpu-prof": {
    type: "string",
    help: "DIR  write V8 CPU profiles of every server and load generator here",
  },
  timeline: {
    type: "boolean",
    default: false,
    help: "include the per-second samples in the JSON report",
  },
  threshold: {
    type: "string",
    multiple: true,
    help:
      "EXPR  pass/fail criterion checked at the end, e.g. 'tick_lag_p99<100ms' (repeatable; names in docs/load.md); exit 99 if one fails",
  },
  report: {
    type: "string",
    help:
      "FILE.html  also write a self-contained HTML report with charts over time",
  },
  json: {
    type: "boolean",
    default: false,
    help: "print the report as one JSON object",
  },
  help: { type: "boolean", short: "h", default: false, help: "show this help" },
} as const satisfies Record<string, FlagSpec>;

/** Parsed {@link FLAGS}. */
export type LoadFlags = FlagValues<typeof FLAGS>;

/** Sockets one load-generator process may hold (the per-process limit is 20,000). */
export const SOCKETS_PER_WORKER = 14_000;
/** Clients per destination (address, port) before ephemeral ports (~28,000) run short. */
export const CLIENTS_PER_DESTINATION = 26_000;

/** A load run, as the flags describe it. */
export interface Config {
  clients: number;
  rampMs: number;
  countMin: number;
  countMax: number;
  intervalMs: number;
  targets: Target[];
  metrics: Target[];
  servers: number;
  hosts: number;
  store: string;
  ttlMs: number;
  maxConnections: number;
  workers: number;
  faultFraction: number;
  faultLifetime: { minMs: number; maxMs: number };
  faultReset: number;
  backoff: { baseMs: number; capMs: number } | undefined;
  idleTimeoutMs: number | undefined;
  handshakeTimeoutMs: number | undefined;
  durationMs: number;
  settleMs: number | undefined;
  seed: number;
  serverLogLevel: string;
  cpuProfDir: string | undefined;
  timeline: boolean;
  /** Time every session is live at once, after the ramp (ms). */
  windowMs: number;
  client: "lean" | "real";
  /** `--kill`: which server, and when after the ramp began (ms). */
  kill: { index: number; atMs: number } | undefined;
  /** `--store redis`: the run starts its own redis-server. */
  ownRedis: boolean;
  /** Where `--report` writes the HTML report. */
  reportPath: string | undefined;
  /** `--threshold`s, checked at the end. */
  thresholds: Threshold[];
  json: boolean;
}

/** Ranges of the load tool's own duration flags (the servers' and clients' are in DURATION_RANGES). */
export const LOAD_RANGES = {
  ramp: { min: 0, max: 86_400_000 },
  faultLifetime: { min: 1, max: 3_600_000 },
  backoff: { min: 0, max: 600_000 },
  duration: { min: 1000, max: 86_400_000 },
  settle: { min: 0, max: 3_600_000 },
  window: { min: 0, max: 86_400_000 },
  kill: { min: 0, max: 86_400_000 },
} as const satisfies Record<string, MsRange>;

/** Default wait for zero state after a clean run (ms); a run with faults or failures waits the TTL more. */
export const SETTLE_MS = 5000;

/** The default `--duration`: the ramp, 1.25 × the longest session, and this (ms). */
const DURATION_SLACK_MS = 30_000;

function hostPort(flag: string, s: string): Target {
  const m = /^([0-9.]+|localhost):(\d+)$/.exec(s);
  if (!m) throw new UsageError(`--${flag} must be HOST:PORT, got "${s}"`);
  return { hostname: m[1]!, port: intFlag(flag, m[2]!, 1, 65535) };
}

function fraction(flag: string, s: string): number {
  const f = Number(s);
  if (!/^\d*\.?\d+$/.test(s) || f > 1) {
    throw new UsageError(`--${flag} must be a number from 0 to 1, got "${s}"`);
  }
  return f;
}

/** `MIN..MAX` or one duration for both. */
function lifetime(value: string): { minMs: number; maxMs: number } {
  const [min, max = min] = value.split("..") as [string, string?];
  const r = LOAD_RANGES.faultLifetime;
  const out = {
    minMs: durationFlag("fault-lifetime", min, r),
    maxMs: durationFlag("fault-lifetime", max, r),
  };
  if (out.minMs > out.maxMs) {
    throw new UsageError("--fault-lifetime MIN must not exceed MAX");
  }
  return out;
}

/**
 * The count at which every session outlasts the ramp plus the window: a
 * session started at the end of the ramp is still live when the window ends
 * (30..90 at interval 0, which has no duration).
 */
export function defaultCount(
  rampMs: number,
  windowMs: number,
  intervalMs: number,
): number {
  if (intervalMs === 0) return 60;
  return Math.min(MAX_COUNT, Math.ceil((rampMs + windowMs) / intervalMs) + 1);
}

/** `--kill I@TIME`. */
function killSpec(
  value: string,
  servers: number,
  hosts: number,
): { index: number; atMs: number } {
  const m = /^(\d+)@(.+)$/.exec(value);
  if (!m) throw new UsageError(`--kill must be INDEX@TIME, got "${value}"`);
  if (servers < 2 * hosts) {
    throw new UsageError(
      "--kill needs at least two servers per address (a survivor on the same port): --servers 2 or more, fewer --hosts",
    );
  }
  return {
    index: intFlag("kill", m[1]!, 0, servers - 1),
    atMs: durationFlag("kill", m[2]!, LOAD_RANGES.kill),
  };
}

/** The fewest addresses that divide the servers evenly and keep each under its port budget. */
function defaultHosts(servers: number, clients: number): number {
  for (let d = 1; d <= servers; d++) {
    if (
      servers % d === 0 && Math.ceil(clients / d) <= CLIENTS_PER_DESTINATION
    ) {
      return d;
    }
  }
  return servers;
}

/**
 * Reads the flags into a {@link Config}.
 *
 * @throws {UsageError} one line naming the flag
 */
export function parseConfig(f: LoadFlags): Config {
  const optional = (
    name: keyof LoadFlags & string,
    value: string | undefined,
    range: MsRange,
  ) => value === undefined ? undefined : durationFlag(name, value, range);
  const clients = intFlag("clients", f.clients, 1, 1_000_000);
  const intervalMs = durationFlag(
    "interval",
    f.interval,
    DURATION_RANGES.interval,
  );
  const rampMs = durationFlag("ramp", f.ramp, LOAD_RANGES.ramp);
  const windowMs = durationFlag("window", f.window, LOAD_RANGES.window);
  const derived = String(defaultCount(rampMs, windowMs, intervalMs));
  const countMin = intFlag(
    "count",
    f.count ?? f["count-min"] ?? derived,
    1,
    MAX_COUNT,
  );
  const countMax = intFlag(
    "count",
    f.count ?? f["count-max"] ?? (f["count-min"] ? String(countMin) : derived),
    countMin,
    MAX_COUNT,
  );
  if (f.client !== "lean" && f.client !== "real") {
    throw new UsageError(`--client must be lean or real, got "${f.client}"`);
  }
  const targets = (f.target ?? []).map((t) => hostPort("target", t));
  const metrics = (f.metrics ?? []).map((t) => hostPort("metrics", t));
  const servers = targets.length > 0 ? 0 : intFlag("servers", f.servers, 1, 64);
  let hosts = 0;
  if (servers > 0) {
    hosts = f.hosts !== undefined
      ? intFlag("hosts", f.hosts, 1, servers)
      : defaultHosts(servers, clients);
    if (servers % hosts !== 0) {
      throw new UsageError(
        `--hosts must divide --servers (${servers}), got ${hosts}`,
      );
    }
  }
  const faultFraction = fraction("fault-fraction", f["fault-fraction"]);
  const sockets = Math.ceil(clients * (1 + 2 * faultFraction));
  const workers = f.workers !== undefined
    ? intFlag("workers", f.workers, 1, 64)
    : Math.max(1, Math.ceil(sockets / SOCKETS_PER_WORKER));
  // A client on a multi-process address can reconnect (a fault, an overload, a lost welcome) to any of
  // its processes, so they must share a store; with separate memory stores a retried hello makes a
  // second session under the same id and token, and a later resume can mix the two sequences.
  const shared = servers > hosts;
  let store = f.store;
  const ownRedis = store === "redis";
  if (ownRedis && servers === 0) {
    throw new UsageError("--store redis needs --servers (not --target)");
  }
  if (store === "auto") {
    store = shared ? "kv:<run dir>/sessions.sqlite" : "memory";
  } else if (store === "memory" && shared) {
    throw new UsageError(
      "Several servers per address need a shared --store (e.g. kv:PATH), or --hosts equal to --servers",
    );
  }
  const longest = countMax * intervalMs;
  const backoffBaseMs = optional(
    "backoff-base",
    f["backoff-base"],
    LOAD_RANGES.backoff,
  );
  return {
    clients,
    rampMs,
    countMin,
    countMax,
    intervalMs,
    targets,
    metrics,
    servers,
    hosts,
    store,
    ttlMs: durationFlag(
      "session-ttl",
      f["session-ttl"],
      DURATION_RANGES.sessionTtl,
    ),
    maxConnections: intFlag(
      "max-connections",
      f["max-connections"],
      1,
      19_950,
    ),
    workers,
    faultFraction,
    faultLifetime: lifetime(f["fault-lifetime"]),
    faultReset: fraction("fault-reset", f["fault-reset"]),
    backoff: backoffBaseMs === undefined ? undefined : {
      baseMs: backoffBaseMs,
      capMs: durationFlag("backoff-cap", f["backoff-cap"], LOAD_RANGES.backoff),
    },
    idleTimeoutMs: optional(
      "idle-timeout",
      f["idle-timeout"],
      DURATION_RANGES.idleTimeout,
    ),
    handshakeTimeoutMs: optional(
      "handshake-timeout",
      f["handshake-timeout"],
      DURATION_RANGES.handshakeTimeout,
    ),
    durationMs: optional("duration", f.duration, LOAD_RANGES.duration) ??
      Math.ceil(rampMs + 1.25 * longest + DURATION_SLACK_MS),
    settleMs: optional("settle", f.settle, LOAD_RANGES.settle),
    seed: f.seed !== undefined
      ? intFlag("seed", f.seed, 0, 2 ** 32 - 1)
      : Math.floor(Math.random() * 2 ** 32),
    serverLogLevel: f["server-log-level"],
    cpuProfDir: f["cpu-prof"],
    timeline: f.timeline,
    windowMs,
    client: f.client,
    kill: f.kill === undefined ? undefined : killSpec(f.kill, servers, hosts),
    ownRedis,
    reportPath: f.report,
    thresholds: (f.threshold ?? []).map(parseThreshold),
    json: f.json,
  };
}
