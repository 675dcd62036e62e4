/**
 * A fault-injection TCP proxy for tests, the demo and the `proxy.ts` CLI, in
 * the spirit of Toxiproxy and denodrivers/postgres `createProxy`.
 *
 * Every downstream (client) connection is paired with a new upstream (server)
 * connection, chosen round-robin among `upstreams`, and bytes are forwarded in
 * both directions through "toxics": random connection lifetimes, RST instead of
 * FIN, slicing, latency, slow links (bandwidth, bloat, pushback), black holes,
 * freezes and a cut after N bytes.
 *
 * Where the toxics apply: latency, the slow links, black holes and freezes act
 * on both directions; the slicer and `cutAfterBytes` on the downstream (server
 * to client) direction only. Half-closes are forwarded (a FIN from one side
 * becomes a FIN to the other once its queued bytes are written).
 *
 * The three slow links deliver at `bytesPerSecond` per direction and
 * connection and differ only in how much the proxy holds before it stops
 * reading from the sender:
 * - `bandwidth`: up to 64 KiB, then it pauses the source;
 * - `bloat` (a bufferbloated link, a buffering middlebox): everything; it never
 *   pushes back, so the sender's writes all succeed at once while the bytes
 *   trickle out at the rate. Memory grows with what the sender writes;
 * - `pushback` (a slow link that pushes back): at most {@link PUSHBACK_BYTES},
 *   so the sender's kernel send buffer fills and its writes block.
 *
 * A slow link never exceeds its rate: in any window of `w` seconds it
 * forwards at most `bytesPerSecond * w` bytes plus one piece of 10 ms worth
 * ({@link Pacer}, `proxy/_pacer.ts`). It does not catch up after the proxy
 * was starved of CPU, nor save up credit while idle.
 *
 * Socket buffer sizes: neither `node:net` nor `Deno.listen`/`Deno.connect` can
 * set `SO_RCVBUF`/`SO_SNDBUF` in Deno 2 (no such option, and no file
 * descriptor to pass to `setsockopt`), so the kernel's own buffers stay at
 * their defaults (on Linux loopback a sender that nobody reads from can still
 * write a few MB, autotuned up to `net.ipv4.tcp_wmem`). What the proxy
 * controls is its own share, kept tiny under `pushback`: the upstream socket
 * reads into a {@link PUSHBACK_BYTES} buffer (`onread`), so the downstream
 * direction holds at most about two such reads; the accepted socket reads in
 * Deno's 64 KiB reads, so the upstream direction may hold one such read.
 *
 * A freeze ({@link FaultProxy.freeze}) emulates a hung peer: both sockets stay
 * open, nothing is forwarded either way and the proxy stops reading, so the
 * senders' kernels ACK and buffer until their buffers fill. Unfreezing
 * forwards everything held, in order; nothing is lost. Lifetime cuts still
 * fire while frozen, and a connection accepted while frozen is connected
 * upstream but forwards nothing until the freeze ends.
 *
 * Sockets are `node:net` ones rather than `Deno.listen`/`Deno.connect`, because
 * only `node:net` can send a TCP RST in Deno: `Socket.resetAndDestroy()` sets
 * `SO_LINGER` to 0 before closing, whereas `Deno.TcpConn` exposes no linger
 * option and always closes with FIN.
 *
 * Limitations: a FIN cut is a `close()` of both sockets, so if the kernel still
 * holds bytes the proxy has not read yet at that instant, Linux sends RST
 * instead. A socket error on one side (e.g. ECONNRESET) closes the other side
 * with FIN; resets are not propagated.
 *
 * @example
 * ```ts
 * import { startProxy } from "./fault_proxy.ts";
 *
 * await using proxy = await startProxy({
 *   upstreams: [{ hostname: "127.0.0.1", port: 8080 }],
 *   lifetime: { minMs: 50, maxMs: 200 },
 *   resetProbability: 0.3,
 *   slicer: { minBytes: 1, maxBytes: 7 },
 *   seed: 42,
 * });
 * const conn = await Deno.connect({ hostname: proxy.hostname, port: proxy.port });
 * ```
 *
 * @module
 */

