/**
 * The state machine of one client connection on the server (PROTOCOL.md
 * §4 "What is allowed when", §7 and §8): handshake, opening, streaming,
 * closing. Events in (a
 * decoded frame, the session layer's answer, the scheduler due, the writer
 * idle or failed, the read side ended, a takeover or a GOAWAY), actions out
 * (write these bytes, ask the session layer, tell the host, count, log,
 * close). It holds no transport, reads no clock and makes no promise: every
 * event that needs the time carries it, named for its base (`monotonicMs`,
 * `wallMs`). The shell that runs it over a transport is `connection.ts`.
 *
 * The scheduler calls it once per number for every live session, so the
 * steady state allocates nothing: an event returns its first
 * {@link ConnAction} code (kept in fields: a NUMBER or an ACK is one action
 * and never touches the queue), {@link ConnectionMachine.next} the following
 * ones (from a short queue, one small array per connection) until
 * {@link ConnAction.NONE}, and an action's data is read from the machine
 * ({@link ConnectionMachine.bytes}, {@link ConnectionMachine.counter}, ...)
 * until the next call. NUMBER frames are encoded into one buffer per
 * connection (and a batch buffer for bursts and FINAL).
 *
 * Arming the scheduler is a level, not a queued action: after every event
 * {@link ConnectionMachine.wakeAt} is no later than when the machine next
 * has something to do (`Infinity`: nothing). A timer event before that
 * does nothing but move `wakeAt`, so the shell may leave a timer armed that
 * is due earlier, and must re-arm only when `wakeAt` moved earlier. (An ACK
 * or an idle writer that sends nothing only moves deadlines later, so they
 * leave `wakeAt` as it was: nothing to compute per ACK.)
 *
 * The rules:
 * 1. A HELLO or RESUME must arrive within `handshakeTimeoutMs` of the
 *    accept (`handshake_timeout`). The first bytes of a TLS ClientHello are
 *    refused at once (`malformed_frame`), and so is any other message
 *    (`unexpected_message`). A refusal is counted and logged as one.
 * 2. The handshake asks the session layer ({@link ConnAction.OPEN} or
 *    {@link ConnAction.RESUME}); no deadline runs meanwhile. Its answer
 *    attaches (WELCOME, then the stream starts) or refuses (ERROR); any
 *    answer that is not a protocol error is a `store_unavailable`. An
 *    attachment that arrives once the connection is closing is detached;
 *    one the session layer no longer holds when it arrives (taken over
 *    meanwhile) is refused with `taken_over`.
 * 3. Streaming: ACKs and scheduler wakes go through the {@link Stream}; its
 *    SEND actions become NUMBER (and FINAL) frames, its CLOSE an ERROR.
 * 4. ACK(count) asks the session layer to record the completion: recorded,
 *    it says DONE; refused because another connection took the session
 *    over meanwhile, it says ERROR `taken_over` (never a bare close).
 * 5. Closing: one last frame (ERROR, GOAWAY or DONE) is written; the
 *    transport closes when the writer is idle, or after
 *    {@link CLOSE_GRACE_MS} if the client does not read.
 * 6. Once the read side ended and the transport closed, a session still
 *    held is detached.
 * 7. Reading: at most one read is in flight ({@link ConnAction.READ} starts
 *    one, {@link ConnectionMachine.readDone} or
 *    {@link ConnectionMachine.readEnded} ends it); the first one starts at
 *    accept, without an action. Before and while opening, and for a burst
 *    stream, the next read starts as soon as the last one was fed. A paced
 *    stream reads only when an ACK is due: the client acknowledges every
 *    {@link ackEvery} numbers, so a read starts in the turn that sends the
 *    number that makes `sent − acked` reach it (the ACK is a round trip
 *    away), and at once while it stays there; and a keep-alive is due
 *    `ackIntervalMs` after the last ACK, so the next read starts no later
 *    than {@link readGap} after the last one ended, and no later than
 *    `readGap` before the stream's liveness deadline. Between two reads no
 *    read is pending (on Deno a read pending for seconds leaves promise
 *    objects that survive young-generation collections and are promoted:
 *    heap growth with the ACK traffic). What it changes, and the bounds:
 *    - a FIN or RST from the client is noticed at the next read, at most
 *      `readGap` after the previous one ended (5 s at the defaults: half
 *      the 10 s client timeout), or earlier by a failed write (an RST, or
 *      the reset a closed client's kernel answers a NUMBER with);
 *    - an ACK that arrives while no read is in flight (a client that
 *      acknowledges off the quarter-window cadence) is noted up to
 *      `readGap` late, never after a liveness deadline: a read is in flight
 *      for the last `readGap` before each. Noted late, it moves the
 *      deadlines later, never earlier: no client is closed that reading
 *      always would have kept;
 *    - a silent client's read stays pending until its deadline, as before.
 *
 * @module
 */

