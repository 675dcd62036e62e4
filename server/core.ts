/**
 * The server without its listeners: everything `startServer` builds except
 * the TCP/TLS listener and the HTTP endpoint. Validated settings, the
 * {@link SessionManager}, the shared {@link Scheduler}, the {@link Registry}
 * of connections, {@link Admission}, counters and histograms, all on one
 * injected {@link Clock}; connections arrive as {@link Transport}s through
 * {@link ServerCore.accept}. `startServer` runs one over sockets; a
 * deterministic simulator runs several in one process, on one fake clock,
 * over in-memory transports.
 *
 * @module
 */

import type { Clock, TimerId, TimerOptions } from "../common/clock.ts";
import { LineLogger, type Logger } from "../common/logger.ts";
import { MemoryStore } from "../store/memory.ts";
import type { SessionStore } from "../store/types.ts";
import denoJson from "../deno.json" with { type: "json" };
import { Admission } from "./admission.ts";
import { Connection, type ConnectionHost } from "./connection.ts";
import { querySessions, type ServerInfo } from "./dashboard/api.ts";
import type { DashboardSource } from "./http.ts";
import {
  type MetricsSnapshot,
  newCounters,
  newHistograms,
  observeIn,
} from "./metrics.ts";
import { LoopLagProbe } from "./process_metrics.ts";
import { Registry } from "./registry.ts";
import { Scheduler } from "./scheduler.ts";
import { SessionManager } from "./sessions.ts";
import { type ServerSettings, settingsOf } from "./settings.ts";
import type { Transport } from "./transport.ts";

export type { ServerSettings } from "./settings.ts";

/**
 * Options for {@link createServerCore}: everything `ServerOptions` has that
 * is not about listening, TLS or HTTP, plus the clock and the server id.
 * Defaults come from `SERVER_DEFAULTS`.
 */
export interface ServerCoreOptions {
  /**
   * The one clock of this server: its wall reading for TTLs, leases,
   * tombstones, the store clock estimate and `attachedAt`; its monotonic
   * reading for pacing, deadlines and latencies; its timers for everything
   * the server arms.
   */
  clock: Clock;
  /** This server's id (leases, fencing, logs). Default: 8 random hex digits. */
  serverId?: string;
  /** Interval between numbers (ms); 0 sends as fast as the window allows. Default 1000. */
  intervalMs?: number;
  /** How long a disconnected session stays resumable (ms). Default 30000. */
  ttlMs?: number;
  /** Base seed for reproducible sessions; random seeds when absent. */
  seed?: number | undefined;
  /**
   * The session store. Default: a new {@link MemoryStore} on {@link clock},
   * closed with the server.
   */
  store?: SessionStore;
  /**
   * Close the store when the server closes (`startServer`: also when it
   * fails to start). Default: true when the server made it.
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
  /** Close connections that send no complete hello within this (ms). Default 10000. */
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
  /** Logger: any object with `debug`, `info`, `warn`, `error`. Default: a `LineLogger` (info, pretty, stderr). */
  log?: Logger;
  /**
   * Measure event-loop lag into the `loopLag` histogram (a timer every
   * 100 ms, from {@link ServerCore.start}). Default false.
   */
  probeLoopLag?: boolean;
}

/** A server without listeners; see the module documentation. */
export interface ServerCore extends AsyncDisposable {
  /** This server's id (leases, fencing, logs). */
  readonly id: string;
  /** The validated settings. */
  readonly settings: ServerSettings;
  /** The session store. */
  readonly store: SessionStore;
  /** Whether a graceful close has begun (new sessions are refused). */
  readonly shuttingDown: boolean;
  /**
   * Registers with the store (the first lease) and starts the heartbeat and
   * the lag probe. Call once, before {@link accept}.
   *
   * @throws {ProtocolError} (`store_unavailable`) when the store cannot be reached
   */
  start(): Promise<void>;
  /**
   * Serves one accepted transport: admission (rate limit, `server_busy`),
   * then a connection until it ends. Never throws; a transport accepted
   * after {@link close} or {@link abandon} is closed at once.
   */
  accept(t: Transport): void;
  /** Current metrics. */
  metrics(): MetricsSnapshot;
  /** What the dashboard, `/info` and `/sessions` show (`tls`: how the listener serves). */
  dashboard(tls: boolean): Pick<DashboardSource, "info" | "sessions">;
  /**
   * Graceful shutdown: tell clients the server is going away (GOAWAY), leave
   * their sessions resumable, wait for every connection and refusal to end,
   * stop the heartbeat and timers, close an owned store. Idempotent.
   */
  close(): Promise<void>;
  /**
   * What `kill -9` does to this process: every timer the core armed
   * (scheduler, heartbeat, expiry, probe, refusals, an owned memory store's
   * sweep) is cleared, every transport it holds is closed (peers see the
   * socket close), and from then on the core makes no store call, arms no
   * timer, writes no log line and runs no further callback: store answers
   * still in flight are never delivered, so the code awaiting them never
   * resumes. Its in-memory state is dropped with the object. Nothing is
   * written to the store: sessions stay as the store last saw them.
   * Idempotent; {@link close} afterwards resolves at once (a close begun
   * before it may never settle: the process it stood for is gone).
   */
  abandon(): void;
}

