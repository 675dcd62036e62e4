/**
 * Verdict phase: the typed {@link LoadReport} of a run (the JSON the tool
 * prints with `--json`) and its table.
 *
 * @module
 */

import { formatDuration } from "../cli/duration.ts";
import { type ClientTotals, ledgerLine } from "./aggregate.ts";
import type { Config } from "./config.ts";
import type { Histogram } from "./histogram.ts";
import type { ProcSample, TcpCounters } from "./_proc.ts";
import { r1, type Sample } from "./sampler.ts";
import type { ServerProc } from "./servers.ts";
import type { ClientTally, Target } from "./worker.ts";
import { describeLeft, type ZeroState } from "./zero_state.ts";
import type { FailoverReport } from "./storm.ts";
import type { RunMeta } from "./run_meta.ts";
import {
  checkThresholds,
  type Threshold,
  thresholdLine,
  type ThresholdResult,
} from "./thresholds.ts";
import { SERVER_STORE_OPS } from "../server/store_calls.ts";

/** Percentiles of a histogram (ms), and its sample count. */
export interface Percentiles {
  p50: number;
  p99: number;
  max: number;
  n: number;
}

/** A latency over the run (ms): the k6-style percentiles and the distribution. */
export interface LatencyStats {
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  max: number;
  count: number;
  /** Log-spaced bins: upper edge (ms) and count, for the report's charts. */
  distribution: { le: number[]; count: number[] };
}

/** The latencies a report shows as tables and distributions, in order. */
export const LATENCIES = {
  welcome: "time to welcome",
  firstNumber: "time to first number",
  tickLag: "tick lag",
  tickLagSteady: "tick lag after ramp",
  resume: "resume time (cut to first resumed number)",
} as const;

/** A key of {@link LATENCIES}. */
export type LatencyName = keyof typeof LATENCIES;

/** Where the report's server CPU and memory come from. */
export type ServerFigures =
  | "proc" // servers this run started: /proc
  | "metrics" // --target servers: process_* of their /metrics
  | "unknown"; // --target without --metrics

/** One server process at the end of the run. */
export interface ServerReport {
  pid: number;
  addr: string;
  cpuS: number;
  /** % of a core over the steady window (≥ 95% of peak sessions live), if it lasted 5 s. */
  steadyCpuPct: number | null;
  peakRssMiB: number;
  exitCode: number;
  connections: number | null;
  sessions: number | null;
  sessionsStarted: number | null;
  resumes: number | null;
  rejectedBusy: number | null;
  slowDropped: number | null;
  /** Killed by `--kill` (its exit code and end state do not count). */
  killed: boolean;
  log: string;
}

/** CPU per number the clients received (µs): servers and load generators, and their ratio. */
export interface CpuPerNumber {
  serverUs: number | null;
  loadgenUs: number | null;
  /** Load generator ÷ server: at most 1 means the load tool can reach the server's ceiling. */
  ratio: number | null;
}