import type { LogFields } from "../common/logger.ts";
import { sequenceChecksum } from "../protocol/checksum.ts";
import { ErrorCode, errorName, ProtocolError } from "../protocol/errors.ts";
import {
  decodeMessage,
  encodeMessage,
  encodeNumberInto,
  type Hello,
  type Message,
  MessageType,
  NUMBER_FRAME_SIZE,
  type Resume,
} from "../protocol/messages.ts";
import { valueAt } from "../protocol/prng.ts";
import type { Counters } from "./metrics.ts";
import type { Attachment } from "./sessions.ts";
import { Stream, StreamAction, type StreamSettings } from "./stream.ts";
import type { RemoteAddr } from "./transport.ts";

/** The settings a connection announces and enforces. */
export interface ConnectionSettings extends StreamSettings {
  /** How long a detached session stays resumable (ms), for WELCOME. */
  readonly ttlMs: number;
  /** A HELLO or RESUME must arrive within this after accept (ms). */
  readonly handshakeTimeoutMs: number;
  /** How often the client must ACK (ms), for WELCOME. */
  readonly ackIntervalMs: number;
}

/**
 * What a {@link ConnectionMachine} event asks the shell to do. The data of
 * the action is on the machine until its next call.
 */
export const ConnAction = {
  /** Nothing (more) now. */
  NONE: 0,
  /**
   * Write {@link ConnectionMachine.bytes} (unchanged until the write
   * settles); {@link ConnectionMachine.numbers} NUMBER and FINAL frames are
   * among them (the `numbersSent` counter).
   */
  WRITE: 1,
  /**
   * Ask the session layer to open {@link ConnectionMachine.request} (a
   * HELLO); answer with {@link ConnectionMachine.attached} or
   * {@link ConnectionMachine.handshakeFailed}. Last of its batch; feed no
   * frame until it is answered.
   */
  OPEN: 2,
  /** As {@link OPEN}, to resume {@link ConnectionMachine.request} (a RESUME). */
  RESUME: 3,
  /**
   * Ask the session layer to complete {@link ConnectionMachine.attachment};
   * answer with {@link ConnectionMachine.completed} or
   * {@link ConnectionMachine.completeFailed}. Last of its batch; feed no
   * frame until it is answered.
   */
  COMPLETE: 4,
  /**
   * Detach {@link ConnectionMachine.attachment} from the session layer; a
   * failure goes to {@link ConnectionMachine.detachFailed}. Last of its
   * batch.
   */
  DETACH: 5,
  /**
   * Start one read of the transport; feed its bytes to
   * {@link ConnectionMachine.received} and {@link ConnectionMachine.frame},
   * then call {@link ConnectionMachine.readDone} (or
   * {@link ConnectionMachine.readEnded} at EOF or a failed read).
   */
  READ: 14,
  /** Tell the host this connection attached {@link ConnectionMachine.attachment}. */
  ATTACHED: 6,
  /** Tell the host the connection that attached {@link ConnectionMachine.attachment} is closing. */
  DETACHED: 7,
  /** Close the transport now (the machine has ended). */
  END: 8,
  /** Add 1 to the counter {@link ConnectionMachine.counter}. */
  COUNT: 9,
  /** A HELLO or RESUME was refused with the error named {@link ConnectionMachine.refusal}. */
  REFUSED: 10,
  /**
   * A WELCOME answered a {@link ConnectionMachine.welcomed} handshake
   * {@link ConnectionMachine.ms} (monotonic) after it arrived.
   */
  WELCOMED: 11,
  /** Log {@link ConnectionMachine.line}. */
  LOG: 12,
  /**
   * An ACK frame arrived while streaming (the `acksReceived` counter): the
   * steady state's COUNT, with no counter name to look up.
   */
  ACKED: 13,
} as const;

/** A code from {@link ConnAction}. */
export type ConnAction = typeof ConnAction[keyof typeof ConnAction];

/** The phases of a connection, in order. */
export const ConnPhase = {
  /** Waiting for HELLO or RESUME. */
  HANDSHAKE: 0,
  /** The session layer is answering the handshake. */
  OPENING: 1,
  /** Attached: the stream runs (or its completion is being recorded). */
  STREAMING: 2,
  /** A last frame is on its way; the transport closes after it. */
  CLOSING: 3,
  /** The transport is closed. */
  ENDED: 4,
} as const;