/**
 * Builds a server core. Nothing runs until {@link ServerCore.start}.
 *
 * @example
 * ```ts
 * const clock = new FakeClock();
 * const core = createServerCore({ clock, intervalMs: 10, log: silentLogger });
 * await core.start();
 * const [client, server] = memoryPair();
 * core.accept(server);
 * ```
 * @throws {RangeError} for an option out of range
 */
export function createServerCore(opts: ServerCoreOptions): ServerCore {
  const settings = settingsOf(opts);
  return new Core(opts, settings);
}

/** A promise that never settles: what a dead process's pending calls become. */
const NEVER: Promise<never> = new Promise<never>(() => {});

class Core implements ServerCore {
  readonly id: string;
  readonly settings: ServerSettings;
  readonly store: SessionStore;
  readonly #ownStore: boolean;
  readonly #probeLoopLag: boolean;
  readonly #clock: GatedClock;
  readonly #log: Logger;
  readonly #counters = newCounters();
  readonly #histograms = newHistograms();
  readonly #refusals = new Map<string, number>();
  readonly #scheduler: Scheduler;
  readonly #registry: Registry;
  readonly #sessions: SessionManager;
  readonly #admission: Admission;
  readonly #host: ConnectionHost;
  /** Transports accepted and not yet closed (connections and refusals). */
  readonly #live = new Set<Transport>();
  readonly #served = new Set<Promise<void>>();
  readonly #startedAt: number;
  readonly #startedMono: number;
  #probe: LoopLagProbe | undefined;
  #shuttingDown = false;
  #abandoned = false;
  #closing: Promise<void> | undefined;

