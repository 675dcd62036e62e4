// deno-lint-ignore-file no-console -- a benchmark script: figures go to stdout.
/**
 * `deno task bench:lateness`: a server's memory per session, the lateness of
 * its paced numbers and its garbage-collection pauses, in one run. One
 * `server.ts` process (run with `--trace-gc`, plus any `--server-v8-flags`),
 * and this process as a bare v2 driver that acknowledges exactly as the real
 * client does (`bench/_deno_driver.ts`, as `bench:server`'s: an ACK every `⌈window / 4⌉`
 * numbers, a keep-alive after `ackIntervalMs` without one).
 *
 * Per step of `--sessions` (e.g. `5000,10000`, sessions added to the ones
 * already open) it waits `--settle` seconds, then measures for `--seconds`:
 * - RSS over the idle server (`/proc`), per session, and the slope between
 *   steps (the cost of one more session);
 * - lateness of every number: its arrival minus its place on the session's
 *   grid (WELCOME's arrival + k × interval; a number earlier than its place
 *   moves the grid back, as the Go driver of `bench/driver` does),
 *   p50/p99/p99.9/max. The driver shares the host and its event loop, so
 *   this is an upper bound on the server's own;
 * - the server's GC pauses from `--trace-gc-nvp` (young: scavenge or minor
 *   mark-sweep; full: mark-compact), count, total and largest, and the bytes
 *   promoted to the old generation per second and surviving per young GC
 *   (what outlives a young collection is what grows the heap);
 * - server CPU per number, and the driver's own CPU per number (it must stay
 *   well under the server's for the lateness to mean much).
 *
 * ```sh
 * deno task bench:lateness [--sessions 5000,10000] [--interval 1s] [--settle 10] [--seconds 20]
 *   [--ramp-per-s 1000] [--server-v8-flags=--max-semi-space-size=2] [--json] [--gc-log FILE]
 * ```
 *
 * Needs `-A` (it reads `/proc`).
 *
 * @module
 */

import process from "node:process";
import { parseArgs } from "node:util";
import { FD_BOUND_MAX_CONNECTIONS } from "../internal/server_process.ts";
import { freePort, readLines, ROOT } from "../internal/spawn.ts";
import { readProc } from "../load/_proc.ts";
import { denoSession } from "./_deno_driver.ts";
import {
  durationFlag,
  numberFlag,
  parseFlags,
  sessionList,
  v8FlagList,
} from "./_flags.ts";

const { values, steps, intervalMs, settleS, seconds, rampPerS } = parseFlags(
  "bench:lateness",
  () => {
    const { values } = parseArgs({
      args: Deno.args,
      options: {
        sessions: { type: "string", default: "5000,10000" },
        interval: { type: "string", default: "1s" },
        settle: { type: "string", default: "10" },
        seconds: { type: "string", default: "20" },
        "ramp-per-s": { type: "string", default: "1000" },
        "server-v8-flags": { type: "string", default: "" },
        json: { type: "boolean", default: false },
        /** Append the server's raw GC records (one JSON object a line) to this file. */
        "gc-log": { type: "string" },
      },
    });
    return {
      values,
      steps: sessionList(values.sessions, {
        n: FD_BOUND_MAX_CONNECTIONS,
        why: "the server's --max-connections",
      }),
      intervalMs: durationFlag("--interval", values.interval, true),
      settleS: numberFlag("--settle", values.settle, 0),
      seconds: numberFlag("--seconds", values.seconds),
      rampPerS: numberFlag("--ramp-per-s", values["ramp-per-s"]),
    };
  },
);
const totalS = steps.length * (settleS + seconds) +
  steps.at(-1)! / rampPerS + 30;
const count = Math.ceil((totalS * 1000) / intervalMs);

// --- the server, with its GC trace -------------------------------------------

const port = freePort();
const v8 = ["--trace-gc-nvp", ...v8FlagList(values["server-v8-flags"])];
const server = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "--allow-net",
    "--allow-env",
    "--allow-read",
    "--allow-write",
    `--v8-flags=${v8.join(",")}`,
    new URL("server.ts", ROOT).pathname,
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
    "--interval",
    values.interval,
    "--max-connections",
    String(FD_BOUND_MAX_CONNECTIONS),
    "--log-level",
    "warn",
  ],
  stdout: "piped",
  stderr: "inherit",
}).spawn();

interface Gc {
  kind: "young" | "full";
  ms: number;
  /** Bytes promoted to the old generation. */
  promoted: number;
  /** Bytes that survived in the young generation (copied). */
  survived: number;
}
const gcs: Gc[] = [];
const gcLog: string[] | undefined = values["gc-log"] ? [] : undefined;
const gcReading = readLines(server.stdout, (l) => {
  const i = l.indexOf("GC: {");
  if (i < 0) return;
  try {
    const g = JSON.parse(l.slice(i + 4));
    if (gcLog) gcLog.push(JSON.stringify({ at: performance.now(), ...g }));
    gcs.push({
      kind: g.gc === "s" || g.gc === "ms" ? "young" : "full",
      ms: Number(g.pause),
      promoted: Number(g.promoted ?? 0),
      survived: Number(g.new_space_survived ?? 0),
    });
  } catch {
    // a line split by the pipe: skipped
  }
});

async function waitForPort(): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error("server did not start");
}

