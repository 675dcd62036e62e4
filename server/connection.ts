/**
 * One client connection on the server: the short loop that wires a
 * {@link Transport} to the pure parts. Bytes go through the {@link FrameDecoder}; HELLO or
 * RESUME through the session layer; then every ACK and every scheduler wake
 * through the connection's {@link Stream}, whose actions become frames handed
 * to a {@link Writer}. One {@link Scheduler} entry per connection covers the
 * handshake timeout, the next paced number, the liveness deadlines and the
 * bounded close: no timer per connection. Time comes from the host's
 * {@link Clock}: its monotonic reading for deadlines and pacing, its wall
 * reading for `attachedAt`.
 *
 * @module
 */

import type { Clock } from "../common/clock.ts";
import type { Logger } from "../common/logger.ts";
import { sequenceChecksum } from "../protocol/checksum.ts";
import { ErrorCode, errorName, ProtocolError } from "../protocol/errors.ts";
import { FrameDecoder, MAX_FRAME_VALUE } from "../protocol/frame.ts";
import {
  decodeMessage,
  encodeMessage,
  encodeNumberInto,
  type Hello,
  isMessageType,
  type Message,
  MessageType,
  NUMBER_FRAME_SIZE,
  type Resume,
} from "../protocol/messages.ts";
import { valueAt } from "../protocol/prng.ts";
import type { Counters } from "./metrics.ts";
import type { Scheduler, Task } from "./scheduler.ts";
import type { Attachment } from "./sessions.ts";
import { Stream, StreamAction, type StreamSettings } from "./stream.ts";
import type { Transport } from "./transport.ts";
import { Writer } from "./writer.ts";

/** What a connection needs of the session layer (`SessionManager`). */
export interface SessionPort {
  /** @throws {ProtocolError} a refusal */
  open(id: string, count: number, token: Uint8Array): Promise<Attachment>;
  /** @throws {ProtocolError} a refusal */
  resume(
    id: string,
    token: Uint8Array,
    nextOffset: number,
  ): Promise<Attachment>;
  holds(att: Attachment): boolean;
  detach(att: Attachment): Promise<void>;
  complete(att: Attachment): Promise<boolean>;
}

/** The settings a connection announces and enforces. */
export interface ConnectionSettings extends StreamSettings {
  /** How long a detached session stays resumable (ms), for WELCOME. */
  readonly ttlMs: number;
  /** A HELLO or RESUME must arrive within this after accept (ms). */
  readonly handshakeTimeoutMs: number;
  /** How often the client must ACK (ms), for WELCOME. */
  readonly ackIntervalMs: number;
}

/** The server as one connection sees it. */
export interface ConnectionHost {
  readonly settings: ConnectionSettings;
  /** Whether the server refuses new sessions because it is going away. */
  readonly shuttingDown: boolean;
  /** The one clock: monotonic for deadlines and pacing, wall for `attachedAt`. */
  readonly clock: Clock;
  /** Runs on {@link clock}'s monotonic time. */
  readonly scheduler: Scheduler;
  readonly sessions: SessionPort;
  readonly counters: Counters;
  readonly log: Logger;
  /** The connection attached `att`. */
  attached(conn: Connection, att: Attachment): void;
  /** The connection that attached `att` is closing. */
  detached(conn: Connection, att: Attachment): void;
  /** The connection has closed. */
  closed(conn: Connection): void;
  /** A HELLO or RESUME was refused with the error named `code`. */
  refused(code: string): void;
  /** A WELCOME was written `ms` after its HELLO or RESUME arrived. */
  welcomed?(kind: "hello" | "resume", ms: number): void;
}

/** What `/sessions` shows of an attached connection: no token, no seed. */
export interface SessionView {
  readonly id: string;
  readonly count: number;
  /** Next offset to send. */
  readonly sent: number;
  /** Offset the client acknowledged. */
  readonly acked: number;
  /** Fencing epoch: 1 for a fresh session, one more for every attach since. */
  readonly epoch: number;
  /** Every number and FINAL sent, ACK(count) awaited (or being recorded). */
  readonly completing: boolean;
  readonly remote: string;
  /** When it attached (ms since the epoch). */
  readonly attachedAt: number;
}

const HANDSHAKE = 0, OPENING = 1, STREAMING = 2, CLOSING = 3, ENDED = 4;

