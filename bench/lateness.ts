// deno-lint-ignore-file no-console -- a benchmark script: figures go to stdout.
/**
 * `deno task bench:lateness`: a server's memory per session, the lateness of
 * its paced numbers and its garbage-collection pauses, in one run. One
 * `server.ts` process (run with `--trace-gc`, plus any `--server-v8-flags`),
 * and this process as a bare v2 driver that acknowledges exactly as the real
 * client does (as `bench/server_cpu.ts`: an ACK every `⌈window / 4⌉`
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
import { parseDuration } from "../cli/duration.ts";
import { FD_BOUND_MAX_CONNECTIONS } from "../internal/server_process.ts";
import { freePort, ROOT } from "../internal/spawn.ts";
import { readProc } from "../load/_proc.ts";
import { FrameDecoder } from "../protocol/frame.ts";
import {
  decodeMessage,
  encodeMessage,
  MessageType,
  PROTOCOL_VERSION,
  type Welcome,
} from "../protocol/messages.ts";

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
const steps = values.sessions.split(",").map(Number);
const intervalMs = parseDuration(values.interval);
const settleS = Number(values.settle);
const seconds = Number(values.seconds);
const rampPerS = Number(values["ramp-per-s"]);
const totalS = steps.length * (settleS + seconds) +
  steps.at(-1)! / rampPerS + 30;
const count = Math.ceil((totalS * 1000) / intervalMs);

// --- the server, with its GC trace -------------------------------------------

const port = freePort();
const v8 = ["--trace-gc-nvp", ...values["server-v8-flags"].split(/[\s,]+/)]
  .filter(Boolean);
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
const gcReading = (async () => {
  let rest = "";
  for await (
    const chunk of server.stdout.pipeThrough(new TextDecoderStream())
  ) {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop()!;
    for (const l of parts) {
      const i = l.indexOf("GC: {");
      if (i < 0) continue;
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
    }
  }
})();

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
let numbers = 0, acks = 0, failed = 0;
let stop = false;
const conns: Deno.Conn[] = [];

function record(late: number): void {
  if (!recording) return;
  if (nSamples === samples.length) {
    const bigger = new Float64Array(samples.length * 2);
    bigger.set(samples);
    samples = bigger;
  }
  samples[nSamples++] = late;
}

async function session(): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conns.push(conn);
  let every = 1, next = 0, lastAck = 0, lastAckAt = 0, ackIntervalMs = 0;
  let gridAt = 0, gridOffset = 0;
  let keepAlive: ReturnType<typeof setTimeout> | undefined;
  const ack = (nextOffset: number) => {
    lastAck = nextOffset;
    lastAckAt = performance.now();
    acks++;
    return conn.write(encodeMessage({ type: "ack", nextOffset }));
  };
  const armKeepAlive = () => {
    clearTimeout(keepAlive);
    if (stop) return;
    keepAlive = setTimeout(() => {
      if (stop) return;
      if (performance.now() - lastAckAt >= ackIntervalMs) {
        ack(next).catch(() => {});
      }
      armKeepAlive();
    }, Math.max(0, lastAckAt + ackIntervalMs - performance.now()));
  };
  await conn.write(
    encodeMessage({
      type: "hello",
      version: PROTOCOL_VERSION,
      id: crypto.randomUUID(),
      count,
      token: crypto.getRandomValues(new Uint8Array(16)),
    }),
  );
  const decoder = new FrameDecoder();
  const buf = new Uint8Array(4096);
  try {
    while (!stop) {
      const n = await conn.read(buf);
      if (n === null) break;
      const now = performance.now();
      for (const f of decoder.push(buf.subarray(0, n))) {
        if (f.type === MessageType.NUMBER) {
          numbers++;
          // As the Go driver: a number earlier than its place moves the
          // grid back (a WELCOME read late hides nothing that follows).
          let late = now - (gridAt + (next - gridOffset) * intervalMs);
          if (late < 0) {
            gridAt += late;
            late = 0;
          }
          record(late);
          next++;
          if (next - lastAck >= every) await ack(next);
        } else if (f.type === MessageType.WELCOME) {
          const w = decodeMessage(f) as Welcome;
          every = Math.max(1, Math.ceil(w.window / 4));
          ackIntervalMs = Math.max(1, w.ackIntervalMs);
          next = lastAck = gridOffset = w.nextOffset;
          lastAckAt = gridAt = now;
          armKeepAlive();
        } else if (f.type === MessageType.ERROR) {
          failed++;
          return;
        } else return;
      }
    }
  } catch {
    if (!stop) failed++;
  } finally {
    clearTimeout(keepAlive);
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
    const n0 = numbers, k0 = acks, g0 = gcs.length, t0 = performance.now();
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
      acksPerNumber: +((acks - k0) / n).toFixed(3),
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
  stop = true;
  for (const c of conns) {
    try {
      c.close();
    } catch { /* closed */ }
  }
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
