/**
 * `--kill I@TIME`: the failover storm. Kills one server with SIGKILL at the
 * chosen time and watches the survivors at 10 Hz from 5 s before the kill:
 * their CPU (`/proc`), their listeners' accept queue (`ss -ltn` Recv-Q on
 * the shared port) and the host's SYN drops; {@link stormFigures} turns that
 * and the clients' resume times into the report's `failover` section.
 *
 * @module
 */

import { readProc, tcpCounters } from "./_proc.ts";
import type { Histogram } from "./histogram.ts";
import type { ServerProc } from "./servers.ts";
import { WAVE_BIN_MS } from "./worker.ts";

/** One tenth of a second around the kill. */
export interface StormSample {
  /** Ms since the planned kill time. */
  t: number;
  /** CPU seconds so far, summed over the survivors. */
  survivorCpuS: number;
  /** Largest Recv-Q (connections waiting for accept) of a listener on the port. */
  acceptQueue: number;
  /** Host-wide SYNs dropped on full accept queues so far. */
  listenOverflows: number;
}

/** The running storm. */
export interface Storm {
  readonly samples: readonly StormSample[];
  /** Epoch ms at which SIGKILL was sent, once it was. */
  readonly killedAt: number | undefined;
  /** Stops sampling. */
  stop(): Promise<void>;
}

const EVERY_MS = 100;
const BEFORE_MS = 5000;
/** Sampling stops by itself this long after the kill. */
const AFTER_MS = 90_000;

/** Schedules the kill of `victim` at epoch `killAt` and samples the `survivors`. */
export function startStorm(opts: {
  victim: ServerProc;
  survivors: readonly ServerProc[];
  port: number;
  killAt: number;
  /** Called right after the kill (e.g. to stop scraping the victim). */
  onKill: () => void;
}): Storm {
  const samples: StormSample[] = [];
  let killedAt: number | undefined;
  let running = true;
  const killTimer = setTimeout(() => {
    opts.victim.process.kill("SIGKILL");
    killedAt = Date.now();
    opts.onKill();
  }, Math.max(0, opts.killAt - Date.now()));
  const loop = (async () => {
    const from = opts.killAt - BEFORE_MS;
    if (from > Date.now()) {
      await new Promise((r) => setTimeout(r, from - Date.now()));
    }
    while (running && Date.now() < opts.killAt + AFTER_MS) {
      const next = Date.now() + EVERY_MS;
      const [procs, queue, tcp] = await Promise.all([
        Promise.all(opts.survivors.map((s) => readProc(s.pid))),
        acceptQueue(opts.port),
        tcpCounters(),
      ]);
      samples.push({
        t: Date.now() - opts.killAt,
        survivorCpuS: procs.reduce((a, p) => a + (p?.cpuS ?? 0), 0),
        acceptQueue: queue,
        listenOverflows: tcp.listenOverflows,
      });
      const wait = next - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  })();
  return {
    samples,
    get killedAt() {
      return killedAt;
    },
    async stop() {
      running = false;
      clearTimeout(killTimer);
      await loop;
    },
  };
}

/** The largest Recv-Q of the listeners on `port` (`ss -Hltn sport = :PORT`). */
export async function acceptQueue(port: number): Promise<number> {
  const out = await new Deno.Command("ss", {
    args: ["-Hltn", `sport = :${port}`],
    stdout: "piped",
    stderr: "null",
  }).output();
  let max = 0;
  for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f[0] === "LISTEN") max = Math.max(max, Number(f[1]));
  }
  return max;
}

