/**
 * What `bench:server` and `bench:client` share: their flags, the session
 * count that keeps every session streaming through the window, and a real
 * server process on a free port.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parseDuration } from "../cli/duration.ts";

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
 * accepts connections.
 */
export async function benchServer(
  interval: string,
): Promise<{ port: number; server: Deno.ChildProcess }> {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const server = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-env",
      "--allow-read",
      "--allow-write",
      "server.ts",
      "--port",
      String(port),
      "--interval",
      interval,
      "--max-connections",
      "19800",
      "--log-level",
      "warn",
    ],
    cwd: new URL("../", import.meta.url),
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  for (let i = 0;; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return { port, server };
    } catch (err) {
      if (i > 100) {
        server.kill("SIGTERM");
        await server.status;
        throw err;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
