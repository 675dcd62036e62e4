/**
 * Server processes for a load run: `deno run server.ts --reuse-port …` per
 * server, grouped on loopback addresses, with a `/metrics` scrape for each.
 *
 * @module
 */

import type { Target } from "./worker.ts";

const ROOT = new URL("../", import.meta.url);

/** A spawned server process. */
export interface ServerProc {
  readonly pid: number;
  readonly target: Target;
  readonly metrics: Target;
  readonly logPath: string;
  readonly status: Promise<Deno.CommandStatus>;
  /** Sends SIGTERM (graceful shutdown) and waits; SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<Deno.CommandStatus>;
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

/** Whether every address accepts a listener on `port`. */
function portFreeOn(hosts: string[], port: number): boolean {
  const held: Deno.Listener[] = [];
  try {
    for (const hostname of hosts) held.push(Deno.listen({ hostname, port }));
    return true;
  } catch {
    return false;
  } finally {
    for (const l of held) l.close();
  }
}

/** A port that is free on every one of `hosts` right now (small race until used). */
export function freePort(hosts: string[]): number {
  for (let i = 0; i < 50; i++) {
    const probe = Deno.listen({ hostname: hosts[0]!, port: 0 });
    const port = (probe.addr as Deno.NetAddr).port;
    probe.close();
    if (portFreeOn(hosts, port)) return port;
  }
  throw new Error(`No port is free on all of ${hosts.join(", ")}`);
}

/** Spawns one server and waits until its `/healthz` answers. */
export async function spawnServer(
  index: number,
  target: Target,
  s: ServerSettings,
): Promise<ServerProc> {
  const metrics = {
    hostname: target.hostname,
    port: freePort([target.hostname]),
  };
  const logPath = `${s.logDir}/server-${index}.log`;
  const args = [
    "run",
    "--allow-net",
    "--allow-env",
    "--allow-read",
    "--allow-write",
    "--unstable-net", // SO_REUSEPORT is behind it in Deno 2.9
    ...(s.cpuProfDir
      ? [
        "--cpu-prof",
        `--cpu-prof-dir=${s.cpuProfDir}`,
        `--cpu-prof-name=server-${index}.cpuprofile`,
      ]
      : []),
    "server.ts",
    "--host",
    target.hostname,
    "--port",
    String(target.port),
    "--reuse-port",
    "--metrics-port",
    String(metrics.port),
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
  ];
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const log = await Deno.open(logPath, {
    write: true,
    create: true,
    truncate: true,
  });
  void child.stderr.pipeTo(log.writable).catch(() => {});
  const proc: ServerProc = {
    pid: child.pid,
    target,
    metrics,
    logPath,
    status: child.status,
    async stop(graceMs = 15_000) {
      try {
        child.kill("SIGTERM");
      } catch { /* exited */ }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* exited */ }
      }, graceMs);
      const st = await child.status;
      clearTimeout(timer);
      return st;
    },
  };
  const deadline = Date.now() + 30_000;
  while (true) {
    const exited = await Promise.race([
      child.status,
      new Promise((r) => setTimeout(r, 100, null)),
    ]);
    if (exited !== null) {
      throw new Error(`Server ${index} exited during start-up; see ${logPath}`);
    }
    if ((await scrape(metrics)) !== null) return proc;
    if (Date.now() > deadline) {
      await proc.stop(1000);
      throw new Error(
        `Server ${index} did not answer /metrics within 30s; see ${logPath}`,
      );
    }
  }
}

/** Unlabelled samples of a `/metrics` scrape, or `null` if it cannot be read. */
export async function scrape(
  metrics: Target,
  timeoutMs = 2000,
): Promise<Map<string, number> | null> {
  try {
    const res = await fetch(
      `http://${metrics.hostname}:${metrics.port}/metrics`,
      {
        signal: AbortSignal.timeout(timeoutMs),
      },
    );
    if (!res.ok) {
      await res.body?.cancel();
      return null;
    }
    const out = new Map<string, number>();
    for (const line of (await res.text()).split("\n")) {
      const m = /^([a-z_]+(?:\{[^}]*\})?) (\d+(?:\.\d+)?(?:e[+-]?\d+)?)$/.exec(
        line,
      );
      if (m) out.set(m[1]!, Number(m[2]));
    }
    return out;
  } catch {
    return null;
  }
}
