/**
 * `startServer()`: the seqstream TCP server as a handle.
 *
 * @module
 */

import { LineLogger, type Logger } from "../common/logger.ts";
import { ErrorCode, ProtocolError } from "../protocol/errors.ts";
import { encodeMessage } from "../protocol/messages.ts";
import { MemoryStore } from "../store/memory.ts";
import type { SessionStore } from "../store/types.ts";
import { Connection } from "./connection.ts";
import { addressKey, RateLimiter } from "./rate_limit.ts";
import type { ServerContext } from "./context.ts";
import {
  type Counters,
  type MetricsSnapshot,
  newCounters,
  renderPrometheus,
} from "./metrics.ts";
import { Scheduler } from "./scheduler.ts";
import { SessionManager } from "./sessions.ts";

/** Options for {@link startServer}. */
export interface ServerOptions {
  /** Interface to listen on. Default `127.0.0.1`. */
  hostname?: string;
  /** Port; 0 picks a free one. Default 0. */
  port?: number;
  /** Share the port with other processes (`SO_REUSEPORT`, Linux). Default false. */
  reusePort?: boolean;
  /** Interval between numbers (ms); 0 sends as fast as the client reads. Default 1000. */
  intervalMs?: number;
  /** How long a disconnected session stays resumable (ms). Default 30000. */
  ttlMs?: number;
  /** Base seed for reproducible sessions; random seeds when absent. */
  seed?: number | undefined;
  /** The session store. Default: a new {@link MemoryStore}, closed with the server. */
  store?: SessionStore;
  /** Close the store when the server closes. Default: true when the server made it. */
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
  /** Drop a client that has not read for this long (ms). Default max(10s, 5 intervals). */
  stallMs?: number;
  /** Server lease length for shared stores (ms). Default 3000. */
  leaseMs?: number;
  /** Port for `GET /metrics` and `GET /healthz`; none when absent. 0 picks one. */
  metricsPort?: number | undefined;
  /** Logger. Default: info level, pretty, on stderr. */
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
   * Graceful shutdown: stop accepting, tell clients the server is going away,
   * leave their sessions resumable, close. Idempotent.
   */
  close(): Promise<void>;
  /** Settles when the server has closed. */
  readonly closed: Promise<void>;
}

/**
 * Starts a server.
 *
 * @example
 * ```ts
 * await using server = await startServer({ port: 0, intervalMs: 10 });
 * console.log(server.addr.port);
 * ```
 * @throws {Deno.errors.AddrInUse} and other listen errors
 */
