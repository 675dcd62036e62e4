/**
 * The load tool's lean client: the real client's session state machine
 * ({@link ClientSession}: offset order, sum, CRC-32, the v2 ACK rules, the
 * retry and give-up policy) driven by a minimal loop, so that a load
 * generator costs less CPU per number than the server it measures.
 *
 * What it leaves out of `client/client.ts`, and why that is safe here:
 * - no per-connection timers: one {@link Sweeper} per process checks every
 *   live connection twice a second for the idle limit, the handshake
 *   limit and the keep-alive ACK (`ClientSession.nextTickAt`);
 * - no `Link`, no `AbortSignal.any`, no checkpoints (nothing is saved);
 * - NUMBER frames are parsed in place into one reused message object;
 *   every other frame (WELCOME, FINAL, DONE, …) goes through the shared codec.
 *
 * It still speaks v2 as the state machine dictates: ACK every
 * `ceil(window / 4)` numbers, a keep-alive only when no ACK went out for
 * `ackIntervalMs`, ACK(count) after FINAL, RESUME after a cut with the
 * client's jittered backoff. Times are `performance.now()` milliseconds.
 *
 * @module
 */

import { CLIENT_DEFAULTS } from "../common/defaults.ts";
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
import { ClientSession, type SessionAction } from "../client/session.ts";
import type { ClientResult } from "../client/types.ts";

