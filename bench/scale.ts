// deno-lint-ignore-file no-console -- a benchmark script: figures go to stdout.
/**
 * `deno task bench:scale`: the server measured by the compiled driver
 * (`bench/driver/`, Go), which neither shares the server's runtime and
 * allocator nor takes much of its CPU (its own CPU per number is reported).
 * For each session count the server under test runs as its own process
 * (`server.ts --interval 1s`, V8's `--trace-gc` on), the driver opens the
 * sessions, waits for them to settle and measures a steady window: RSS per
 * session (growth from idle to the window's end), the slope between session
 * counts (KiB per extra session), lateness p50/p99/p99.9 of every number
 * against its session's grid (kernel receive timestamps), server and driver
 * CPU per number, delivered %, and GC pauses inside the window. With
 * `--baseline REV` the same runs alternate with a `git worktree` of REV, in
 * one run; each side is driven in its own protocol version (read from its
 * PROTOCOL.md), so `--baseline 35b3d16` compares with protocol 1.
 *
 * ```sh
 * flock /tmp/bench.lock deno task bench:scale [--baseline REV] [--sessions 5000,10000] [--steady 60s]
 *   [--settle 5s] [--rate 1000] [--interval 1s] [--rounds 1] [--poll 2ms] [--no-trace-gc]
 *   [--server-v8-flags=--max-semi-space-size=1] [--json]
 * flock /tmp/bench.lock deno task bench:scale --baseline 35b3d16 --sessions 5000,10000 --rounds 2
 * deno task bench:scale --sessions 200 --steady 5s     # a smoke run
 * ```
 *
 * Needs the Go toolchain (`go`, Debian `golang-go`) to build the driver, and
 * `-A` (it reads `/proc`, runs git, go and the server). Sessions per run are
 * at most 19,000: one driver process holds one socket per session, and a
 * process may have 20,000 file descriptors; the server is started with
 * `--max-connections 19800`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parseDuration } from "../cli/duration.ts";
import { freePort, ROOT, runToEnd, spawn } from "../internal/spawn.ts";
import { hostBusyS } from "../load/_proc.ts";
import {
  buildDriver,
  type DriverSummary,
  GoMissingError,
  runDriver,
} from "./_driver.ts";
import { type GcSummary, summarizeGc } from "./_gc_trace.ts";

/** A mistake in the command line: a message, exit status 2, no stack trace. */
class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The driver's file limit: one socket per session in one process. */
const MAX_SESSIONS = 19_000;

interface Settings {
  baseline: string | undefined;
  sessions: number[];
  steady: string;
  settle: string;
  rate: number;
  interval: string;
  rounds: number;
  poll: string;
  traceGc: boolean;
  serverV8Flags: string[];
  json: boolean;
}

function settings(args: string[]): Settings {
  const { values } = parseArgs({
    args,
    options: {
      baseline: { type: "string" },
      sessions: { type: "string", default: "5000,10000" },
      steady: { type: "string", default: "60s" },
      settle: { type: "string", default: "5s" },
      rate: { type: "string", default: "1000" },
      interval: { type: "string", default: "1s" },
      rounds: { type: "string", default: "1" },
      poll: { type: "string", default: "2ms" },
      "no-trace-gc": { type: "boolean", default: false },
      "server-v8-flags": { type: "string", default: "" },
      json: { type: "boolean", default: false },
    },
  });
  const sessions = values.sessions.split(",").map((s) => Number(s.trim()));
  for (const n of sessions) {
    if (!Number.isInteger(n) || n < 1 || n > MAX_SESSIONS) {
      throw new UsageError(
        `--sessions takes a comma-separated list of 1..${MAX_SESSIONS} (one driver process may hold 20,000 sockets), got "${values.sessions}"`,
      );
    }
  }
  const rounds = Number(values.rounds), rate = Number(values.rate);
  if (!Number.isInteger(rounds) || rounds < 1) {
    throw new UsageError(
      `--rounds must be a whole number ≥ 1, got "${values.rounds}"`,
    );
  }
  if (!(rate > 0)) {
    throw new UsageError(`--rate must be above 0, got "${values.rate}"`);
  }
  for (
    const [flag, v] of [["steady", values.steady], ["settle", values.settle], [
      "interval",
      values.interval,
    ], ["poll", values.poll]] as const
  ) {
    try {
      parseDuration(v);
    } catch {
      throw new UsageError(
        `--${flag} must be a duration such as 60s or 500ms, got "${v}"`,
      );
    }
  }
  if (parseDuration(values.steady) <= 0) {
    throw new UsageError(`--steady must be above 0, got "${values.steady}"`);
  }
  return {
    baseline: values.baseline,
    sessions,
    steady: values.steady,
    settle: values.settle,
    rate,
    interval: values.interval,
    rounds,
    poll: values.poll,
    traceGc: !values["no-trace-gc"],
    serverV8Flags: values["server-v8-flags"].split(/[\s,]+/).filter(Boolean),
    json: values.json,
  };
}