/** A code from {@link ConnPhase}. */
export type ConnPhase = typeof ConnPhase[keyof typeof ConnPhase];

/** A counter a connection updates. */
export type ConnCounter = keyof Counters;

/** A log line, built only on the rare paths. */
export interface LogLine {
  readonly level: "debug" | "info" | "warn" | "error";
  readonly msg: string;
  readonly fields: LogFields;
}

/** How long a closing connection may take to deliver its last frame (ms). */
export const CLOSE_GRACE_MS = 250;

/** Bytes of a FINAL frame. */
const FINAL_FRAME_SIZE = 3 + 20;

/**
 * First byte of a TLS ClientHello record. Its length field (0x03xx) is a valid
 * frame length, so without this check a TLS client on a plain port would wait
 * for the handshake timeout instead of being told at once.
 */
const TLS_HANDSHAKE_RECORD = 0x16;

/** Actions an event may queue, at most (the largest batch is 5). */
const QUEUE = 6;

const { HANDSHAKE, OPENING, STREAMING, CLOSING, ENDED } = ConnPhase;

const DENO_ERRORS: (new (...args: never[]) => Error)[] = Object.values(
  Deno.errors,
);

/**
 * Errors of the runtime's I/O (what a transport rejects with on a dead
 * link): the peer is gone, nothing to tell it.
 */
function isSocketError(err: unknown): boolean {
  return DENO_ERRORS.some((cls) => err instanceof cls);
}

/**
 * One connection's decisions; see the module documentation.
 *
 * @example
 * ```ts
 * const m = new ConnectionMachine(settings, { hostname: "127.0.0.1", port: 5 }, 0);
 * m.wakeAt; // settings.handshakeTimeoutMs
 * for (let a = m.frame(type, value, 3); a !== ConnAction.NONE; a = m.next()) {
 *   // a === ConnAction.OPEN: ask the session layer about m.request
 * }
 * ```
 */
export class ConnectionMachine {
  /** The limits (shared, not copied). */
  readonly settings: ConnectionSettings;
  /** The peer, for logs. */
  readonly remoteAddr: RemoteAddr;
  /**
   * The client acknowledges at least every this many numbers
   * (`⌈window / 4⌉`, PROTOCOL.md): a paced stream reads when `sent − acked`
   * reaches it.
   */
  readonly ackEvery: number;

  /**
   * A paced stream's longest time with no read in flight (ms):
   * `min(ackIntervalMs, clientTimeoutMs / 2)`. A FIN or RST is noticed
   * within it (or by a failed write).
   */
  readonly readGap: number;

  /**
   * No later than when the machine next has something to do (monotonic
   * ms); `Infinity` for never. A timer event earlier than that does nothing.
   */
  wakeAt: number;
  #phase: ConnPhase = HANDSHAKE;
  #att: Attachment | undefined;
  #stream: Stream | undefined;
  /** The HELLO or RESUME being answered. */
  #request: Hello | Resume | undefined;
  /** The session id a hello or resume asked for, so refusals can name it in the logs. */
  #requestedId: string | undefined;
  /** When the handshake arrived (monotonic), for the welcome latency. */
  #handshakeAt = 0;
  /** When the session attached (ms since the epoch), for `/sessions`. */
  #attachedAt = 0;
  #completing = false;
  #closeBy = 0;
  /** A read is in flight: the first one starts at accept. */
  #reading = true;
  /** When the next read is due (monotonic ms); `Infinity` while one is in flight or none is wanted. */
  #readAt = Infinity;
  /** When the last read ended (monotonic ms). */
  #readEndedAt: number;
  #firstChunk = true;
  /** One NUMBER frame, reused for every paced number. */
  readonly #frame = new Uint8Array(NUMBER_FRAME_SIZE);
  /** Batches (burst mode, FINAL), allocated when first needed. */
  #batch: Uint8Array | undefined;
  /**
   * Queued actions, two slots each (one small array per connection): the
   * code plus 16 times a small number (a WRITE's number count, WELCOMED's
   * kind), then the data.
   */
  readonly #queue: unknown[] = new Array(2 * QUEUE).fill(0);
  #head = 0;
  #tail = 0;
  #data: unknown = undefined;
  #num = 0;
  /**
   * The first action of an event, kept out of the queue: the steady state
   * (a NUMBER, an ACK) is one action, returned without touching the queue.
   */
  #first: ConnAction = ConnAction.NONE;
  #firstData: unknown = undefined;
  #firstNum = 0;

