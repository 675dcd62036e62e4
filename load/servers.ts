/**
 * Spawn phase, servers: `server.ts --reuse-port …` per server, grouped on
 * loopback addresses, each ready once its `/metrics` answers.
 *
 * @module
 */

import { type HostPort, scrape } from "../internal/metrics_scrape.ts";
import { spawnServerProcess } from "../internal/server_process.ts";
import { freePortOn, type Process } from "../internal/spawn.ts";

/** A spawned server process. */
export interface ServerProc {
  readonly process: Process;
  readonly pid: number;
  readonly target: HostPort;
  readonly metrics: HostPort;
  readonly logPath: string;
}

/** Settings shared by every server of a run. */
export interface ServerSettings {
  intervalMs: number;
  ttlMs: number;
  maxConnections: number;
  store: string;
  logLevel: string;
  /** Write a V8 CPU profile per server into this directory. */
  cpuProfDir?: string | undefined;
  /** Where server logs go. */
  logDir: string;
}

/** How long a server may take to answer `/metrics` after it is spawned (ms). */
const START_TIMEOUT_MS = 30_000;

/** Servers of a run: `count` processes on `hosts` loopback addresses sharing one port. */
export interface ServerGroup {
  servers: ServerProc[];
  /** One destination per address. */
  targets: HostPort[];
  addrs: string[];
  port: number;
}

/**
 * Starts `count` servers, `count / hosts` per address on 127.0.0.1..hosts
 * through SO_REUSEPORT, one after another; stops those started if one fails.
 *
 * @throws {Error} naming the server and its log when one does not start
 */
export async function startServers(
  count: number,
  hosts: number,
  s: ServerSettings,
): Promise<ServerGroup> {
  const addrs = Array.from({ length: hosts }, (_, i) => `127.0.0.${i + 1}`);
  const port = freePortOn(addrs);
  const targets = addrs.map((hostname) => ({ hostname, port }));
  const servers: ServerProc[] = [];
  try {
    for (let i = 0; i < count; i++) {
      servers.push(await startServer(i, targets[i % hosts]!, s));
    }
  } catch (err) {
    await stopServers(servers, 1000);
    throw err;
  }
  return { servers, targets, addrs, port };
}

/** Sends SIGTERM (graceful shutdown) to every server and waits; SIGKILL after `graceMs`. */
export function stopServers(
  servers: readonly ServerProc[],
  graceMs = 15_000,
): Promise<Deno.CommandStatus[]> {
  return Promise.all(servers.map((s) => s.process.stop({ graceMs })));
}

async function startServer(
  index: number,
  target: HostPort,
  s: ServerSettings,
): Promise<ServerProc> {
  const metrics = {
    hostname: target.hostname,
    port: freePortOn([target.hostname]),
  };
  const logPath = `${s.logDir}/server-${index}.log`;
  const process = spawnServerProcess({
    hostname: target.hostname,
    port: target.port,
    reusePort: true,
    cpuProf: s.cpuProfDir
      ? { dir: s.cpuProfDir, name: `server-${index}.cpuprofile` }
      : undefined,
    stderr: { file: logPath },
    flags: [
      "--metrics-port",
      String(metrics.port),
      "--metrics-host",
      metrics.hostname,
      "--interval",
      s.intervalMs === 0 ? "0" : `${s.intervalMs}ms`,
      "--session-ttl",
      `${s.ttlMs}ms`,
      "--max-connections",
      String(s.maxConnections),
      "--store",
      s.store,
      "--log-level",
      s.logLevel,
    ],
  });
  try {
    await process.waitUntil(
      "answering /metrics",
      async () => (await scrape(metrics)) !== null,
      { timeoutMs: START_TIMEOUT_MS, everyMs: 100 },
    );
  } catch (err) {
    await process.stop({ graceMs: 1000 });
    throw new Error(
      `Server ${index} did not start: ${
        (err as Error).message
      }; see ${logPath}`,
      { cause: err },
    );
  }
  return { process, pid: process.pid, target, metrics, logPath };
}