/** What `deno task load` reports. */
export interface LoadReport {
  /** PASS when every client passed and every server ended in zero state (thresholds aside). */
  verdict: "PASS" | "FAIL";
  /** When, what and where; the command as typed. */
  meta: RunMeta;
  /** `--threshold` results, in the order given. */
  thresholds: ThresholdResult[];
  /** Percentiles and distributions (ms). */
  latency: Record<LatencyName, LatencyStats>;
  /** Where `servers`, `serverMax` and the server CPU per number come from. */
  serverFigures: ServerFigures;
  config: {
    clients: number;
    servers: number | null;
    hosts: number | null;
    targets: string[];
    workers: number;
    ramp: string;
    window: string;
    client: "lean" | "real";
    kill: string | null;
    count: number | string;
    interval: string;
    store: string;
    faultFraction: number;
    idleTimeout: string;
    handshakeTimeout: string;
    seed: number;
  };
  clients:
    & {
      total: number;
      passed: number;
      failed: number;
    }
    & ClientTally
    & { numbers: number };
  peak: {
    liveSessions: number;
    connected: number;
    serverConnections: number;
    steadySeconds: number;
    /** Seconds (1 s samples) in which every client's session was live at once. */
    allLiveSeconds: number;
  };
  /** Whole run, and the steady window (≥ 95% of peak sessions live: no handshakes of the ramp). */
  cpuPerNumber: { run: CpuPerNumber; steady: CpuPerNumber };
  /**
   * `seqstream_store_ops_total` summed over the servers at the end, by op,
   * split into the operations spent on behalf of sessions (per client
   * session) and the per-server ones of the heartbeat (`SERVER_STORE_OPS`:
   * lease, fences, collection, resync), which do not grow with sessions.
   */
  storeOps: {
    byOp: Record<string, number>;
    /** Session operations per client session. */
    perSession: number;
    sessionOps: number;
    serverOps: {
      byOp: Record<string, number>;
      total: number;
      servers: number;
      /** Per server per minute of the run, null for a run under a second. */
      perServerPerMin: number | null;
    };
  } | null;
  /** `INFO commandstats` of the run's own redis-server (`--store redis`). */
  redisCalls:
    | { byCommand: Record<string, number>; total: number; perSession: number }
    | null;
  failover?: FailoverReport;
  tickLagMs: Percentiles;
  tickLagSteadyMs: Percentiles;
  welcomeMs: Percentiles;
  firstNumberMs: Percentiles;
  /** `/metrics` answer time over the run's samples: the servers' event-loop responsiveness. */
  scrapeMs: { max: number };
  servers: ServerReport[];
  serverMax: {
    cpuS: number;
    steadyCpuPct: number | null;
    peakRssMiB: number;
  } | null;
  loadgen: { loopLagMs: Percentiles; cpuS: number; peakRssMiB: number };
  host: {
    wallS: number;
    busyCpuS: number;
    othersCpuS: number;
    /** Host-wide, so other programs' connections count too. */
    listenOverflows: number;
    synRetrans: number;
  };
  zeroState: boolean | null;
  /** What the servers still held when the settle phase ended short of zero, and why it ended. */
  zeroLeft: string | null;
  settleEnded: string | null;
  clientsSeconds: number;
  runDir: string;
  timeline?: Sample[];
}

/** Everything the run measured, for {@link buildReport}. */
export interface RunFigures {
  cfg: Config;
  /** The store the servers used, with the run directory filled in. */
  store: string;
  targets: readonly Target[];
  runDir: string;
  totals: ClientTotals;
  samples: readonly Sample[];
  lastProc: ReadonlyMap<number, ProcSample>;
  servers: readonly ServerProc[];
  /** `/proc` of each server just before it was stopped. */
  endProcs: readonly (ProcSample | null)[];
  exits: readonly Deno.CommandStatus[];
  workerPids: readonly number[];
  zero: ZeroState;
  tcp0: TcpCounters;
  tcp1: TcpCounters;
  startAt: number;
  clientsEndedAt: number;
  /** Index of the server `--kill` killed. */
  killedIndex?: number | undefined;
  failover?: FailoverReport | undefined;
  redisCalls?: Record<string, number> | undefined;
  /** Header of the report. */
  meta: RunMeta;
  /** `--threshold`s to check. */
  thresholds: readonly Threshold[];
}

const OPS = "seqstream_store_ops_total";

/**
 * `seqstream_store_ops_total` of the servers' last scrapes, split into the
 * operations spent on behalf of sessions (per client session) and the
 * per-server heartbeat ones (`SERVER_STORE_OPS`).
 */
export function storeOpsOf(
  scrapes: readonly (Map<string, number> | null)[],
  clients: number,
  wallS: number,
): LoadReport["storeOps"] {
  const byOp: Record<string, number> = {};
  const serverByOp: Record<string, number> = {};
  let any = false, sessionOps = 0, serverOps = 0, servers = 0;
  for (const m of scrapes) {
    let seen = false;
    for (const [k, v] of m ?? []) {
      if (!k.startsWith(OPS)) continue;
      any = seen = true;
      const label = /op="([^"]*)"/.exec(k)?.[1] ?? "all";
      byOp[label] = (byOp[label] ?? 0) + v;
      if (SERVER_STORE_OPS.has(label)) {
        serverByOp[label] = (serverByOp[label] ?? 0) + v;
        serverOps += v;
      } else sessionOps += v;
    }
    if (seen) servers++;
  }
  if (!any) return null;
  return {
    byOp,
    perSession: Math.round((sessionOps / clients) * 100) / 100,
    sessionOps,
    serverOps: {
      byOp: serverByOp,
      total: serverOps,
      servers,
      perServerPerMin: wallS >= 1 && servers > 0
        ? r1(serverOps / servers / (wallS / 60))
        : null,
    },
  };
}