  /**
   * @param settings the server's connection settings
   * @param remoteAddr the peer, for logs
   * @param monotonicMs when the connection was accepted: the handshake
   * deadline counts from here
   */
  constructor(
    settings: ConnectionSettings,
    remoteAddr: RemoteAddr,
    monotonicMs: number,
  ) {
    this.settings = settings;
    this.remoteAddr = remoteAddr;
    this.wakeAt = monotonicMs + settings.handshakeTimeoutMs;
    this.#readEndedAt = monotonicMs;
    this.ackEvery = Math.max(1, Math.ceil(settings.window / 4));
    this.readGap = Math.max(
      1,
      Math.min(
        settings.ackIntervalMs,
        Math.floor(settings.clientTimeoutMs / 2),
      ),
    );
  }

  /** Whether a read is in flight. */
  get reading(): boolean {
    return this.#reading;
  }

  // --- what the shell and the host read -----------------------------------

  /** The current phase. */
  get phase(): ConnPhase {
    return this.#phase;
  }

  /** The attached session, once WELCOME was sent. */
  get session(): Attachment | undefined {
    return this.#att;
  }

  /** The stream of the attached session. */
  get stream(): Stream | undefined {
    return this.#stream;
  }

  /** When the session attached (ms since the epoch), 0 before. */
  get attachedAt(): number {
    return this.#attachedAt;
  }

  /** `host:port` of the peer. */
  get remote(): string {
    const a = this.remoteAddr;
    return `${a.hostname}:${a.port}`;
  }

  // --- the current action's data ------------------------------------------

  /** {@link ConnAction.WRITE}: the bytes to write. */
  get bytes(): Uint8Array {
    return this.#data as Uint8Array;
  }

  /** {@link ConnAction.WRITE}: NUMBER and FINAL frames among the bytes. */
  get numbers(): number {
    return this.#num;
  }

  /** {@link ConnAction.OPEN}, {@link ConnAction.RESUME}: the handshake to answer. */
  get request(): Hello | Resume {
    return this.#data as Hello | Resume;
  }

  /** {@link ConnAction.COMPLETE}, {@link ConnAction.DETACH}, {@link ConnAction.ATTACHED}, {@link ConnAction.DETACHED}: the attachment. */
  get attachment(): Attachment {
    return this.#data as Attachment;
  }

  /** {@link ConnAction.COUNT}: the counter. */
  get counter(): ConnCounter {
    return this.#data as ConnCounter;
  }

  /** {@link ConnAction.REFUSED}: the error's name (`handshake_timeout`, ...). */
  get refusal(): string {
    return this.#data as string;
  }

  /** {@link ConnAction.WELCOMED}: what the handshake was. */
  get welcomed(): "hello" | "resume" {
    return this.#num === 0 ? "hello" : "resume";
  }

  /** {@link ConnAction.WELCOMED}: how long after the handshake (monotonic ms). */
  get ms(): number {
    return this.#data as number;
  }

  /** {@link ConnAction.LOG}: the line. */
  get line(): LogLine {
    return this.#data as LogLine;
  }

  /** The next action of the current batch, {@link ConnAction.NONE} at its end. */
  next(): ConnAction {
    const h = this.#head;
    if (h === this.#tail) {
      this.#head = this.#tail = 0;
      this.#data = undefined;
      return ConnAction.NONE;
    }
    const q = this.#queue, i = (h % QUEUE) * 2;
    const code = q[i] as number;
    this.#head = h + 1;
    this.#data = q[i + 1];
    this.#num = code >>> 4;
    q[i + 1] = 0;
    return (code & 15) as ConnAction;
  }

  // --- events ---------------------------------------------------------------

  /** Bytes arrived (before they are decoded): the first chunk is checked for TLS. */
  received(chunk: Uint8Array, monotonicMs: number): ConnAction {
    if (!this.#firstChunk) return ConnAction.NONE;
    this.#firstChunk = false;
    if (chunk[0] !== TLS_HANDSHAKE_RECORD) return ConnAction.NONE;
    return this.fail(
      new ProtocolError(
        ErrorCode.MALFORMED_FRAME,
        "Received a TLS handshake, but this port serves plain TCP; connect without TLS or start the server with --tls-cert",
      ),
      monotonicMs,
    );
  }

  /** One decoded frame (its `value` is read before this returns). */
  frame(type: number, value: Uint8Array, monotonicMs: number): ConnAction {
    // The one frame of the steady state, read without a message object.
    if (type === MessageType.ACK && value.length === 4) {
      return this.#ack(
        ((value[0]! << 24) | (value[1]! << 16) | (value[2]! << 8) |
          value[3]!) >>> 0,
        monotonicMs,
      );
    }
    let msg: Message;
    try {
      msg = decodeMessage({ type, value });
    } catch (err) {
      if (err instanceof ProtocolError) return this.fail(err, monotonicMs);
      throw err;
    }
    return this.#message(msg, monotonicMs);
  }

