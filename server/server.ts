/**
 * `startServer()`: the seqstream TCP server as a handle: a
 * {@link ServerCore} (admission, the registry of connections, the shared
 * scheduler, the session layer, one connection per socket; see
 * `server/core.ts`) on one clock (the system clock unless given), fed by a
 * TCP or TLS listener whose sockets it adapts with {@link connTransport},
 * and the metrics endpoint ({@link serveMetrics}). Starting is all-or-nothing.
 *
 * @module
 */

import { type Clock, systemClock } from "../common/clock.ts";
import { LineLogger } from "../common/logger.ts";
import {
  createServerCore,
  type ServerCore,
  type ServerCoreOptions,
} from "./core.ts";
import { HistorySampler } from "./dashboard/history.ts";
import { evaluateStatus } from "./dashboard/status.ts";
import { type MetricsHttp, serveMetrics } from "./http.ts";
import type { MetricsSnapshot } from "./metrics.ts";
import { readProcessFigures } from "./process_metrics.ts";
import { connTransport } from "./transport.ts";

/**
 * Options for {@link startServer}: the core's options (session, pacing,
 * limits, store, log; see {@link ServerCoreOptions}) and the listeners'.
 * Defaults come from `SERVER_DEFAULTS`.
 */
export interface ServerOptions
  extends Omit<ServerCoreOptions, "clock" | "serverId" | "probeLoopLag"> {
  /** Interface to listen on. Default `127.0.0.1`. */
  hostname?: string;
  /** Port; 0 picks a free one. Default 0. */
  port?: number;
  /** Share the port with other processes (`SO_REUSEPORT`, Linux). Default false. */
  reusePort?: boolean;
  /** Serve TLS with this PEM certificate chain and PEM private key. Default: plain TCP. */
  tls?: { cert: string; key: string } | undefined;
  /**
   * Port for `GET /metrics`, `GET /healthz` and the dashboard (`GET /`,
   * `/sessions`, `/info`); none when absent. 0 picks one.
   */
  metricsPort?: number | undefined;
  /**
   * Interface for the metrics port. Default `127.0.0.1`: the dashboard and
   * `/sessions` disclose session ids, so expose it only to trusted networks.
   */
  metricsHost?: string | undefined;
  /**
   * The one clock of the server (see {@link ServerCoreOptions.clock}): wall
   * time for TTLs, leases, tombstones and the store clock estimate;
   * monotonic time for pacing and deadlines; its timers for everything the
   * server arms. Default: the system clock.
   */
  clock?: Clock;
}

/** A running server. */
export interface ServerHandle extends AsyncDisposable {
  /** Where clients connect. */
  readonly addr: Deno.NetAddr;
  /** Where `/metrics` is served, when enabled. */
  readonly metricsAddr: Deno.NetAddr | undefined;
  /** This process's server id (used for leases and fencing). */
  readonly id: string;
  /** Current metrics. */
  metrics(): MetricsSnapshot;
  /**
   * Graceful shutdown: stop accepting, tell clients the server is going away
   * (GOAWAY), leave their sessions resumable, close. Idempotent.
   */
  close(): Promise<void>;
  /** Settles when the server has closed. */
  readonly closed: Promise<void>;
}

/**
 * Starts a server. All or nothing: if any part fails to start, the parts
 * already started (listener, session heartbeat, an owned store) are closed
 * before the error is thrown.
 *
 * @example
 * ```ts
 * await using server = await startServer({ port: 0, intervalMs: 10 });
 * console.log(server.addr.port);
 * ```
 * @throws {RangeError} for an option out of range
 * @throws {Deno.errors.AddrInUse} and other listen errors (client or metrics port)
 */
export async function startServer(
  opts: ServerOptions = {},
): Promise<ServerHandle> {
  const ownStore = opts.ownStore ?? opts.store === undefined;
  const log = opts.log ?? new LineLogger();
  const clock = opts.clock ?? systemClock;
  let core: ServerCore;
  try {
    core = createServerCore({
      ...opts,
      clock,
      log,
      ownStore,
      probeLoopLag: opts.metricsPort !== undefined,
    });
  } catch (err) {
    if (ownStore && opts.store) await opts.store.close();
    throw err;
  }
  const { id, settings, store } = core;
  let stopping = false;

  const hostname = opts.hostname ?? "127.0.0.1";
  let listener: Deno.Listener | undefined;
  let http: MetricsHttp | undefined;
  let history: HistorySampler | undefined;
  try {
    const listenOpts = {
      hostname,
      port: opts.port ?? 0,
      ...(opts.reusePort ? { reusePort: true } : {}),
    } as Deno.TcpListenOptions;
    listener = opts.tls
      ? Deno.listenTls({
        ...listenOpts,
        cert: opts.tls.cert,
        key: opts.tls.key,
      })
      : Deno.listen(listenOpts);
    await core.start();
    // Once, in one line: a replicated store whose settings cannot keep a
    // welcomed session through a failover (docs/durability.md).
    const weak = await core.store.durabilityWarning?.();
    if (weak !== undefined) log.warn(weak);
    if (opts.metricsPort !== undefined) {
      http = serveMetrics({
        hostname: opts.metricsHost ?? "127.0.0.1",
        port: opts.metricsPort,
        metrics: () => core.metrics(),
        processFigures: readProcessFigures,
        shuttingDown: () => stopping || core.shuttingDown,
        dashboard: {
          ...core.dashboard(opts.tls !== undefined),
          history: (since) => history!.ring.toJson(since),
          status: (fds) =>
            evaluateStatus({
              recent: (name, n) => history!.ring.recent(name, n),
              connections: core.metrics().connections,
              maxConnections: settings.maxConnections,
              ...fds,
            }),
        },
      });
      history = new HistorySampler({ clock, metrics: () => core.metrics() });
    }
  } catch (err) {
    try {
      listener?.close();
    } catch { /* closed */ }
    await core.close();
    await http?.close();
    history?.[Symbol.dispose]();
    throw err;
  }
  const tcp: Deno.Listener = listener;

  const acceptLoop = (async () => {
    while (true) {
      let conn: Deno.Conn;
      try {
        conn = await tcp.accept();
      } catch (err) {
        if (stopping || err instanceof Deno.errors.BadResource) return;
        // EMFILE and friends: back off instead of spinning or dying.
        log.warn("accept failed", { error: String(err) });
        await new Promise((r) => clock.setTimeout(() => r(undefined), 100));
        continue;
      }
      try {
        (conn as Deno.TcpConn).setNoDelay(true);
      } catch { /* not TCP */ }
      core.accept(connTransport(conn));
    }
  })();

  const addr = tcp.addr as Deno.NetAddr;
  log.info("server listening", {
    addr: `${addr.hostname}:${addr.port}`,
    interval: settings.intervalMs,
    ttl: settings.ttlMs,
    clientTimeout: settings.clientTimeoutMs,
    window: settings.window,
    store: store.kind,
    tls: opts.tls !== undefined,
    server: id,
  });

  const done = Promise.withResolvers<void>();
  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= (async () => {
      stopping = true;
      try {
        tcp.close();
      } catch { /* closed */ }
      await acceptLoop;
      await core.close();
      await http?.close();
      history?.[Symbol.dispose]();
      log.info("server stopped", { server: id });
      done.resolve();
    })();

  return {
    addr,
    metricsAddr: http?.addr,
    id,
    metrics: () => core.metrics(),
    close,
    closed: done.promise,
    [Symbol.asyncDispose]: close,
  };
}
