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
  };
}

/**
 * Starts `server.ts` on a free port with `interval` and waits until it
 * accepts connections; its log (warnings) goes to this process's stderr.
 */
export async function benchServer(
  interval: string,
): Promise<{ port: number; server: Process }> {
  const port = freePort();
  const server = spawnServerProcess({
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
  try {
    await server.waitForPort(port, "127.0.0.1", SERVER_START_TIMEOUT_MS);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return { port, server };
}
