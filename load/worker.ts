/**
 * One load-generator process: runs its share of simulated clients, by default
 * through the lean client ({@link runLeanClient}: the real session state
 * machine, a minimal loop), with `client: "real"` or for the fault fraction
 * through the real client ({@link runClient}) and the fault proxy, and reports NDJSON on stdout: a `progress` line every second and one
 * `result` line at the end. Started by `load/main.ts`; the spec is argv[0] as JSON.
 *
 * @module
 */

import { exponentialBackoff } from "../client/backoff.ts";
import { runClient } from "../client/client.ts";
import type { ClientResult } from "../client/types.ts";
import { type FaultProxy, startProxy } from "../proxy/fault_proxy.ts";
import { Histogram, type HistogramData } from "./histogram.ts";
import { mulberry32 } from "../internal/mulberry32.ts";
import { runLeanClient, Sweeper } from "./lean_client.ts";

/** A TCP destination. */
export interface Target {
  hostname: string;
  port: number;
}

/** What `main.ts` asks of one worker. Times are epoch milliseconds. */
export interface WorkerSpec {
  /** This worker's number, from 0. */
  worker: number;
  /** Clients this worker runs. */
  clients: number;
  /** Global index of its first client; client `i` uses `targets[i % targets.length]`. */
  firstIndex: number;
  targets: Target[];
  countMin: number;
  countMax: number;
  /** Interval the servers use (ms), to turn gaps into lag. */
  intervalMs: number;
  /** Clients start at uniformly random times in `[startAt, startAt + rampMs)`. */
  startAt: number;
  rampMs: number;
  /** Every client still running is aborted at this time. */
  deadline: number;
  /** Fraction of clients that go through a fault proxy. */
  faultFraction: number;
  /** Lifetime of a proxied connection before the proxy cuts it (ms). */
  faultLifetime: { minMs: number; maxMs: number };
  /** Probability that a cut is a RST rather than a FIN. */
  faultReset: number;
  /**
   * One fault proxy in front of every target (each connection to the next
   * target, round-robin, so a resume may land on another server), instead
   * of one proxy per target.
   */
  proxyAll?: boolean;
  /** Client reconnect backoff; the client's default when absent. */
  backoff?: { baseMs: number; capMs: number };
  /** Client idle and handshake limits (ms); the client's defaults when absent. */
  idleTimeoutMs?: number;
  handshakeTimeoutMs?: number;
  seed: number;
  /** Which loop runs the clients that are not proxied: the lean one (default) or the real client. */
  client?: "lean" | "real";
  /** A server is killed at this epoch time: resumes after it are timed from it. */
  killAt?: number;
  /**
   * When set, only a welcomed connection lost within this long after
   * `killAt` is the kill's (counted in `lostAfterKill`, timed to its resume
   * in `resumeAfterKill`); later cuts (a fault proxy's, say) and failed
   * attempts of sessions not yet welcomed are not (ms). Absent: every
   * session's first loss after the kill counts, as before.
   */
  killWaveMs?: number;
  /** The servers' session TTL (ms): a resume later than this after a cut counts in {@link Ledger.late}. */
  ttlMs?: number;
}

/**
 * What the servers promised against what became of it, one session at a
 * time: a WELCOME promises the session (resumable until TTL after a cut,
 * every number right). Counted at the end of each client.
 */
export interface Ledger {
  /** Sessions welcomed at least once: promised. */
  welcomed: number;
  /** Welcomed, and later refused as `unknown_session`: a promise lost. */
  lost: number;
  /** Welcomed, and later ended `session_expired` (by the server, or the client giving up after the TTL). */
  expired: number;
  /**
   * Resumed more than the TTL (plus {@link LATE_MARGIN_MS}, for the time the
   * server takes to see the cut) after the client lost its connection.
   */
  late: number;
  /** Any number wrong (the checksum did not match): `FAIL`. */
  wrong: number;
}

/** Slack on {@link Ledger.late}: a server sees a cut after its client does, by up to its event-loop lag under load. */
export const LATE_MARGIN_MS = 1000;

/** A zeroed ledger. */
export function newLedger(): Ledger {
  return { welcomed: 0, lost: 0, expired: 0, late: 0, wrong: 0 };
}

/** Width of one bin of {@link WorkerResult.waveBins} (ms). */
export const WAVE_BIN_MS = 100;
/** Bins kept: resumes later than this after the kill fall in the last one. */
const WAVE_BINS = 600;