/** The report's `failover` section. */
export interface FailoverReport {
  killed: { index: number; pid: number; atS: number; lateMs: number };
  /** Sessions whose connection was cut after the kill, and how many of them resumed. */
  sessionsCut: number;
  /** What cut them (the kill shows as the server closing or resetting; later cuts are the wave's own). */
  cutReasons: Record<string, number>;
  resumed: number;
  /** From the kill to each resumed WELCOME (ms); `max` is the last session resumed. */
  resumeMs: { p50: number; p99: number; max: number };
  /** Resumes per {@link WAVE_BIN_MS} ms after the kill: how the jittered backoff spread the wave. */
  wave: { binMs: number; counts: number[] };
  survivor: {
    /** Survivors' CPU from the kill to the last resume (s). */
    waveCpuS: number;
    /** Survivors' CPU rate (cores) in the 5 s before the kill and the 5 s after the wave. */
    beforeCores: number | null;
    afterCores: number | null;
    /** Wave CPU per resume (µs), and the same less the streaming the survivor does anyway (`afterCores`). */
    cpuPerResumeUs: number | null;
    excessCpuPerResumeUs: number | null;
    /** Peak accept queue on the shared port after the kill (sampled at 10 Hz), and its listen limit. */
    acceptQueuePeak: number;
    /** Host-wide SYNs dropped on full accept queues between the kill and the end of the wave. */
    listenOverflows: number;
  };
}

const r1 = (x: number) => Math.round(x * 10) / 10;

/** Interpolated survivor CPU at `t` (ms since the planned kill). */
function cpuAt(samples: readonly StormSample[], t: number): number | null {
  const i = samples.findIndex((s) => s.t >= t);
  if (i <= 0) return i === 0 ? samples[0]!.survivorCpuS : null;
  const a = samples[i - 1]!, b = samples[i]!;
  return a.survivorCpuS +
    (b.survivorCpuS - a.survivorCpuS) * (t - a.t) / (b.t - a.t);
}

function rate(
  samples: readonly StormSample[],
  from: number,
  to: number,
): number | null {
  const a = cpuAt(samples, from), b = cpuAt(samples, to);
  return a === null || b === null ? null : (b - a) / ((to - from) / 1000);
}

/** Builds the `failover` section from the storm's samples and the clients' resume figures. */
export function stormFigures(input: {
  index: number;
  pid: number;
  killAtS: number;
  killAt: number;
  killedAt: number | undefined;
  samples: readonly StormSample[];
  lostAfterKill: number;
  cutReasons: Record<string, number>;
  resumeAfterKill: Histogram;
  waveBins: readonly number[];
}): FailoverReport {
  const late = (input.killedAt ?? input.killAt) - input.killAt;
  const h = input.resumeAfterKill;
  // Client times run from the planned kill; the kill came `late` ms after it.
  const fromKill = (ms: number) => r1(Math.max(0, ms - late));
  const last = h.count ? h.max : 0;
  const s = input.samples;
  const after = s.filter((x) => x.t >= late && x.t <= last + 1000);
  const wave = cpuAt(s, last);
  const at0 = cpuAt(s, late);
  const waveCpuS = wave !== null && at0 !== null ? wave - at0 : 0;
  const afterCores = rate(s, last, last + 5000);
  const perResume = (cpuS: number) =>
    h.count ? r1((cpuS / h.count) * 1e6) : null;
  return {
    killed: {
      index: input.index,
      pid: input.pid,
      atS: input.killAtS,
      lateMs: late,
    },
    sessionsCut: input.lostAfterKill,
    cutReasons: input.cutReasons,
    resumed: h.count,
    resumeMs: {
      p50: fromKill(h.percentile(50)),
      p99: fromKill(h.percentile(99)),
      max: fromKill(last),
    },
    wave: { binMs: WAVE_BIN_MS, counts: [...input.waveBins] },
    survivor: {
      waveCpuS: r1(waveCpuS * 100) / 100,
      beforeCores: nullable(rate(s, -5000 + late, late)),
      afterCores: nullable(afterCores),
      cpuPerResumeUs: perResume(waveCpuS),
      excessCpuPerResumeUs: afterCores === null
        ? null
        : perResume(waveCpuS - afterCores * ((last - late) / 1000)),
      acceptQueuePeak: Math.max(0, ...after.map((x) => x.acceptQueue)),
      listenOverflows: after.length
        ? after.at(-1)!.listenOverflows - after[0]!.listenOverflows
        : 0,
    },
  };
}

function nullable(x: number | null): number | null {
  return x === null ? null : Math.round(x * 1000) / 1000;
}
