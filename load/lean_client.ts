/**
 * The load tool's lean client: the real client's session state machine
 * ({@link ClientSession}: offset order, sum, CRC-32, the v2 ACK rules, the
 * retry and give-up policy) run by the client's one driver
 * (`client/driver.ts`) over a minimal link, so that a load generator costs
 * less CPU per number than the server it measures.
 *
 * What its link leaves out of `client/client.ts`'s, and why that is safe here:
 * - no per-connection timers: one {@link Sweeper} per process checks every
 *   live connection twice a second for the idle limit, the handshake
 *   limit (dial plus WELCOME) and the keep-alive tick;
 * - no `Link`, no `AbortSignal.any`, no checkpoints (nothing is saved);
 * - NUMBER frames are parsed in place into one reused message object;
 *   every other frame (WELCOME, FINAL, DONE, …) goes through the shared codec.
 *
 * It still speaks v2 as the state machine dictates: ACK every
 * `ceil(window / 4)` numbers, a keep-alive only when no ACK went out for
 * `ackIntervalMs`, ACK(count) after FINAL, RESUME after a cut with the
 * client's jittered backoff. The session's wall clock is
 * `performance.timeOrigin + performance.now()`; the callbacks get
 * `performance.now()` times.
 *
 * @module
 */

import { ProtocolError } from "../protocol/errors.ts";
import {
  HEADER_SIZE,
  MAX_FRAME_VALUE,
  writeHeader,
} from "../protocol/frame.ts";
import {
  type ClientMessage,
  decodeMessage,
  encodeMessage,
  MessageType,
  type NumberMsg,
  type ServerMessage,
} from "../protocol/messages.ts";
import { CLIENT_CODES, ClientError } from "../client/errors.ts";
import { drive, type DriverLink } from "../client/driver.ts";
import { ClientSession } from "../client/session.ts";
import type { ClientResult } from "../client/types.ts";

/** One live connection, as the {@link Sweeper} sees it. */
interface Watched {
  /** When this connection's dial began (wall ms). */
  readonly openedAt: number;
  /** Dial plus WELCOME must take at most this (ms). */
  readonly handshakeMs: number;
  /** Set once WELCOME came. */
  streaming: boolean;
  /** When bytes last arrived (wall ms). */
  lastRead: number;
  /** Silence after WELCOME that counts as a lost connection (ms). */
  idleLimitMs: number;
  /** The client asked for silence (a durable save in flight): none counts. */
  held: boolean;
  /** When the session's next keep-alive tick is due (wall ms). */
  tickAt: number;
  /** Sends the session its tick; returns when the next one is due. */
  tick(wallMs: number): number;
  /** Closes the connection for silence (or aborts the connect); the read then sees why. */
  silence(): void;
  /** Closes the connection (or aborts the connect). */
  close(): void;
}

/**
 * The lean client's wall clock (ms since the epoch): monotonic, unlike
 * `Date.now()`, and one `performance.now()` reading. The callbacks get
 * `performance.now()` times: this minus `performance.timeOrigin`.
 */
const wallNow = (): number => ORIGIN + performance.now();
/** Read once: a getter call per reading costs more than the reading. */
const ORIGIN = performance.timeOrigin;

/**
 * The one timer of a load process: every `everyMs` it closes connections
 * that were silent too long or not welcomed in time, and sends the keep-alive
 * ACKs the sessions ask for.
 */
export class Sweeper {
  readonly #live = new Set<Watched>();
  readonly #timer: ReturnType<typeof setInterval>;

