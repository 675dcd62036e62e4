/**
 * The client's transport: one connection to the server. It dials (plain TCP
 * or an injected dialer such as TLS), classifies TLS failures, reads chunks,
 * writes bytes in order, and closes the connection when the server has been
 * silent for too long. It knows nothing of the protocol's messages.
 *
 * @module
 */

import type { Clock, TimerId } from "../common/clock.ts";
import { CLIENT_CODES, ClientError } from "./errors.ts";
import type { Dialer } from "./types.ts";

/** How late (ms) the idle timer may fire before the client blames its own stalled event loop. */
const STALL_LATE_MS = 250;
/** The turn (ms) given to pending reads after a stall before the server is called silent. */
const STALL_GRACE_MS = 50;

/** Options for {@link Link.open}. */
export interface LinkOptions {
  hostname: string;
  port: number;
  /** Opens the byte stream. Default `Deno.connect`. */
  dial?: Dialer | undefined;
  /** Closes the link (and aborts the dial) when it aborts. */
  signal: AbortSignal;
  clock: Clock;
  /**
   * The handshake's limit (ms): dial plus WELCOME, counted from the start of
   * the dial (the first idle limit runs from there, not from the connect).
   */
  limitMs: number;
}

const plainDial: Dialer = (o) =>
  Deno.connect({ hostname: o.hostname, port: o.port, signal: o.signal });

/**
 * A TLS failure (handshake or certificate) as a final `tls_error`, or
 * undefined for anything else: retrying cannot fix a protocol or trust
 * mismatch.
 */
function tlsFailure(
  err: unknown,
  where: string,
): ClientError | undefined {
  if (!(err instanceof Deno.errors.InvalidData)) return undefined;
  if (/not valid for name/i.test(err.message)) {
    return new ClientError(
      CLIENT_CODES.TLS_ERROR,
      `The TLS certificate of ${where} does not name that host (${err.message}); connect by a name or address it lists`,
      { cause: err },
    );
  }
  if (/certificate/i.test(err.message)) {
    return new ClientError(
      CLIENT_CODES.TLS_ERROR,
      `The TLS certificate of ${where} was rejected (${err.message}); trust the CA that signed it (client --ca FILE)`,
      { cause: err },
    );
  }
  return new ClientError(
    CLIENT_CODES.TLS_ERROR,
    `TLS handshake with ${where} failed (${err.message}); is the server serving TLS (server --tls-cert/--tls-key)?`,
    { cause: err },
  );
}

/** TLS record content types (alert 0x15, handshake 0x16, …): never the first byte of a seqstream reply. */
const isTlsRecordType = (b: number | undefined): boolean =>
  b !== undefined && b >= 0x14 && b <= 0x17;

function describe(err: unknown): string {
  if (err instanceof Deno.errors.ConnectionRefused) return "connection refused";
  return err instanceof Error ? err.message : String(err);
}

/**
 * One open connection.
 *
 * @example
 * ```ts
 * using link = await Link.open({ hostname, port, signal, clock: systemClock, limitMs: 5000 });
 * await link.write(bytes);
 * const chunk = await link.read();
 * ```
 */
export class Link implements Disposable {
  readonly #conn: Deno.Conn;
  readonly #where: string;
  readonly #clock: Clock;
  readonly #signal: AbortSignal;
  readonly #buf = new Uint8Array(4 * 1024);
  #limit: number;
  #lastByte: number;
  #timer: TimerId | undefined;
  #idleFired = false;
  #firstChunk = true;
  #closed = false;
  #writing: Promise<void> = Promise.resolve();
  #onAbort = () => this.close();