/** Counts shared by progress and result lines. */
export interface WorkerCounts {
  worker: number;
  /** Clients started so far. */
  started: number;
  /** Sessions welcomed at least once and not finished: concurrent sessions. */
  live: number;
  /** Of those, how many have a connection streaming right now. */
  connected: number;
  /** Clients finished (any outcome). */
  finished: number;
  passed: number;
  /** Numbers received. */
  numbers: number;
  /** Worst event-loop delay of this process since the last line (ms): its own lag, not the servers'. */
  loopLagMs: number;
  /** Worst tick lag since the last line (ms). */
  tickLagMs: number;
  /** Median and 99th percentile of the tick lag since the last line (ms). */
  tickLagP50Ms: number;
  tickLagP99Ms: number;
}

/** The periodic line. */
export interface WorkerProgress extends WorkerCounts {
  type: "progress";
}

/** Client outcomes beyond pass counts, summed over a worker's clients (and over the run). */
export interface ClientTally {
  /** `FAIL` results: the checksums did not match. */
  mismatches: number;
  /** `ERROR` results by error code. */
  errors: Record<string, number>;
  /** A few error messages, for the report. */
  errorSamples: string[];
  reconnects: number;
  /** Clients that went through a fault proxy, and the cuts the proxies made. */
  faulty: number;
  cuts: number;
  /** Promises against outcomes. */
  ledger: Ledger;
}

/** The final line. */
export interface WorkerResult extends WorkerCounts, ClientTally {
  type: "result";
  clients: number;
  /** Positive part of (gap between consecutive numbers − interval), gaps across reconnects excluded. */
  lag: HistogramData;
  /** The same, only for numbers that arrived after the ramp ended. */
  lagSteady: HistogramData;
  /** Client start to first welcome. */
  welcome: HistogramData;
  /** Client start to first number. */
  firstNumber: HistogramData;
  /** A connection lost (after a welcome) to the first number after the session's resume. */
  resume: HistogramData;
  /** This process's event-loop delay, sampled every 50 ms. */
  loop: HistogramData;
  /** Sessions whose welcomed connection was lost after `killAt` (each counted once: its first cut after it). */
  lostAfterKill: number;
  /** What ended those connections (error messages with digits masked), counted. */
  cutReasons: Record<string, number>;
  /** Kill (planned time) to the resumed WELCOME of each of those sessions. */
  resumeAfterKill: HistogramData;
  /** The same resumes counted in {@link WAVE_BIN_MS} bins from the kill (trailing zeros trimmed). */
  waveBins: number[];
}

const enc = new TextEncoder();
const emit = (line: object) =>
  Deno.stdout.writeSync(enc.encode(JSON.stringify(line) + "\n"));