  /**
   * The session layer attached `att` for the handshake asked with OPEN or
   * RESUME. `stillHeld`: whether the session layer still holds it at this
   * moment, when the host registers this connection as the one a takeover
   * closes. A takeover notice drained since the attach found no connection
   * to close, so an attachment no longer held is refused with `taken_over`
   * instead of streaming a session that is not this server's any more.
   */
  attached(
    att: Attachment,
    stillHeld: boolean,
    monotonicMs: number,
    wallMs: number,
  ): ConnAction {
    const msg = this.#request;
    this.#request = undefined;
    if (this.#phase !== OPENING || msg === undefined) {
      // The transport died (or the server said GOAWAY) during the store round trip.
      this.#push(ConnAction.DETACH, att, 0);
      return this.#out();
    }
    if (!stillHeld) {
      return this.fail(
        new ProtocolError(
          ErrorCode.TAKEN_OVER,
          `Session "${att.id}" was resumed by another connection while this one attached`,
        ),
        monotonicMs,
      );
    }
    this.#att = att;
    this.#attachedAt = wallMs;
    this.#push(ConnAction.ATTACHED, att, 0);
    const offset = msg.type === "hello" ? 0 : msg.nextOffset;
    this.#log(
      "info",
      msg.type === "hello" ? "session started" : "session resumed",
      {
        id: att.id,
        count: att.count,
        offset,
        epoch: att.epoch,
        remote: this.remote,
      },
    );
    const s = this.settings;
    this.#push(
      ConnAction.WRITE,
      encodeMessage({
        type: "welcome",
        count: att.count,
        nextOffset: offset,
        token: att.token,
        intervalMs: s.intervalMs,
        ttlMs: s.ttlMs,
        window: s.window,
        ackIntervalMs: s.ackIntervalMs,
      }),
      0,
    );
    this.#push(
      ConnAction.WELCOMED,
      monotonicMs - this.#handshakeAt,
      msg.type === "hello" ? 0 : 1,
    );
    const stream = this.#stream = new Stream(s, att.count);
    stream.start(offset, monotonicMs);
    this.#phase = STREAMING;
    this.#streamed(stream.tick(monotonicMs), monotonicMs);
    return this.#out();
  }

  /**
   * The session layer refused the handshake (a {@link ProtocolError}) or
   * failed (anything else: answered as `store_unavailable`).
   */
  handshakeFailed(err: unknown, monotonicMs: number): ConnAction {
    const msg = this.#request;
    this.#request = undefined;
    if (!(err instanceof ProtocolError)) {
      // The session layer promises ProtocolErrors only; anything else is a
      // bug or a store that failed in an unexpected way. The client still
      // gets an answer, and a retriable one.
      const id = msg?.id ?? this.#requestedId;
      this.#log("error", "session layer failed", {
        id,
        remote: this.remote,
        error: String(err),
      });
      err = new ProtocolError(
        ErrorCode.STORE_UNAVAILABLE,
        `Cannot ${
          msg?.type === "resume" ? "resume" : "start"
        } session "${id}" now: the session store failed; retry shortly`,
        { cause: err },
      );
    }
    return this.fail(err as ProtocolError, monotonicMs);
  }

  /**
   * The session layer answered COMPLETE: `done` if the completion was
   * recorded, otherwise the session was taken over meanwhile.
   */
  completed(done: boolean, monotonicMs: number): ConnAction {
    const att = this.#att;
    if (!this.#completing) return ConnAction.NONE;
    this.#completing = false;
    // Fenced or shut down meanwhile: that close already told the client.
    if (this.#phase !== STREAMING || att === undefined) return ConnAction.NONE;
    if (!done) {
      // Taken over by another connection, whose fence has not reached this
      // one (the session layer let go of it in the completion): say so, as
      // the fence would have.
      this.#push(ConnAction.COUNT, "sessionsTakenOver", 0);
      this.#log("info", "session taken over", {
        id: att.id,
        remote: this.remote,
      });
      return this.fail(
        new ProtocolError(
          ErrorCode.TAKEN_OVER,
          `Session "${att.id}" was resumed by another connection`,
        ),
        monotonicMs,
      );
    }
    this.#log("info", "session completed", { id: att.id, count: att.count });
    this.#close(encodeMessage({ type: "done" }), monotonicMs);
    return this.#out();
  }

  /** The session layer failed to record the completion. */
  completeFailed(err: unknown, monotonicMs: number): ConnAction {
    if (!this.#completing) return ConnAction.NONE;
    this.#completing = false;
    const id = this.#att?.id;
    if (!(err instanceof ProtocolError)) {
      this.#log("error", "session layer failed", {
        id,
        remote: this.remote,
        error: String(err),
      });
      err = new ProtocolError(
        ErrorCode.STORE_UNAVAILABLE,
        `Cannot record the completion of session "${id}" now: the session store failed; resume to acknowledge again`,
        { cause: err },
      );
    }
    return this.fail(err as ProtocolError, monotonicMs);
  }

  /**
   * A read's bytes were all fed ({@link received}, then every frame they
   * completed through {@link frame}, each answered) at `monotonicMs`.
   * `more`: part of a frame is held, or the read filled its buffer, so the
   * next read is wanted now. Asks for the next {@link ConnAction.READ} now,
   * or arms it (rule 7): then {@link wakeAt} is no later than it and
   * {@link timer} asks for it.
   */
  readDone(more: boolean, monotonicMs: number): ConnAction {
    this.#reading = false;
    this.#readEndedAt = monotonicMs;
    if (more && this.#phase <= STREAMING) this.#read();
    else this.#planRead(monotonicMs);
    return this.#out();
  }

  /** The scheduler is due at `monotonicMs` (never before the time it was armed for). */
  timer(monotonicMs: number): ConnAction {
    switch (this.#phase) {
      case HANDSHAKE:
        if (monotonicMs < this.wakeAt) return ConnAction.NONE;
        return this.fail(
          new ProtocolError(
            ErrorCode.HANDSHAKE_TIMEOUT,
            `No hello or resume within ${this.settings.handshakeTimeoutMs}ms`,
          ),
          monotonicMs,
        );
      case STREAMING: {
        const stream = this.#stream;
        if (stream === undefined) return ConnAction.NONE;
        this.#streamed(stream.tick(monotonicMs), monotonicMs);
        if (!this.#reading && monotonicMs >= this.#readAt) {
          this.#planRead(monotonicMs);
        }
        return this.#out();
      }
      case CLOSING:
        if (monotonicMs < this.#closeBy) return ConnAction.NONE;
        return this.#end();
      default:
        return ConnAction.NONE;
    }
  }

  /**
   * The writer handed every queued frame to the transport. Only a burst
   * stream (`intervalMs` 0) sends from here and reads `monotonicMs`; a
   * paced one sends from the scheduler only, so its shell may pass 0
   * rather than read the clock once per number.
   */
  writerIdle(monotonicMs: number): ConnAction {
    if (this.#phase === CLOSING) return this.#end();
    const stream = this.#stream;
    if (this.#phase !== STREAMING || stream === undefined) {
      return ConnAction.NONE;
    }
    const a = stream.writerIdle(monotonicMs);
    if (a === StreamAction.NONE) return ConnAction.NONE;
    this.#streamed(a, monotonicMs);
    return this.#out();
  }

  /** A write failed: the link is dead. */
  writerError(): ConnAction {
    return this.#end();
  }

  /**
   * Closes with an ERROR carrying `err` (a takeover, a refusal). Counted and
   * logged as a refusal before the session attached. Ignored once closing.
   */
  fail(err: ProtocolError, monotonicMs: number): ConnAction {
    if (this.#phase >= CLOSING) return ConnAction.NONE;
    if (this.#phase <= OPENING) {
      const code = errorName(err.code);
      this.#push(ConnAction.REFUSED, code, 0);
      this.#log("info", "refused", {
        id: this.#requestedId,
        code,
        remote: this.remote,
        reason: err.message,
      });
    }
    this.#close(
      encodeMessage({ type: "error", code: err.code, message: err.message }),
      monotonicMs,
    );
    return this.#out();
  }

  /** The server is going away: GOAWAY, then close. The session stays resumable. */
  goAway(message: string, monotonicMs: number): ConnAction {
    if (this.#phase >= CLOSING) return ConnAction.NONE;
    this.#close(
      encodeMessage({ type: "goaway", retryAfterMs: 0, message }),
      monotonicMs,
    );
    return this.#out();
  }

  /**
   * The read side ended: at EOF (`err` undefined) or with the read's
   * rejection. A dead link is not logged; a failed TLS handshake is, as
   * debug; anything else as an error. Then the transport closes.
   */
  readEnded(err?: unknown): ConnAction {
    if (err instanceof Deno.errors.InvalidData) {
      // A TLS listener's handshake failed (a plain-TCP client, or an untrusted certificate).
      this.#log("debug", "tls handshake failed", {
        remote: this.remote,
        error: err.message,
      });
    } else if (err !== undefined && !isSocketError(err)) {
      this.#log("error", "connection failed", {
        id: this.#att?.id ?? this.#requestedId,
        remote: this.remote,
        error: String(err),
      });
    }
    this.#reading = false;
    this.#readAt = Infinity;
    if (this.#phase !== ENDED) {
      this.#phase = ENDED;
      this.wakeAt = Infinity;
      this.#push(ConnAction.END, undefined, 0);
    }
    return this.#out();
  }

  /**
   * The transport closed and reading stopped: the host forgets the
   * attachment, and a session `stillHeld` by it in the session layer
   * detaches (it stays resumable).
   */
  closed(stillHeld: boolean): ConnAction {
    const att = this.#att;
    if (att === undefined) return ConnAction.NONE;
    this.#push(ConnAction.DETACHED, att, 0);
    if (stillHeld) {
      this.#log("info", "session detached", {
        id: att.id,
        sent: this.#stream?.sent,
        acked: this.#stream?.acked,
        remote: this.remote,
      });
      this.#push(ConnAction.DETACH, att, 0);
    }
    return this.#out();
  }

  /** A DETACH failed. */
  detachFailed(err: unknown): ConnAction {
    this.#log("error", "session detach failed", {
      id: this.#att?.id ?? this.#requestedId,
      error: String(err),
    });
    return this.#out();
  }

  // --- internals ------------------------------------------------------------

  #message(msg: Message, monotonicMs: number): ConnAction {
    switch (this.#phase) {
      case HANDSHAKE:
        if (msg.type === "hello" || msg.type === "resume") {
          this.#phase = OPENING;
          this.wakeAt = Infinity;
          this.#request = msg;
          this.#requestedId = msg.id;
          this.#handshakeAt = monotonicMs;
          this.#push(
            msg.type === "hello" ? ConnAction.OPEN : ConnAction.RESUME,
            msg,
            0,
          );
          return this.#out();
        }
        break;
      case STREAMING:
        if (msg.type === "ack") return this.#ack(msg.nextOffset, monotonicMs);
        break;
      default:
        // Opening or closing: whatever the client still says changes nothing.
        return ConnAction.NONE;
    }
    return this.fail(
      new ProtocolError(
        ErrorCode.UNEXPECTED_MESSAGE,
        `Unexpected ${msg.type} message ${
          this.#phase === HANDSHAKE
            ? "before HELLO or RESUME"
            : "while streaming"
        }`,
      ),
      monotonicMs,
    );
  }

  #ack(n: number, monotonicMs: number): ConnAction {
    const stream = this.#stream;
    if (this.#phase !== STREAMING || stream === undefined) {
      return this.#message({ type: "ack", nextOffset: n }, monotonicMs);
    }
    this.#push(ConnAction.ACKED, undefined, 0);
    const a = stream.ack(n, monotonicMs);
    if (a === StreamAction.COMPLETE) {
      this.#completing = true;
      this.wakeAt = Infinity;
      this.#push(ConnAction.COMPLETE, this.#att, 0);
    } else if (a !== StreamAction.NONE) {
      this.#streamed(a, monotonicMs);
    }
    return this.#out();
  }

  /** Carries out a stream action (COMPLETE is handled by the ACK path), then re-reads the wake. */
  #streamed(a: StreamAction, monotonicMs: number): void {
    const stream = this.#stream!, att = this.#att!;
    if (a === StreamAction.SEND) {
      if (stream.to - stream.from === 1) {
        const off = stream.from;
        encodeNumberInto(this.#frame, 0, off, valueAt(att.seed, off));
        this.#push(ConnAction.WRITE, this.#frame, 1);
      } else {
        this.#sendBatch(att, stream.from, stream.to, false);
      }
    } else if (a === StreamAction.SEND_FINAL) {
      this.#sendBatch(att, stream.from, stream.to, true);
    } else if (a === StreamAction.CLOSE) {
      this.#streamClosed(att, stream, monotonicMs);
    }
    if (this.#phase === STREAMING && !this.#completing) {
      // An ACK is due once this send makes the lag reach the client's cadence.
      if (!this.#reading && this.#ackDue(stream)) this.#read();
      const wake = stream.nextWake(), readAt = this.#readAt;
      this.wakeAt = readAt < wake ? readAt : wake;
    }
  }

  /** Whether the client owes an ACK for what was sent (rule 7). */
  #ackDue(stream: Stream): boolean {
    return this.settings.intervalMs === 0 ||
      stream.sent - stream.acked >= this.ackEvery ||
      stream.sent === stream.count;
  }

  /** Asks for a read now. */
  #read(): void {
    this.#reading = true;
    this.#readAt = Infinity;
    this.#push(ConnAction.READ, undefined, 0);
  }

  /**
   * No read is in flight: reads now, arms the next read (rule 7), or none
   * (opening: the shell feeds no frame until the session layer answered;
   * completing or closing: nothing more is read).
   */
  #planRead(monotonicMs: number): void {
    const stream = this.#stream;
    if (this.#phase === HANDSHAKE) return this.#read();
    if (
      this.#phase !== STREAMING || stream === undefined || this.#completing
    ) {
      this.#readAt = Infinity;
      return;
    }
    if (this.#ackDue(stream)) return this.#read();
    const gap = this.readGap;
    let at = this.#readEndedAt + gap;
    const last = stream.deadline() - gap;
    if (last < at) at = last;
    if (at <= monotonicMs) return this.#read();
    this.#readAt = at;
    if (at < this.wakeAt) this.wakeAt = at;
  }

  /** Queues NUMBER frames `from..to − 1` as one write, the last as FINAL if `final`. */
  #sendBatch(att: Attachment, from: number, to: number, final: boolean): void {
    const numbers = final ? to - 1 : to;
    const size = (numbers - from) * NUMBER_FRAME_SIZE +
      (final ? FINAL_FRAME_SIZE : 0);
    let buf = this.#batch;
    if (buf === undefined || buf.length < size) {
      const most = Math.min(this.settings.window, att.count);
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
    this.#push(ConnAction.WRITE, buf.subarray(0, pos), to - from);
  }

  #streamClosed(att: Attachment, stream: Stream, monotonicMs: number): void {
    const fields = { id: att.id, remote: this.remote, sent: stream.sent };
    if (stream.code === ErrorCode.CLIENT_TIMEOUT) {
      this.#push(ConnAction.COUNT, "clientTimeouts", 0);
      this.#log("info", "client timed out; session stays resumable", fields);
    } else if (stream.code === ErrorCode.SLOW_CONSUMER) {
      this.#push(ConnAction.COUNT, "slowConsumersDropped", 0);
      this.#log("warn", "client too slow; dropped, session stays resumable", {
        ...fields,
        acked: stream.acked,
      });
    } else {
      this.#log("info", "client protocol error", {
        ...fields,
        code: errorName(stream.code),
        reason: stream.message(),
      });
    }
    const err = new ProtocolError(stream.code, stream.message());
    this.#close(
      encodeMessage({ type: "error", code: err.code, message: err.message }),
      monotonicMs,
    );
  }

  /** Queues the last frame; the transport closes once it is written, or at the grace. */
  #close(bytes: Uint8Array, monotonicMs: number): void {
    this.#phase = CLOSING;
    this.wakeAt = this.#closeBy = monotonicMs + CLOSE_GRACE_MS;
    this.#push(ConnAction.WRITE, bytes, 0);
  }

  #end(): ConnAction {
    if (this.#phase === ENDED) return ConnAction.NONE;
    this.#phase = ENDED;
    this.wakeAt = Infinity;
    this.#push(ConnAction.END, undefined, 0);
    return this.#out();
  }

  #log(level: LogLine["level"], msg: string, fields: LogLine["fields"]): void {
    this.#push(ConnAction.LOG, { level, msg, fields }, 0);
  }

  /** Ends an event: its first action (the rest follow from {@link next}). */
  #out(): ConnAction {
    const code = this.#first;
    if (code === ConnAction.NONE) return this.next();
    this.#first = ConnAction.NONE;
    this.#data = this.#firstData;
    this.#firstData = undefined;
    this.#num = this.#firstNum;
    return code;
  }

  #push(code: ConnAction, data: unknown, num: number): void {
    if (this.#first === ConnAction.NONE && this.#head === this.#tail) {
      this.#first = code;
      this.#firstData = data;
      this.#firstNum = num;
      return;
    }
    const t = this.#tail;
    if (t - this.#head >= QUEUE) {
      throw new RangeError(`More than ${QUEUE} connection actions queued`);
    }
    const q = this.#queue, i = (t % QUEUE) * 2;
    q[i] = code | (num << 4);
    q[i + 1] = data;
    this.#tail = t + 1;
  }
}
