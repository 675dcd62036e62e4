/**
 * What `bench:server` and `bench:client` share: their flags, the session
 * count that keeps every session streaming through the window, and a real
 * server process on a free port.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parseDuration } from "../cli/duration.ts";
import {
  FD_BOUND_MAX_CONNECTIONS,
  spawnServerProcess,
} from "../internal/server_process.ts";
import { freePort, type Process } from "../internal/spawn.ts";

/** How long the server may take to accept connections (ms). */
const SERVER_START_TIMEOUT_MS = 10_000;

/** The parsed flags of a CPU benchmark. */
export interface BenchSettings {
  sessions: number;
  interval: string;
  intervalMs: number;
  seconds: number;
  /** Sessions start spread over the interval, or over `--ramp` when longer. */
  rampMs: number;
  /** Numbers per session: enough to outlast the ramp and the window. */
  count: number;
  json: boolean;
  /** Write the server's V8 CPU profile into this folder. */
  cpuProf: string | undefined;
  /** V8 flags for the server (`--max-semi-space-size=1`), through `DENO_V8_FLAGS`. */
  serverV8Flags: string | undefined;
}

/** Parses `--sessions --interval --seconds --ramp --json`. */
export function benchSettings(args: string[]): BenchSettings {
  const { values } = parseArgs({
    args,
    options: {
      sessions: { type: "string", default: "2000" },
      interval: { type: "string", default: "100ms" },
      seconds: { type: "string", default: "10" },
      ramp: { type: "string", default: "0" },
      json: { type: "boolean", default: false },
      "cpu-prof": { type: "string" },
      "server-v8-flags": { type: "string" },
    },
  });
  const intervalMs = parseDuration(values.interval);
  const seconds = Number(values.seconds);
  const rampMs = Math.max(intervalMs, parseDuration(values.ramp));
  return {
    sessions: Number(values.sessions),
    interval: values.interval,
    intervalMs,
    seconds,
    rampMs,
    count: Math.ceil((seconds * 1000 + rampMs + 4000) / intervalMs),
    json: values.json,
    cpuProf: values["cpu-prof"],
    serverV8Flags: values["server-v8-flags"],
  };
}

/**
 * Starts `server.ts` on a free port with `interval` and waits until it
 * accepts connections; its log (warnings) goes to this process's stderr.
 */
export async function benchServer(
  interval: string,
  opts: { cpuProf?: string | undefined; v8Flags?: string | undefined } = {},
): Promise<{ port: number; server: Process }> {
  const port = freePort();
  // The child inherits this process's environment as it is at spawn.
  if (opts.v8Flags) Deno.env.set("DENO_V8_FLAGS", opts.v8Flags);
  const server = spawnServerProcess({
    cpuProf: opts.cpuProf
      ? { dir: opts.cpuProf, name: "server.cpuprofile" }
      : undefined,
    port,
    flags: [
      "--interval",
      interval,
      "--max-connections",
      String(FD_BOUND_MAX_CONNECTIONS),
      "--log-level",
      "warn",
    ],
    stderr: "inherit",
  });
  if (opts.v8Flags) Deno.env.delete("DENO_V8_FLAGS");
  try {
    await server.waitForPort(port, "127.0.0.1", SERVER_START_TIMEOUT_MS);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return { port, server };
}
