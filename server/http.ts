/**
 * The HTTP side of a server, on `--metrics-port`: `GET /metrics`
 * (Prometheus text), `GET /healthz` (200 `ok`, or 503 while shutting down)
 * and, when the server gives a dashboard source, the live dashboard:
 * `GET /` (the page and its files under `/assets/`), `GET /sessions` (a page
 * of live sessions as JSON) and `GET /info` (identity and settings). The
 * dashboard and `/sessions` disclose session ids: bind this port to a
 * trusted interface (`--metrics-host`, default 127.0.0.1).
 *
 * @module
 */

import { ASSETS, SECURITY_HEADERS } from "./dashboard/assets.ts";
import {
  type ServerInfo,
  type SessionsPage,
  type SessionsQuery,
  sessionsQuery,
} from "./dashboard/api.ts";
import type { HistoryJson } from "./dashboard/history.ts";
import type { Status } from "./dashboard/status.ts";
import {
  type MetricsSnapshot,
  type ProcessFigures,
  renderPrometheus,
} from "./metrics.ts";

/** What the dashboard reads from the server. */
export interface DashboardSource {
  info(): ServerInfo;
  sessions(q: SessionsQuery): SessionsPage;
  /** The points after `since` (ms since the epoch). */
  history(since: number): HistoryJson;
  /** The status line, given the process's descriptor counts when known. */
  status(
    fds: { openFds?: number | undefined; maxFds?: number | undefined },
  ): Status;
}

/** Options for {@link serveMetrics}. */
export interface MetricsHttpOptions {
  /** Interface to listen on. */
  hostname: string;
  /** Port; 0 picks one. */
  port: number;
  /** The current metrics. */
  metrics(): MetricsSnapshot;
  /** The process's figures, read for each `/metrics` answer. */
  processFigures?: () => Promise<ProcessFigures>;
  /** Whether the server is going away (`/healthz` answers 503). */
  shuttingDown(): boolean;
  /** Serves the dashboard, `/sessions` and `/info` when given. */
  dashboard?: DashboardSource | undefined;
}

/** A running metrics endpoint. */
export interface MetricsHttp {
  /** Where it listens. */
  readonly addr: Deno.NetAddr;
  /** Stops listening and waits for requests in flight. */
  close(): Promise<void>;
}

function json(value: unknown): Response {
  return new Response(JSON.stringify(value), {
    headers: {
      "content-type": "application/json; charset=utf-8",
      ...SECURITY_HEADERS,
    },
  });
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
  }, async (req) => {
    const url = new URL(req.url);
    const path = url.pathname;
    if (path === "/metrics") {
      const m = opts.metrics();
      if (opts.processFigures) m.process = await opts.processFigures();
      return new Response(renderPrometheus(m), {
        headers: { "content-type": "text/plain; version=0.0.4" },
      });
    }
    if (path === "/healthz") {
      const down = opts.shuttingDown();
      return new Response(down ? "shutting down\n" : "ok\n", {
        status: down ? 503 : 200,
      });
    }
    const dash = opts.dashboard;
    if (dash !== undefined && req.method === "GET") {
      if (path === "/sessions") {
        return json(dash.sessions(sessionsQuery(url.searchParams)));
      }
      if (path === "/info") return json(dash.info());
      if (path === "/history" || path === "/status") {
        const p = opts.processFigures ? await opts.processFigures() : {};
        const status = dash.status(p);
        if (path === "/status") return json(status);
        const since = Number(url.searchParams.get("since") ?? "");
        return json({
          ...dash.history(Number.isFinite(since) ? since : -Infinity),
          status,
        });
      }
      const asset = ASSETS.get(path);
      if (asset !== undefined) {
        return new Response(asset.body, {
          headers: { "content-type": asset.type, ...SECURITY_HEADERS },
        });
      }
    }
    return new Response("not found\n", { status: 404 });
  });
  return {
    addr: server.addr,
    close: () => server.shutdown(),
  };
}