import net from "node:net";
import { MAX_TIMER_MS } from "../common/clock.ts";
import { mulberry32 } from "../internal/mulberry32.ts";
import { Pacer } from "./_pacer.ts";

/** A TCP address to connect to. */
export interface Endpoint {
  /** Host name or IP address. */
  hostname: string;
  /** TCP port. */
  port: number;
}

/** Options of {@link startProxy}: where to listen, where to forward, and the toxics. */
export interface FaultProxyOptions {
  /** Where to listen. Defaults to `127.0.0.1` on port 0 (a free port). */
  listen?: { hostname?: string; port?: number };
  /** Servers to forward to; each new downstream connection goes to the next one, round-robin. */
  upstreams: readonly Endpoint[];
  /** Cut each connection after a random lifetime in `[minMs, maxMs]`, counted from its opening. */
  lifetime?: { minMs: number; maxMs: number };
  /** Probability in `[0, 1]` that a lifetime cut sends RST instead of FIN. Defaults to 0. */
  resetProbability?: number;
  /**
   * Split downstream (server to client) data into pieces of a random size in
   * `[minBytes, maxBytes]`, written separately, `delayMs` apart (default 0).
   */
  slicer?: { minBytes: number; maxBytes: number; delayMs?: number };
  /** Delay every chunk, in both directions, by `ms` ± a uniform random `jitterMs`. */
  latency?: { ms: number; jitterMs?: number };
  /**
   * Limit each direction of each connection to `bytesPerSecond`, holding up to
   * 64 KiB before pausing the source. At most one of `bandwidth`, `bloat` and
   * `pushback`.
   */
  bandwidth?: { bytesPerSecond: number };
  /**
   * A slow link that buffers eagerly: read everything the sender writes at
   * once (never push back) and deliver it at `bytesPerSecond` per direction
   * and connection.
   */
  bloat?: { bytesPerSecond: number };
  /**
   * A slow link that pushes back: deliver at `bytesPerSecond` per direction
   * and connection, and stop reading from the sender as soon as the proxy
   * holds more than {@link PUSHBACK_BYTES}.
   */
  pushback?: { bytesPerSecond: number };
  /** Black-hole all connections for `forMs` every `everyMs` (see {@link FaultProxy.blackhole}). */
  blackhole?: { everyMs: number; forMs: number };
  /** Freeze all connections for `forMs` every `everyMs` (see {@link FaultProxy.freeze}). */
  freeze?: { everyMs: number; forMs: number };
  /**
   * Forward exactly this many downstream bytes on a connection, then close it
   * with FIN (never RST, so that every one of these bytes is delivered).
   */
  cutAfterBytes?: number;
  /** Apply {@link FaultProxyOptions.cutAfterBytes} to the first connection only. */
  cutAfterBytesOnce?: boolean;
  /**
   * Seed of the pseudo-random generator. Each connection draws from its own
   * stream derived from the seed and its id, so a run is reproducible whatever
   * the interleaving. Defaults to a random seed, readable as {@link FaultProxy.seed}.
   */
  seed?: number;
}

/** Why the proxy cut a connection. */
export type CutReason = "lifetime" | "bytes" | "manual";

/** Which way bytes flow: `up` is client to server, `down` is server to client. */
export type Direction = "up" | "down";

/** Something that happened in the proxy, told apart by `type`; `id` numbers connections from 1. */
export type FaultProxyEvent =
  | {
    type: "open";
    id: number;
    /** The client's address, `host:port`. */
    client: string;
    upstream: Endpoint;
    /** The lifetime drawn for this connection, if the lifetime toxic is on. */
    lifetimeMs?: number;
  }
  | { type: "cut"; id: number; reason: CutReason; reset: boolean }
  | {
    type: "close";
    id: number;
    bytesUp: number;
    bytesDown: number;
    /** Set when a socket error ended the connection (e.g. the upstream refused it). */
    error?: string;
  }
  | { type: "blackhole"; on: boolean }
  | { type: "freeze"; on: boolean }
  | { type: "drop"; id: number; direction: Direction; bytes: number };

