// deno-lint-ignore-file no-console -- a CLI entry point: the report goes to stdout, progress to stderr.
/**
 * `deno task load`: simulates many seqstream clients against real server
 * processes and reports whether every session passed, tick lag, connect
 * latency, server CPU and memory (from `/proc`) and whether the servers ended
 * with no connections and no sessions.
 *
 * ```sh
 * deno task load --clients 1000 --ramp 10s --count 30
 * deno task load --clients 19000 --max-connections 19800 --count 120 --json
 * deno task load --clients 100000 --servers 8 --count 150 --ramp 60s
 * deno task load --target 127.0.0.1:8080 --metrics 127.0.0.1:9090 --clients 500
 * ```
 *
 * Clients run in `load/worker.ts` child processes (each under ~14,000
 * sockets, proxied clients counting three), spread over several destination
 * addresses so no (source, destination) pair runs out of ephemeral ports.
 * Exit status 0 when every client passed and every server ended in zero
 * state, 1 otherwise, 64 on a usage error.
 *
 * @module
 */

import { formatDuration, parseDuration } from "../cli/duration.ts";
import {
  durationFlag,
  EXIT_USAGE,
  type FlagSpec,
  helpText,
  intFlag,
  parseFlags,
  UsageError,
} from "../cli/usage.ts";
import { Histogram } from "./histogram.ts";
import { hostBusyS, type ProcSample, readProc, tcpCounters } from "./_proc.ts";
import { freePort, scrape, type ServerProc, spawnServer } from "./_servers.ts";
import type {
  Target,
  WorkerCounts,
  WorkerResult,
  WorkerSpec,
} from "./worker.ts";

