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
 * deno task load --clients 10000 --servers 2 --store redis --ramp 30s --window 60s --kill 0@45s
 * ```
 *
 * Clients run in `load/worker.ts` child processes (each under ~14,000
 * sockets, proxied clients counting three), spread over several destination
 * addresses so no (source, destination) pair runs out of ephemeral ports.
 * They use the lean client (`lean_client.ts`: the real session state machine
 * on a minimal loop) unless `--client real`; the fault fraction always uses
 * the real client. `--kill I@TIME` kills a server mid-run (storm.ts);
 * `--store redis` starts a redis-server for the run (redis.ts).
 * Exit status 0 when every client passed, every server ended in zero state
 * and every `--threshold` held; 1 when a client or a server failed; 99 when
 * only a threshold failed (as k6); 64 on a usage error.
 *
 * The run's phases, one module each: {@link parseConfig} (config.ts),
 * spawn ({@link startServers} in servers.ts, {@link startWorkers} in
 * workers.ts), sample ({@link startSampler} in sampler.ts), aggregate
 * ({@link aggregate} in aggregate.ts), settle ({@link awaitZeroState} in
 * zero_state.ts) and verdict ({@link buildReport} in report.ts).
 *
 * @module
 */

import { runMain, writeErr, writeOut } from "../cli/main.ts";
import { aggregate } from "./aggregate.ts";
import {
  CLIENTS_PER_DESTINATION,
  type Config,
  FLAGS,
  parseConfig,
  SETTLE_MS,
} from "./config.ts";
import { readProc, tcpCounters } from "./_proc.ts";
import { buildReport, exitCode, type LoadReport, table } from "./report.ts";
import { commandLine, runMeta } from "./run_meta.ts";
import { renderReportHtml } from "./report_html.ts";
import { startSampler } from "./sampler.ts";
import {
  type ServerGroup,
  type ServerProc,
  startServers,
  stopServers,
} from "./servers.ts";
import { startWorkers, type Workers } from "./workers.ts";
import { type OwnRedis, startOwnRedis } from "./redis.ts";
import { startStorm, type Storm, stormFigures } from "./storm.ts";
import { awaitZeroState } from "./zero_state.ts";

const CLI = {
  name: "seqstream-load",
  usage: "Usage: deno task load [options]",
  flags: FLAGS,
};

/** Grace for servers still running when a run fails (ms). */
const CLEANUP_GRACE_MS = 2000;

/**
 * Runs the load test described by `cfg`; `stop` interrupts it (the report
 * still comes). `command` is the command line the report shows.
 */
export async function run(
  cfg: Config,
  stop: AbortSignal,
  command = "(library call)",
): Promise<LoadReport> {
  const startedAt = Date.now();
  const runDir = await Deno.makeTempDir({ prefix: "seqstream-load-" });
  const tcp0 = await tcpCounters();
  let group: ServerGroup | undefined;
  let workers: Workers | undefined;
  let redis: OwnRedis | undefined;
  let storm: Storm | undefined;
  try {
    if (cfg.ownRedis) {
      redis = await startOwnRedis();
      writeErr(`load: redis-server of this run at ${redis.url}\n`);
    }
    const store = redis?.url ?? cfg.store.replace("<run dir>", runDir);
    if (cfg.servers > 0) {
      group = await startServers(cfg.servers, cfg.hosts, {
        intervalMs: cfg.intervalMs,
        ttlMs: cfg.ttlMs,
        maxConnections: cfg.maxConnections,
        store,
        logLevel: cfg.serverLogLevel,
        cpuProfDir: cfg.cpuProfDir,
        logDir: runDir,
      });
      writeErr(
        `load: ${cfg.servers} server(s) on ${
          group.addrs.join(", ")
        } port ${group.port}, logs in ${runDir}\n`,
      );
    }
    const servers: readonly ServerProc[] = group?.servers ?? [];
    const targets = group?.targets ?? cfg.targets;
    // Scraped by the sampler and the settle phase; a killed server is taken out.
    const metrics = group ? servers.map((s) => s.metrics) : [...cfg.metrics];
    const kill = cfg.kill;

    workers = startWorkers(cfg, targets, stop);
    if (kill && group) {
      const victim = servers[kill.index]!;
      storm = startStorm({
        victim,
        survivors: servers.filter((s) =>
          s !== victim && s.target.hostname === victim.target.hostname
        ),
        port: group.port,
        killAt: workers.startAt + kill.atMs,
        onKill() {
          metrics.splice(metrics.indexOf(victim.metrics), 1);
          writeErr(`load: killed server ${kill.index} (pid ${victim.pid})\n`);
        },
      });
    }
    const sampler = startSampler({
      serverPids: servers.map((s) => s.pid),
      metrics,
      workers,
      clients: cfg.clients,
    });
    await workers.done;
    const clientsEndedAt = Date.now();

    const totals = aggregate(workers.results, cfg.clients);
    const settleMs = cfg.settleMs ??
      (totals.passed === cfg.clients && cfg.faultFraction === 0
        ? SETTLE_MS
        : cfg.ttlMs + SETTLE_MS);
    const live = await awaitZeroState(metrics, settleMs, stop);
    // Aligned with `servers` again: null for a killed one.
    const zero = group
      ? {
        ...live,
        finalScrapes: servers.map((s) => {
          const i = metrics.indexOf(s.metrics);
          return i < 0 ? null : live.finalScrapes[i] ?? null;
        }),
      }
      : live;
    await sampler.stop();
    await storm?.stop();
    const redisCalls = await redis?.commandStats();
    const endProcs = await Promise.all(servers.map((s) => readProc(s.pid)));
    const exits = await stopServers(servers);
    const tcp1 = await tcpCounters();
    return buildReport({
      cfg,
      store,
      targets,
      runDir,
      totals,
      samples: sampler.samples,
      lastProc: sampler.lastProc,
      servers,
      endProcs,
      exits,
      workerPids: workers.procs.map((p) => p.pid),
      zero,
      tcp0,
      tcp1,
      startAt: workers.startAt,
      clientsEndedAt,
      killedIndex: kill?.index,
      failover: kill && storm
        ? stormFigures({
          index: kill.index,
          pid: servers[kill.index]!.pid,
          killAtS: kill.atMs / 1000,
          killAt: workers.startAt + kill.atMs,
          killedAt: storm.killedAt,
          samples: storm.samples,
          lostAfterKill: totals.lostAfterKill,
          cutReasons: totals.cutReasons,
          resumeAfterKill: totals.resumeAfterKill,
          waveBins: totals.waveBins,
        })
        : undefined,
      redisCalls,
      meta: runMeta(startedAt, Date.now(), command),
      thresholds: cfg.thresholds,
    });
  } finally {
    workers?.kill();
    await storm?.stop();
    await stopServers(group?.servers ?? [], CLEANUP_GRACE_MS);
    await redis?.stop();
  }
}

/** The command line: flags in, report out; exit 0 on PASS, 1 on FAIL. */
export function main(args: string[]): Promise<number> {
  return runMain(CLI, args, async (flags, { signal }) => {
    const cfg = parseConfig(flags);
    const perDestination = Math.ceil(
      cfg.clients / Math.max(1, cfg.hosts || cfg.targets.length),
    );
    if (perDestination > CLIENTS_PER_DESTINATION) {
      writeErr(
        `seqstream-load: warning: ${perDestination} clients per destination may exhaust ephemeral ports\n`,
      );
    }
    // --report draws the per-second samples: keep them, print them only with --timeline.
    const command = commandLine(args);
    const report = await run(
      cfg.reportPath ? { ...cfg, timeline: true } : cfg,
      signal,
      command,
    );
    if (cfg.reportPath) {
      await Deno.writeTextFile(
        cfg.reportPath,
        renderReportHtml(report, report.timeline ?? [], command),
      );
      if (!cfg.timeline) delete report.timeline;
      writeErr(`load: HTML report written to ${cfg.reportPath}\n`);
    }
    writeOut(
      (cfg.json ? JSON.stringify(report, null, 2) : table(report)) + "\n",
    );
    return exitCode(report);
  });
}

if (import.meta.main) Deno.exit(await main(Deno.args));