/** The type names of {@link FaultProxyEvent}. */
export type FaultProxyEventType = FaultProxyEvent["type"];

/** Counters of a {@link FaultProxy}; live, updated in place. */
export interface FaultProxyStats {
  /** Downstream connections accepted so far. */
  connections: number;
  /** Downstream connections not yet closed. */
  active: number;
  /** Connections cut by the proxy (lifetime, bytes, manual). */
  cuts: number;
  /** Cuts that sent RST. */
  resets: number;
  /** Bytes forwarded client to server. */
  bytesUp: number;
  /** Bytes forwarded server to client. */
  bytesDown: number;
  /** Bytes discarded by black holes, both directions. */
  bytesDropped: number;
  /**
   * Bytes read from the client and not yet forwarded (nor dropped), over open
   * connections: what the proxy itself buffers. Bytes in the kernels' socket
   * buffers are not counted.
   */
  bytesHeldUp: number;
  /** As {@link FaultProxyStats.bytesHeldUp}, read from the server. */
  bytesHeldDown: number;
}

/** A running proxy, returned by {@link startProxy}. */
export interface FaultProxy extends AsyncDisposable {
  /** The host name the proxy listens on. */
  readonly hostname: string;
  /** The port the proxy listens on. */
  readonly port: number;
  /** The listening address. */
  readonly addr: Deno.NetAddr;
  /** The seed actually used. */
  readonly seed: number;
  /** Live counters. */
  readonly stats: Readonly<FaultProxyStats>;
  /**
   * Dispatches a `CustomEvent<FaultProxyEvent>` per event, whose `type` is the
   * event's `type` and whose `detail` is the event.
   */
  readonly events: EventTarget;
  /** Whether bytes are being black-holed right now. */
  readonly blackholed: boolean;
  /** Resolves once {@link FaultProxy.close} has finished. */
  readonly closed: Promise<void>;
  /**
   * Black-holes every connection for `ms`: bytes read from either side are
   * dropped, sockets stay open. A new call restarts the window.
   */
  blackhole(ms: number): void;
  /** Turns black-holing on or off, cancelling any window from {@link FaultProxy.blackhole}. */
  setBlackhole(on: boolean): void;
  /** Whether every connection is frozen right now. */
  readonly frozen: boolean;
  /**
   * Freezes every connection for `ms`: sockets stay open, nothing is forwarded
   * either way and the proxy stops reading; then everything held is forwarded.
   * A new call restarts the window.
   *
   * @throws {RangeError} If `ms` is not in `[0, MAX_TIMER_MS]`.
   */
  freeze(ms: number): void;
  /** Turns the freeze on or off, cancelling any window from {@link FaultProxy.freeze}. */
  setFrozen(on: boolean): void;
  /**
   * Cuts every open connection now, with RST if `reset`, otherwise FIN.
   * Resolves to the number of connections cut, once their sockets have closed.
   */
  cutAll(opts?: { reset?: boolean }): Promise<number>;
  /**
   * Resolves with the next event of `type` that passes `filter`. Rejects with
   * `signal.reason` if `signal` aborts first. Only sees events dispatched after the call.
   */
  waitFor<T extends FaultProxyEventType>(
    type: T,
    opts?: {
      signal?: AbortSignal;
      filter?: (event: Extract<FaultProxyEvent, { type: T }>) => boolean;
    },
  ): Promise<Extract<FaultProxyEvent, { type: T }>>;
  /** Stops listening, closes every connection with FIN, and clears every timer. Idempotent. */
  close(): Promise<void>;
}

/**
 * Starts a fault-injection proxy.
 *
 * @param opts Where to listen, the upstreams and the toxics.
 * @returns A handle; close it with `close()` or `await using`.
 * @throws {RangeError} If an option is out of range or `upstreams` is empty.
 * @throws {Error} If the proxy cannot listen (e.g. the port is in use).
 *
 * @example
 * ```ts
 * import { startProxy } from "./fault_proxy.ts";
 *
 * await using proxy = await startProxy({
 *   upstreams: [{ hostname: "127.0.0.1", port: 8080 }],
 *   cutAfterBytes: 100,
 *   cutAfterBytesOnce: true,
 * });
 * ```
 */
