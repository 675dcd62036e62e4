/**
 * Shared test fixtures: quiet servers on port 0 and a metrics scrape.
 *
 * @module
 */

import { Logger } from "../cli/log.ts";
import {
  type ServerHandle,
  type ServerOptions,
  startServer,
} from "../server/server.ts";

/** A logger that drops everything unless SEQSTREAM_TEST_LOG names a level. */
export function testLog(): Logger {
  const level = Deno.env.get("SEQSTREAM_TEST_LOG");
  return new Logger({ level: (level as "info") ?? "silent" });
}

/** Starts a server on 127.0.0.1:0 with millisecond timings and a metrics port. */
export function testServer(opts: ServerOptions = {}): Promise<ServerHandle> {
  return startServer({
    intervalMs: 2,
    ttlMs: 2000,
    metricsPort: 0,
    log: testLog(),
    ...opts,
  });
}

/** Scrapes `/metrics` over HTTP and returns the unlabelled samples by name. */
export async function scrape(
  server: ServerHandle,
): Promise<Map<string, number>> {
  const a = server.metricsAddr!;
  const res = await fetch(`http://${a.hostname}:${a.port}/metrics`);
  const text = await res.text();
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+(?:\{[^}]*\})?) (\d+(?:\.\d+)?)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** Polls `cond` every 10ms until true; throws after `timeoutMs`. */
export async function eventually(
  cond: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