  private constructor(conn: Deno.Conn, opts: LinkOptions, dialedAt: number) {
    this.#conn = conn;
    this.#where = `${opts.hostname}:${opts.port}`;
    this.#clock = opts.clock;
    this.#signal = opts.signal;
    this.#limit = opts.limitMs;
    // One handshake limit for dial plus WELCOME: the time the dial took
    // counts, so the handshake never takes twice what PROTOCOL.md promises.
    this.#lastByte = dialedAt;
    opts.signal.addEventListener("abort", this.#onAbort, { once: true });
    this.#arm(false);
  }

  /**
   * Dials the server within `limitMs`; the WELCOME must then come within
   * what is left of it.
   *
   * @throws {ClientError} `tls_error` for a TLS failure, `connection_lost`
   * for a timeout; the runtime's error (refused, unreachable, …) otherwise
   */
  static async open(opts: LinkOptions): Promise<Link> {
    const where = `${opts.hostname}:${opts.port}`;
    const dialedAt = opts.clock.now();
    const ac = new AbortController();
    const t = opts.clock.setTimeout(() => ac.abort(), opts.limitMs);
    const signal = AbortSignal.any([opts.signal, ac.signal]);
    let conn: Deno.Conn;
    try {
      conn = await (opts.dial ?? plainDial)({
        hostname: opts.hostname,
        port: opts.port,
        signal,
      });
    } catch (err) {
      const tls = tlsFailure(err, where);
      if (tls) throw tls;
      if (ac.signal.aborted && !opts.signal.aborted) {
        throw new ClientError(
          CLIENT_CODES.CONNECTION_LOST,
          `Connect to ${where} timed out`,
          { cause: err },
        );
      }
      if (err instanceof ClientError) throw err;
      throw new ClientError(
        CLIENT_CODES.CONNECTION_LOST,
        `Cannot connect to ${where}: ${describe(err)}`,
        { cause: err },
      );
    } finally {
      opts.clock.clearTimeout(t);
    }
    if (opts.signal.aborted) {
      try {
        conn.close();
      } catch { /* closed */ }
      throw new ClientError(CLIENT_CODES.ABORTED, "Aborted");
    }
    // ACKs are small and the server's window waits on them: no Nagle delay.
    const tcp = conn as Partial<Deno.TcpConn>;
    if (typeof tcp.setNoDelay === "function") tcp.setNoDelay(true);
    return new Link(conn, opts, dialedAt);
  }

  /** Whether the idle timer closed this link. */
  get idleFired(): boolean {
    return this.#idleFired;
  }

  /** The current idle limit (ms). */
  get idleLimitMs(): number {
    return this.#limit;
  }

  /**
   * Suspends the idle limit (`on`), or restores it counting from now: for
   * a silence this client asked for (a durable save holding back its ACK).
   */
  holdIdle(on: boolean): void {
    if (this.#closed) return;
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    if (on) return;
    this.#lastByte = this.#clock.now();
    this.#arm(false);
  }

  /** Changes the idle limit (ms), counted from the last byte received. */
  setIdleLimit(ms: number): void {
    this.#limit = ms;
    this.#clock.clearTimeout(this.#timer);
    this.#arm(false);
  }

  #arm(grace: boolean): void {
    if (this.#closed) return;
    const now = this.#clock.now();
    const delay = grace
      ? STALL_GRACE_MS
      : Math.max(1, this.#limit - (now - this.#lastByte));
    const due = now + delay;
    this.#timer = this.#clock.setTimeout(() => {
      const t = this.#clock.now();
      if (this.#limit - (t - this.#lastByte) > 0) return this.#arm(false);
      // Fired far too late: this process's own event loop stalled (a busy
      // host, a load generator), and the server's bytes may be waiting
      // unread. Let pending reads land once before calling it silent.
      if (!grace && t - due > STALL_LATE_MS) return this.#arm(true);
      this.#idleFired = true;
      this.close();
    }, delay);
  }

  /**
   * The next chunk from the server: a view valid until the next call.
   *
   * @throws {ClientError} `connection_lost` at EOF or when the idle timer
   * closed the link (`"No data…"`/`"No welcome…"`, by `welcomed`),
   * `tls_mismatch` when a plain client hears TLS, `tls_error` for a TLS
   * failure; the runtime's error otherwise
   */
  async read(welcomed: boolean): Promise<Uint8Array> {
    let n: number | null;
    try {
      n = await this.#conn.read(this.#buf);
    } catch (err) {
      throw this.explain(err, welcomed);
    }
    if (n === null) {
      throw this.explain(undefined, welcomed);
    }
    if (this.#firstChunk) {
      this.#firstChunk = false;
      if (isTlsRecordType(this.#buf[0])) {
        throw new ClientError(
          CLIENT_CODES.TLS_MISMATCH,
          `The server at ${this.#where} answered with TLS; connect with TLS (client --tls)`,
        );
      }
    }
    this.#lastByte = this.#clock.now();
    return this.#buf.subarray(0, n);
  }

  /**
   * What ended the link, for an error `err` met on it (`undefined` for EOF):
   * the idle timer's or the abort's own error when they closed it, a TLS
   * failure, or `err` itself.
   */
  explain(err: unknown, welcomed: boolean): unknown {
    if (this.#idleFired) {
      return new ClientError(
        CLIENT_CODES.CONNECTION_LOST,
        welcomed
          ? `No data from the server for ${this.#limit}ms`
          : `No welcome within ${this.#limit}ms`,
      );
    }
    if (this.#signal.aborted) {
      return new ClientError(CLIENT_CODES.ABORTED, "Aborted");
    }
    if (err === undefined) {
      return new ClientError(
        CLIENT_CODES.CONNECTION_LOST,
        "Server closed the connection",
      );
    }
    return tlsFailure(err, this.#where) ?? err;
  }

  /** Writes all of `bytes`, after every earlier write. */
  write(bytes: Uint8Array): Promise<void> {
    const w = this.#writing.then(async () => {
      let off = 0;
      while (off < bytes.length) {
        off += await this.#conn.write(bytes.subarray(off));
      }
    });
    this.#writing = w.catch(() => {});
    return w;
  }

  /** Closes the connection and stops the idle timer. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#clock.clearTimeout(this.#timer);
    this.#signal.removeEventListener("abort", this.#onAbort);
    try {
      this.#conn.close();
    } catch { /* closed */ }
  }

  /** Same as {@link close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}