export async function startProxy(opts: FaultProxyOptions): Promise<FaultProxy> {
  validate(opts);
  const server = net.createServer({
    allowHalfOpen: true,
    pauseOnConnect: true,
  });
  const hostname = opts.listen?.hostname ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: hostname, port: opts.listen?.port ?? 0 }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return new ProxyImpl(server, hostname, opts);
}

/** Most bytes a direction buffers before it stops reading its source (`bandwidth`, no toxic). */
const HIGH_WATER = 64 * 1024;

/**
 * Under `pushback`, a direction stops reading its source once it holds more
 * than this many bytes, and the upstream socket reads at most this many at a time.
 */
export const PUSHBACK_BYTES = 1024;

class ProxyImpl implements FaultProxy {
  readonly hostname: string;
  readonly port: number;
  readonly addr: Deno.NetAddr;
  readonly seed: number;
  readonly stats: FaultProxyStats = {
    connections: 0,
    active: 0,
    cuts: 0,
    resets: 0,
    bytesUp: 0,
    bytesDown: 0,
    bytesDropped: 0,
    bytesHeldUp: 0,
    bytesHeldDown: 0,
  };
  readonly events: EventTarget = new EventTarget();
  readonly closed: Promise<void>;
  readonly opts: FaultProxyOptions;
  #server: net.Server;
  #links = new Set<Link>();
  #blackholed = false;
  #window?: ReturnType<typeof setTimeout>;
  #every?: ReturnType<typeof setInterval>;
  #frozen = false;
  #freezeWindow?: ReturnType<typeof setTimeout>;
  #freezeEvery?: ReturnType<typeof setInterval>;
  #closing = false;
  #resolveClosed!: () => void;

  constructor(server: net.Server, hostname: string, opts: FaultProxyOptions) {
    this.#server = server;
    this.opts = opts;
    this.hostname = hostname;
    this.port = (server.address() as net.AddressInfo).port;
    this.addr = { transport: "tcp", hostname, port: this.port };
    this.seed = (opts.seed ?? Math.floor(Math.random() * 2 ** 32)) >>> 0;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    // Accept errors (e.g. EMFILE) must not crash the process; the next accept may succeed.
    server.on("error", () => {});
    server.on("connection", (down: net.Socket) => this.#accept(down));
    const bh = opts.blackhole;
    if (bh) {
      this.#every = setInterval(() => this.blackhole(bh.forMs), bh.everyMs);
    }
    const fz = opts.freeze;
    if (fz) {
      this.#freezeEvery = setInterval(() => this.freeze(fz.forMs), fz.everyMs);
    }
  }

  get blackholed(): boolean {
    return this.#blackholed;
  }

  get frozen(): boolean {
    return this.#frozen;
  }

  emit(event: FaultProxyEvent): void {
    this.events.dispatchEvent(new CustomEvent(event.type, { detail: event }));
  }

  #accept(down: net.Socket): void {
    if (this.#closing) {
      down.destroy();
      return;
    }
    const id = ++this.stats.connections;
    const ups = this.opts.upstreams;
    const link = new Link(this, id, down, ups[(id - 1) % ups.length]!);
    this.#links.add(link);
    this.stats.active++;
  }