  /**
   * @param everyMs how often to sweep (ms)
   * @param signal when it aborts, every watched connection is closed (one
   * listener for the process: a listener per connection costs O(n) each in
   * `addEventListener`)
   */
  constructor(everyMs = 500, signal?: AbortSignal) {
    this.#timer = setInterval(() => this.sweep(wallNow()), everyMs);
    signal?.addEventListener("abort", () => {
      for (const w of this.#live) w.close();
    }, { once: true });
  }

  /** Connections being watched. */
  get size(): number {
    return this.#live.size;
  }

  /** Watches `w` until {@link forget}. */
  watch(w: Watched): void {
    this.#live.add(w);
  }

  /** Stops watching `w`. */
  forget(w: Watched): void {
    this.#live.delete(w);
  }

  /** One pass at wall time `wallMs`. */
  sweep(wallMs: number): void {
    for (const w of this.#live) {
      if (!w.streaming) {
        if (wallMs - w.openedAt > w.handshakeMs) w.silence();
      } else if (!w.held && wallMs - w.lastRead > w.idleLimitMs) w.silence();
      else if (wallMs >= w.tickAt) w.tickAt = w.tick(wallMs);
    }
  }

  /** Stops the timer. */
  close(): void {
    clearInterval(this.#timer);
  }
}

/** Options of {@link runLeanClient}. */
export interface LeanOptions {
  hostname: string;
  port: number;
  count: number;
  /** Watches the connections; must have been made with `signal`, which closes them. */
  sweeper: Sweeper;
  /** Aborted: the client ends with `aborted` at its next step. */
  signal: AbortSignal;
  /** Delay before reconnect attempt `n` (ms). */
  backoff: (attempt: number) => number;
  handshakeTimeoutMs?: number | undefined;
  idleTimeoutMs?: number | undefined;
  connectGiveUpMs?: number | undefined;
  /** A connection was welcomed (`resumed`: not the first one), at `performance.now()` time `now`. */
  onWelcome?: (resumed: boolean, now: number) => void;
  /** A number (or FINAL) was accepted at `performance.now()` time `now`. */
  onNumber?: (now: number) => void;
  /** A welcomed connection ended at `performance.now()` time `now`, with what ended it. */
  onLost?: (now: number, why: unknown) => void;
}

/** Read buffer per connection: at one number per interval a read returns 11 bytes. */
const READ_BUF = 1024;

/** Runs one session to its verdict. Never rejects. */
export function runLeanClient(o: LeanOptions): Promise<ClientResult> {
  const session = new ClientSession({
    id: crypto.randomUUID(),
    count: o.count,
    wallMs: wallNow(),
    // Nothing is saved: only the checkpoints the protocol needs (the final one gates ACK(count)).
    checkpointEvery: Infinity,
    connectGiveUpMs: o.connectGiveUpMs,
    handshakeTimeoutMs: o.handshakeTimeoutMs,
    idleTimeoutMs: o.idleTimeoutMs,
    backoff: o.backoff,
  });
  return drive(session, {
    open: (limitMs, tick) => LeanLink.open(o, limitMs, tick),
    wallMs: wallNow,
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    signal: o.signal,
    observe(a, wallMs) {
      if (a.type === "number") o.onNumber?.(wallMs - ORIGIN);
      else if (a.type === "welcome") o.onWelcome?.(a.resumed, wallMs - ORIGIN);
    },
  });
}

/**
 * One connection as the driver's link: plain TCP, watched by the
 * {@link Sweeper} (no timer of its own), NUMBER frames parsed in place into
 * one reused message, every other frame through the shared codec.
 */
class LeanLink implements DriverLink<number | null>, Watched {
  readonly openedAt = wallNow();
  readonly handshakeMs: number;
  streaming = false;
  lastRead = 0;
  idleLimitMs = Infinity;
  held = false;
  tickAt = Infinity;
  silent = false;
  readonly tick: (wallMs: number) => number;
  readonly #o: LeanOptions;
  readonly #ac = new AbortController();
  #conn: Deno.TcpConn | undefined;
  #closed = false;
  readonly #buf = new Uint8Array(READ_BUF);
  /** The bytes being parsed: `#buf`, or `#carry` joined with it. */
  #b: Uint8Array = this.#buf;
  #pos = 0;
  #end = 0;
  /** A frame split across reads (rare at one number per interval) is kept here. */
  #carry: Uint8Array | undefined;
  /** NUMBER frames are parsed in place into this one object (the session keeps nothing of it). */
  readonly #num: NumberMsg = { type: "number", offset: 0, value: 0 };

  private constructor(
    o: LeanOptions,
    limitMs: number,
    tick: (wallMs: number) => number,
  ) {
    this.#o = o;
    this.handshakeMs = limitMs;
    this.tick = tick;
  }

  /** Dials, watched by the sweeper from the start: the handshake limit covers the dial. */
  static async open(
    o: LeanOptions,
    limitMs: number,
    tick: (wallMs: number) => number,
  ): Promise<LeanLink> {
    const l = new LeanLink(o, limitMs, tick);
    o.sweeper.watch(l);
    try {
      l.#conn = await Deno.connect({
        hostname: o.hostname,
        port: o.port,
        signal: l.#ac.signal,
      });
    } catch (err) {
      l.close();
      throw l.explain(err);
    }
    if (l.#closed) {
      l.#conn.close();
      throw new ClientError(CLIENT_CODES.ABORTED, "Aborted");
    }
    return l;
  }

