/**
 * `startServer()`: the seqstream TCP server as a handle, composed of named
 * parts: {@link Admission} (rate limit, busy refusal), the metrics endpoint
 * ({@link serveMetrics}), the {@link Registry} of connections, the shared
 * {@link Scheduler}, the {@link SessionManager} and one {@link Connection} per
 * socket. Starting is all-or-nothing.
 *
 * @module
 */

import {
  ackIntervalFor,
  checkMs,
  DURATION_RANGES,
  SERVER_DEFAULTS,
  stallFor,
  windowFor,
} from "../common/defaults.ts";
import type { Clock } from "../common/clock.ts";
import { LineLogger, type Logger } from "../common/logger.ts";
import { MAX_COUNT } from "../protocol/messages.ts";
import { MemoryStore } from "../store/memory.ts";
import type { SessionStore } from "../store/types.ts";
import { Admission } from "./admission.ts";
import {
  Connection,
  type ConnectionHost,
  type ConnectionSettings,
} from "./connection.ts";
import { sessionsPage } from "./dashboard/api.ts";
import { type MetricsHttp, serveMetrics } from "./http.ts";
import {
  type MetricsSnapshot,
  newCounters,
  newHistograms,
  observeIn,
} from "./metrics.ts";
import { LoopLagProbe, readProcessFigures } from "./process_metrics.ts";
import denoJson from "../deno.json" with { type: "json" };
import { Registry } from "./registry.ts";
import { Scheduler } from "./scheduler.ts";
import { SessionManager } from "./sessions.ts";

