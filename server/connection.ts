/**
 * One client connection on the server: the short loop that runs a
 * {@link ConnectionMachine} over a {@link Transport}. Bytes go through the
 * {@link FrameDecoder} into the machine; its actions become writes to a
 * {@link Writer}, calls to the session layer (whose answers go back in),
 * counters, log lines and the host's bookkeeping. One {@link Scheduler}
 * entry per connection, armed at the machine's `wakeAt`, covers the
 * handshake timeout, the next paced number, the liveness deadlines and the
 * bounded close: no timer per connection. Reads are the machine's decision
 * too ({@link ConnAction.READ}): a paced stream reads only when an ACK is
 * due, so no read is left pending for seconds on every connection (its
 * promise objects would outlive young-generation collections and be
 * promoted). Time comes from the host's
 * {@link Clock}: its monotonic reading for deadlines and pacing, its wall
 * reading for `attachedAt`.
 *
 * @module
 */

import type { Clock } from "../common/clock.ts";
import type { Logger } from "../common/logger.ts";
import { ErrorCode, ProtocolError } from "../protocol/errors.ts";
import {
  type Frame,
  FrameDecoder,
  MAX_FRAME_VALUE,
} from "../protocol/frame.ts";
import {
  type Hello,
  isMessageType,
  type Resume,
} from "../protocol/messages.ts";
import {
  ConnAction,
  ConnectionMachine,
  type ConnectionSettings,
  ConnPhase,
} from "./connection_machine.ts";
import type { Counters } from "./metrics.ts";
import type { Scheduler, Task } from "./scheduler.ts";
import type { Attachment } from "./sessions.ts";
import type { Transport } from "./transport.ts";
import { Writer } from "./writer.ts";

export type { ConnectionSettings } from "./connection_machine.ts";

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

/** Bytes read at once: a handshake (HELLO or RESUME, 40 bytes) fits. */
const READ_BUFFER_SIZE = 64;

const { CLOSING, ENDED } = ConnPhase;

/** A client connection and, once attached, its session's stream. */
export class Connection implements Task {
  /** Scheduler bookkeeping. */
  due = 0;
  /** Scheduler bookkeeping. */
  slot = -1;
  readonly #conn: Transport;
  readonly #host: ConnectionHost;
  readonly #m: ConnectionMachine;
  readonly #writer: Writer;
  /** Made only when someone waits for the close (most connections never do). */
  #ended: PromiseWithResolvers<void> | undefined;
  /** Resolves {@link serve}'s promise. */
  #done: PromiseWithResolvers<void> | undefined;
  /** Small: the client sends 40-byte handshakes and 7-byte ACKs (a larger frame takes several reads; the decoder joins them). */
  readonly #buf = new Uint8Array(READ_BUFFER_SIZE);
  readonly #decoder = new FrameDecoder(MAX_FRAME_VALUE, isMessageType);
  /** A read of the transport is in flight. */
  #inFlight = false;
  /** A read's frames are being fed (possibly waiting on the session layer). */
  #feeding = false;
  /** Finished (see `#settle`). */
  #settled = false;