const FLAGS: Record<string, FlagSpec> = {
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
  count: {
    type: "string",
    help: "N  numbers per client (sets --count-min and --count-max)",
  },
  "count-min": {
    type: "string",
    default: "30",
    help: "N  smallest per-client count",
  },
  "count-max": {
    type: "string",
    default: "90",
    help: "N  largest per-client count",
  },
  interval: {
    type: "string",
    default: "1s",
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
      "SPEC  servers' --store (auto: memory, or a shared kv file when servers share an address)",
  },
  "session-ttl": {
    type: "string",
    default: "30s",
    help: "DURATION  servers' --session-ttl",
  },
  "max-connections": {
    type: "string",
    default: "19800",
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
      "DURATION  clients reconnect after this much silence (default: the client's, 3 intervals)",
  },
  "handshake-timeout": {
    type: "string",
    help:
      "DURATION  clients' connect + welcome limit (default: the client's, 5s)",
  },
  "backoff-base": {
    type: "string",
    help: "DURATION  client backoff first step ceiling (default: the client's)",
  },
  "backoff-cap": {
    type: "string",
    default: "5s",
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
  json: {
    type: "boolean",
    default: false,
    help: "print the report as one JSON object",
  },
  help: { type: "boolean", short: "h", default: false, help: "show this help" },
};

/** Sockets one load-generator process may hold (the per-process limit is 20,000). */
const SOCKETS_PER_WORKER = 14_000;
/** Clients per destination (address, port) before ephemeral ports (~28,000) run short. */
const CLIENTS_PER_DESTINATION = 26_000;

interface Config {
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
  json: boolean;
}

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

function parseConfig(f: Record<string, unknown>): Config {
  const dur = (name: string) =>
    durationFlag(name, f[name] as string, parseDuration);
  const clients = intFlag("clients", f.clients as string, 1, 1_000_000);
  const countMin = intFlag(
    "count",
    (f.count ?? f["count-min"]) as string,
    1,
    65535,
  );
  const countMax = intFlag(
    "count",
    (f.count ?? f["count-max"]) as string,
    countMin,
    65535,
  );
  const intervalMs = dur("interval");
  const rampMs = dur("ramp");
  const targets = ((f.target as string[] | undefined) ?? []).map((t) =>
    hostPort("target", t)
  );
  const metrics = ((f.metrics as string[] | undefined) ?? []).map((t) =>
    hostPort("metrics", t)
  );
  const servers = targets.length > 0
    ? 0
    : intFlag("servers", f.servers as string, 1, 64);
  let hosts = 0;
  if (servers > 0) {
    if (f.hosts !== undefined) {
      hosts = intFlag("hosts", f.hosts as string, 1, servers);
    } else {
      // The fewest addresses that divide the servers evenly and keep each under its port budget.
      hosts = servers;
      for (let d = 1; d <= servers; d++) {
        if (
          servers % d === 0 && Math.ceil(clients / d) <= CLIENTS_PER_DESTINATION
        ) {
          hosts = d;
          break;
        }
      }
    }
    if (servers % hosts !== 0) {
      throw new UsageError(
        `--hosts must divide --servers (${servers}), got ${hosts}`,
      );
    }
  }
  const faultFraction = fraction(
    "fault-fraction",
    f["fault-fraction"] as string,
  );
  const lt = /^([^.]+)\.\.(.+)$/.exec(f["fault-lifetime"] as string);
  const faultLifetime = lt
    ? {
      minMs: durationFlag("fault-lifetime", lt[1]!, parseDuration),
      maxMs: durationFlag("fault-lifetime", lt[2]!, parseDuration),
    }
    : { minMs: dur("fault-lifetime"), maxMs: dur("fault-lifetime") };
  if (faultLifetime.minMs > faultLifetime.maxMs) {
    throw new UsageError("--fault-lifetime MIN must not exceed MAX");
  }
  const sockets = Math.ceil(clients * (1 + 2 * faultFraction));
  const workers = f.workers !== undefined
    ? intFlag("workers", f.workers as string, 1, 64)
    : Math.max(1, Math.ceil(sockets / SOCKETS_PER_WORKER));
  const ttlMs = dur("session-ttl");
  // A client on a multi-process address can reconnect (a fault, an overload, a lost welcome) to any of
  // its processes, so they must share a store; with separate memory stores a retried hello makes a
  // second session under the same id and token, and a later resume can mix the two sequences.
  const shared = servers > hosts;
  let store = f.store as string;
  if (store === "auto") {
    store = shared ? "kv:<run dir>/sessions.sqlite" : "memory";
  } else if (store === "memory" && shared) {
    throw new UsageError(
      "Several servers per address need a shared --store (e.g. kv:PATH), or --hosts equal to --servers",
    );
  }
  const longest = countMax * intervalMs;
  const backoff = f["backoff-base"] === undefined
    ? undefined
    : { baseMs: dur("backoff-base"), capMs: dur("backoff-cap") };
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
    ttlMs,
    maxConnections: intFlag(
      "max-connections",
      f["max-connections"] as string,
      1,
      19_950,
    ),
    workers,
    faultFraction,
    faultLifetime,
    faultReset: fraction("fault-reset", f["fault-reset"] as string),
    backoff,
    idleTimeoutMs: f["idle-timeout"] !== undefined
      ? dur("idle-timeout")
      : undefined,
    handshakeTimeoutMs: f["handshake-timeout"] !== undefined
      ? dur("handshake-timeout")
      : undefined,
    durationMs: f.duration !== undefined
      ? dur("duration")
      : Math.ceil(rampMs + 1.25 * longest + 30_000),
    settleMs: f.settle !== undefined ? dur("settle") : undefined,
    seed: f.seed !== undefined
      ? intFlag("seed", f.seed as string, 0, 2 ** 32 - 1)
      : Math.floor(Math.random() * 2 ** 32),
    serverLogLevel: f["server-log-level"] as string,
    cpuProfDir: f["cpu-prof"] as string | undefined,
    timeline: f.timeline as boolean,
    json: f.json as boolean,
  };
}

/** One second of the run. */
interface Sample {
  /** Seconds since the ramp began. */
  t: number;
  live: number;
  connected: number;
  finished: number;
  /** Sum of `seqstream_connections` over the servers. */
  serverConnections: number | null;
  /** Sum of `seqstream_numbers_sent_total` over the servers. */
  serverNumbersSent: number | null;
  /** Slowest `/metrics` answer (ms): served on the server's event loop, so it shows that loop's delay. */
  scrapeMs: number;
  /** Worst event-loop delay of any load generator in the last second (ms). */
  loadgenLoopMs: number;
  /** Worst tick lag seen by any client in the last second (ms). */
  tickLagMs: number;
  /** CPU seconds so far, per server. */
  serverCpuS: number[];
  /** CPU seconds so far of all load-generator processes. */
  workerCpuS: number;
  hostBusyS: number;
}

