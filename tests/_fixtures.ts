/**
 * Shared test fixtures: quiet servers on port 0 and a metrics scrape.
 *
 * @module
 */

import { LineLogger, type Logger } from "../common/logger.ts";
import { parseMetrics } from "../internal/metrics_scrape.ts";
import {
  type ServerHandle,
  type ServerOptions,
  startServer,
} from "../server/server.ts";

/** A logger that drops everything unless SEQSTREAM_TEST_LOG names a level. */
export function testLog(): Logger {
  const level = Deno.env.get("SEQSTREAM_TEST_LOG");
  return new LineLogger({ level: (level as "info") ?? "silent" });
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

/** Scrapes `/metrics` on `port`: unlabelled and labelled samples by their full name. */
export async function scrapePort(
  port: number,
  hostname = "127.0.0.1",
): Promise<Map<string, number>> {
  const res = await fetch(`http://${hostname}:${port}/metrics`);
  return parseMetrics(await res.text());
}

/** Scrapes an in-process server's `/metrics`. */
export function scrape(server: ServerHandle): Promise<Map<string, number>> {
  const a = server.metricsAddr!;
  return scrapePort(a.port, a.hostname);
}

/**
 * Polls `cond` every 10ms until it holds; throws with `what` after
 * `limit` (ms, or when the signal aborts).
 */
export async function eventually(
  cond: () => boolean | Promise<boolean>,
  what: string,
  limit: number | AbortSignal = 5000,
): Promise<void> {
  const signal = typeof limit === "number" ? AbortSignal.timeout(limit) : limit;
  while (!(await cond())) {
    if (signal.aborted) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Session ids `…-000000000001` upwards, distinct per `tag` (a hex digit string). */
export function ids(n: number, tag = "0"): string[] {
  return Array.from(
    { length: n },
    (_, i) =>
      `${tag.padStart(8, "0")}-0000-4000-8000-${
        String(i + 1).padStart(12, "0")
      }`,
  );
}