  /** @param conn the accepted transport; @param host the server's side */
  constructor(conn: Transport, host: ConnectionHost) {
    this.#conn = conn;
    this.#host = host;
    const m = this.#m = new ConnectionMachine(
      host.settings,
      conn.remoteAddr,
      host.clock.monotonic(),
    );
    const burst = host.settings.intervalMs === 0;
    this.#writer = new Writer(conn, {
      onError: () => this.#apply(m.writerError()),
      // Only a burst stream sends from here, so only it needs the time.
      onIdle: () => {
        const a = m.writerIdle(burst ? host.clock.monotonic() : 0);
        if (a !== ConnAction.NONE) this.#apply(a);
      },
    });
  }

  /** `host:port` of the peer (made when asked: logs and `/sessions`). */
  get remote(): string {
    return this.#m.remote;
  }

  /** The attached session's id, if any. */
  get sessionId(): string | undefined {
    return this.#m.session?.id;
  }

  /** The attachment's fencing epoch, or 0. */
  get epoch(): number {
    return this.#m.session?.epoch ?? 0;
  }

  /** Numbers sent and not acknowledged on this connection. */
  get unacked(): number {
    return this.#m.stream?.unacked ?? 0;
  }

  /** The largest {@link unacked} this connection reached. */
  get unackedPeak(): number {
    return this.#m.stream?.peak ?? 0;
  }

  /** The attached session as `/sessions` shows it; undefined before it attached. */
  get view(): SessionView | undefined {
    const m = this.#m, att = m.session, stream = m.stream;
    if (att === undefined || stream === undefined) return undefined;
    return {
      id: att.id,
      count: att.count,
      sent: stream.sent,
      acked: stream.acked,
      epoch: att.epoch,
      completing: stream.finalSent,
      remote: m.remote,
      attachedAt: m.attachedAt,
    };
  }

  /** Resolves when the transport is closed. */
  get ended(): Promise<void> {
    if (this.#m.phase === ENDED) return Promise.resolve();
    return (this.#ended ??= Promise.withResolvers<void>()).promise;
  }

  /**
   * Serves the connection until it ends: resolves once the transport is
   * closed and the session (if any) detached. Never rejects.
   *
   * Reading is event-driven, not a loop: the first read starts here, and
   * each next one only when the machine asks ({@link ConnAction.READ}): at
   * once before the session streams, and while streaming when an ACK is due
   * (its rule 7), so that no read is left pending for seconds.
   */
  serve(): Promise<void> {
    const done = this.#done = Promise.withResolvers<void>();
    this.#arm(); // the handshake deadline
    this.#startRead(); // the machine counts this first read as in flight
    return done.promise;
  }

  /** Starts one read (never two at once). */
  #startRead(): void {
    if (this.#inFlight) return;
    this.#inFlight = true;
    this.#conn.read(this.#buf).then(this.#onRead, this.#onReadError);
  }

  readonly #onRead = (n: number | null): void => {
    this.#inFlight = false;
    const m = this.#m;
    if (m.phase === ENDED) return this.#settle();
    if (n === null) {
      this.#apply(m.readEnded());
      return this.#settle();
    }
    const chunk = this.#buf.subarray(0, n);
    // A close decided by what was read stops the reading: no read is left
    // pending to fail when the transport closes (an error built per
    // completed session).
    const open = m.phase < CLOSING;
    const now = this.#host.clock.monotonic();
    this.#feeding = true;
    const tls = m.received(chunk, now);
    if (tls !== ConnAction.NONE) {
      this.#apply(tls);
      this.#feeding = false;
      return this.#settle();
    }
    let frames: Iterator<Frame>;
    try {
      frames = this.#decoder.push(chunk);
    } catch (err) {
      return this.#fedFailed(err, now);
    }
    this.#feed(frames, now, open, n === this.#buf.length);
  };

  readonly #onReadError = (err: unknown): void => {
    this.#inFlight = false;
    this.#apply(this.#m.readEnded(err));
    this.#settle();
  };

  /**
   * Feeds the frames of one read to the machine; a store round trip
   * (OPEN, RESUME, COMPLETE) suspends the feeding until it is answered.
   * Then tells the machine the read was fed (it may ask for the next), or
   * stops reading if what was read closed the connection.
   */
  #feed(
    frames: Iterator<Frame>,
    now: number,
    open: boolean,
    full: boolean,
  ): void {
    const m = this.#m;
    try {
      while (!(open && m.phase >= CLOSING)) {
        const r = frames.next();
        if (r.done) {
          this.#feeding = false;
          const more = full || this.#decoder.buffered > 0;
          this.#apply(m.readDone(more, this.#host.clock.monotonic()));
          return this.#settle();
        }
        const pending = this.#apply(m.frame(r.value.type, r.value.value, now));
        if (pending !== undefined) {
          // A store round trip: no frame is fed meanwhile.
          void pending.then(() =>
            this.#feed(frames, this.#host.clock.monotonic(), open, full)
          );
          return;
        }
      }
    } catch (err) {
      return this.#fedFailed(err, now);
    }
    this.#feeding = false;
    this.#settle();
  }

  /** The decoder (a malformed frame) or the feeding failed. */
  #fedFailed(err: unknown, now: number): void {
    const m = this.#m;
    this.#feeding = false;
    if (err instanceof ProtocolError) this.#apply(m.fail(err, now));
    else this.#apply(m.readEnded(err)); // logged as a failure
    this.#settle();
  }

  /**
   * Finishes once the machine has ended and neither a read nor a feeding
   * is in flight: the host forgets the connection, a session still held
   * detaches, then {@link serve} resolves.
   */
  #settle(): void {
    if (
      this.#settled || this.#inFlight || this.#feeding ||
      this.#m.phase !== ENDED
    ) return;
    this.#settled = true;
    const m = this.#m, host = this.#host, att = m.session;
    const finish = () => {
      host.closed(this);
      this.#done?.resolve();
    };
    const p = this.#apply(
      m.closed(att !== undefined && host.sessions.holds(att)),
    );
    if (p === undefined) finish();
    else void p.then(finish);
  }

  /** Scheduler callback: the machine's wake (never earlier than armed for). */
  run(now: number): number | null {
    this.#drain(this.#m.timer(now < this.due ? this.due : now));
    const wake = this.#m.wakeAt;
    return wake === Infinity ? null : wake;
  }

  /** Closes with an ERROR carrying `err` (a takeover): best effort, bounded in time. */
  fail(err: ProtocolError): void {
    this.#apply(this.#m.fail(err, this.#host.clock.monotonic()));
  }

  /** Tells the client the server is going away, then closes. The session stays resumable. */
  goAway(message: string): void {
    this.#apply(this.#m.goAway(message, this.#host.clock.monotonic()));
  }

  /** Carries out `a` and the rest of its batch, then re-arms the scheduler. */
  #apply(a: ConnAction): Promise<void> | undefined {
    const pending = this.#drain(a);
    this.#arm();
    return pending;
  }

  /** Carries out `a` and the rest of its batch; a promise for a session-layer call. */
  #drain(a: ConnAction): Promise<void> | undefined {
    const m = this.#m, host = this.#host;
    let pending: Promise<void> | undefined;
    for (; a !== ConnAction.NONE; a = m.next()) {
      switch (a) {
        case ConnAction.WRITE:
          host.counters.numbersSent += m.numbers;
          void this.#writer.write(m.bytes);
          break;
        case ConnAction.ACKED:
          host.counters.acksReceived++;
          break;
        case ConnAction.COUNT:
          host.counters[m.counter]++;
          break;
        case ConnAction.LOG: {
          const l = m.line;
          host.log[l.level](l.msg, l.fields);
          break;
        }
        case ConnAction.OPEN:
        case ConnAction.RESUME:
          pending = this.#handshake(m.request);
          break;
        case ConnAction.COMPLETE:
          pending = this.#complete(m.attachment);
          break;
        case ConnAction.DETACH:
          pending = host.sessions.detach(m.attachment).then(
            undefined,
            (err) => void this.#apply(m.detachFailed(err)),
          );
          break;
        case ConnAction.ATTACHED:
          host.attached(this, m.attachment);
          break;
        case ConnAction.DETACHED:
          host.detached(this, m.attachment);
          break;
        case ConnAction.REFUSED:
          host.refused(m.refusal);
          break;
        case ConnAction.WELCOMED:
          host.welcomed?.(m.welcomed, m.ms);
          break;
        case ConnAction.END:
          this.#conn.close();
          this.#ended?.resolve();
          // A read in flight now fails and settles; otherwise settle here
          // (after this batch: settling runs the machine again).
          if (!this.#inFlight) queueMicrotask(() => this.#settle());
          break;
        case ConnAction.READ:
          this.#startRead();
          break;
      }
    }
    return pending;
  }

  /** Arms the scheduler at the machine's wake if that moved earlier (a later one is lazy). */
  #arm(): void {
    const wake = this.#m.wakeAt, scheduler = this.#host.scheduler;
    if (wake === Infinity) scheduler.cancel(this);
    else if (this.slot < 0 || wake < this.due) scheduler.schedule(this, wake);
  }

  async #handshake(msg: Hello | Resume): Promise<void> {
    const { clock, sessions, shuttingDown } = this.#host;
    let att: Attachment;
    try {
      if (shuttingDown) {
        throw new ProtocolError(
          ErrorCode.SHUTTING_DOWN,
          "Server is shutting down",
        );
      }
      att = msg.type === "hello"
        ? await sessions.open(msg.id, msg.count, msg.token)
        : await sessions.resume(msg.id, msg.token, msg.nextOffset);
    } catch (err) {
      return this.#apply(this.#m.handshakeFailed(err, clock.monotonic()));
    }
    // Asked in the same turn as the registration (the ATTACHED action): a
    // takeover notice is either drained before (not held: refused) or finds
    // this connection registered (closed with taken_over).
    return this.#apply(
      this.#m.attached(
        att,
        sessions.holds(att),
        clock.monotonic(),
        clock.now(),
      ),
    );
  }

  async #complete(att: Attachment): Promise<void> {
    const { clock, sessions } = this.#host;
    let done: boolean;
    try {
      done = await sessions.complete(att);
    } catch (err) {
      return this.#apply(this.#m.completeFailed(err, clock.monotonic()));
    }
    return this.#apply(this.#m.completed(done, clock.monotonic()));
  }
}
