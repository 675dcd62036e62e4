/**
 * `server.ts` as a real process, the way the load tool and the CPU
 * benchmarks run it: the task's permissions, a host and port, and the
 * server flags the caller chooses.
 *
 * @module
 */

import { type Output, type Process, spawnDeno } from "./spawn.ts";

/** What `deno task server` grants the server (deno.json). */
export const SERVER_PERMISSIONS = {
  net: true,
  env: true,
  read: true,
  write: true,
} as const;

/**
 * `--max-connections` for load runs on one host: the process's file limit is
 * 20,000, so this leaves room for the store, the metrics port and logs.
 */
export const FD_BOUND_MAX_CONNECTIONS = 19_800;

/** Options of {@link spawnServerProcess}. */
export interface ServerProcessOptions {
  hostname?: string;
  port: number;
  /** Other server flags: `["--interval", "100ms", …]`. */
  flags?: readonly string[];
  /** `--reuse-port`, with the unstable net API it needs. */
  reusePort?: boolean;
  /** Write a V8 CPU profile `name` into `dir`. */
  cpuProf?: { dir: string; name: string } | undefined;
  /** Where its stderr (the log) goes; default collected. */
  stderr?: Output;
}

/** Starts `server.ts` (not waiting for it: use the process's `waitFor…`). */
export function spawnServerProcess(opts: ServerProcessOptions): Process {
  return spawnDeno(
    "server.ts",
    [
      "--host",
      opts.hostname ?? "127.0.0.1",
      "--port",
      String(opts.port),
      ...(opts.reusePort ? ["--reuse-port"] : []),
      ...(opts.flags ?? []),
    ],
    {
      permissions: SERVER_PERMISSIONS,
      ...(opts.reusePort ? { unstable: ["net"] } : {}),
      ...(opts.cpuProf
        ? {
          denoFlags: [
            "--cpu-prof",
            `--cpu-prof-dir=${opts.cpuProf.dir}`,
            `--cpu-prof-name=${opts.cpuProf.name}`,
          ],
        }
        : {}),
      stdout: "null",
      stderr: opts.stderr ?? "collect",
    },
  );
}