/** One live connection, as the {@link Sweeper} sees it. */
interface Watched {
  readonly session: ClientSession;
  /** Closes the connection (or aborts the connect); the read loop then sees why. */
  close(): void;
  /** When this connection's handshake began (ms). */
  readonly openedAt: number;
  /** When bytes last arrived (ms). */
  lastRead: number;
  /** Silence after WELCOME that counts as a lost connection (ms). */
  idleLimitMs: number;
  /** Connect plus WELCOME must take at most this (ms). */
  handshakeMs: number;
  /** Set when the sweeper closed it for silence. */
  idleFired: boolean;
  /** Writes a keep-alive ACK. */
  send(bytes: Uint8Array): void;
}

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
    this.#timer = setInterval(() => this.sweep(performance.now()), everyMs);
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

  /** One pass at `now`. */
  sweep(now: number): void {
    for (const w of this.#live) {
      const s = w.session;
      if (!s.welcomed) {
        if (now - w.openedAt > w.handshakeMs) {
          w.idleFired = true;
          w.close();
        }
        continue;
      }
      if (now - w.lastRead > w.idleLimitMs) {
        w.idleFired = true;
        w.close();
        continue;
      }
      if (now >= s.nextTickAt) {
        for (const a of s.tick(now)) {
          if (a.type === "send") w.send(encodeClient(a.message));
        }
      }
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
  /** A connection was welcomed (`resumed`: not the first one). */
  onWelcome?: (resumed: boolean, now: number) => void;
  /** A number (or FINAL) was accepted at `now`. */
  onNumber?: (now: number) => void;
  /** A welcomed connection ended, with what ended it. */
  onLost?: (now: number, why: unknown) => void;
}

/** Read buffer per connection: at one number per interval a read returns 11 bytes. */
const READ_BUF = 1024;

/** Runs one session to its verdict. Never rejects. */
export async function runLeanClient(o: LeanOptions): Promise<ClientResult> {
  const session = new ClientSession({
    id: crypto.randomUUID(),
    count: o.count,
    now: performance.now(),
    connectGiveUpMs: o.connectGiveUpMs,
  });
  const handshakeLimit = o.handshakeTimeoutMs ??
    CLIENT_DEFAULTS.handshakeTimeoutMs;
  let attempt = 0;
  while (true) {
    if (o.signal.aborted) return aborted(session);
    let err: unknown;
    try {
      if (await once(session, o, handshakeLimit, () => attempt = 0)) {
        return session.result();
      }
    } catch (e) {
      err = e;
    }
    if (o.signal.aborted) return aborted(session);
    const now = performance.now();
    const out = session.failed(err, now);
    if (out.verdict === "complete") return session.result();
    if (out.verdict === "final") return session.result(out.error);
    const delay = Math.max(
      out.minDelayMs,
      Math.min(o.backoff(attempt++), out.budgetMs),
    );
    await new Promise((r) => setTimeout(r, delay));
  }
}

function aborted(session: ClientSession): ClientResult {
  return session.result(new ClientError(CLIENT_CODES.ABORTED, "Aborted"));
}

/** One connection: true when the session is done (DONE received). */
async function once(
  session: ClientSession,
  o: LeanOptions,
  handshakeLimit: number,
  welcomed: () => void,
): Promise<boolean> {
  const ac = new AbortController();
  let conn: Deno.TcpConn | undefined;
  let closed = false;
  const w: Watched = {
    session,
    openedAt: performance.now(),
    lastRead: 0,
    idleLimitMs: Infinity,
    handshakeMs: session.handshakeMs(performance.now(), handshakeLimit),
    idleFired: false,
    close() {
      if (closed) return;
      closed = true;
      if (conn) conn.close();
      else ac.abort();
    },
    send(bytes) {
      conn?.write(bytes).catch(() => w.close());
    },
  };
  o.sweeper.watch(w);
  const lostIfWelcomed = (why: unknown) => {
    if (session.welcomed) o.onLost?.(performance.now(), why);
  };
  try {
    try {
      conn = await Deno.connect({
        hostname: o.hostname,
        port: o.port,
        signal: ac.signal,
      });
    } catch (err) {
      throw w.idleFired
        ? new ClientError(
          CLIENT_CODES.CONNECTION_LOST,
          `No welcome within ${w.handshakeMs}ms`,
        )
        : err;
    }
    if (closed) throw new ClientError(CLIENT_CODES.ABORTED, "Aborted");
    const write = (a: SessionAction) =>
      a.type === "send" ? conn!.write(encodeClient(a.message)) : undefined;
    for (const a of session.connected(performance.now())) await write(a);
    const buf = new Uint8Array(READ_BUF);
    // A frame split across reads (rare at one number per interval) is kept here.
    let carry: Uint8Array | undefined;
    // NUMBER frames are parsed in place into this one object (the session keeps nothing of it).
    const num: NumberMsg = { type: "number", offset: 0, value: 0 };
    while (true) {
      let n: number | null;
      try {
        n = await conn.read(buf);
      } catch (err) {
        if (w.idleFired) throw silence(w);
        throw err;
      }
      if (n === null) {
        if (w.idleFired) throw silence(w);
        throw new ClientError(
          CLIENT_CODES.CONNECTION_LOST,
          "Server closed the connection",
        );
      }
      const now = performance.now();
      w.lastRead = now;
      // Parsed in place: `end` bounds the bytes (no view allocated per read).
      let b = buf;
      let end = n;
      if (carry) {
        b = new Uint8Array(carry.length + n);
        b.set(carry);
        b.set(buf.subarray(0, n), carry.length);
        end = b.length;
        carry = undefined;
      }
      let pos = 0;
      while (pos < end) {
        if (end - pos < HEADER_SIZE) break;
        const type = b[pos]!;
        const len = (b[pos + 1]! << 8) | b[pos + 2]!;
        if (len > MAX_FRAME_VALUE) {
          throw new ClientError(
            CLIENT_CODES.PROTOCOL_VIOLATION,
            `The server sent a frame of ${len} bytes; the maximum is ${MAX_FRAME_VALUE}`,
          );
        }
        const start = pos + HEADER_SIZE;
        if (end - start < len) break;
        pos = start + len;
        let msg: ServerMessage;
        if (type === MessageType.NUMBER && len === 8) {
          num.offset = u32(b, start);
          num.value = u32(b, start + 4);
          msg = num;
        } else {
          try {
            const m = decodeMessage({ type, value: b.subarray(start, pos) });
            if (m.type === "hello" || m.type === "resume" || m.type === "ack") {
              throw new ClientError(
                CLIENT_CODES.PROTOCOL_VIOLATION,
                `Unexpected ${m.type} from the server`,
              );
            }
            msg = m;
          } catch (err) {
            if (err instanceof ProtocolError) {
              throw new ClientError(
                CLIENT_CODES.PROTOCOL_VIOLATION,
                `The server sent a malformed frame (${err.message})`,
                { cause: err },
              );
            }
            throw err;
          }
        }
        const acts = session.receive(msg, now);
        for (let i = 0; i < acts.length; i++) {
          const a = acts[i]!;
          switch (a.type) {
            case "number":
              o.onNumber?.(now);
              break;
            case "send":
              await write(a);
              break;
            case "checkpoint":
              if (a.durable) {
                for (const d of session.durable(now)) await write(d);
              }
              break;
            case "welcome":
              welcomed();
              w.idleLimitMs = session.idleLimitMs(o.idleTimeoutMs);
              o.onWelcome?.(a.resumed, now);
              break;
            case "verdict":
              return true;
            case "violation":
            case "stop":
              throw a.error;
          }
        }
      }
      if (pos < end) carry = b.slice(pos, end);
    }
  } catch (err) {
    lostIfWelcomed(err);
    session.linkLost(performance.now(), w.idleFired);
    throw err;
  } finally {
    o.sweeper.forget(w);
    session.linkLost(performance.now());
    if (!closed) {
      closed = true;
      conn?.close();
    }
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

function silence(w: Watched): ClientError {
  return new ClientError(
    CLIENT_CODES.CONNECTION_LOST,
    w.session.welcomed
      ? `No data from the server for ${w.idleLimitMs}ms`
      : `No welcome within ${w.handshakeMs}ms`,
  );
}

function u32(b: Uint8Array, i: number): number {
  return ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>>
    0;
}