function perNumber(
  serverCpuS: number | null,
  loadgenCpuS: number,
  numbers: number,
): CpuPerNumber {
  if (numbers <= 0) return { serverUs: null, loadgenUs: null, ratio: null };
  const serverUs = serverCpuS === null ? null : (serverCpuS / numbers) * 1e6;
  const loadgenUs = (loadgenCpuS / numbers) * 1e6;
  return {
    serverUs: serverUs === null ? null : r1(serverUs),
    loadgenUs: r1(loadgenUs),
    ratio: serverUs !== null && serverUs > 0
      ? Math.round((loadgenUs / serverUs) * 100) / 100
      : null,
  };
}

/** The servers' CPU seconds so far in a sample, by where they come from; null when unknown. */
function serverCpuOf(s: Sample, from: ServerFigures): number | null {
  if (from === "proc") return sum(s.serverCpuS);
  if (from === "metrics" && s.metricsCpuS.every((v) => v !== null)) {
    return sum(s.metricsCpuS as number[]);
  }
  return null;
}

const sum = (a: readonly number[]) => a.reduce((x, y) => x + y, 0);

/** CPU per number over the steady samples, before a `--kill` (the storm is not streaming). */
function steadyPerNumber(
  steady: readonly Sample[],
  killAtMs: number | undefined,
  from: ServerFigures,
): CpuPerNumber {
  const w = killAtMs === undefined
    ? steady
    : steady.filter((s) => s.t * 1000 < killAtMs);
  const a = w[0], b = w.at(-1);
  if (!a || !b || b.t - a.t < MIN_STEADY_S) return perNumber(0, 0, 0);
  const ca = serverCpuOf(a, from), cb = serverCpuOf(b, from);
  return perNumber(
    ca === null || cb === null ? null : cb - ca,
    b.workerCpuS - a.workerCpuS,
    b.numbers - a.numbers,
  );
}

function stats(h: Histogram): LatencyStats {
  return {
    p50: r1(h.percentile(50)),
    p90: r1(h.percentile(90)),
    p95: r1(h.percentile(95)),
    p99: r1(h.percentile(99)),
    max: r1(h.max),
    count: h.count,
    distribution: h.distribution(),
  };
}

/**
 * The figures `--threshold` names (see `METRICS` in thresholds.ts), from a
 * report; null where the run could not measure one.
 */
export function thresholdFigures(
  r: Omit<LoadReport, "thresholds">,
): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  const names: Record<LatencyName, string> = {
    welcome: "welcome",
    firstNumber: "first_number",
    tickLag: "tick_lag",
    tickLagSteady: "tick_lag_steady",
    resume: "resume",
  };
  for (const [k, name] of Object.entries(names)) {
    const l = r.latency[k as LatencyName];
    for (const s of ["p50", "p90", "p95", "p99", "max"] as const) {
      out[`${name}_${s}`] = l.count > 0 ? l[s] : null;
    }
    out[`${name}_count`] = l.count;
  }
  out.failed = r.clients.failed;
  out.failed_rate = r.clients.total > 0
    ? r.clients.failed / r.clients.total
    : null;
  out.mismatches = r.clients.mismatches;
  out.errors = sum(Object.values(r.clients.errors));
  out.reconnects = r.clients.reconnects;
  out.server_rss_mib = r.serverMax?.peakRssMiB ?? null;
  out.server_cpu_pct = r.serverMax?.steadyCpuPct ?? null;
  out.server_cpu_us_per_number = r.cpuPerNumber.run.serverUs;
  out.loadgen_loop_p99 = r.loadgen.loopLagMs.n > 0
    ? r.loadgen.loopLagMs.p99
    : null;
  out.store_ops_per_session = r.storeOps?.perSession ?? null;
  return out;
}

const STEADY_FRACTION = 0.95;
const MIN_STEADY_S = 5;

function pct(h: Histogram): Percentiles {
  return {
    p50: r1(h.percentile(50)),
    p99: r1(h.percentile(99)),
    max: r1(h.max),
    n: h.count,
  };
}

/**
 * The report and its verdict: PASS when every client passed, every server
 * ended in zero state (or it was not checked) and exited 0.
 */
