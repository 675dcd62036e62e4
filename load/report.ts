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
import type { ZeroState } from "./zero_state.ts";
import type { FailoverReport } from "./storm.ts";

/** Percentiles of a histogram (ms), and its sample count. */
export interface Percentiles {
  p50: number;
  p99: number;
  max: number;
  n: number;
}

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
  verdict: "PASS" | "FAIL";
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
  /** `seqstream_store_ops_total` summed over the servers at the end, by op, and per client session. */
  storeOps: { byOp: Record<string, number>; perSession: number } | null;
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
}

const OPS = "seqstream_store_ops_total";

function storeOps(
  scrapes: readonly (Map<string, number> | null)[],
  clients: number,
): LoadReport["storeOps"] {
  const byOp: Record<string, number> = {};
  let any = false;
  for (const m of scrapes) {
    for (const [k, v] of m ?? []) {
      if (!k.startsWith(OPS)) continue;
      any = true;
      const label = k.slice(OPS.length).replace(/^\{|\}$/g, "") || "all";
      byOp[label] = (byOp[label] ?? 0) + v;
    }
  }
  if (!any) return null;
  const total = Object.values(byOp).reduce((a, b) => a + b, 0);
  return { byOp, perSession: Math.round((total / clients) * 100) / 100 };
}

function perNumber(
  serverCpuS: number,
  loadgenCpuS: number,
  numbers: number,
): CpuPerNumber {
  if (numbers <= 0) return { serverUs: null, loadgenUs: null, ratio: null };
  const serverUs = (serverCpuS / numbers) * 1e6;
  const loadgenUs = (loadgenCpuS / numbers) * 1e6;
  return {
    serverUs: r1(serverUs),
    loadgenUs: r1(loadgenUs),
    ratio: serverUs > 0 ? Math.round((loadgenUs / serverUs) * 100) / 100 : null,
  };
}

const sum = (a: readonly number[]) => a.reduce((x, y) => x + y, 0);

/** CPU per number over the steady samples, before a `--kill` (the storm is not streaming). */
function steadyPerNumber(
  steady: readonly Sample[],
  killAtMs: number | undefined,
): CpuPerNumber {
  const w = killAtMs === undefined
    ? steady
    : steady.filter((s) => s.t * 1000 < killAtMs);
  const a = w[0], b = w.at(-1);
  if (!a || !b || b.t - a.t < MIN_STEADY_S) return perNumber(0, 0, 0);
  return perNumber(
    sum(b.serverCpuS) - sum(a.serverCpuS),
    b.workerCpuS - a.workerCpuS,
    b.numbers - a.numbers,
  );
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
  const ourCpuS = (last ? last.workerCpuS - first!.workerCpuS : 0) +
    servers.reduce((a, s, i) => a + (s.cpuS - (first?.serverCpuS[i] ?? 0)), 0);
  const hostS = last && first ? last.hostBusyS - first.hostBusyS : 0;
  const pass = t.passed === cfg.clients && f.zero.zeroState !== false &&
    f.exits.every((e, i) => e.code === 0 || i === f.killedIndex);
  const serverCpuTotal = sum(servers.map((s) => s.cpuS));
  const redisTotal = f.redisCalls ? sum(Object.values(f.redisCalls)) : 0;
  return {
    verdict: pass ? "PASS" : "FAIL",
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
      steady: steadyPerNumber(steady, cfg.kill?.atMs),
    },
    storeOps: storeOps(f.zero.finalScrapes, cfg.clients),
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
    serverMax: servers.length === 0 ? null : {
      cpuS: Math.max(...servers.map((s) => s.cpuS)),
      steadyCpuPct: servers.some((s) => s.steadyCpuPct !== null)
        ? Math.max(...servers.map((s) => s.steadyCpuPct ?? 0))
        : null,
      peakRssMiB: Math.max(...servers.map((s) => s.peakRssMiB)),
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
    clientsSeconds: r1((f.clientsEndedAt - f.startAt) / 1000),
    runDir: f.runDir,
    ...(cfg.timeline ? { timeline: [...samples] } : {}),
  };
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
  const lag = (h: Percentiles) =>
    `p50 ${h.p50} ms, p99 ${h.p99} ms, max ${h.max} ms`;
  const rows: [string, string][] = [
    ["verdict", j.verdict],
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
      `servers ${j.cpuPerNumber.run.serverUs} µs, load generators ${j.cpuPerNumber.run.loadgenUs} µs (×${j.cpuPerNumber.run.ratio}); after the ramp ${j.cpuPerNumber.steady.serverUs} vs ${j.cpuPerNumber.steady.loadgenUs} µs (×${j.cpuPerNumber.steady.ratio}); ${j.config.client} client`,
    ],
    ["tick lag", lag(j.tickLagMs)],
    ["tick lag after ramp", lag(j.tickLagSteadyMs)],
    ["time to welcome", `p50 ${j.welcomeMs.p50} ms, p99 ${j.welcomeMs.p99} ms`],
    [
      "time to first number",
      `p50 ${j.firstNumberMs.p50} ms, p99 ${j.firstNumberMs.p99} ms`,
    ],
  ];
  if (j.serverMax) {
    rows.push(
      [
        "server CPU (max/process)",
        `${j.serverMax.cpuS} s total, ${
          j.serverMax.steadyCpuPct ?? "n/a"
        }% of a core at peak`,
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
        : "NO",
    ],
  );
  if (j.storeOps) {
    rows.push([
      "store ops",
      `${j.storeOps.perSession} per session (${
        Object.entries(j.storeOps.byOp).map(([k, v]) => `${k} ${v}`).join(", ")
      })`,
    ]);
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
  const w = Math.max(...rows.map(([k]) => k.length)) + 2;
  return rows.map(([k, v]) => k.padEnd(w) + v).join("\n");
}