  silence(): void {
    this.silent = true;
    this.close();
  }

  close(why?: unknown): void {
    if (why !== undefined && this.streaming) {
      this.#o.onLost?.(performance.now(), why);
    }
    if (this.#closed) return;
    this.#closed = true;
    this.#o.sweeper.forget(this);
    if (this.#conn) this.#conn.close();
    else this.#ac.abort();
  }

  explain(err: unknown): unknown {
    if (!this.silent) return err;
    return new ClientError(
      CLIENT_CODES.CONNECTION_LOST,
      this.streaming
        ? `No data from the server for ${this.idleLimitMs}ms`
        : `No welcome within ${this.handshakeMs}ms`,
    );
  }

  hold(on: boolean): void {
    this.held = on;
    if (!on) this.lastRead = wallNow();
  }

  welcomed(idleLimitMs: number, tickAt: number): void {
    this.streaming = true;
    this.idleLimitMs = idleLimitMs;
    this.tickAt = tickAt;
  }

  read(): Promise<number | null> {
    return this.#conn!.read(this.#buf);
  }

  push(n: number | null, wallMs: number): void {
    if (n === null) {
      throw new ClientError(
        CLIENT_CODES.CONNECTION_LOST,
        "Server closed the connection",
      );
    }
    this.lastRead = wallMs;
    // Parsed in place: `#end` bounds the bytes (no view allocated per read).
    this.#b = this.#buf;
    this.#pos = 0;
    this.#end = n;
    const carry = this.#carry;
    if (carry) {
      this.#b = new Uint8Array(carry.length + n);
      this.#b.set(carry);
      this.#b.set(this.#buf.subarray(0, n), carry.length);
      this.#end = this.#b.length;
      this.#carry = undefined;
    }
  }

  next(): ServerMessage | undefined {
    const b = this.#b, pos = this.#pos, end = this.#end;
    if (end - pos < HEADER_SIZE) return this.#keep();
    const type = b[pos]!;
    const len = (b[pos + 1]! << 8) | b[pos + 2]!;
    if (len > MAX_FRAME_VALUE) {
      throw new ClientError(
        CLIENT_CODES.PROTOCOL_VIOLATION,
        `The server sent a frame of ${len} bytes; the maximum is ${MAX_FRAME_VALUE}`,
      );
    }
    const start = pos + HEADER_SIZE;
    if (end - start < len) return this.#keep();
    this.#pos = start + len;
    if (type === MessageType.NUMBER && len === 8) {
      this.#num.offset = u32(b, start);
      this.#num.value = u32(b, start + 4);
      return this.#num;
    }
    try {
      const m = decodeMessage({ type, value: b.subarray(start, this.#pos) });
      if (m.type === "hello" || m.type === "resume" || m.type === "ack") {
        throw new ClientError(
          CLIENT_CODES.PROTOCOL_VIOLATION,
          `Unexpected ${m.type} from the server`,
        );
      }
      return m;
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      throw new ClientError(
        CLIENT_CODES.PROTOCOL_VIOLATION,
        `The server sent a malformed frame (${err.message})`,
        { cause: err },
      );
    }
  }

  /** Keeps an incomplete frame for the next read. */
  #keep(): undefined {
    if (this.#pos < this.#end) {
      this.#carry = this.#b.slice(this.#pos, this.#end);
      this.#pos = this.#end;
    }
    return undefined;
  }

  send(m: ClientMessage): Promise<number> {
    return this.#conn!.write(encodeClient(m));
  }
}

/**
 * An ACK frame in one allocation (the shared header writer, no `DataView`):
 * the one message the lean client sends per `ceil(window / 4)` numbers.
 * Equal to `encodeMessage({ type: "ack", nextOffset })` (tested).
 */
export function ackFrame(nextOffset: number): Uint8Array {
  const b = new Uint8Array(HEADER_SIZE + 4);
  writeHeader(b, 0, MessageType.ACK, 4);
  b[3] = nextOffset >>> 24;
  b[4] = (nextOffset >>> 16) & 0xff;
  b[5] = (nextOffset >>> 8) & 0xff;
  b[6] = nextOffset & 0xff;
  return b;
}

function encodeClient(m: ClientMessage): Uint8Array {
  return m.type === "ack" ? ackFrame(m.nextOffset) : encodeMessage(m);
}

function u32(b: Uint8Array, i: number): number {
  return ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>>
    0;
}