/** Runs the spec's clients to the end and resolves with the result line. */
export async function runWorker(spec: WorkerSpec): Promise<WorkerResult> {
  const random = mulberry32(spec.seed ^ Math.imul(spec.worker + 1, 0x9e3779b1));
  const ac = new AbortController();
  const c: WorkerCounts = {
    worker: spec.worker,
    started: 0,
    live: 0,
    connected: 0,
    finished: 0,
    passed: 0,
    numbers: 0,
    loopLagMs: 0,
    tickLagMs: 0,
    tickLagP50Ms: 0,
    tickLagP99Ms: 0,
  };
  const errors: Record<string, number> = {};
  const errorSamples: string[] = [];
  let mismatches = 0, reconnects = 0, faulty = 0;
  const ledger = newLedger();
  const lateAfter = spec.ttlMs === undefined
    ? Infinity
    : spec.ttlMs + LATE_MARGIN_MS;
  const lag = new Histogram(), lagSteady = new Histogram();
  const welcome = new Histogram(), firstNumber = new Histogram();
  const resume = new Histogram();
  const steadyAt = performance.now() +
    (spec.startAt + spec.rampMs - Date.now());
  const interval = spec.intervalMs;
  const backoff = spec.backoff && exponentialBackoff(spec.backoff);
  const leanBackoff = backoff ?? exponentialBackoff();
  const sweeper = new Sweeper(500, ac.signal);
  const killAtPerf = spec.killAt === undefined
    ? Infinity
    : performance.now() + (spec.killAt - Date.now());
  const waveMs = spec.killWaveMs ?? Infinity;
  let lostAfterKill = 0;
  const cutReasons: Record<string, number> = {};
  const resumeAfterKill = new Histogram();
  const waveBins = new Array<number>(WAVE_BINS).fill(0);

  const proxies: FaultProxy[] = [];
  if (spec.faultFraction > 0) {
    const fronts = spec.proxyAll
      ? [spec.targets]
      : spec.targets.map((t) => [t]);
    for (const upstreams of fronts) {
      proxies.push(
        await startProxy({
          upstreams,
          lifetime: spec.faultLifetime,
          resetProbability: spec.faultReset,
          seed: spec.seed + spec.worker,
        }),
      );
    }
  }

  const one = async (index: number): Promise<void> => {
    const t = index % spec.targets.length;
    const count = spec.countMin +
      Math.floor(random() * (spec.countMax - spec.countMin + 1));
    const proxy = random() < spec.faultFraction
      ? proxies[spec.proxyAll ? 0 : t]
      : undefined;
    if (proxy) faulty++;
    const target = proxy
      ? { hostname: proxy.hostname, port: proxy.port }
      : spec.targets[t]!;
    const t0 = performance.now();
    let prev = -1;
    let welcomed = false;
    let connected = false;
    let gotFirst = false;
    let lostInWave = false;
    /** When the streaming connection was lost (-1: streaming, or never welcomed). */
    let lostAt = -1;
    let resumedAfterLoss = false;
    /** Its first cut after the kill has been timed: later cuts are not the kill's. */
    let waveDone = false;
    /** When the connection of the current attachment was lost (performance time). */
    let cutAt: number | undefined;
    c.started++;
    const onWelcome = (resumed: boolean, now: number) => {
      prev = -1;
      if (!welcomed) {
        welcomed = true;
        c.live++;
        welcome.record(now - t0);
      }
      if (!connected) c.connected++;
      connected = true;
      resumedAfterLoss = resumed && lostAt >= 0;
      if (resumed && cutAt !== undefined && now - cutAt > lateAfter) {
        ledger.late++;
      }
      cutAt = undefined;
      if (resumed && lostInWave) {
        lostInWave = false;
        waveDone = true;
        const ms = now - killAtPerf;
        resumeAfterKill.record(ms);
        waveBins[Math.min(WAVE_BINS - 1, Math.floor(ms / WAVE_BIN_MS))]!++;
      }
    };
    const onLost = (now: number, why?: unknown) => {
      const wasUp = connected;
      if (connected && welcomed && lostAt < 0 && now >= 0) lostAt = now;
      if (connected) cutAt ??= now;
      if (connected) c.connected--;
      connected = false;
      const inWave = waveMs === Infinity ||
        (wasUp && now - killAtPerf <= waveMs);
      if (now >= killAtPerf && !lostInWave && !waveDone && !inWave) {
        // With a bounded wave: a welcomed connection cut after it (this
        // session was not cut by the kill), or an attempt never welcomed
        // (nothing was cut; its first cut is still to come).
        if (wasUp) waveDone = true;
      } else if (now >= killAtPerf && !lostInWave && !waveDone) {
        lostInWave = true;
        lostAfterKill++;
        const reason = (why instanceof Error ? why.message : String(why))
          .replace(/\d+(\.\d+)?/g, "N").slice(0, 80);
        cutReasons[reason] = (cutReasons[reason] ?? 0) + 1;
      }
    };
    const onNumber = (now = performance.now()) => {
      if (lostAt >= 0 && resumedAfterLoss) {
        resume.record(now - lostAt);
        lostAt = -1;
        resumedAfterLoss = false;
      }
      if (prev >= 0) {
        const late = now - prev - interval;
        lag.record(late);
        if (late > c.tickLagMs) c.tickLagMs = late;
        if (now >= steadyAt) lagSteady.record(late);
      } else if (!gotFirst) {
        gotFirst = true;
        firstNumber.record(now - t0);
      }
      prev = now;
      c.numbers++;
    };
    const limits = {
      ...(spec.idleTimeoutMs !== undefined
        ? { idleTimeoutMs: spec.idleTimeoutMs }
        : {}),
      ...(spec.handshakeTimeoutMs !== undefined
        ? {
          handshakeTimeoutMs: spec.handshakeTimeoutMs,
          connectGiveUpMs: 2 * spec.handshakeTimeoutMs,
        }
        : {}),
    };
    const r: ClientResult = !proxy && spec.client !== "real"
      ? await runLeanClient({
        ...target,
        count,
        sweeper,
        signal: ac.signal,
        backoff: leanBackoff,
        ...limits,
        onWelcome,
        onNumber,
        onLost,
      })
      : await runClient({
        ...target,
        count,
        signal: ac.signal,
        ...(backoff ? { backoff } : {}),
        ...limits,
        onEvent(e) {
          if (e.type === "streaming") onWelcome(e.resumed, performance.now());
          else if (e.type === "disconnected") {
            onLost(performance.now(), e.error);
          } else if (e.type === "done") onLost(-Infinity);
        },
        onNumber: () => onNumber(),
      });
    if (connected) c.connected--;
    if (welcomed) c.live--;
    c.finished++;
    reconnects += r.reconnects;
    if (welcomed) ledger.welcomed++;
    if (r.result === "PASS") c.passed++;
    else if (r.result === "FAIL") {
      mismatches++;
      ledger.wrong++;
    } else {
      const code = r.error?.code ?? "unknown";
      if (welcomed && code === "unknown_session") ledger.lost++;
      if (welcomed && code === "session_expired") ledger.expired++;
      errors[code] = (errors[code] ?? 0) + 1;
      if (errorSamples.length < 5) {
        errorSamples.push(`${code}: ${r.error?.message ?? ""}`);
      }
    }
  };

  // Start times drawn up front and drained by one timer, not one timer per client.
  const starts = Array.from(
    { length: spec.clients },
    () => spec.startAt + random() * spec.rampMs,
  )
    .sort((a, b) => a - b);
  const running: Promise<void>[] = [];
  const deadline = setTimeout(
    () => ac.abort(),
    Math.max(0, spec.deadline - Date.now()),
  );
  const onTerm = () => ac.abort();
  Deno.addSignalListener("SIGTERM", onTerm);
  // Event-loop delay: how late a 50 ms timer fires. If this is large, the client-side figures are suspect.
  const loop = new Histogram();
  let expected = performance.now() + 50;
  const loopTimer = setInterval(() => {
    const now = performance.now();
    const late = now - expected;
    loop.record(late);
    if (late > c.loopLagMs) c.loopLagMs = late;
    expected = now + 50;
  }, 50);
  // Per-second percentiles from the difference of the running histogram:
  // nothing more per number, one pass over the buckets per second.
  let lagBefore = lag.clone();
  const progress = setInterval(() => {
    const second = lag.since(lagBefore);
    lagBefore = lag.clone();
    c.tickLagP50Ms = second.percentile(50);
    c.tickLagP99Ms = second.percentile(99);
    emit({ type: "progress", ...c } satisfies WorkerProgress);
    c.loopLagMs = 0;
    c.tickLagMs = 0;
  }, 1000);
  for (let i = 0; i < starts.length && !ac.signal.aborted;) {
    const wait = starts[i]! - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, Math.min(wait, 1000)));
    while (i < starts.length && starts[i]! <= Date.now()) {
      running.push(one(spec.firstIndex + i++));
    }
  }
  await Promise.all(running);
  clearTimeout(deadline);
  Deno.removeSignalListener("SIGTERM", onTerm);
  clearInterval(progress);
  clearInterval(loopTimer);
  sweeper.close();
  const cuts = proxies.reduce((n, p) => n + p.stats.cuts, 0);
  await Promise.all(proxies.map((p) => p.close()));
  return {
    type: "result",
    ...c,
    clients: spec.clients,
    mismatches,
    errors,
    errorSamples,
    reconnects,
    faulty,
    cuts,
    ledger,
    lag: lag.toJSON(),
    lagSteady: lagSteady.toJSON(),
    welcome: welcome.toJSON(),
    firstNumber: firstNumber.toJSON(),
    resume: resume.toJSON(),
    loop: loop.toJSON(),
    lostAfterKill,
    cutReasons,
    resumeAfterKill: resumeAfterKill.toJSON(),
    waveBins: trimZeros(waveBins),
  };
}

function trimZeros(a: number[]): number[] {
  let n = a.length;
  while (n > 0 && a[n - 1] === 0) n--;
  return a.slice(0, n);
}

if (import.meta.main) {
  const spec = JSON.parse(Deno.args[0]!) as WorkerSpec;
  emit(await runWorker(spec));
}