// --- the driver ---------------------------------------------------------------

/** Lateness samples of the current window (ms), and whether to record. */
let samples = new Float64Array(1 << 20), nSamples = 0, recording = false;
let numbers = 0, failed = 0;
const counts = { acks: 0, keepAlives: 0 };
const stop = new AbortController();

function record(late: number): void {
  if (!recording) return;
  if (nSamples === samples.length) {
    const bigger = new Float64Array(samples.length * 2);
    bigger.set(samples);
    samples = bigger;
  }
  samples[nSamples++] = late;
}

/**
 * One session of the Deno driver (`_deno_driver.ts`) that records each
 * number's lateness against the session's grid. A refused or failed session
 * counts in `failed`; one ended by the final stop does not.
 */
async function session(): Promise<void> {
  let gridAt = 0, gridOffset = 0;
  try {
    const end = await denoSession({
      port,
      count,
      counts,
      signal: stop.signal,
      onWelcome: (w, at) => {
        gridOffset = w.nextOffset;
        gridAt = at;
      },
      onNumber: (offset, at) => {
        numbers++;
        // As the Go driver: a number earlier than its place moves the
        // grid back (a WELCOME read late hides nothing that follows).
        let late = at - (gridAt + (offset - gridOffset) * intervalMs);
        if (late < 0) {
          gridAt += late;
          late = 0;
        }
        record(late);
      },
    });
    if (end === "refused") failed++;
  } catch {
    if (!stop.signal.aborted) failed++;
  }
}

function pct(xs: Float64Array, p: number): number {
  if (xs.length === 0) return NaN;
  return xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const running: Promise<void>[] = [];
try {
  await waitForPort();
  await sleep(500);
  const idle = (await readProc(server.pid))!;
  const rows = [];
  let open = 0;
  let prev: { sessions: number; rssMiB: number } | undefined;
  for (const target of steps) {
    const batch = Math.max(1, Math.round(rampPerS / 100));
    while (open < target) {
      for (let i = 0; i < batch && open < target; i++, open++) {
        running.push(session());
      }
      await sleep(10);
    }
    await sleep(settleS * 1000);
    const a = (await readProc(server.pid))!;
    const drv0 = process.cpuUsage();
    const n0 = numbers,
      k0 = counts.acks,
      g0 = gcs.length,
      t0 = performance.now();
    nSamples = 0;
    recording = true;
    await sleep(seconds * 1000);
    recording = false;
    const b = (await readProc(server.pid))!;
    const drv = process.cpuUsage(drv0);
    const t1 = performance.now();
    const window = gcs.slice(g0);
    const sum = (k: Gc["kind"]) =>
      window.filter((g) => g.kind === k).reduce((s, g) => s + g.ms, 0);
    const most = (k: Gc["kind"]) =>
      Math.max(0, ...window.filter((g) => g.kind === k).map((g) => g.ms));
    const late = samples.slice(0, nSamples).sort();
    const n = numbers - n0;
    const row = {
      sessions: target,
      numbersPerSecond: Math.round((n * 1000) / (t1 - t0)),
      acksPerNumber: +((counts.acks - k0) / n).toFixed(3),
      rssMiB: +b.rssMiB.toFixed(1),
      rssKiBPerSession: +(((b.rssMiB - idle.rssMiB) * 1024) / target)
        .toFixed(1),
      slopeKiB: prev
        ? +(((b.rssMiB - prev.rssMiB) * 1024) / (target - prev.sessions))
          .toFixed(1)
        : null,
      lateP50: +pct(late, 50).toFixed(2),
      lateP99: +pct(late, 99).toFixed(2),
      lateP999: +pct(late, 99.9).toFixed(2),
      lateMax: +(late.at(-1) ?? NaN).toFixed(2),
      youngGcs: window.filter((g) => g.kind === "young").length,
      youngGcMs: +sum("young").toFixed(1),
      fullGcs: window.filter((g) => g.kind === "full").length,
      fullGcMs: +sum("full").toFixed(1),
      maxGcMs: +Math.max(most("young"), most("full")).toFixed(2),
      promotedKiBPerS: +(window.reduce((s, g) => s + g.promoted, 0) / 1024 /
        ((t1 - t0) / 1000)).toFixed(0),
      survivedKiBPerYoungGc: +(window.filter((g) => g.kind === "young")
        .reduce((s, g) => s + g.survived, 0) /
        1024 /
        Math.max(1, window.filter((g) => g.kind === "young").length))
        .toFixed(0),
      serverUsPerNumber: +(((b.cpuS - a.cpuS) * 1e6) / n).toFixed(1),
      driverUsPerNumber: +((drv.user + drv.system) / n).toFixed(1),
      failed,
    };
    rows.push(row);
    prev = { sessions: target, rssMiB: b.rssMiB };
    if (!values.json) console.error(JSON.stringify(row));
  }
  if (values.json) console.log(JSON.stringify(rows));
  else console.table(rows);
} finally {
  stop.abort();
  await Promise.allSettled(running);
  try {
    server.kill("SIGTERM");
  } catch { /* gone */ }
  await server.status;
  await gcReading.catch(() => {});
  if (gcLog) {
    await Deno.writeTextFile(values["gc-log"]!, gcLog.join("\n") + "\n", {
      append: true,
    });
  }
}
