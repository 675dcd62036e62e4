/**
 * Sample phase: once a second, `/proc` for every process and `/metrics` for
 * every server, with a progress line on stderr every fifth sample.
 *
 * @module
 */

import { type HostPort, scrape } from "../internal/metrics_scrape.ts";
import { hostBusyS, type ProcSample, readProc } from "./_proc.ts";
import type { WorkerCounts } from "./worker.ts";
import type { Workers } from "./workers.ts";

/** One second of the run. */
export interface Sample {
  /** Seconds since the ramp began. */
  t: number;
  live: number;
  connected: number;
  finished: number;
  /** Numbers the clients received so far. */
  numbers: number;
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
  /** The worst process's median and 99th percentile tick lag in this second (ms). */
  tickLagP50Ms: number;
  tickLagP99Ms: number;
  /** CPU seconds so far, per server. */
  serverCpuS: number[];
  /** Resident memory now (MiB), per server. */
  serverRssMiB: number[];
  /** Sum of `seqstream_resumes_total` over the servers. */
  serverResumes: number | null;
  /** `seqstream_handshake_failures_total` by code, summed over the servers. */
  serverRefusals: Record<string, number>;
  /**
   * `process_cpu_seconds_total` and `process_resident_memory_bytes` (as MiB)
   * of each scraped server, null where its `/metrics` did not answer: the
   * only view of servers this run did not start (`--target` with
   * `--metrics`).
   */
  metricsCpuS: (number | null)[];
  metricsRssMiB: (number | null)[];
  /** CPU seconds so far of all load-generator processes. */
  workerCpuS: number;
  hostBusyS: number;
}

/** What the sampler watches. */
export interface SamplerInput {
  serverPids: readonly number[];
  /** Read at every sample: a killed server is taken out of it. */
  metrics: readonly HostPort[];
  workers: Workers;
  /** Clients in the run, for the progress line. */
  clients: number;
}

/** The running sampler. */
export interface Sampler {
  readonly samples: readonly Sample[];
  /** The last real `/proc` reading of each process, by pid. */
  readonly lastProc: ReadonlyMap<number, ProcSample>;
  /** Takes no further samples; resolves after the one in progress. */
  stop(): Promise<void>;
}

const SAMPLE_EVERY_MS = 1000;
const SCRAPE_TIMEOUT_MS = 900;
const PROGRESS_EVERY = 5;

/** 0.1 precision, for the report. */
export const r1 = (x: number): number => Math.round(x * 10) / 10;

/** Starts sampling now. */
export function startSampler(input: SamplerInput): Sampler {
  const { workers } = input;
  const samples: Sample[] = [];
  const lastProc = new Map<number, ProcSample>();
  const pids = () => [
    ...input.serverPids,
    ...workers.procs.map((p) => p.pid),
  ];
  const sampleOnce = async (): Promise<Sample> => {
    const procs = await Promise.all(
      pids().map(async (pid) => {
        const p = await readProc(pid);
        // A zombie (exited, not yet reaped) still has a status file, without memory lines: keep the last real one.
        if (p && p.hwmMiB > 0) lastProc.set(pid, p);
        return lastProc.get(pid);
      }),
    );
    let scrapeMs = 0;
    const scrapes = await Promise.all(input.metrics.map(async (m) => {
      const t0 = performance.now();
      const s = await scrape(m, SCRAPE_TIMEOUT_MS);
      scrapeMs = Math.max(scrapeMs, performance.now() - t0);
      return s;
    }));
    const total = (name: string) =>
      scrapes.every((s) => s !== null)
        ? scrapes.reduce((a, s) => a + (s!.get(name) ?? 0), 0)
        : null;
    const n = input.serverPids.length;
    return {
      t: r1((Date.now() - workers.startAt) / 1000),
      live: workers.sum("live"),
      connected: workers.sum("connected"),
      finished: workers.sum("finished"),
      numbers: workers.sum("numbers"),
      serverConnections: total("seqstream_connections"),
      serverNumbersSent: total("seqstream_numbers_sent_total"),
      scrapeMs: r1(scrapeMs),
      loadgenLoopMs: r1(worst(workers.latest, "loopLagMs")),
      tickLagMs: r1(worst(workers.latest, "tickLagMs")),
      tickLagP50Ms: r1(worst(workers.latest, "tickLagP50Ms")),
      tickLagP99Ms: r1(worst(workers.latest, "tickLagP99Ms")),
      serverCpuS: procs.slice(0, n).map((p) => p?.cpuS ?? 0),
      serverRssMiB: procs.slice(0, n).map((p) => r1(p?.rssMiB ?? 0)),
      serverResumes: total("seqstream_resumes_total"),
      serverRefusals: refusalsByCode(scrapes),
      metricsCpuS: scrapes.map((m) =>
        m?.get("process_cpu_seconds_total") ?? null
      ),
      metricsRssMiB: scrapes.map((m) => {
        const b = m?.get("process_resident_memory_bytes");
        return b === undefined ? null : r1(b / 2 ** 20);
      }),
      workerCpuS: procs.slice(n).reduce((a, p) => a + (p?.cpuS ?? 0), 0),
      hostBusyS: await hostBusyS(),
    };
  };
  let sampling = true;
  const loop = (async () => {
    for (let n = 0; sampling; n++) {
      const next = Date.now() + SAMPLE_EVERY_MS;
      const s = await sampleOnce();
      samples.push(s);
      if (n % PROGRESS_EVERY === 0) {
        // deno-lint-ignore no-console -- progress of a CLI goes to stderr
        console.error(progressLine(workers, input.clients, s));
      }
      await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
    }
  })();
  return {
    samples,
    lastProc,
    stop() {
      sampling = false;
      return loop;
    },
  };
}

const REFUSALS = 'seqstream_handshake_failures_total{code="';

function refusalsByCode(
  scrapes: readonly (Map<string, number> | null)[],
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of scrapes) {
    for (const [k, v] of s ?? []) {
      if (k.startsWith(REFUSALS)) {
        const code = k.slice(REFUSALS.length, -2);
        out[code] = (out[code] ?? 0) + v;
      }
    }
  }
  return out;
}

function worst(
  latest: readonly (WorkerCounts | undefined)[],
  k: "loopLagMs" | "tickLagMs" | "tickLagP50Ms" | "tickLagP99Ms",
): number {
  return Math.max(0, ...latest.map((c) => c?.[k] ?? 0));
}

/** The progress line: client counts, and the sample's server figures. */
export function progressLine(
  workers: Pick<Workers, "sum">,
  total: number,
  s: Sample | undefined,
): string {
  const c = (k: Exclude<keyof WorkerCounts, "worker">) => workers.sum(k);
  return `load: t=${s ? s.t.toFixed(0) : "?"}s started ${
    c("started")
  }/${total} live ${c("live")} connected ${c("connected")}` +
    ` finished ${c("finished")} passed ${c("passed")} numbers ${c("numbers")}` +
    (s?.serverConnections != null
      ? ` server-conns ${s.serverConnections}`
      : "") +
    (s ? ` metrics ${s.scrapeMs}ms loadgen-loop ${s.loadgenLoopMs}ms` : "");
}