  /** Called by a link once both its sockets have closed, before its "close" event. */
  forget(link: Link): void {
    if (this.#links.delete(link)) this.stats.active--;
  }

  blackhole(ms: number): void {
    if (this.#closing) return;
    this.setBlackhole(true);
    this.#window = setTimeout(() => this.setBlackhole(false), ms);
  }

  setBlackhole(on: boolean): void {
    clearTimeout(this.#window);
    this.#window = undefined;
    if (on === this.#blackholed) return;
    this.#blackholed = on;
    this.emit({ type: "blackhole", on });
  }

  freeze(ms: number): void {
    checkTimer("freeze", ms);
    if (this.#closing) return;
    this.setFrozen(true);
    this.#freezeWindow = setTimeout(() => this.setFrozen(false), ms);
  }

  setFrozen(on: boolean): void {
    clearTimeout(this.#freezeWindow);
    this.#freezeWindow = undefined;
    if (on === this.#frozen) return;
    this.#frozen = on;
    for (const link of this.#links) link.flowChanged();
    this.emit({ type: "freeze", on });
  }

  async cutAll(opts: { reset?: boolean } = {}): Promise<number> {
    const cut = [...this.#links].filter((l) =>
      l.cut("manual", opts.reset ?? false)
    );
    await Promise.all(cut.map((l) => l.closed));
    return cut.length;
  }

  waitFor<T extends FaultProxyEventType>(
    type: T,
    opts: {
      signal?: AbortSignal;
      filter?: (event: Extract<FaultProxyEvent, { type: T }>) => boolean;
    } = {},
  ): Promise<Extract<FaultProxyEvent, { type: T }>> {
    type E = Extract<FaultProxyEvent, { type: T }>;
    const { signal, filter } = opts;
    return new Promise<E>((resolve, reject) => {
      signal?.throwIfAborted();
      const onAbort = () => {
        this.events.removeEventListener(type, onEvent);
        reject(signal?.reason);
      };
      const onEvent = (e: Event) => {
        const detail = (e as CustomEvent<E>).detail;
        if (filter && !filter(detail)) return;
        this.events.removeEventListener(type, onEvent);
        signal?.removeEventListener("abort", onAbort);
        resolve(detail);
      };
      this.events.addEventListener(type, onEvent);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  close(): Promise<void> {
    if (this.#closing) return this.closed;
    this.#closing = true;
    clearInterval(this.#every);
    clearTimeout(this.#window);
    clearInterval(this.#freezeEvery);
    clearTimeout(this.#freezeWindow);
    const stopped = new Promise<void>((resolve) =>
      this.#server.close(() => resolve())
    );
    for (const link of this.#links) link.teardown(false);
    Promise.all([stopped, ...[...this.#links].map((l) => l.closed)])
      .then(() => this.#resolveClosed());
    return this.closed;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** One downstream connection and its upstream connection. */
class Link {
  readonly id: number;
  readonly proxy: ProxyImpl;
  readonly down: net.Socket;
  readonly up: net.Socket;
  readonly rng: () => number;
  /** Aborted on teardown, to end every sleep of the pipes. */
  readonly abort: AbortController = new AbortController();
  readonly closed: Promise<void>;
  /** Downstream bytes after which to cut, or Infinity. */
  readonly limit: number;
  bytesUp = 0;
  bytesDown = 0;
  #pipesLeft = 2;
  #pipes: Pipe[] = [];
  #timer?: ReturnType<typeof setTimeout>;
  #error?: string;

  constructor(
    proxy: ProxyImpl,
    id: number,
    down: net.Socket,
    upstream: Endpoint,
  ) {
    this.proxy = proxy;
    this.id = id;
    this.down = down;
    const { opts } = proxy;
    this.rng = mulberry32(proxy.seed ^ Math.imul(id, 0x9e3779b1));
    this.limit =
      opts.cutAfterBytes !== undefined && (id === 1 || !opts.cutAfterBytesOnce)
        ? opts.cutAfterBytes
        : Infinity;
    this.up = net.connect({
      host: upstream.hostname,
      port: upstream.port,
      allowHalfOpen: true,
      // Under pushback, read at most PUSHBACK_BYTES at a time from the server,
      // so that the proxy's share of the buffered bytes stays tiny. The buffer
      // is reused, hence the copy.
      ...(opts.pushback
        ? {
          onread: {
            buffer: new Uint8Array(PUSHBACK_BYTES),
            callback: (n: number, buf: Uint8Array): boolean => {
              this.#pipes[1]?.push(buf.slice(0, n));
              return true; // pausing is the pipe's decision, via pause()
            },
          },
        }
        : {}),
    });
    const sockets = [down, this.up];
    this.closed = Promise.all(
      sockets.map((s) => new Promise((r) => s.once("close", r))),
    )
      .then(() => {
        proxy.forget(this);
        proxy.emit({
          type: "close",
          id,
          bytesUp: this.bytesUp,
          bytesDown: this.bytesDown,
          ...(this.#error === undefined ? {} : { error: this.#error }),
        });
      });
    for (const s of sockets) {
      s.on("error", (e: Error) => this.teardown(false, e));
    }
    this.up.once("connect", () => {
      if (this.done) return;
      for (const s of sockets) s.setNoDelay(true);
      const lifetime = opts.lifetime &&
        randInt(this.rng, opts.lifetime.minMs, opts.lifetime.maxMs);
      proxy.emit({
        type: "open",
        id,
        client: `${down.remoteAddress}:${down.remotePort}`,
        upstream,
        ...(lifetime === undefined ? {} : { lifetimeMs: lifetime }),
      });
      if (lifetime !== undefined) {
        const reset = this.rng() < (opts.resetProbability ?? 0);
        this.#timer = setTimeout(() => this.cut("lifetime", reset), lifetime);
      }
      if (this.limit === 0) {
        this.cut("bytes", false);
        return;
      }
      this.#pipes = [
        new Pipe(this, down, this.up, "up"),
        new Pipe(this, this.up, down, "down"),
      ];
      for (const pipe of this.#pipes) void pipe.run();
    });
  }

  /** Called when the proxy freezes or thaws: pipes stop or restart reading and forwarding. */
  flowChanged(): void {
    for (const pipe of this.#pipes) pipe.flowChanged();
  }

  get done(): boolean {
    return this.abort.signal.aborted;
  }

  /** Cuts the connection on purpose; returns false if it was already closing. */
  cut(reason: CutReason, reset: boolean): boolean {
    if (this.done) return false;
    this.proxy.stats.cuts++;
    if (reset) this.proxy.stats.resets++;
    this.proxy.emit({ type: "cut", id: this.id, reason, reset });
    this.teardown(reset);
    return true;
  }

  /** Destroys both sockets (RST if `reset`, else FIN) and stops both pipes. Idempotent. */
  teardown(reset: boolean, error?: Error): void {
    if (this.done) return;
    if (error) this.#error = error.message;
    clearTimeout(this.#timer);
    this.abort.abort();
    for (const s of [this.down, this.up]) {
      if (s.destroyed) continue;
      // resetAndDestroy() on a socket still connecting would wait for the connection.
      if (reset && !s.connecting) s.resetAndDestroy();
      else s.destroy();
    }
  }

  /** Called by each pipe once its source ended and its destination was ended. */
  pipeDone(): void {
    if (--this.#pipesLeft === 0) this.teardown(false);
  }
}

/** One direction of a link: reads `src`, applies the toxics, writes `dst`. */
class Pipe {
  #link: Link;
  #src: net.Socket;
  #dst: net.Socket;
  #dir: Direction;
  #queue: Array<{ chunk: Uint8Array; at: number }> = [];
  #queued = 0;
  /** Bytes read and not yet written or dropped (the queue plus the chunk in hand). */
  #held = 0;
  /** Bytes held beyond which the source is paused. */
  #highWater: number;
  #reading = false;
  #eof = false;
  #wake?: () => void;

  constructor(link: Link, src: net.Socket, dst: net.Socket, dir: Direction) {
    this.#link = link;
    this.#src = src;
    this.#dst = dst;
    this.#dir = dir;
    const { opts } = link.proxy;
    this.#highWater = opts.bloat
      ? Infinity
      : opts.pushback
      ? PUSHBACK_BYTES
      : HIGH_WATER;
    // Sockets with `onread` (see Link) emit no "data"; their reads come through push().
    src.on("data", (chunk: Uint8Array) => this.push(chunk));
    src.once("end", () => {
      this.#eof = true;
      this.#notify();
    });
    link.abort.signal.addEventListener("abort", () => {
      this.#release(this.#held); // the connection is gone, and so are they
      this.#notify();
    }, { once: true });
    // A "data" listener sets the socket flowing anyway; then pause it if frozen.
    src.resume();
    this.#reading = true;
    this.#updateReading();
  }

  /** Queues bytes read from the source. */
  push(chunk: Uint8Array): void {
    if (this.#link.done) return;
    this.#queue.push({ chunk, at: performance.now() });
    this.#queued += chunk.length;
    this.#release(-chunk.length);
    this.#updateReading();
    this.#notify();
  }

  /** The proxy froze or thawed. */
  flowChanged(): void {
    this.#updateReading();
    this.#notify();
  }

  /** Reads from the source only while not frozen and holding at most the high-water mark. */
  #updateReading(): void {
    const want = !this.#link.proxy.frozen && this.#queued <= this.#highWater;
    if (want === this.#reading || this.#src.destroyed) return;
    this.#reading = want;
    if (want) this.#src.resume();
    else this.#src.pause();
  }

  /** `n` held bytes left the proxy (negative: arrived). */
  #release(n: number): void {
    this.#held -= n;
    if (this.#dir === "up") this.#link.proxy.stats.bytesHeldUp -= n;
    else this.#link.proxy.stats.bytesHeldDown -= n;
  }

  #notify(): void {
    this.#wake?.();
    this.#wake = undefined;
  }

  /** Resolves at the next push, end, abort or freeze change. */
  #nudged(): Promise<void> {
    return new Promise<void>((resolve) => this.#wake = resolve);
  }

  async run(): Promise<void> {
    const link = this.#link;
    const { signal } = link.abort;
    const { opts, stats } = link.proxy;
    const latency = opts.latency;
    const slicer = this.#dir === "down" ? opts.slicer : undefined;
    const rate = (opts.bandwidth ?? opts.bloat ?? opts.pushback)
      ?.bytesPerSecond;
    const pacer = rate === undefined ? undefined : new Pacer(rate);
    let lastDue = 0;
    while (!link.done) {
      if (link.proxy.frozen) { // hold everything, the FIN included
        await this.#nudged();
        continue;
      }
      const item = this.#queue.shift();
      if (!item) {
        if (this.#eof) {
          this.#dst.end();
          link.pipeDone();
          return;
        }
        await this.#nudged();
        continue;
      }
      this.#queued -= item.chunk.length;
      this.#updateReading();
      if (latency) {
        const jitter = (latency.jitterMs ?? 0) * (2 * link.rng() - 1);
        lastDue = Math.max(lastDue, item.at + latency.ms + jitter);
        await sleep(lastDue - performance.now(), signal);
      }
      const cap = pacer?.burstBytes ?? Infinity;
      for (let piece of pieces(item.chunk, link.rng, slicer, cap)) {
        // A piece leaves once the link has had the time to carry it, counted
        // from when the previous one really left (see Pacer): a late timer
        // or a starved event loop never makes the link catch up in a burst.
        if (pacer) {
          for (let w; (w = pacer.take(piece.length, performance.now())) > 0;) {
            await sleep(Math.ceil(w), signal);
            if (link.done) return;
          }
        }
        while (link.proxy.frozen && !link.done) await this.#nudged();
        if (link.done) return;
        if (link.proxy.blackholed) {
          stats.bytesDropped += piece.length;
          this.#release(piece.length);
          link.proxy.emit({
            type: "drop",
            id: link.id,
            direction: this.#dir,
            bytes: piece.length,
          });
          continue;
        }
        const last = this.#dir === "down" &&
          link.bytesDown + piece.length >= link.limit;
        if (last) piece = piece.subarray(0, link.limit - link.bytesDown);
        try {
          await write(this.#dst, piece);
        } catch (e) {
          link.teardown(false, e as Error);
          return;
        }
        this.#release(piece.length);
        if (this.#dir === "up") {
          link.bytesUp += piece.length;
          stats.bytesUp += piece.length;
        } else {
          link.bytesDown += piece.length;
          stats.bytesDown += piece.length;
        }
        if (last) {
          link.cut("bytes", false);
          return;
        }
        if (slicer?.delayMs) await sleep(slicer.delayMs, signal);
      }
    }
  }
}

/** Splits `chunk` as the slicer wants, in pieces of at most `cap` bytes (a slow link's burst). */
function* pieces(
  chunk: Uint8Array,
  rng: () => number,
  slicer: FaultProxyOptions["slicer"],
  cap: number,
): Generator<Uint8Array> {
  for (let i = 0; i < chunk.length;) {
    const size = slicer
      ? randInt(rng, slicer.minBytes, slicer.maxBytes)
      : chunk.length;
    const end = Math.min(chunk.length, i + size);
    while (i < end) {
      const next = Math.min(end, i + cap);
      yield chunk.subarray(i, next);
      i = next;
    }
  }
}

/** Writes `data` and resolves once the socket has handed it to the kernel. */
function write(socket: net.Socket, data: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.write(data, (err) => err ? reject(err) : resolve());
  });
}

/** Resolves after `ms`, or at once when `signal` aborts; never rejects. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/** A uniform integer in `[min, max]`. */
function randInt(rng: () => number, min: number, max: number): number {
  return min + Math.floor(rng() * (max - min + 1));
}

/** Throws a RangeError naming the first option out of range. */
function validate(o: FaultProxyOptions): void {
  const check = (ok: boolean, what: string) => {
    if (!ok) throw new RangeError(`Invalid proxy option: ${what}`);
  };
  const nonNeg = (n: number | undefined) =>
    n === undefined || (Number.isFinite(n) && n >= 0);
  const count = (n: number) => Number.isInteger(n) && n >= 0;
  check(o.upstreams.length > 0, "upstreams must not be empty");
  for (const u of o.upstreams) {
    check(count(u.port) && u.port < 65536, `upstream port ${u.port}`);
  }
  if (o.lifetime) {
    const { minMs, maxMs } = o.lifetime;
    check(
      count(minMs) && count(maxMs) && minMs <= maxMs,
      "lifetime needs integers 0 <= minMs <= maxMs",
    );
  }
  const p = o.resetProbability ?? 0;
  check(p >= 0 && p <= 1, "resetProbability must be in [0, 1]");
  if (o.slicer) {
    const { minBytes, maxBytes, delayMs } = o.slicer;
    check(
      count(minBytes) && count(maxBytes) && 1 <= minBytes &&
        minBytes <= maxBytes,
      "slicer needs integers 1 <= minBytes <= maxBytes",
    );
    check(nonNeg(delayMs), "slicer delayMs must be >= 0");
  }
  if (o.latency) {
    check(
      nonNeg(o.latency.ms) && nonNeg(o.latency.jitterMs),
      "latency must be >= 0",
    );
  }
  const rates = (["bandwidth", "bloat", "pushback"] as const).filter((k) =>
    o[k] !== undefined
  );
  check(
    rates.length <= 1,
    `at most one of bandwidth, bloat and pushback, got ${rates.join(" and ")}`,
  );
  for (const k of rates) {
    const r = o[k]!.bytesPerSecond;
    check(Number.isFinite(r) && r > 0, `${k} bytesPerSecond must be > 0`);
  }
  const timer = (n: number) => nonNeg(n) && n <= MAX_TIMER_MS;
  for (const k of ["blackhole", "freeze"] as const) {
    const p = o[k];
    if (!p) continue;
    check(
      p.everyMs > 0 && timer(p.everyMs) && timer(p.forMs),
      `${k} needs 0 < everyMs <= ${MAX_TIMER_MS} and 0 <= forMs <= ${MAX_TIMER_MS}`,
    );
  }
  if (o.lifetime) {
    check(
      o.lifetime.maxMs <= MAX_TIMER_MS,
      `lifetime maxMs must be <= ${MAX_TIMER_MS}`,
    );
  }
  if (o.cutAfterBytes !== undefined) {
    check(count(o.cutAfterBytes), "cutAfterBytes must be an integer >= 0");
  }
}

/** Throws a RangeError unless `ms` is a delay a runtime timer honours. */
function checkTimer(what: string, ms: number): void {
  if (!(Number.isFinite(ms) && ms >= 0 && ms <= MAX_TIMER_MS)) {
    throw new RangeError(
      `Invalid ${what} duration: ${ms} ms is not in [0, ${MAX_TIMER_MS}]`,
    );
  }
}
