/**
 * The HTTP side of a server: `GET /metrics` (Prometheus text) and
 * `GET /healthz` (200 `ok`, or 503 while shutting down).
 *
 * @module
 */

import { type MetricsSnapshot, renderPrometheus } from "./metrics.ts";

/** Options for {@link serveMetrics}. */
export interface MetricsHttpOptions {
  /** Interface to listen on. */
  hostname: string;
  /** Port; 0 picks one. */
  port: number;
  /** The current metrics. */
  metrics(): MetricsSnapshot;
  /** Whether the server is going away (`/healthz` answers 503). */
  shuttingDown(): boolean;
}

/** A running metrics endpoint. */
export interface MetricsHttp {
  /** Where it listens. */
  readonly addr: Deno.NetAddr;
  /** Stops listening and waits for requests in flight. */
  close(): Promise<void>;
}

/**
 * Starts the metrics endpoint.
 *
 * @throws {Deno.errors.AddrInUse} and other listen errors, synchronously
 * with the listen
 */
export function serveMetrics(opts: MetricsHttpOptions): MetricsHttp {
  const server = Deno.serve({
    hostname: opts.hostname,
    port: opts.port,
    onListen() {},
  }, (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/metrics") {
      return new Response(renderPrometheus(opts.metrics()), {
        headers: { "content-type": "text/plain; version=0.0.4" },
      });
    }
    if (path === "/healthz") {
      const down = opts.shuttingDown();
      return new Response(down ? "shutting down\n" : "ok\n", {
        status: down ? 503 : 200,
      });
    }
    return new Response("not found\n", { status: 404 });
  });
  return {
    addr: server.addr,
    close: () => server.shutdown(),
  };
}