/** A tree to measure: this one, or the baseline's worktree. */
interface Side {
  name: "before" | "after";
  rev: string;
  dir: string;
  protocol: number;
}

/** The figures of one run (one side, one session count, one round). */
interface RunFigures {
  side: Side["name"];
  rev: string;
  sessions: number;
  round: number;
  ok: boolean;
  serverUsPerNumber: number;
  driverUsPerNumber: number;
  rssKiBPerSession: number;
  /** RSS growth from idle to the window's end (KiB). */
  rssGrowthKiB: number;
  latenessP50Ms: number;
  latenessP99Ms: number;
  latenessP999Ms: number;
  latenessMaxMs: number;
  deliveredPct: number;
  passed: number;
  acksPerNumber: number;
  serverCpuPct: number;
  gc: GcSummary | undefined;
  /** Busy cores of the whole host during the run (ours and everyone else's). */
  hostCores: number;
  driver: DriverSummary;
}

async function git(args: string[]): Promise<string> {
  const out = await runToEnd("git", ["-C", ROOT.pathname, ...args]);
  if (out.code !== 0) {
    throw new Error(`git ${args.join(" ")} failed: ${out.stderr.trim()}`);
  }
  return out.stdout.trim();
}

/** The protocol version a tree speaks, from the first line of its PROTOCOL.md. */
async function protocolOf(dir: string): Promise<number> {
  const text = await Deno.readTextFile(`${dir}/PROTOCOL.md`);
  const m = /version (\d+)/.exec(text.split("\n", 1)[0]!);
  if (!m) throw new Error(`${dir}/PROTOCOL.md: no "version N" in its title`);
  return Number(m[1]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One server process of `side`, the driver against it, the figures. */
async function measure(
  s: Settings,
  exe: string,
  side: Side,
  sessions: number,
  round: number,
): Promise<RunFigures> {
  const port = freePort();
  const gcLines: Array<{ at: number; line: string }> = [];
  const v8 = [...(s.traceGc ? ["--trace-gc"] : []), ...s.serverV8Flags];
  // V8 prints its GC trace with C stdio, block-buffered into a pipe:
  // `stdbuf -oL` makes it line-buffered, so each line arrives when the
  // collection ran (it execs the server: same pid).
  const [cmd, pre] = s.traceGc
    ? ["stdbuf", ["-oL", Deno.execPath()]]
    : [Deno.execPath(), []];
  await using server = spawn(cmd, [
    ...pre,
    "run",
    "--quiet",
    "--allow-net",
    "--allow-env",
    "--allow-read",
    "--allow-write",
    ...(v8.length ? [`--v8-flags=${v8.join(",")}`] : []),
    "server.ts",
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
    "--interval",
    s.interval,
    "--max-connections",
    "19800",
    "--log-level",
    "warn",
  ], {
    cwd: side.dir,
    // V8 prints its GC trace on stdout; the time each line arrives places
    // it inside or outside the driver's steady window.
    stdout: { onLine: (line) => gcLines.push({ at: Date.now(), line }) },
    stderr: "collect",
  });
  await server.waitForPort(port, "127.0.0.1", 30_000);
  await sleep(1000); // idle: the RSS baseline is taken after start-up
  const busy0 = await hostBusyS(), t0 = performance.now();
  const run = await runDriver(exe, [
    "-addr",
    `127.0.0.1:${port}`,
    "-proto",
    String(side.protocol),
    "-sessions",
    String(sessions),
    "-rate",
    String(s.rate),
    "-interval",
    s.interval,
    "-settle",
    s.settle,
    "-steady",
    s.steady,
    "-poll",
    s.poll,
    "-server-pid",
    String(server.pid),
    "-quiet",
  ]);
  const hostCores = ((await hostBusyS()) - busy0) /
    ((performance.now() - t0) / 1000);
  await server.stop({ graceMs: 5000 });
  const d = run.summary;
  const st = d?.steady;
  if (!d || !st?.server) {
    throw new Error(
      `driver against ${side.rev} at ${sessions} sessions gave no figures (exit ${run.code}):\n${run.stderr}\nserver:\n${
        server.stderr.join("\n")
      }`,
    );
  }
  const inWindow = gcLines.filter((l) =>
    l.at >= st.fromUnixMs && l.at < st.toUnixMs
  ).map((l) => l.line);
  return {
    side: side.name,
    rev: side.rev,
    sessions,
    round,
    ok: d.ok,
    serverUsPerNumber: st.server.usPerNumber,
    driverUsPerNumber: st.driverUsPerNumber,
    rssKiBPerSession: st.server.rssKiBPerSession,
    rssGrowthKiB: st.server.rssKiBSteadyEnd - st.server.rssKiBIdle,
    latenessP50Ms: st.latenessMs.p50,
    latenessP99Ms: st.latenessMs.p99,
    latenessP999Ms: st.latenessMs.p999,
    latenessMaxMs: st.latenessMs.max,
    deliveredPct: d.deliveredPct,
    passed: d.outcomes.pass,
    acksPerNumber: st.acksPerNumber,
    serverCpuPct: st.server.cpuPct,
    gc: s.traceGc ? summarizeGc(inWindow) : undefined,
    hostCores: +hostCores.toFixed(2),
    driver: d,
  };
}

function median(xs: number[]): number {
  const v = [...xs].sort((a, b) => a - b);
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

const range = (xs: number[]) =>
  xs.length > 1 ? `${Math.min(...xs)}–${Math.max(...xs)}` : `${xs[0]}`;

/** The slope of RSS growth between consecutive session counts, per side and round (KiB per extra session). */
function slopes(runs: RunFigures[], s: Settings) {
  const out: Array<
    {
      side: string;
      rev: string;
      round: number;
      from: number;
      to: number;
      kibPerSession: number;
    }
  > = [];
  const sorted = [...s.sessions].sort((a, b) => a - b);
  for (const side of ["before", "after"] as const) {
    for (let r = 1; r <= s.rounds; r++) {
      for (let i = 1; i < sorted.length; i++) {
        const a = runs.find((x) =>
          x.side === side && x.round === r && x.sessions === sorted[i - 1]
        );
        const b = runs.find((x) =>
          x.side === side && x.round === r && x.sessions === sorted[i]
        );
        if (!a || !b) continue;
        out.push({
          side,
          rev: a.rev,
          round: r,
          from: a.sessions,
          to: b.sessions,
          kibPerSession:
            +((b.rssGrowthKiB - a.rssGrowthKiB) / (b.sessions - a.sessions))
              .toFixed(2),
        });
      }
    }
  }
  return out;
}

function report(
  runs: RunFigures[],
  s: Settings,
  sides: Side[],
  goVersion: string,
): void {
  const slope = slopes(runs, s);
  if (s.json) {
    console.log(JSON.stringify({ settings: s, sides, runs, slopes: slope }));
    return;
  }
  console.log(
    `bench:scale, interval ${s.interval}, steady ${s.steady} after ${s.settle}, opening ${s.rate}/s, ${s.rounds} round(s); driver: bench/driver (${goVersion}), poll ${s.poll}`,
  );
  for (const side of sides) {
    console.log(
      `  ${side.name}: ${side.rev} (protocol ${side.protocol}) in ${side.dir}`,
    );
  }
  console.log("\nEvery run:");
  console.table(runs.map((r) => ({
    side: r.side,
    N: r.sessions,
    round: r.round,
    "server µs/num": r.serverUsPerNumber,
    "driver µs/num": r.driverUsPerNumber,
    "KiB/session": r.rssKiBPerSession,
    "late p50": r.latenessP50Ms,
    "p99": r.latenessP99Ms,
    "p99.9": r.latenessP999Ms,
    "max": r.latenessMaxMs,
    "delivered %": r.deliveredPct,
    "passed": r.passed,
    "young GC n/ms": r.gc ? `${r.gc.young}/${r.gc.youngPauseMs}` : "-",
    "full GC n/ms (max)": r.gc
      ? `${r.gc.full}/${r.gc.fullPauseMs} (${r.gc.maxPauseMs})`
      : "-",
    "host cores": r.hostCores,
  })));
  console.log("\nMedians (range) per side and session count:");
  const rows = [];
  for (const side of sides) {
    for (const n of s.sessions) {
      const rs = runs.filter((r) => r.side === side.name && r.sessions === n);
      if (!rs.length) continue;
      const f = (k: keyof RunFigures) => {
        const xs = rs.map((r) => r[k] as number);
        return `${+median(xs).toFixed(2)} (${range(xs)})`;
      };
      rows.push({
        side: `${side.name} ${side.rev}`,
        N: n,
        "server µs/num": f("serverUsPerNumber"),
        "driver µs/num": f("driverUsPerNumber"),
        "KiB/session": f("rssKiBPerSession"),
        "late p50 ms": f("latenessP50Ms"),
        "p99": f("latenessP99Ms"),
        "p99.9": f("latenessP999Ms"),
        "delivered %": f("deliveredPct"),
      });
    }
  }
  console.table(rows);
  if (slope.length) {
    console.log("\nRSS slope between session counts (KiB per extra session):");
    console.table(slope);
  }
  if (sides.length === 2) {
    console.log("\nServer CPU per number, after / before, same round and N:");
    console.table(
      runs.filter((r) => r.side === "after").map((a) => {
        const b = runs.find((x) =>
          x.side === "before" && x.round === a.round &&
          x.sessions === a.sessions
        );
        return b
          ? {
            N: a.sessions,
            round: a.round,
            before: b.serverUsPerNumber,
            after: a.serverUsPerNumber,
            ratio: +(a.serverUsPerNumber / b.serverUsPerNumber).toFixed(2),
          }
          : undefined;
      }).filter(Boolean),
    );
  }
  const failed = runs.filter((r) => !r.ok);
  if (failed.length) {
    console.log(
      `\n${failed.length} run(s) had sessions that did not pass: ${
        failed.map((r) =>
          `${r.side} N=${r.sessions} round ${r.round}: ${
            JSON.stringify(r.driver.outcomes)
          } ${JSON.stringify(r.driver.firstErrors)}`
        ).join("; ")
      }`,
    );
  }
}

async function main(): Promise<number> {
  let s: Settings;
  try {
    s = settings(Deno.args);
  } catch (err) {
    if (err instanceof UsageError || err instanceof TypeError) {
      console.error(`bench:scale: ${err.message}`);
      return 2;
    }
    throw err;
  }
  const tmp = await Deno.makeTempDir({ prefix: "seqstream-scale-" });
  let worktree: string | undefined;
  try {
    let exe: string;
    try {
      exe = await buildDriver(tmp);
    } catch (err) {
      if (err instanceof GoMissingError) {
        console.error(`bench:scale: ${err.message}`);
        return 1;
      }
      throw err;
    }
    const goVersion = (await runToEnd("go", ["version"])).stdout.trim();
    const head = await git(["rev-parse", "--short", "HEAD"]);
    const dirty = (await git(["status", "--porcelain"])) !== "";
    const here = ROOT.pathname.replace(/\/$/, "");
    const sides: Side[] = [{
      name: "after",
      rev: head + (dirty ? "+" : ""),
      dir: here,
      protocol: await protocolOf(here),
    }];
    if (s.baseline !== undefined) {
      const rev = await git(["rev-parse", "--short", s.baseline]);
      worktree = `${tmp}/baseline`;
      await git(["worktree", "add", "--detach", worktree, rev]);
      sides.unshift({
        name: "before",
        rev,
        dir: worktree,
        protocol: await protocolOf(worktree),
      });
    }
    const runs: RunFigures[] = [];
    for (let round = 1; round <= s.rounds; round++) {
      for (const [i, n] of s.sessions.entries()) {
        // Alternate which side goes first, so a drift in load favours neither.
        const order = (round + i) % 2 ? [...sides].reverse() : sides;
        for (const side of order) {
          const r = await measure(s, exe, side, n, round);
          runs.push(r);
          console.error(
            `round ${round} ${side.name} ${side.rev} N=${n}: server ${r.serverUsPerNumber} µs/number, driver ${r.driverUsPerNumber}, ${r.rssKiBPerSession} KiB/session, lateness p99 ${r.latenessP99Ms} ms, delivered ${r.deliveredPct}%, host ${r.hostCores} cores`,
          );
        }
      }
    }
    report(runs, s, sides, goVersion);
    return runs.every((r) => r.ok) ? 0 : 1;
  } finally {
    if (worktree) await git(["worktree", "remove", "--force", worktree]);
    await Deno.remove(tmp, { recursive: true });
  }
}

Deno.exit(await main());