export function buildReport(f: RunFigures): LoadReport {
  const { cfg, totals: t, samples } = f;
  // CPU: whole run, and the steady window in which at least 95% of the peak sessions were live.
  const peakLive = Math.max(0, ...samples.map((s) => s.live));
  const steady = samples.filter((s) =>
    s.live >= STEADY_FRACTION * peakLive && peakLive > 0
  );
  const s0 = steady[0], s1 = steady.at(-1);
  const steadyS = s0 && s1 ? s1.t - s0.t : 0;
  const servers = f.servers.map((s, i): ServerReport => {
    const m = f.zero.finalScrapes[i];
    const last = f.lastProc.get(s.pid);
    return {
      pid: s.pid,
      addr: `${s.target.hostname}:${s.target.port}`,
      cpuS: r1(Math.max(f.endProcs[i]?.cpuS ?? 0, last?.cpuS ?? 0)),
      steadyCpuPct: steadyS >= MIN_STEADY_S
        ? r1((100 * (s1!.serverCpuS[i]! - s0!.serverCpuS[i]!)) / steadyS)
        : null,
      peakRssMiB: r1(Math.max(f.endProcs[i]?.hwmMiB ?? 0, last?.hwmMiB ?? 0)),
      exitCode: f.exits[i]!.code,
      connections: m?.get("seqstream_connections") ?? null,
      sessions: m?.get("seqstream_sessions") ?? null,
      sessionsStarted: m?.get("seqstream_sessions_started_total") ?? null,
      resumes: m?.get("seqstream_resumes_total") ?? null,
      rejectedBusy: m?.get("seqstream_connections_rejected_busy_total") ??
        null,
      slowDropped: m?.get("seqstream_slow_consumers_dropped_total") ?? null,
      killed: i === f.killedIndex,
      log: s.logPath,
    };
  });
  const last = samples.at(-1), first = samples[0];
  const wallS = last && first ? last.t - first.t : 0;
  const figures: ServerFigures = servers.length > 0
    ? "proc"
    : samples.some((s) => s.metricsCpuS.some((v) => v !== null))
    ? "metrics"
    : "unknown";
  // --target: each server's CPU over the run and peak RSS, from its /metrics.
  const viaMetrics = figures !== "metrics" ? [] : (first?.metricsCpuS ?? [])
    .map((_, i) => {
      const cpu = samples.map((s) => s.metricsCpuS[i]).filter((v) =>
        v != null
      ) as number[];
      const rss = samples.map((s) => s.metricsRssMiB[i] ?? 0);
      return {
        cpuS: cpu.length > 1 ? r1(cpu.at(-1)! - cpu[0]!) : 0,
        steadyCpuPct: steadyS >= MIN_STEADY_S &&
            s0!.metricsCpuS[i] != null && s1!.metricsCpuS[i] != null
          ? r1((100 * (s1!.metricsCpuS[i]! - s0!.metricsCpuS[i]!)) / steadyS)
          : null,
        peakRssMiB: r1(Math.max(0, ...rss)),
      };
    });
  const ourCpuS = (last ? last.workerCpuS - first!.workerCpuS : 0) +
    servers.reduce((a, s, i) => a + (s.cpuS - (first?.serverCpuS[i] ?? 0)), 0);
  const hostS = last && first ? last.hostBusyS - first.hostBusyS : 0;
  const pass = t.passed === cfg.clients && f.zero.zeroState !== false &&
    f.exits.every((e, i) => e.code === 0 || i === f.killedIndex);
  const serverCpuTotal = figures === "proc"
    ? sum(servers.map((s) => s.cpuS))
    : figures === "metrics"
    ? sum(viaMetrics.map((s) => s.cpuS))
    : null;
  const perServer = figures === "proc" ? servers : viaMetrics;
  const redisTotal = f.redisCalls ? sum(Object.values(f.redisCalls)) : 0;
  const report: Omit<LoadReport, "thresholds"> = {
    verdict: pass ? "PASS" : "FAIL",
    meta: f.meta,
    latency: {
      welcome: stats(t.welcome),
      firstNumber: stats(t.firstNumber),
      tickLag: stats(t.lag),
      tickLagSteady: stats(t.lagSteady),
      resume: stats(t.resume),
    },
    serverFigures: figures,
    config: {
      clients: cfg.clients,
      servers: cfg.servers || null,
      hosts: cfg.hosts || null,
      targets: f.targets.map((t) => `${t.hostname}:${t.port}`),
      workers: cfg.workers,
      ramp: formatDuration(cfg.rampMs),
      window: formatDuration(cfg.windowMs),
      client: cfg.client,
      kill: cfg.kill
        ? `${cfg.kill.index}@${formatDuration(cfg.kill.atMs)}`
        : null,
      count: cfg.countMin === cfg.countMax
        ? cfg.countMin
        : `${cfg.countMin}..${cfg.countMax}`,
      interval: formatDuration(cfg.intervalMs),
      store: f.store,
      faultFraction: cfg.faultFraction,
      idleTimeout: cfg.idleTimeoutMs === undefined
        ? "client default"
        : formatDuration(cfg.idleTimeoutMs),
      handshakeTimeout: cfg.handshakeTimeoutMs === undefined
        ? "client default"
        : formatDuration(cfg.handshakeTimeoutMs),
      seed: cfg.seed,
    },
    clients: {
      total: cfg.clients,
      passed: t.passed,
      failed: cfg.clients - t.passed,
      mismatches: t.mismatches,
      errors: t.errors,
      errorSamples: t.errorSamples,
      reconnects: t.reconnects,
      faulty: t.faulty,
      cuts: t.cuts,
      ledger: t.ledger,
      numbers: t.numbers,
    },
    peak: {
      liveSessions: peakLive,
      connected: Math.max(0, ...samples.map((s) => s.connected)),
      serverConnections: Math.max(
        0,
        ...samples.map((s) => s.serverConnections ?? 0),
      ),
      steadySeconds: r1(steadyS),
      allLiveSeconds: samples.filter((s) => s.live === cfg.clients).length,
    },
    cpuPerNumber: {
      run: perNumber(
        serverCpuTotal,
        last ? last.workerCpuS : 0,
        t.numbers,
      ),
      steady: steadyPerNumber(steady, cfg.kill?.atMs, figures),
    },
    storeOps: storeOpsOf(f.zero.finalScrapes, cfg.clients, wallS),
    redisCalls: f.redisCalls
      ? {
        byCommand: f.redisCalls,
        total: redisTotal,
        perSession: Math.round((redisTotal / cfg.clients) * 100) / 100,
      }
      : null,
    ...(f.failover ? { failover: f.failover } : {}),
    tickLagMs: pct(t.lag),
    tickLagSteadyMs: pct(t.lagSteady),
    welcomeMs: pct(t.welcome),
    firstNumberMs: pct(t.firstNumber),
    scrapeMs: { max: r1(Math.max(0, ...samples.map((s) => s.scrapeMs))) },
    servers,
    serverMax: perServer.length === 0 ? null : {
      cpuS: Math.max(...perServer.map((s) => s.cpuS)),
      steadyCpuPct: perServer.some((s) => s.steadyCpuPct !== null)
        ? Math.max(...perServer.map((s) => s.steadyCpuPct ?? 0))
        : null,
      peakRssMiB: Math.max(...perServer.map((s) => s.peakRssMiB)),
    },
    loadgen: {
      loopLagMs: pct(t.loop),
      cpuS: r1(last ? last.workerCpuS : 0),
      peakRssMiB: r1(
        Math.max(0, ...f.workerPids.map((p) => f.lastProc.get(p)?.hwmMiB ?? 0)),
      ),
    },
    host: {
      wallS: r1(wallS),
      busyCpuS: r1(hostS),
      othersCpuS: r1(Math.max(0, hostS - ourCpuS)),
      listenOverflows: f.tcp1.listenOverflows - f.tcp0.listenOverflows,
      synRetrans: f.tcp1.synRetrans - f.tcp0.synRetrans,
    },
    zeroState: f.zero.zeroState,
    zeroLeft: f.zero.left?.length ? describeLeft(f.zero.left) : null,
    settleEnded: f.zero.ended ?? null,
    clientsSeconds: r1((f.clientsEndedAt - f.startAt) / 1000),
    runDir: f.runDir,
    ...(cfg.timeline ? { timeline: [...samples] } : {}),
  };
  return {
    ...report,
    thresholds: checkThresholds(f.thresholds, thresholdFigures(report)),
  };
}

