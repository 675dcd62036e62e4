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
 * Each side's server is launched as users launch it: with the V8 flags its
 * own tree's `deno task server` applies (deno.json `tasks.server`; today
 * `--max-semi-space-size=4` here, none in v1), `--trace-gc` added for the
 * GC figures; the report prints each side's flags. `--server-v8-flags`
 * replaces this tree's, `--baseline-v8-flags` the baseline's, and
 * `--variants name=flags,…` measures this tree once per named set of flags
 * in the same run. The report has one table per target of issue 18 with a
 * met/missed column (`bench/_scale_report.ts`), then every run;
 * `--markdown` prints it all as Markdown for BENCHMARKS.md, `--json` as
 * JSON, and `--plan` prints the runs and their estimated wall time without
 * running anything.
 *
 * ```sh
 * flock /tmp/bench.lock deno task bench:scale [--baseline REV] [--sessions 5000,10000] [--steady 60s]
 *   [--settle 5s] [--rate 1000] [--interval 1s] [--rounds 1] [--poll 2ms] [--no-trace-gc]
 *   [--server-v8-flags=--max-semi-space-size=1 | --variants semi4=--max-semi-space-size=4,semi8=--max-semi-space-size=8]
 *   [--baseline-v8-flags=…] [--json | --markdown] [--plan]
 * flock /tmp/bench.lock deno task bench:scale --baseline 35b3d16 --sessions 5000,10000,15000 --rounds 2 --markdown
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

import { freePort, ROOT, runToEnd, spawn } from "../internal/spawn.ts";
import { hostBusyS } from "../load/_proc.ts";
import { buildDriver, GoMissingError, runDriver } from "./_driver.ts";
import { benchMain, UsageError } from "./_flags.ts";
import { summarizeGc } from "./_gc_trace.ts";
import {
  launchV8Flags,
  planSeconds,
  runOrder,
  type ScaleSettings,
  scaleSettings,
  type Side,
  v8FlagsOfTask,
  variantFlags,
} from "./_scale_plan.ts";
import {
  describeRun,
  everyRunTable,
  markdownReport,
  type RunContext,
  type RunFigures,
  slopes,
  type Table,
  tableObjects,
  targetTables,
} from "./_scale_report.ts";

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
  s: ScaleSettings,
  exe: string,
  side: Side,
  sessions: number,
  round: number,
): Promise<RunFigures> {
  const port = freePort();
  const gcLines: Array<{ at: number; line: string }> = [];
  const v8 = launchV8Flags(side, s.traceGc);
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

/** The V8 flags `dir`'s `deno task server` applies. */
async function taskFlags(dir: string): Promise<string[]> {
  return v8FlagsOfTask(await Deno.readTextFile(`${dir}/deno.json`));
}

/** Prints a table: its title and note, then `console.table`. */
function printTable(t: Table): void {
  console.log(`\n${t.title}${t.note ? `\n  ${t.note}` : ""}`);
  console.table(tableObjects(t));
}

function report(
  runs: RunFigures[],
  s: ScaleSettings,
  sides: Side[],
  c: RunContext,
): void {
  if (s.json) {
    console.log(JSON.stringify({
      settings: s,
      context: c,
      sides,
      runs,
      slopes: slopes(runs, s.sessions),
      targets: targetTables(runs, sides, s),
    }));
    return;
  }
  if (s.markdown) {
    console.log(markdownReport(runs, s, sides, c));
  } else {
    for (const l of describeRun(s, sides, c)) console.log(l);
    for (const t of targetTables(runs, sides, s)) printTable(t);
    printTable(everyRunTable(runs));
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

/** This tree's sides, one per variant, and the baseline's when asked for. */
async function sidesOf(
  s: ScaleSettings,
  baselineDir: string | undefined,
): Promise<Side[]> {
  const head = await git(["rev-parse", "--short", "HEAD"]);
  const dirty = (await git(["status", "--porcelain"])) !== "";
  const here = ROOT.pathname.replace(/\/$/, "");
  const hereFlags = await taskFlags(here);
  const protocol = await protocolOf(here);
  const sides: Side[] = s.variants.map((v) => ({
    name: v.name,
    measured: true,
    rev: head + (dirty ? "+" : ""),
    dir: here,
    protocol,
    ...variantFlags(v, hereFlags),
  }));
  if (s.baseline !== undefined && baselineDir !== undefined) {
    sides.unshift({
      name: "before",
      measured: false,
      rev: await git(["rev-parse", "--short", s.baseline]),
      dir: baselineDir,
      protocol: await protocolOf(baselineDir),
      ...(s.baselineV8Flags
        ? {
          v8Flags: s.baselineV8Flags,
          v8FlagsFrom: "--baseline-v8-flags" as const,
        }
        : {
          v8Flags: await taskFlags(baselineDir),
          v8FlagsFrom: "deno.json task server" as const,
        }),
    });
  }
  return sides;
}

async function main(): Promise<number> {
  const s = scaleSettings(Deno.args);
  const command = `deno task bench:scale ${Deno.args.join(" ")}`.trim();
  const tmp = await Deno.makeTempDir({ prefix: "seqstream-scale-" });
  let worktree: string | undefined;
  try {
    if (s.baseline !== undefined) {
      const rev = await git(["rev-parse", "--short", s.baseline]).catch(
        (err) => {
          throw new UsageError(
            `--baseline: "${s.baseline}" names no commit here`,
            { cause: err },
          );
        },
      );
      worktree = `${tmp}/baseline`;
      await git(["worktree", "add", "--detach", worktree, rev]);
    }
    const sides = await sidesOf(s, worktree);
    if (s.plan) {
      const order = runOrder(s, sides.map((x) => x.name));
      for (
        const l of describeRun(s, sides, {
          command,
          goVersion: "not built: --plan",
          denoVersion: Deno.version.deno,
          startedAt: new Date().toISOString(),
          wallMinutes: 0,
        })
      ) console.log(l);
      console.log(
        `${order.length} runs, estimated ${
          (planSeconds(s, sides.length) / 60).toFixed(1)
        } min: ${
          order.map((r) => `${r.side}@${r.sessions}#${r.round}`).join(" ")
        }`,
      );
      return 0;
    }
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
    const startedAt = new Date().toISOString(), t0 = performance.now();
    const runs: RunFigures[] = [];
    for (const p of runOrder(s, sides.map((x) => x.name))) {
      const side = sides.find((x) => x.name === p.side)!;
      const r = await measure(s, exe, side, p.sessions, p.round);
      runs.push(r);
      console.error(
        `round ${p.round} ${side.name} ${side.rev} N=${p.sessions}: server ${r.serverUsPerNumber} µs/number, driver ${r.driverUsPerNumber}, ${r.rssKiBPerSession} KiB/session, lateness p99 ${r.latenessP99Ms} ms, delivered ${r.deliveredPct}%, host ${r.hostCores} cores`,
      );
    }
    report(runs, s, sides, {
      command,
      goVersion,
      denoVersion: Deno.version.deno,
      startedAt,
      wallMinutes: +((performance.now() - t0) / 60_000).toFixed(1),
    });
    return runs.every((r) => r.ok) ? 0 : 1;
  } finally {
    if (worktree) await git(["worktree", "remove", "--force", worktree]);
    await Deno.remove(tmp, { recursive: true });
  }
}

await benchMain("bench:scale", main);