/** Options for {@link startServer}. Defaults come from `SERVER_DEFAULTS`. */
export interface ServerOptions {
  /** Interface to listen on. Default `127.0.0.1`. */
  hostname?: string;
  /** Port; 0 picks a free one. Default 0. */
  port?: number;
  /** Share the port with other processes (`SO_REUSEPORT`, Linux). Default false. */
  reusePort?: boolean;
  /** Interval between numbers (ms); 0 sends as fast as the window allows. Default 1000. */
  intervalMs?: number;
  /** How long a disconnected session stays resumable (ms). Default 30000. */
  ttlMs?: number;
  /** Base seed for reproducible sessions; random seeds when absent. */
  seed?: number | undefined;
  /** The session store. Default: a new {@link MemoryStore}, closed with the server. */
  store?: SessionStore;
  /**
   * Close the store when the server closes, or when `startServer` fails.
   * Default: true when the server made it.
   */
  ownStore?: boolean;
  /** Connections held at most; more are refused with `server_busy`. Default 16000. */
  maxConnections?: number;
  /**
   * New connections accepted per second from one remote address (IPv6: one
   * /64), with a burst of the same size; more are refused with `server_busy`.
   * Default: unlimited.
   */
  maxHandshakesPerSec?: number | undefined;
  /** Serve TLS with this PEM certificate chain and PEM private key. Default: plain TCP. */
  tls?: { cert: string; key: string } | undefined;
  /** Close sockets that send no complete hello within this (ms). Default 10000. */
  handshakeTimeoutMs?: number;
  /**
   * Close a connection the client sends nothing on (not even a keep-alive
   * ACK) for this long (ms); its session detaches and its TTL starts.
   * Default 10000.
   */
  clientTimeoutMs?: number;
  /**
   * Most numbers in flight beyond the client's last ACK. Default
   * `windowFor(intervalMs, clientTimeoutMs)`.
   */
  window?: number;
  /**
   * Drop a client that lags (numbers sent and not acknowledged) with no ACK
   * progress for this long (ms) as a slow consumer. Default
   * `stallFor(clientTimeoutMs)`.
   */
  stallMs?: number;
  /** Server lease length for shared stores (ms). Default 3000. */
  leaseMs?: number;
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
  /** Logger: any object with `debug`, `info`, `warn`, `error`. Default: a `LineLogger` (info, pretty, stderr). */
  /**
   * Wall clock of the session layer: TTLs, leases, tombstones and the store
   * clock estimate (`server/sessions.ts` and its parts). Default: the system
   * clock. The connection layer's pacing and deadlines run on the monotonic
   * `performance.now()` of the one scheduler, and its state machine
   * (`server/stream.ts`) takes time as an argument.
   */
  clock?: Clock;
  log?: Logger;
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

/** The validated settings of a server. */
interface Settings extends ConnectionSettings {
  readonly leaseMs: number;
  readonly maxConnections: number;
}

/**
 * Checks every option and fills in the defaults.
 *
 * @throws {RangeError} for a duration outside `DURATION_RANGES`, or a window
 * outside 1..65535
 */
function settingsOf(opts: ServerOptions): Settings {
  const D = SERVER_DEFAULTS, R = DURATION_RANGES;
  const intervalMs = checkMs(
    "intervalMs",
    opts.intervalMs ?? D.intervalMs,
    R.interval,
  );
  const clientTimeoutMs = checkMs(
    "clientTimeoutMs",
    opts.clientTimeoutMs ?? D.clientTimeoutMs,
    R.clientTimeout,
  );
  const window = opts.window ?? windowFor(intervalMs, clientTimeoutMs);
  if (!Number.isInteger(window) || window < 1 || window > MAX_COUNT) {
    throw new RangeError(
      `window must be a whole number from 1 to ${MAX_COUNT}, got ${window}`,
    );
  }
  return {
    intervalMs,
    clientTimeoutMs,
    window,
    ackIntervalMs: ackIntervalFor(clientTimeoutMs),
    stallMs: checkMs(
      "stallMs",
      opts.stallMs ?? stallFor(clientTimeoutMs),
      R.clientTimeout,
    ),
    ttlMs: checkMs("ttlMs", opts.ttlMs ?? D.ttlMs, R.sessionTtl),
    handshakeTimeoutMs: checkMs(
      "handshakeTimeoutMs",
      opts.handshakeTimeoutMs ?? D.handshakeTimeoutMs,
      R.handshakeTimeout,
    ),
    leaseMs: checkMs("leaseMs", opts.leaseMs ?? D.leaseMs, R.lease),
    maxConnections: opts.maxConnections ?? D.maxConnections,
  };
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
  let settings: Settings;
  try {
    settings = settingsOf(opts);
  } catch (err) {
    if (ownStore && opts.store) await opts.store.close();
    throw err;
  }
  const log = opts.log ?? new LineLogger();
  const store = opts.store ?? new MemoryStore();
  const id = crypto.randomUUID().slice(0, 8);
  const counters = newCounters();
  const histograms = newHistograms();
  const startedAt = Date.now();
  const refusals = new Map<string, number>();
  const scheduler = new Scheduler();
  const registry = new Registry(log);
  let shuttingDown = false;

  const sessions = new SessionManager(store, {
    serverId: id,
    ttlMs: settings.ttlMs,
    ...(opts.clock ? { clock: opts.clock } : {}),
    seedBase: opts.seed,
    leaseMs: settings.leaseMs,
    counters,
    log,
    onFenced: (sessionId, epoch) => registry.fenced(sessionId, epoch),
    observer: {
      storeOp: (op, ms) => observeIn(histograms.storeOps, op, ms / 1000),
      resumed: (ms) => histograms.resumeGap.observe(ms / 1000),
    },
  });

  const metrics = (): MetricsSnapshot => ({
    connections: registry.size,
    sessions: sessions.sessions,
    unackedNumbers: registry.unacked(),
    unackedPeak: registry.unackedPeak(),
    window: settings.window,
    counters,
    refusals,
    storeOps: sessions.storeOps,
    histograms,
  });

  const hostname = opts.hostname ?? "127.0.0.1";
  let listener: Deno.Listener | undefined;
  let http: MetricsHttp | undefined;
  let admission: Admission;
  let loopProbe: LoopLagProbe | undefined;
  try {
    admission = new Admission({
      maxConnections: settings.maxConnections,
      maxHandshakesPerSec: opts.maxHandshakesPerSec,
      counters,
      log,
    });
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
    await sessions.start();
    // Once, in one line: a replicated store whose settings cannot keep a
    // welcomed session through a failover (docs/durability.md).
    const weak = await (store as SessionStore).durabilityWarning?.();
    if (weak !== undefined) log.warn(weak);
    if (opts.metricsPort !== undefined) {
      http = serveMetrics({
        hostname: opts.metricsHost ?? "127.0.0.1",
        port: opts.metricsPort,
        metrics,
        processFigures: readProcessFigures,
        shuttingDown: () => shuttingDown,
        dashboard: {
          info: () => {
            const registered = sessions.storeRegistered;
            const unsynced = sessions.unsynced;
            return {
              name: "seqstream",
              version: denoJson.version,
              serverId: id,
              intervalMs: settings.intervalMs,
              ttlMs: settings.ttlMs,
              window: settings.window,
              clientTimeoutMs: settings.clientTimeoutMs,
              maxConnections: settings.maxConnections,
              tls: opts.tls !== undefined,
              store: {
                kind: store.kind,
                registered,
                unsynced,
                health: registered && unsynced === 0 ? "ok" : "degraded",
              },
              startedAt,
              uptimeS: Math.round((Date.now() - startedAt) / 1000),
            };
          },
          sessions: (skip, limit) =>
            sessionsPage(
              {
                attachedCount: registry.attachedCount,
                awaitingCount: sessions.detachedCount,
                attached: (s, l) => registry.sessionViews(s, l),
                awaiting: (s, l) => sessions.detachedViews(s, l),
              },
              skip,
              limit,
              Date.now(),
            ),
        },
      });
      loopProbe = new LoopLagProbe(histograms.loopLag);
    }
  } catch (err) {
    try {
      listener?.close();
    } catch { /* closed */ }
    await sessions.close();
    await http?.close();
    loopProbe?.[Symbol.dispose]();
    if (ownStore) await store.close();
    throw err;
  }
  const tcp: Deno.Listener = listener;

  const host: ConnectionHost = {
    settings,
    get shuttingDown() {
      return shuttingDown;
    },
    scheduler,
    sessions,
    counters,
    log,
    attached: (conn, att) => registry.attached(conn, att),
    detached: (conn, att) => registry.detached(conn, att),
    closed: (conn) => registry.remove(conn),
    refused(code) {
      refusals.set(code, (refusals.get(code) ?? 0) + 1);
    },
    welcomed(kind, ms) {
      observeIn(histograms.welcome, kind, ms / 1000);
    },
  };

  const served = new Set<Promise<void>>();
  const acceptLoop = (async () => {
    while (true) {
      let conn: Deno.Conn;
      try {
        conn = await tcp.accept();
      } catch (err) {
        if (shuttingDown || err instanceof Deno.errors.BadResource) return;
        // EMFILE and friends: back off instead of spinning or dying.
        log.warn("accept failed", { error: String(err) });
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      if (!admission.admit(conn, registry.size)) continue;
      try {
        (conn as Deno.TcpConn).setNoDelay(true);
      } catch { /* not TCP */ }
      counters.connectionsAccepted++;
      const c = new Connection(conn, host);
      registry.add(c);
      const p = c.serve();
      served.add(p);
      p.finally(() => served.delete(p));
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
      shuttingDown = true;
      try {
        tcp.close();
      } catch { /* closed */ }
      await acceptLoop;
      registry.goAwayAll("Server is shutting down; resume elsewhere or later");
      // Every connection ends within its close grace; its detach is awaited.
      await Promise.all(served);
      await admission.drain();
      scheduler.close();
      await sessions.close();
      await http?.close();
      loopProbe?.[Symbol.dispose]();
      if (ownStore) await store.close();
      log.info("server stopped", { server: id });
      done.resolve();
    })();

  return {
    addr,
    metricsAddr: http?.addr,
    id,
    metrics,
    close,
    closed: done.promise,
    [Symbol.asyncDispose]: close,
  };
}