/** How long a closing connection may take to deliver its last frame (ms). */
const CLOSE_GRACE_MS = 250;

/** Bytes read at once: a handshake (HELLO or RESUME, 40 bytes) fits. */
const READ_BUFFER_SIZE = 64;

/** Bytes of a FINAL frame. */
const FINAL_FRAME_SIZE = 3 + 20;

/**
 * First byte of a TLS ClientHello record. Its length field (0x03xx) is a valid
 * frame length, so without this check a TLS client on a plain port would wait
 * for the handshake timeout instead of being told at once.
 */
const TLS_HANDSHAKE_RECORD = 0x16;

/** A client connection and, once attached, its session's stream. */
export class Connection implements Task {
  /** Scheduler bookkeeping. */
  due = 0;
  /** Scheduler bookkeeping. */
  slot = -1;
  /** `host:port` of the peer (made when asked: logs and `/sessions`). */
  get remote(): string {
    const a = this.#conn.remoteAddr;
    return `${a.hostname}:${a.port}`;
  }
  readonly #conn: Transport;
  readonly #host: ConnectionHost;
  readonly #writer: Writer;
  /** Made only when someone waits for the close (most connections never do). */
  #ended: PromiseWithResolvers<void> | undefined;
  /** One NUMBER frame, reused for every paced number. */
  readonly #frame = new Uint8Array(NUMBER_FRAME_SIZE);
  /** Batches (burst mode, FINAL), allocated when first needed. */
  #batch: Uint8Array | undefined;
  #phase = HANDSHAKE;
  #att: Attachment | undefined;
  #stream: Stream | undefined;
  #closeBy = 0;
  /** The session id a hello or resume asked for, so refusals can name it in the logs. */
  #requestedId: string | undefined;
  /** When the session attached (ms since the epoch), for `/sessions`. */
  #attachedAt = 0;