/** Why the server CPU and RSS are unknown, or null when they are known. */
export function unknownServerFigures(j: LoadReport): string | null {
  if (j.serverFigures !== "unknown") return null;
  return j.zeroState === null
    ? "unknown: servers not started by this run; give --metrics HOST:PORT to read their process_cpu_seconds_total and process_resident_memory_bytes"
    : "unknown: servers not started by this run, and their /metrics gave no process_* figures";
}

/** Exit status of a run: 0 all well, 1 a client or a server failed, 99 a threshold failed (as k6). */
export function exitCode(r: LoadReport): number {
  if (r.verdict !== "PASS") return 1;
  return r.thresholds.every((t) => t.pass) ? 0 : 99;
}

/** The wave as counts per 100 ms bin, with the bins merged to at most 40. */
function waveLine(counts: readonly number[], binMs: number): string {
  if (counts.length === 0) return "none";
  const per = Math.max(1, Math.ceil(counts.length / 40));
  const out: string[] = [];
  for (let i = 0; i < counts.length; i += per) {
    out.push(String(sum(counts.slice(i, i + per))));
  }
  return `per ${per * binMs} ms from the kill: ${out.join(" ")}`;
}

/** The report as a two-column table for a terminal. */
export function table(j: LoadReport): string {
  const rows = tableRows(j);
  const w = Math.max(...rows.map(([k]) => k.length)) + 2;
  return rows.map(([k, v]) => k.padEnd(w) + v).join("\n");
}