function progressLine(
  c: Omit<WorkerCounts, "worker">,
  total: number,
  s: Sample | undefined,
): string {
  return `load: t=${
    s ? s.t.toFixed(0) : "?"
  }s started ${c.started}/${total} live ${c.live} connected ${c.connected}` +
    ` finished ${c.finished} passed ${c.passed} numbers ${c.numbers}` +
    (s?.serverConnections != null
      ? ` server-conns ${s.serverConnections}`
      : "") +
    (s ? ` metrics ${s.scrapeMs}ms loadgen-loop ${s.loadgenLoopMs}ms` : "");
}

async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop()!;
    for (const l of lines) if (l.trim()) onLine(l);
  }
  if (rest.trim()) onLine(rest);
}

const r1 = (x: number) => Math.round(x * 10) / 10;
const pct = (h: Histogram) => ({
  p50: r1(h.percentile(50)),
  p99: r1(h.percentile(99)),
  max: r1(h.max),
  n: h.count,
});

/** Runs the load test described by `cfg` and returns the report object. */
async function run(
  cfg: Config,
  stop: AbortSignal,
): Promise<Record<string, unknown>> {
  const runDir = await Deno.makeTempDir({ prefix: "seqstream-load-" });
  const tcp0 = await tcpCounters();
  const store = cfg.store.replace("<run dir>", runDir);
  const servers: ServerProc[] = [];
  const workerProcs: Deno.ChildProcess[] = [];
  try {
    // Servers: `servers / hosts` processes share each address through SO_REUSEPORT.
    let targets = cfg.targets;
    if (cfg.servers > 0) {
      const addrs = Array.from(
        { length: cfg.hosts },
        (_, i) => `127.0.0.${i + 1}`,
      );
      const port = freePort(addrs);
      targets = addrs.map((hostname) => ({ hostname, port }));
      const settings = {
        intervalMs: cfg.intervalMs,
        ttlMs: cfg.ttlMs,
        maxConnections: cfg.maxConnections,
        store,
        logLevel: cfg.serverLogLevel,
        cpuProfDir: cfg.cpuProfDir,
        logDir: runDir,
      };
      for (let i = 0; i < cfg.servers; i++) {
        servers.push(await spawnServer(i, targets[i % cfg.hosts]!, settings));
      }
      console.error(
        `load: ${cfg.servers} server(s) on ${
          addrs.join(", ")
        } port ${port}, logs in ${runDir}`,
      );
    }
    const metricsEndpoints = cfg.servers > 0
      ? servers.map((s) => s.metrics)
      : cfg.metrics;

    // Workers: contiguous slices of the client indices; clients round-robin over the targets.
    const startAt = Date.now() + 2000 + 300 * cfg.workers;
    const deadline = startAt + cfg.durationMs;
    const latest: WorkerCounts[] = [];
    const results: WorkerResult[] = [];
    const allowNet = [
      ...new Set(["127.0.0.1", ...targets.map((t) => t.hostname)]),
    ].join(",");
    const done: Promise<unknown>[] = [];
    let first = 0;
    for (let w = 0; w < cfg.workers; w++) {
      const n = Math.floor(cfg.clients / cfg.workers) +
        (w < cfg.clients % cfg.workers ? 1 : 0);
      const spec: WorkerSpec = {
        worker: w,
        clients: n,
        firstIndex: first,
        targets,
        countMin: cfg.countMin,
        countMax: cfg.countMax,
        intervalMs: cfg.intervalMs,
        startAt,
        rampMs: cfg.rampMs,
        deadline,
        faultFraction: cfg.faultFraction,
        faultLifetime: cfg.faultLifetime,
        faultReset: cfg.faultReset,
        ...(cfg.backoff ? { backoff: cfg.backoff } : {}),
        ...(cfg.idleTimeoutMs !== undefined
          ? { idleTimeoutMs: cfg.idleTimeoutMs }
          : {}),
        ...(cfg.handshakeTimeoutMs !== undefined
          ? { handshakeTimeoutMs: cfg.handshakeTimeoutMs }
          : {}),
        seed: cfg.seed,
      };
      first += n;
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          `--allow-net=${allowNet}`,
          ...(cfg.cpuProfDir
            ? [
              "--cpu-prof",
              `--cpu-prof-dir=${cfg.cpuProfDir}`,
              `--cpu-prof-name=loadgen-${w}.cpuprofile`,
            ]
            : []),
          new URL("./worker.ts", import.meta.url).pathname,
          JSON.stringify(spec),
        ],
        stdin: "null",
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      workerProcs.push(child);
      done.push(
        readLines(child.stdout, (line) => {
          const msg = JSON.parse(line) as
            | WorkerResult
            | (WorkerCounts & { type: "progress" });
          latest[msg.worker] = msg;
          if (msg.type === "result") results.push(msg);
        }),
        child.status,
      );
    }
    const signalWorkers = (sig: Deno.Signal) => {
      for (const c of workerProcs) {
        try {
          c.kill(sig);
        } catch { /* exited */ }
      }
    };
    // Interrupted: workers abort their clients and still report; killed if they do not within 10 s.
    let killTimer: ReturnType<typeof setTimeout> | undefined;
    const interrupt = () => {
      signalWorkers("SIGTERM");
      killTimer = setTimeout(() => signalWorkers("SIGKILL"), 10_000);
    };
    stop.addEventListener("abort", interrupt, { once: true });
    const hardStop = setTimeout(
      () => signalWorkers("SIGKILL"),
      deadline - Date.now() + 30_000,
    );

    // Sampling: once a second, /proc for every process and /metrics for every server.
    const samples: Sample[] = [];
    const lastProc = new Map<number, ProcSample>();
    const sum = (k: keyof WorkerCounts) =>
      latest.reduce((a, c) => a + (c?.[k] ?? 0), 0);
    const sampleOnce = async (): Promise<Sample> => {
      const procs = await Promise.all(
        [...servers.map((s) => s.pid), ...workerProcs.map((c) => c.pid)].map(
          async (pid) => {
            const p = await readProc(pid);
            // A zombie (exited, not yet reaped) still has a status file, without memory lines: keep the last real one.
            if (p && p.hwmMiB > 0) lastProc.set(pid, p);
            return lastProc.get(pid);
          },
        ),
      );
      let scrapeMs = 0;
      const scrapes = await Promise.all(metricsEndpoints.map(async (m) => {
        const t0 = performance.now();
        const s = await scrape(m, 900);
        scrapeMs = Math.max(scrapeMs, performance.now() - t0);
        return s;
      }));
      const conns = scrapes.every((s) => s !== null)
        ? scrapes.reduce(
          (a, s) => a + (s!.get("seqstream_connections") ?? 0),
          0,
        )
        : null;
      const sent = scrapes.every((s) => s !== null)
        ? scrapes.reduce(
          (a, s) => a + (s!.get("seqstream_numbers_sent_total") ?? 0),
          0,
        )
        : null;
      return {
        t: r1((Date.now() - startAt) / 1000),
        live: sum("live"),
        connected: sum("connected"),
        finished: sum("finished"),
        serverConnections: conns,
        serverNumbersSent: sent,
        scrapeMs: r1(scrapeMs),
        loadgenLoopMs: r1(Math.max(0, ...latest.map((c) => c?.loopLagMs ?? 0))),
        tickLagMs: r1(Math.max(0, ...latest.map((c) => c?.tickLagMs ?? 0))),
        serverCpuS: procs.slice(0, servers.length).map((p) => p?.cpuS ?? 0),
        workerCpuS: procs.slice(servers.length).reduce(
          (a, p) => a + (p?.cpuS ?? 0),
          0,
        ),
        hostBusyS: await hostBusyS(),
      };
    };
    let sampling = true;
    const sampler = (async () => {
      let n = 0;
      while (sampling) {
        const next = Date.now() + 1000;
        const s = await sampleOnce();
        samples.push(s);
        if (n++ % 5 === 0) {
          console.error(
            progressLine(
              {
                ...Object.fromEntries(
                  [
                    "started",
                    "live",
                    "connected",
                    "finished",
                    "passed",
                    "numbers",
                  ].map((k) => [k, sum(k as keyof WorkerCounts)]),
                ),
              } as Omit<WorkerCounts, "worker">,
              cfg.clients,
              s,
            ),
          );
        }
        await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
      }
    })();
    await Promise.all(done);
    clearTimeout(hardStop);
    clearTimeout(killTimer);
    stop.removeEventListener("abort", interrupt);
    const clientsEndedAt = Date.now();

    // Results.
    const lag = new Histogram(),
      lagSteady = new Histogram(),
      welcome = new Histogram(),
      firstNumber = new Histogram();
    const loop = new Histogram();
    const errors: Record<string, number> = {};
    const errorSamples: string[] = [];
    let passed = 0,
      mismatches = 0,
      reconnects = 0,
      faulty = 0,
      cuts = 0,
      numbers = 0;
    for (const r of results) {
      lag.merge(r.lag);
      lagSteady.merge(r.lagSteady);
      welcome.merge(r.welcome);
      firstNumber.merge(r.firstNumber);
      loop.merge(r.loop);
      for (const [k, v] of Object.entries(r.errors)) {
        errors[k] = (errors[k] ?? 0) + v;
      }
      errorSamples.push(...r.errorSamples);
      passed += r.passed;
      mismatches += r.mismatches;
      reconnects += r.reconnects;
      faulty += r.faulty;
      cuts += r.cuts;
      numbers += r.numbers;
    }
    const missing = cfg.clients - results.reduce((a, r) => a + r.clients, 0);
    if (missing > 0) errors["worker_lost"] = missing;

    // Zero state: every server back to no connections and no sessions.
    const allPassed = passed === cfg.clients;
    const settleMs = cfg.settleMs ??
      (allPassed && cfg.faultFraction === 0 ? 5000 : cfg.ttlMs + 5000);
    let finalScrapes: (Map<string, number> | null)[] = [];
    let zeroState: boolean | null = null;
    if (metricsEndpoints.length > 0) {
      const settleBy = Date.now() + settleMs;
      while (true) {
        finalScrapes = await Promise.all(
          metricsEndpoints.map((m) => scrape(m)),
        );
        zeroState = finalScrapes.every((s) =>
          s !== null && s.get("seqstream_connections") === 0 &&
          s.get("seqstream_sessions") === 0
        );
        if (zeroState || Date.now() > settleBy || stop.aborted) break;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    sampling = false;
    await sampler;
    const endProcs = await Promise.all(servers.map((s) => readProc(s.pid)));
    const exits = await Promise.all(servers.map((s) => s.stop()));
    const tcp1 = await tcpCounters();

    // CPU: whole run, and the steady window in which at least 95% of the peak sessions were live.
    const peakLive = Math.max(0, ...samples.map((s) => s.live));
    const steady = samples.filter((s) =>
      s.live >= 0.95 * peakLive && peakLive > 0
    );
    const s0 = steady[0], s1 = steady.at(-1);
    const steadyS = s0 && s1 ? s1.t - s0.t : 0;
    const serverReports = servers.map((s, i) => {
      const m = finalScrapes[i];
      const cpuS = Math.max(
        endProcs[i]?.cpuS ?? 0,
        lastProc.get(s.pid)?.cpuS ?? 0,
      );
      return {
        pid: s.pid,
        addr: `${s.target.hostname}:${s.target.port}`,
        cpuS: r1(cpuS),
        steadyCpuPct: steadyS >= 5
          ? r1((100 * (s1!.serverCpuS[i]! - s0!.serverCpuS[i]!)) / steadyS)
          : null,
        peakRssMiB: r1(
          Math.max(endProcs[i]?.hwmMiB ?? 0, lastProc.get(s.pid)?.hwmMiB ?? 0),
        ),
        exitCode: exits[i]!.code,
        connections: m?.get("seqstream_connections") ?? null,
        sessions: m?.get("seqstream_sessions") ?? null,
        sessionsStarted: m?.get("seqstream_sessions_started_total") ?? null,
        resumes: m?.get("seqstream_resumes_total") ?? null,
        rejectedBusy: m?.get("seqstream_connections_rejected_busy_total") ??
          null,
        slowDropped: m?.get("seqstream_slow_consumers_dropped_total") ?? null,
        log: s.logPath,
      };
    });
    const last = samples.at(-1), firstS = samples[0];
    const wallS = last && firstS ? last.t - firstS.t : 0;
    const ourCpuS = (last ? last.workerCpuS - firstS!.workerCpuS : 0) +
      serverReports.reduce(
        (a, s, i) => a + (s.cpuS - (firstS?.serverCpuS[i] ?? 0)),
        0,
      );
    const hostS = last && firstS ? last.hostBusyS - firstS.hostBusyS : 0;
    const pass = allPassed && zeroState !== false &&
      exits.every((e) => e.code === 0);
    return {
      verdict: pass ? "PASS" : "FAIL",
      config: {
        clients: cfg.clients,
        servers: cfg.servers || null,
        hosts: cfg.hosts || null,
        targets: targets.map((t) => `${t.hostname}:${t.port}`),
        workers: cfg.workers,
        ramp: formatDuration(cfg.rampMs),
        count: cfg.countMin === cfg.countMax
          ? cfg.countMin
          : `${cfg.countMin}..${cfg.countMax}`,
        interval: formatDuration(cfg.intervalMs),
        store,
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
        passed,
        failed: cfg.clients - passed,
        mismatches,
        errors,
        errorSamples,
        reconnects,
        faulty,
        cuts,
        numbers,
      },
      peak: {
        liveSessions: peakLive,
        connected: Math.max(0, ...samples.map((s) => s.connected)),
        serverConnections: Math.max(
          0,
          ...samples.map((s) => s.serverConnections ?? 0),
        ),
        steadySeconds: r1(steadyS),
      },
      tickLagMs: pct(lag),
      tickLagSteadyMs: pct(lagSteady),
      welcomeMs: pct(welcome),
      firstNumberMs: pct(firstNumber),
      /** `/metrics` answer time over the run's samples: the servers' event-loop responsiveness. */
      scrapeMs: { max: r1(Math.max(0, ...samples.map((s) => s.scrapeMs))) },
      servers: serverReports,
      serverMax: servers.length === 0 ? null : {
        cpuS: Math.max(...serverReports.map((s) => s.cpuS)),
        steadyCpuPct: serverReports.some((s) => s.steadyCpuPct !== null)
          ? Math.max(...serverReports.map((s) => s.steadyCpuPct ?? 0))
          : null,
        peakRssMiB: Math.max(...serverReports.map((s) => s.peakRssMiB)),
      },
      loadgen: {
        loopLagMs: pct(loop),
        cpuS: r1(last ? last.workerCpuS : 0),
        peakRssMiB: r1(
          Math.max(
            0,
            ...workerProcs.map((c) => lastProc.get(c.pid)?.hwmMiB ?? 0),
          ),
        ),
      },
      host: {
        wallS: r1(wallS),
        busyCpuS: r1(hostS),
        othersCpuS: r1(Math.max(0, hostS - ourCpuS)),
        /** Host-wide, so other programs' connections count too. */
        listenOverflows: tcp1.listenOverflows - tcp0.listenOverflows,
        synRetrans: tcp1.synRetrans - tcp0.synRetrans,
      },
      zeroState,
      clientsSeconds: r1((clientsEndedAt - startAt) / 1000),
      runDir,
      ...(cfg.timeline ? { timeline: samples } : {}),
    };
  } finally {
    for (const c of workerProcs) {
      try {
        c.kill("SIGKILL");
      } catch { /* exited */ }
    }
    await Promise.all(servers.map((s) => s.stop(2000)));
  }
}

function table(r: Record<string, unknown>): string {
  // deno-lint-ignore no-explicit-any
  const j = r as any;
  const lag = (h: { p50: number; p99: number; max: number }) =>
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
      `${j.peak.liveSessions} (server connections ${j.peak.serverConnections}; ≥95% of peak for ${j.peak.steadySeconds}s)`,
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
  if (j.clients.errorSamples.length) {
    rows.push(["first errors", j.clients.errorSamples.slice(0, 3).join(" | ")]);
  }
  const w = Math.max(...rows.map(([k]) => k.length)) + 2;
  return rows.map(([k, v]) => k.padEnd(w) + v).join("\n");
}

async function main(args: string[]): Promise<number> {
  let cfg: Config;
  try {
    const f = parseFlags(FLAGS, args);
    if (f.help) {
      console.log(helpText("Usage: deno task load [options]", FLAGS));
      return 0;
    }
    cfg = parseConfig(f);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`seqstream-load: ${err.message} (see --help)`);
      return EXIT_USAGE;
    }
    throw err;
  }
  const perDestination = Math.ceil(
    cfg.clients / Math.max(1, cfg.hosts || cfg.targets.length),
  );
  if (perDestination > CLIENTS_PER_DESTINATION) {
    console.error(
      `seqstream-load: warning: ${perDestination} clients per destination may exhaust ephemeral ports`,
    );
  }
  const ac = new AbortController();
  const onSignal = () => ac.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  try {
    const report = await run(cfg, ac.signal);
    console.log(cfg.json ? JSON.stringify(report, null, 2) : table(report));
    return report.verdict === "PASS" ? 0 : 1;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