export async function startServer(
  opts: ServerOptions = {},
): Promise<ServerHandle> {
  const intervalMs = opts.intervalMs ?? 1000;
  const ttlMs = opts.ttlMs ?? 30_000;
  const log = opts.log ?? new LineLogger();
  const store = opts.store ?? new MemoryStore();
  const ownStore = opts.ownStore ?? opts.store === undefined;
  const maxConnections = opts.maxConnections ?? 16_000;
  const id = crypto.randomUUID().slice(0, 8);
  const counters: Counters = newCounters();
  const refusals = new Map<string, number>();
  const scheduler = new Scheduler();
  const connections = new Set<Connection>();
  const byId = new Map<string, Connection>();
  let shuttingDown = false;
  const stallMs = opts.stallMs ?? Math.max(10_000, 5 * intervalMs);

  const sessions = new SessionManager(store, {
    serverId: id,
    ttlMs,
    intervalMs,
    seedBase: opts.seed,
    leaseMs: opts.leaseMs ?? 3000,
    stallMs,
    counters,
    log,
    onFenced(sessionId, epoch) {
      const conn = byId.get(sessionId);
      if (conn && conn.epoch < epoch) {
        byId.delete(sessionId);
        log.info("session taken over", { id: sessionId, remote: conn.remote });
        void conn.fail(
          new ProtocolError(
            ErrorCode.TAKEN_OVER,
            `Session "${sessionId}" was resumed by another connection`,
          ),
        );
      }
    },
  });

  const ctx: ServerContext = {
    intervalMs,
    ttlMs,
    handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 10_000,
    stallMs,
    get shuttingDown() {
      return shuttingDown;
    },
    scheduler,
    sessions,
    counters,
    log,
    attach(conn) {
      byId.set(conn.sessionId!, conn);
    },
    detachConnection(conn) {
      if (byId.get(conn.sessionId!) === conn) byId.delete(conn.sessionId!);
    },
    connectionClosed(conn) {
      connections.delete(conn);
    },
    refused(code) {
      refusals.set(code, (refusals.get(code) ?? 0) + 1);
    },
  };

  const listenOpts = {
    hostname: opts.hostname ?? "127.0.0.1",
    port: opts.port ?? 0,
    ...(opts.reusePort ? { reusePort: true } : {}),
  } as Deno.TcpListenOptions;
  const listener: Deno.Listener = opts.tls
    ? Deno.listenTls({ ...listenOpts, cert: opts.tls.cert, key: opts.tls.key })
    : Deno.listen(listenOpts);
  const limiter = opts.maxHandshakesPerSec === undefined
    ? undefined
    : new RateLimiter({ ratePerSec: opts.maxHandshakesPerSec });
  await sessions.start();

  const metrics = (): MetricsSnapshot => ({
    connections: connections.size,
    sessions: sessions.sessions,
    counters,
    refusals,
    storeOps: sessions.storeOps,
  });

  let metricsServer: Deno.HttpServer<Deno.NetAddr> | undefined;
  if (opts.metricsPort !== undefined) {
    metricsServer = Deno.serve({
      hostname: opts.hostname ?? "127.0.0.1",
      port: opts.metricsPort,
      onListen() {},
    }, (req) => {
      const path = new URL(req.url).pathname;
      if (path === "/metrics") {
        return new Response(renderPrometheus(metrics()), {
          headers: { "content-type": "text/plain; version=0.0.4" },
        });
      }
      if (path === "/healthz") {
        return new Response(shuttingDown ? "shutting down\n" : "ok\n", {
          status: shuttingDown ? 503 : 200,
        });
      }
      return new Response("not found\n", { status: 404 });
    });
  }

  const busy = encodeMessage({
    type: "error",
    code: ErrorCode.SERVER_BUSY,
    message:
      `Server is at its limit of ${maxConnections} connections; retry later`,
  });
  const served = new Set<Promise<void>>();
  /**
   * Answers with an error frame and closes, bounded in time (a TLS peer may
   * never finish its handshake). It half-closes and reads until the peer
   * closes, so the peer's unread hello cannot turn the close into a reset
   * that destroys the frame before it is read.
   */
  const refuse = (conn: Deno.Conn, frame: Uint8Array) => {
    const close = () => {
      try {
        conn.close();
      } catch { /* closed */ }
    };
    const timer = setTimeout(close, 1000);
    const p = (async () => {
      try {
        await conn.write(frame);
        await conn.closeWrite();
        const sink = new Uint8Array(512);
        while (await conn.read(sink) !== null) { /* drain */ }
      } catch {
        // the peer went away, or the timer closed the socket
      } finally {
        clearTimeout(timer);
        close();
      }
    })();
    served.add(p);
    p.finally(() => served.delete(p));
  };
  const acceptLoop = (async () => {
    while (true) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (err) {
        if (shuttingDown || err instanceof Deno.errors.BadResource) return;
        // EMFILE and friends: back off instead of spinning or dying.
        log.warn("accept failed", { error: String(err) });
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      const remoteHost = (conn.remoteAddr as Deno.NetAddr).hostname;
      if (limiter !== undefined && !limiter.take(addressKey(remoteHost))) {
        counters.connectionsRejectedRate++;
        log.debug("handshake rate limit", {
          remote: remoteHost,
          limit: opts.maxHandshakesPerSec,
        });
        refuse(
          conn,
          encodeMessage({
            type: "error",
            code: ErrorCode.SERVER_BUSY,
            message:
              `Too many connections from ${remoteHost}: the limit is ${opts.maxHandshakesPerSec} per second; retry later`,
          }),
        );
        continue;
      }
      if (connections.size >= maxConnections) {
        counters.connectionsRejectedBusy++;
        refuse(conn, busy);
        continue;
      }
      try {
        (conn as Deno.TcpConn).setNoDelay(true);
      } catch { /* not TCP */ }
      counters.connectionsAccepted++;
      const c = new Connection(conn, ctx);
      connections.add(c);
      const p = c.serve();
      served.add(p);
      p.finally(() => served.delete(p));
    }
  })();

  log.info("server listening", {
    addr: `${(listener.addr as Deno.NetAddr).hostname}:${
      (listener.addr as Deno.NetAddr).port
    }`,
    interval: intervalMs,
    ttl: ttlMs,
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
        listener.close();
      } catch { /* closed */ }
      await acceptLoop;
      await Promise.all([...connections].map((c) =>
        c.goAway("Server is shutting down; resume elsewhere or later")
      ));
      await Promise.all(served);
      scheduler.close();
      await sessions.close();
      if (metricsServer) {
        await metricsServer.shutdown();
      }
      if (ownStore) {
        await store.close();
      }
      log.info("server stopped", { server: id });
      done.resolve();
    })();

  return {
    addr: listener.addr as Deno.NetAddr,
    metricsAddr: metricsServer?.addr,
    id,
    metrics,
    close,
    closed: done.promise,
    [Symbol.asyncDispose]: close,
  };
}