/** The rows of {@link table}: label and value; an empty label continues the row above. */
export function tableRows(j: LoadReport): [string, string][] {
  const lat = (k: LatencyName) => {
    const l = j.latency[k];
    return l.count === 0
      ? "none measured"
      : `p50 ${l.p50} ms, p90 ${l.p90} ms, p95 ${l.p95} ms, p99 ${l.p99} ms, max ${l.max} ms (n=${l.count})`;
  };
  const us = (v: number | null) => v === null ? "unknown" : `${v} µs`;
  const cpn = j.cpuPerNumber;
  const serversUnknown = j.serverFigures === "unknown"
    ? "; server CPU unknown (see below)"
    : j.serverFigures === "metrics"
    ? "; server CPU from the targets' /metrics"
    : "";
  const rows: [string, string][] = [
    ["verdict", j.verdict],
    [
      "run",
      `${j.meta.startedAt} for ${j.meta.durationS} s; seqstream ${j.meta.seqstream}, Deno ${j.meta.deno}; ${j.meta.host.cores} cores, ${
        j.meta.host.memoryGiB ?? "?"
      } GiB, ${j.meta.host.os}`,
    ],
    [
      "clients",
      `${j.clients.total} (${j.config.workers} load process(es), count ${j.config.count}, ramp ${j.config.ramp}, interval ${j.config.interval})`,
    ],
    [
      "servers",
      j.config.servers
        ? `${j.config.servers} on ${
          j.config.targets.join(", ")
        } (store ${j.config.store})`
        : j.config.targets.join(", "),
    ],
    ["passed / failed", `${j.clients.passed} / ${j.clients.failed}`],
    ["checksum mismatches", String(j.clients.mismatches)],
    ["ledger", ledgerLine(j.clients.ledger)],
    [
      "errors by code",
      Object.entries(j.clients.errors).map(([k, v]) => `${k} ${v}`).join(
        ", ",
      ) || "none",
    ],
    [
      "reconnects",
      `${j.clients.reconnects}${
        j.clients.faulty
          ? ` (${j.clients.faulty} clients via fault proxy, ${j.clients.cuts} cuts)`
          : ""
      }`,
    ],
    [
      "peak live sessions",
      `${j.peak.liveSessions} (server connections ${j.peak.serverConnections}; ≥95% of peak for ${j.peak.steadySeconds}s, all ${j.clients.total} live for ${j.peak.allLiveSeconds}s)`,
    ],
    [
      "CPU per number",
      cpn.run.loadgenUs === null
        ? "none (no numbers received)"
        : `servers ${us(cpn.run.serverUs)}, load generators ${
          us(cpn.run.loadgenUs)
        }${cpn.run.ratio === null ? "" : ` (×${cpn.run.ratio})`}; ${
          cpn.steady.loadgenUs === null
            ? `no steady window of ${MIN_STEADY_S} s after the ramp`
            : `after the ramp ${us(cpn.steady.serverUs)} vs ${
              us(cpn.steady.loadgenUs)
            }${cpn.steady.ratio === null ? "" : ` (×${cpn.steady.ratio})`}`
        }; ${j.config.client} client${serversUnknown}`,
    ],
    ["tick lag", lat("tickLag")],
    ["tick lag after ramp", lat("tickLagSteady")],
    ["time to welcome", lat("welcome")],
    ["time to first number", lat("firstNumber")],
    ["resume time", lat("resume")],
  ];
  if (j.serverMax) {
    rows.push(
      [
        "server CPU (max/process)",
        `${j.serverMax.cpuS} s total, ${
          j.serverMax.steadyCpuPct === null
            ? "no steady window to take a % of a core from"
            : `${j.serverMax.steadyCpuPct}% of a core at peak`
        }${
          j.serverFigures === "metrics" ? " (from the targets' /metrics)" : ""
        }`,
      ],
      ["server peak RSS (max)", `${j.serverMax.peakRssMiB} MiB`],
    );
  }
  rows.push(
    [
      "server /metrics answer",
      `max ${j.scrapeMs.max} ms (a probe of the servers' event loops)`,
    ],
    [
      "load generators",
      `${j.loadgen.cpuS} CPU s, peak RSS ${j.loadgen.peakRssMiB} MiB/process, event-loop delay p99 ${j.loadgen.loopLagMs.p99} ms max ${j.loadgen.loopLagMs.max} ms`,
    ],
    [
      "host CPU",
      `${j.host.busyCpuS} s busy over ${j.host.wallS} s, of which others ${j.host.othersCpuS} s`,
    ],
    [
      "TCP (host-wide)",
      `${j.host.listenOverflows} accept-queue overflows, ${j.host.synRetrans} SYN retransmits`,
    ],
    [
      "zero state",
      j.zeroState === null
        ? "not checked (no --metrics)"
        : j.zeroState
        ? "yes"
        : `NO: ${j.zeroLeft ?? "not at zero"}${
          j.settleEnded === "unreachable"
            ? " (stopped waiting: a server no longer answers)"
            : j.settleEnded === "interrupted"
            ? " (interrupted)"
            : ""
        }`,
    ],
  );
  const unknown = unknownServerFigures(j);
  if (unknown) rows.push(["server CPU and RSS", unknown]);
  if (j.storeOps) {
    const so = j.storeOps;
    const ops = (m: Record<string, number>, server: boolean) =>
      Object.entries(m).filter(([k]) => SERVER_STORE_OPS.has(k) === server).map(
        ([k, v]) => `${k} ${v}`,
      ).join(", ");
    rows.push(
      [
        "store ops per session",
        `${so.perSession} (${so.sessionOps} over ${j.clients.total} sessions: ${
          ops(so.byOp, false) || "none"
        })`,
      ],
      [
        "store ops per server",
        `${so.serverOps.total} heartbeat ops over ${so.serverOps.servers} server(s)${
          so.serverOps.perServerPerMin === null
            ? ""
            : `, ${so.serverOps.perServerPerMin} per server per minute`
        } (${ops(so.serverOps.byOp, true) || "none"}), not per session`,
      ],
    );
  }
  if (j.redisCalls) {
    rows.push([
      "redis calls",
      `${j.redisCalls.perSession} per session (${
        Object.entries(j.redisCalls.byCommand).map(([k, v]) => `${k} ${v}`)
          .join(", ")
      })`,
    ]);
  }
  const fo = j.failover;
  if (fo) {
    rows.push(
      [
        "failover",
        `server ${fo.killed.index} killed at ${fo.killed.atS}s (+${fo.killed.lateMs} ms); ${fo.sessionsCut} sessions cut, ${fo.resumed} resumed`,
      ],
      [
        "kill → resumed",
        `p50 ${fo.resumeMs.p50} ms, p99 ${fo.resumeMs.p99} ms, last ${fo.resumeMs.max} ms`,
      ],
      [
        "survivor",
        `${fo.survivor.waveCpuS} CPU s in the wave, ${fo.survivor.cpuPerResumeUs} µs per resume (${fo.survivor.excessCpuPerResumeUs} µs above its streaming at ${fo.survivor.afterCores} cores), accept queue peak ${fo.survivor.acceptQueuePeak}, ${fo.survivor.listenOverflows} SYNs dropped`,
      ],
      ["resume wave", waveLine(fo.wave.counts, fo.wave.binMs)],
    );
  }
  if (j.clients.errorSamples.length) {
    rows.push(["first errors", j.clients.errorSamples.slice(0, 3).join(" | ")]);
  }
  j.thresholds.forEach((t, i) =>
    rows.push([i === 0 ? "thresholds" : "", thresholdLine(t)])
  );
  return rows;
}