  constructor(opts: ServerCoreOptions, settings: ServerSettings) {
    this.settings = settings;
    this.id = opts.serverId ?? crypto.randomUUID().slice(0, 8);
    const dead = () => this.#abandoned;
    const clock = this.#clock = new GatedClock(opts.clock, dead);
    const log = this.#log = gatedLogger(opts.log ?? new LineLogger(), dead);
    this.#ownStore = opts.ownStore ?? opts.store === undefined;
    this.store = opts.store ?? new MemoryStore({ clock });
    this.#probeLoopLag = opts.probeLoopLag ?? false;
    this.#startedAt = clock.now();
    this.#startedMono = clock.monotonic();
    // The hot path (one timer per scheduler tick, clock reads per ACK) runs
    // on the clock itself; abandon() closes the scheduler, whose only timer
    // that is. Everything else arms its (rare) timers through the gate.
    this.#scheduler = new Scheduler(opts.clock);
    const registry = this.#registry = new Registry(log);
    const histograms = this.#histograms;
    this.#sessions = new SessionManager(gatedStore(this.store, dead), {
      serverId: this.id,
      ttlMs: settings.ttlMs,
      clock,
      seedBase: opts.seed,
      leaseMs: settings.leaseMs,
      counters: this.#counters,
      log,
      onFenced: (sessionId, epoch) => registry.fenced(sessionId, epoch),
      observer: {
        storeOp: (op, ms) => observeIn(histograms.storeOps, op, ms / 1000),
        resumed: (ms) => histograms.resumeGap.observe(ms / 1000),
      },
    });
    this.#admission = new Admission({
      maxConnections: settings.maxConnections,
      maxHandshakesPerSec: opts.maxHandshakesPerSec,
      counters: this.#counters,
      log,
      clock,
    });
    const refusals = this.#refusals;
    const shuttingDown = () => this.#shuttingDown;
    this.#host = {
      settings,
      get shuttingDown() {
        return shuttingDown();
      },
      clock: opts.clock, // read only: the connection arms no timer itself
      scheduler: this.#scheduler,
      sessions: this.#sessions,
      counters: this.#counters,
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
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  async start(): Promise<void> {
    await this.#sessions.start();
    if (this.#probeLoopLag && !this.#abandoned) {
      this.#probe ??= new LoopLagProbe(this.#histograms.loopLag, this.#clock);
    }
  }

  accept(t: Transport): void {
    if (this.#shuttingDown || this.#abandoned) {
      t.close();
      return;
    }
    const tracked = new TrackedTransport(t, this.#live);
    if (!this.#admission.admit(tracked, this.#registry.size)) return;
    this.#counters.connectionsAccepted++;
    const c = new Connection(tracked, this.#host);
    this.#registry.add(c);
    const p = c.serve();
    this.#served.add(p);
    p.finally(() => this.#served.delete(p));
  }

  metrics(): MetricsSnapshot {
    return {
      connections: this.#registry.size,
      sessions: this.#sessions.sessions,
      unackedNumbers: this.#registry.unacked(),
      unackedPeak: this.#registry.unackedPeak(),
      window: this.settings.window,
      counters: this.#counters,
      refusals: this.#refusals,
      storeOps: this.#sessions.storeOps,
      histograms: this.#histograms,
    };
  }

  dashboard(tls: boolean): Pick<DashboardSource, "info" | "sessions"> {
    const { settings, store, id } = this;
    const sessions = this.#sessions, registry = this.#registry;
    const clock = this.#clock;
    return {
      info: (): ServerInfo => {
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
          tls,
          store: {
            kind: store.kind,
            registered,
            unsynced,
            health: registered && unsynced === 0 ? "ok" : "degraded",
          },
          startedAt: this.#startedAt,
          uptimeS: Math.round((clock.monotonic() - this.#startedMono) / 1000),
        };
      },
      sessions: (q) =>
        querySessions(
          {
            attachedCount: registry.attachedCount,
            awaitingCount: sessions.detachedCount,
            attached: (s, l) => registry.sessionViews(s, l),
            awaiting: (s, l) => sessions.detachedViews(s, l),
          },
          q,
          clock.now(),
        ),
    };
  }

  close(): Promise<void> {
    if (this.#abandoned) return Promise.resolve();
    return this.#closing ??= (async () => {
      this.#shuttingDown = true;
      this.#registry.goAwayAll(
        "Server is shutting down; resume elsewhere or later",
      );
      // Every connection ends within its close grace; its detach is awaited.
      await Promise.all(this.#served);
      await this.#admission.drain();
      this.#scheduler.close();
      await this.#sessions.close();
      this.#probe?.[Symbol.dispose]();
      if (this.#ownStore) await this.store.close();
    })();
  }

  abandon(): void {
    if (this.#abandoned) return;
    this.#abandoned = true;
    this.#clock.clearAll();
    this.#scheduler.close();
    this.#probe = undefined;
    for (const t of [...this.#live]) t.close();
    this.#live.clear();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * A transport the core holds until it is closed, so that
 * {@link ServerCore.abandon} can close what is left. Methods on the
 * prototype: one small object per connection.
 */
class TrackedTransport implements Transport {
  readonly #t: Transport;
  readonly #live: Set<Transport>;
  readonly remoteAddr: Transport["remoteAddr"];

  constructor(t: Transport, live: Set<Transport>) {
    this.#t = t;
    this.#live = live;
    this.remoteAddr = t.remoteAddr;
    live.add(this);
  }

  read(buf: Uint8Array): Promise<number | null> {
    return this.#t.read(buf);
  }

  write(bytes: Uint8Array): Promise<number> {
    return this.#t.write(bytes);
  }

  closeWrite(): Promise<void> {
    // Without a half-close, the refusal's drain ends at the time limit.
    return this.#t.closeWrite?.() ?? Promise.resolve();
  }

  close(): void {
    this.#live.delete(this);
    this.#t.close();
  }
}

/**
 * The core's view of its clock: keeps the timers armed through it, so that
 * {@link GatedClock.clearAll} can clear them; once the core is dead, arms
 * nothing and fires nothing.
 */
class GatedClock implements Clock {
  readonly #inner: Clock;
  readonly #dead: () => boolean;
  readonly #armed = new Set<TimerId>();

  constructor(inner: Clock, dead: () => boolean) {
    this.#inner = inner;
    this.#dead = dead;
  }

  now(): number {
    return this.#inner.now();
  }

  monotonic(): number {
    return this.#inner.monotonic();
  }

  setTimeout(fn: () => void, ms: number, opts?: TimerOptions): TimerId {
    if (this.#dead()) return -1;
    const armed = this.#armed;
    const id = this.#inner.setTimeout(
      () => {
        armed.delete(id);
        if (!this.#dead()) fn();
      },
      ms,
      opts,
    );
    armed.add(id);
    return id;
  }

  clearTimeout(id: TimerId | undefined): void {
    if (id === undefined) return;
    this.#armed.delete(id);
    this.#inner.clearTimeout(id);
  }

  /** Clears every timer still armed. */
  clearAll(): void {
    for (const id of this.#armed) this.#inner.clearTimeout(id);
    this.#armed.clear();
  }
}

/** A logger that goes silent once the core is dead. */
function gatedLogger(log: Logger, dead: () => boolean): Logger {
  return {
    debug: (msg, fields) => dead() ? undefined : log.debug(msg, fields),
    info: (msg, fields) => dead() ? undefined : log.info(msg, fields),
    warn: (msg, fields) => dead() ? undefined : log.warn(msg, fields),
    error: (msg, fields) => dead() ? undefined : log.error(msg, fields),
  };
}

/**
 * The store as the core's session layer sees it: once the core is dead, a
 * call is never made, and an answer still in flight is never delivered.
 */
function gatedStore(store: SessionStore, dead: () => boolean): SessionStore {
  const gate = <T>(call: () => Promise<T>): Promise<T> => {
    if (dead()) return NEVER;
    return call().then(
      (v) => dead() ? NEVER : v,
      (e) => dead() ? NEVER : Promise.reject(e),
    );
  };
  return new Proxy(store, {
    get(target, key, receiver) {
      const v = Reflect.get(target, key, receiver);
      if (typeof v !== "function" || key === "close") return v;
      return (...args: unknown[]) =>
        gate(() =>
          (v as (...a: unknown[]) => Promise<unknown>).apply(target, args)
        );
    },
  });
}
