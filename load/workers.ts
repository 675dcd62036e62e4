/**
 * Spawn phase, load generators: `worker.ts` processes, each with a contiguous
 * slice of the clients, reporting NDJSON progress and a result on stdout.
 *
 * @module
 */

import { type Process, spawnDeno } from "../internal/spawn.ts";
import type { Config } from "./config.ts";
import type {
  Target,
  WorkerCounts,
  WorkerProgress,
  WorkerResult,
  WorkerSpec,
} from "./worker.ts";

/** Time the workers get to start before the ramp: fixed, plus per worker (ms). */
const START_DELAY_MS = 2000;
const START_DELAY_PER_WORKER_MS = 300;
/** Interrupted workers abort their clients and report; SIGKILL after this (ms). */
const INTERRUPT_GRACE_MS = 10_000;
/** Workers still running this long after the deadline are killed (ms). */
const DEADLINE_GRACE_MS = 30_000;

/** The running load generators. */
export interface Workers {
  readonly procs: readonly Process[];
  /** Each worker's latest progress (or result) line, by worker number. */
  readonly latest: readonly (WorkerCounts | undefined)[];
  /** Result lines received so far. */
  readonly results: readonly WorkerResult[];
  /** Epoch ms at which clients start, and at which they are aborted. */
  readonly startAt: number;
  readonly deadline: number;
  /** Resolves once every worker has exited and its output is read. */
  readonly done: Promise<void>;
  /** The sum of one count over the latest lines. */
  sum(k: Exclude<keyof WorkerCounts, "worker">): number;
  /** Kills every worker still running. */
  kill(): void;
}

/**
 * Starts `cfg.workers` load generators against `targets`; clients round-robin
 * over the targets. When `stop` aborts, workers get SIGTERM (they abort their
 * clients and still report), and SIGKILL 10 s later; any still running 30 s
 * after the deadline get SIGKILL.
 */
export function startWorkers(
  cfg: Config,
  targets: Target[],
  stop: AbortSignal,
): Workers {
  const startAt = Date.now() + START_DELAY_MS +
    START_DELAY_PER_WORKER_MS * cfg.workers;
  const deadline = startAt + cfg.durationMs;
  const latest: (WorkerCounts | undefined)[] = [];
  const results: WorkerResult[] = [];
  const allowNet = [
    ...new Set(["127.0.0.1", ...targets.map((t) => t.hostname)]),
  ];
  const procs: Process[] = [];
  let first = 0;
  for (let w = 0; w < cfg.workers; w++) {
    const n = Math.floor(cfg.clients / cfg.workers) +
      (w < cfg.clients % cfg.workers ? 1 : 0);
    const spec = workerSpec(cfg, w, n, first, targets, startAt, deadline);
    first += n;
    procs.push(
      spawnDeno(new URL("./worker.ts", import.meta.url), [
        JSON.stringify(spec),
      ], {
        permissions: { net: allowNet },
        quiet: false,
        ...(cfg.cpuProfDir
          ? {
            denoFlags: [
              "--cpu-prof",
              `--cpu-prof-dir=${cfg.cpuProfDir}`,
              `--cpu-prof-name=loadgen-${w}.cpuprofile`,
            ],
          }
          : {}),
        stdout: {
          onLine(line) {
            const msg = JSON.parse(line) as WorkerResult | WorkerProgress;
            latest[msg.worker] = msg;
            if (msg.type === "result") results.push(msg);
          },
        },
        stderr: "inherit",
      }),
    );
  }
  const signalAll = (sig: Deno.Signal) => {
    for (const p of procs) p.kill(sig);
  };
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  const interrupt = () => {
    signalAll("SIGTERM");
    killTimer = setTimeout(() => signalAll("SIGKILL"), INTERRUPT_GRACE_MS);
  };
  stop.addEventListener("abort", interrupt, { once: true });
  const hardStop = setTimeout(
    () => signalAll("SIGKILL"),
    deadline - Date.now() + DEADLINE_GRACE_MS,
  );
  const done = Promise.all(procs.map((p) => p.done())).then(() => {
    clearTimeout(hardStop);
    clearTimeout(killTimer);
    stop.removeEventListener("abort", interrupt);
  });
  return {
    procs,
    latest,
    results,
    startAt,
    deadline,
    done,
    sum: (k) => latest.reduce((a, c) => a + (c?.[k] ?? 0), 0),
    kill: () => signalAll("SIGKILL"),
  };
}

function workerSpec(
  cfg: Config,
  worker: number,
  clients: number,
  firstIndex: number,
  targets: Target[],
  startAt: number,
  deadline: number,
): WorkerSpec {
  return {
    worker,
    clients,
    firstIndex,
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
    client: cfg.client,
    ...(cfg.kill ? { killAt: startAt + cfg.kill.atMs } : {}),
    ttlMs: cfg.ttlMs,
  };
}