  /** @param conn the accepted transport; @param host the server's side */
  constructor(conn: Transport, host: ConnectionHost) {
    this.#conn = conn;
    this.#host = host;
    this.#writer = new Writer(conn, {
      onError: () => this.end(),
      onIdle: () => {
        const stream = this.#stream;
        if (this.#phase === STREAMING && stream !== undefined) {
          // Only a burst stream sends from here, so only it needs the time.
          const now = stream.settings.intervalMs === 0
            ? this.#host.clock.monotonic()
            : 0;
          this.#act(stream.writerIdle(now));
        }
      },
    });
  }

  /** The attached session's id, if any. */
  get sessionId(): string | undefined {
    return this.#att?.id;
  }

  /** The attachment's fencing epoch, or 0. */
  get epoch(): number {
    return this.#att?.epoch ?? 0;
  }

  /** Numbers sent and not acknowledged on this connection. */
  get unacked(): number {
    return this.#stream?.unacked ?? 0;
  }

  /** The attached session as `/sessions` shows it; undefined before it attached. */
  get view(): SessionView | undefined {
    const att = this.#att, stream = this.#stream;
    if (att === undefined || stream === undefined) return undefined;
    return {
      id: att.id,
      count: att.count,
      sent: stream.sent,
      acked: stream.acked,
      epoch: att.epoch,
      completing: stream.finalSent,
      remote: this.remote,
      attachedAt: this.#attachedAt,
    };
  }

  /** The largest {@link unacked} this connection reached. */
  get unackedPeak(): number {
    return this.#stream?.peak ?? 0;
  }

  /** Serves the connection until it ends. Never throws. */
  async serve(): Promise<void> {
    const { clock, scheduler, settings } = this.#host;
    scheduler.schedule(this, clock.monotonic() + settings.handshakeTimeoutMs);
    const decoder = new FrameDecoder(MAX_FRAME_VALUE, isMessageType);
    // Small: the client sends 40-byte handshakes and 7-byte ACKs (a
    // larger frame takes several reads; the decoder joins them).
    const buf = new Uint8Array(READ_BUFFER_SIZE);
    let first = true;
    try {
      while (this.#phase !== ENDED) {
        const n = await this.#conn.read(buf);
        if (n === null) break;
        if (first && buf[0] === TLS_HANDSHAKE_RECORD) {
          throw new ProtocolError(
            ErrorCode.MALFORMED_FRAME,
            "Received a TLS handshake, but this port serves plain TCP; connect without TLS or start the server with --tls-cert",
          );
        }
        first = false;
        for (const frame of decoder.push(buf.subarray(0, n))) {
          const v = frame.value;
          // The one frame of the steady state, read without a message object.
          const pending = frame.type === MessageType.ACK && v.length === 4
            ? this.#onAck(
              ((v[0]! << 24) | (v[1]! << 16) | (v[2]! << 8) | v[3]!) >>> 0,
            )
            : this.#onMessage(decodeMessage(frame));
          if (pending !== undefined) await pending;
          if (this.#phase === ENDED) break;
        }
      }
    } catch (err) {
      if (err instanceof ProtocolError) {
        this.fail(err);
        await this.ended;
      } else if (err instanceof Deno.errors.InvalidData) {
        // A TLS listener's handshake failed (a plain-TCP client, or an untrusted certificate).
        this.#host.log.debug("tls handshake failed", {
          remote: this.remote,
          error: err.message,
        });
      } else if (!isSocketError(err)) {
        this.#host.log.error("connection failed", {
          id: this.#att?.id ?? this.#requestedId,
          remote: this.remote,
          error: String(err),
        });
      }
    } finally {
      await this.#cleanup();
    }
  }

  /** Handles one message; a promise only when it must be awaited (store round trips). */
  #onMessage(msg: Message): Promise<void> | undefined {
    switch (this.#phase) {
      case HANDSHAKE:
        if (msg.type === "hello" || msg.type === "resume") {
          return this.#handshake(msg);
        }
        break;
      case STREAMING:
        if (msg.type === "ack" && this.#stream !== undefined) {
          return this.#onAck(msg.nextOffset);
        }
        break;
      default:
        // Closing: whatever the client still says changes nothing.
        return;
    }
    throw new ProtocolError(
      ErrorCode.UNEXPECTED_MESSAGE,
      `Unexpected ${msg.type} message ${
        this.#phase === HANDSHAKE ? "before HELLO or RESUME" : "while streaming"
      }`,
    );
  }

  /** ACK(n); a promise only for the completion. */
  #onAck(n: number): Promise<void> | undefined {
    const stream = this.#stream;
    if (this.#phase !== STREAMING || stream === undefined) {
      return this.#onMessage({ type: "ack", nextOffset: n });
    }
    this.#host.counters.acksReceived++;
    const a = stream.ack(n, this.#host.clock.monotonic());
    if (a === StreamAction.COMPLETE) return this.#complete();
    this.#act(a);
  }

  async #handshake(msg: Hello | Resume): Promise<void> {
    const host = this.#host;
    const t0 = host.clock.monotonic();
    this.#phase = OPENING;
    host.scheduler.cancel(this);
    this.#requestedId = msg.id;
    if (host.shuttingDown) {
      throw new ProtocolError(
        ErrorCode.SHUTTING_DOWN,
        "Server is shutting down",
      );
    }
    let att: Attachment;
    try {
      att = msg.type === "hello"
        ? await host.sessions.open(msg.id, msg.count, msg.token)
        : await host.sessions.resume(msg.id, msg.token, msg.nextOffset);
    } catch (err) {
      if (err instanceof ProtocolError) throw err;
      // The session layer promises ProtocolErrors only; anything else is a
      // bug or a store that failed in an unexpected way. The client still
      // gets an answer, and a retriable one.
      host.log.error("session layer failed", {
        id: msg.id,
        remote: this.remote,
        error: String(err),
      });
      throw new ProtocolError(
        ErrorCode.STORE_UNAVAILABLE,
        `Cannot ${
          msg.type === "hello" ? "start" : "resume"
        } session "${msg.id}" now: the session store failed; retry shortly`,
        { cause: err },
      );
    }
    if (this.#phase !== OPENING) {
      // The socket died (or the server fenced it) during the store round trip.
      await host.sessions.detach(att).catch((err) => this.#detachFailed(err));
      return;
    }
    this.#att = att;
    this.#attachedAt = host.clock.now();
    host.attached(this, att);
    const offset = msg.type === "hello" ? 0 : msg.nextOffset;
    host.log.info(
      msg.type === "hello" ? "session started" : "session resumed",
      {
        id: att.id,
        count: att.count,
        offset,
        epoch: att.epoch,
        remote: this.remote,
      },
    );
    const s = host.settings;
    void this.#writer.write(encodeMessage({
      type: "welcome",
      count: att.count,
      nextOffset: offset,
      token: att.token,
      intervalMs: s.intervalMs,
      ttlMs: s.ttlMs,
      window: s.window,
      ackIntervalMs: s.ackIntervalMs,
    }));
    const now = host.clock.monotonic();
    host.welcomed?.(msg.type, now - t0);
    const stream = this.#stream = new Stream(s, att.count);
    stream.start(offset, now);
    this.#phase = STREAMING;
    this.#act(stream.tick(now));
    if (this.#phase === STREAMING) this.#reschedule(stream.nextWake());
  }

  /** Scheduler callback: the handshake deadline, a stream wake, or the close bound. */
  run(now: number): number | null {
    switch (this.#phase) {
      case HANDSHAKE:
        this.fail(
          new ProtocolError(
            ErrorCode.HANDSHAKE_TIMEOUT,
            `No hello or resume within ${this.#host.settings.handshakeTimeoutMs}ms`,
          ),
        );
        return this.#closeBy;
      case STREAMING: {
        const stream = this.#stream;
        if (stream === undefined) return null;
        // The scheduler runs what is due within 1 ms: never let a tick see
        // a time before the one it was scheduled for.
        const t = now < this.due ? this.due : now;
        this.#act(stream.tick(t));
        // The action may have closed the stream (a cast: TS narrowed #phase).
        if ((this.#phase as number) === CLOSING) return this.#closeBy;
        const wake = stream.nextWake();
        return wake === Infinity ? null : wake;
      }
      case CLOSING:
        this.end();
        return null;
      default:
        return null;
    }
  }

  #reschedule(wake: number): void {
    if (wake === Infinity) this.#host.scheduler.cancel(this);
    else this.#host.scheduler.schedule(this, wake);
  }

  /** Carries out a stream action (COMPLETE is handled by the ACK path). */
  #act(a: StreamAction): void {
    const stream = this.#stream, att = this.#att;
    if (a === StreamAction.NONE || stream === undefined || att === undefined) {
      return;
    }
    if (a === StreamAction.SEND) {
      if (stream.to - stream.from === 1) {
        const off = stream.from;
        encodeNumberInto(this.#frame, 0, off, valueAt(att.seed, off));
        this.#host.counters.numbersSent++;
        void this.#writer.write(this.#frame);
      } else {
        this.#sendBatch(att, stream.from, stream.to, false);
      }
    } else if (a === StreamAction.SEND_FINAL) {
      this.#sendBatch(att, stream.from, stream.to, true);
    } else if (a === StreamAction.CLOSE) {
      this.#streamClosed(att, stream);
    }
  }

  /** Writes NUMBER frames `from..to − 1` in one write, the last as FINAL if `final`. */
  #sendBatch(att: Attachment, from: number, to: number, final: boolean): void {
    const numbers = final ? to - 1 : to;
    const size = (numbers - from) * NUMBER_FRAME_SIZE +
      (final ? FINAL_FRAME_SIZE : 0);
    let buf = this.#batch;
    if (buf === undefined || buf.length < size) {
      const most = Math.min(this.#host.settings.window, att.count);
      buf = this.#batch = new Uint8Array(
        Math.max(size, most * NUMBER_FRAME_SIZE + FINAL_FRAME_SIZE),
      );
    }
    let pos = 0;
    for (let off = from; off < numbers; off++) {
      pos = encodeNumberInto(buf, pos, off, valueAt(att.seed, off));
    }
    if (final) {
      const last = att.count - 1;
      const { sum, crc } = sequenceChecksum(att.seed, att.count);
      const f = encodeMessage({
        type: "final",
        offset: last,
        value: valueAt(att.seed, last),
        sum,
        crc32: crc,
      });
      buf.set(f, pos);
      pos += f.length;
    }
    this.#host.counters.numbersSent += to - from;
    void this.#writer.write(buf.subarray(0, pos));
  }

  #streamClosed(att: Attachment, stream: Stream): void {
    const { counters, log } = this.#host;
    const fields = { id: att.id, remote: this.remote, sent: stream.sent };
    if (stream.code === ErrorCode.CLIENT_TIMEOUT) {
      counters.clientTimeouts++;
      log.info("client timed out; session stays resumable", fields);
    } else if (stream.code === ErrorCode.SLOW_CONSUMER) {
      counters.slowConsumersDropped++;
      log.warn("client too slow; dropped, session stays resumable", {
        ...fields,
        acked: stream.acked,
      });
    } else {
      log.info("client protocol error", {
        ...fields,
        code: errorName(stream.code),
        reason: stream.message(),
      });
    }
    this.fail(new ProtocolError(stream.code, stream.message()));
  }

  /** ACK(count): record the completion, say DONE, close. */
  async #complete(): Promise<void> {
    const att = this.#att;
    if (att === undefined) return;
    this.#host.scheduler.cancel(this);
    let done: boolean;
    try {
      done = await this.#host.sessions.complete(att);
    } catch (err) {
      if (err instanceof ProtocolError) throw err;
      this.#host.log.error("session layer failed", {
        id: att.id,
        remote: this.remote,
        error: String(err),
      });
      throw new ProtocolError(
        ErrorCode.STORE_UNAVAILABLE,
        `Cannot record the completion of session "${att.id}" now: the session store failed; resume to acknowledge again`,
        { cause: err },
      );
    }
    if (this.#phase !== STREAMING) return; // fenced or shut down meanwhile
    if (!done) {
      // Fenced meanwhile: the other attachment answers the client.
      this.end();
      return;
    }
    this.#host.log.info("session completed", { id: att.id, count: att.count });
    // Awaited: the read loop stays parked until the socket closes, so no
    // read is left pending to fail (an error built per completed session).
    await this.#sendAndEnd(encodeMessage({ type: "done" }));
  }

  /** Sends an ERROR frame (best effort, bounded in time) and closes. */
  fail(err: ProtocolError): void {
    if (this.#phase >= CLOSING) return;
    if (this.#phase <= OPENING) {
      this.#host.refused(errorName(err.code));
      this.#host.log.info("refused", {
        id: this.#requestedId,
        code: errorName(err.code),
        remote: this.remote,
        reason: err.message,
      });
    }
    void this.#sendAndEnd(
      encodeMessage({ type: "error", code: err.code, message: err.message }),
    );
  }

  /** Tells the client the server is going away, then closes. The session stays resumable. */
  goAway(message: string): void {
    if (this.#phase >= CLOSING) return;
    void this.#sendAndEnd(
      encodeMessage({ type: "goaway", retryAfterMs: 0, message }),
    );
  }

  /**
   * Writes `bytes`, then closes; a client that is not reading gets
   * {@link CLOSE_GRACE_MS}. Resolves when the socket is closed.
   */
  #sendAndEnd(bytes: Uint8Array): Promise<void> {
    this.#phase = CLOSING;
    this.#closeBy = this.#host.clock.monotonic() + CLOSE_GRACE_MS;
    this.#host.scheduler.schedule(this, this.#closeBy);
    void this.#writer.write(bytes).then(() => this.end());
    return this.ended;
  }

  /** Closes the socket now. Idempotent. */
  end(): void {
    if (this.#phase === ENDED) return;
    this.#phase = ENDED;
    this.#host.scheduler.cancel(this);
    this.#conn.close();
    this.#ended?.resolve();
  }

  /** Resolves when the socket is closed. */
  get ended(): Promise<void> {
    if (this.#phase === ENDED) return Promise.resolve();
    return (this.#ended ??= Promise.withResolvers<void>()).promise;
  }

  #detachFailed(err: unknown): void {
    this.#host.log.error("session detach failed", {
      id: this.#att?.id ?? this.#requestedId,
      error: String(err),
    });
  }

  async #cleanup(): Promise<void> {
    this.end();
    const att = this.#att;
    const host = this.#host;
    if (att !== undefined) {
      host.detached(this, att);
      if (host.sessions.holds(att)) {
        host.log.info("session detached", {
          id: att.id,
          sent: this.#stream?.sent,
          acked: this.#stream?.acked,
          remote: this.remote,
        });
        await host.sessions.detach(att).catch((err) => this.#detachFailed(err));
      }
    }
    host.closed(this);
  }
}

const DENO_ERRORS: (new (...args: never[]) => Error)[] = Object.values(
  Deno.errors,
);

/**
 * Errors of the runtime's I/O (what a {@link Transport} rejects with on a
 * dead link): the peer is gone, nothing to tell it.
 */
function isSocketError(err: unknown): boolean {
  return DENO_ERRORS.some((cls) => err instanceof cls);
}
