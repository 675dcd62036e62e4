/**
 * `--store redis`: a `redis-server` of the run's own on a free loopback port
 * (no persistence), and its `INFO commandstats` at the end of the run.
 *
 * @module
 */

import { freePortOn } from "../internal/spawn.ts";

/** A running redis-server owned by the load run. */
export interface OwnRedis {
  readonly url: string;
  readonly port: number;
  /** Calls per command (`INFO commandstats`), e.g. `{ get: 10, set: 3 }`. */
  commandStats(): Promise<Record<string, number>>;
  /** SIGTERM, then waits for it to exit. */
  stop(): Promise<void>;
}

/** Starts `redis-server` on 127.0.0.1 and waits until it answers PING (10 s at most). */
export async function startOwnRedis(): Promise<OwnRedis> {
  const port = freePortOn(["127.0.0.1"]);
  const child = new Deno.Command("redis-server", {
    args: [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--maxclients",
      "10000",
      "--loglevel",
      "warning",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const cli = async (...args: string[]) => {
    const out = await new Deno.Command("redis-cli", {
      args: ["-h", "127.0.0.1", "-p", String(port), ...args],
      stdout: "piped",
      stderr: "null",
    }).output();
    return new TextDecoder().decode(out.stdout);
  };
  const deadline = Date.now() + 10_000;
  while ((await cli("PING")).trim() !== "PONG") {
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      await child.status;
      throw new Error(
        `redis-server did not answer PING on port ${port} (is it installed? apt-get install -y redis-server)`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async commandStats() {
      const out: Record<string, number> = {};
      for (
        const m of (await cli("INFO", "commandstats")).matchAll(
          /^cmdstat_([^:]+):calls=(\d+)/gm,
        )
      ) out[m[1]!] = Number(m[2]);
      return out;
    },
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      await child.status;
    },
  };
}
