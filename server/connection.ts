/**
 * One client connection on the server: handshake, streaming, completion.
 * It reads frames through the pure decoder and writes finished frames through
 * a {@link Writer}; the numbers are paced by the shared {@link Scheduler}.
 *
 * @module
 */

import { ErrorCode, errorName, ProtocolError } from "../protocol/errors.ts";
import { FrameDecoder, MAX_FRAME_VALUE } from "../protocol/frame.ts";
import {
  decodeMessage,
  encodeMessage,
  encodeNumberInto,
  isMessageType,
  type Message,
  NUMBER_FRAME_SIZE,
} from "../protocol/messages.ts";
import { valueAt } from "../protocol/prng.ts";
import { sequenceChecksum } from "../protocol/checksum.ts";
import type { Attachment } from "./sessions.ts";
import type { Task } from "./scheduler.ts";
import { Writer } from "./writer.ts";
import type { ServerContext } from "./context.ts";

type Phase = "handshake" | "streaming" | "awaiting_ack" | "closing" | "ended";

const BURST_FRAMES = 4096;

/**
 * First byte of a TLS ClientHello record. Its length field (0x03xx) is a valid
 * frame length, so without this check a TLS client on a plain port would wait
 * for the handshake timeout instead of being told at once.
 */
const TLS_HANDSHAKE_RECORD = 0x16;

/** A client connection and, once attached, its session's stream. */
export class Connection implements Task {
  due = 0;
  slot = -1;
  readonly remote: string;
  readonly #conn: Deno.Conn;
  readonly #ctx: ServerContext;
  readonly #writer: Writer;
  readonly #frame = new Uint8Array(NUMBER_FRAME_SIZE);
  #phase: Phase = "handshake";
  #att: Attachment | null = null;
  #next = 0;
  #pausedSince = -1;
  #handshakeTimer: ReturnType<typeof setTimeout> | undefined;
  /** The session id a hello or resume asked for, so refusals can name it in the logs. */
  #requestedId: string | undefined;

  /** @param conn the accepted socket; @param ctx the server's shared parts */
  constructor(conn: Deno.Conn, ctx: ServerContext) {
    this.#conn = conn;
    this.#ctx = ctx;
    const a = conn.remoteAddr as Deno.NetAddr;
    this.remote = `${a.hostname}:${a.port}`;
    this.#writer = new Writer(conn, () => this.end());
  }

  /** The attached session's id, if any. */
  get sessionId(): string | undefined {
    return this.#att?.id;
  }

  /** The attachment's fencing epoch, or 0. */
  get epoch(): number {
    return this.#att?.epoch ?? 0;
  }

  /** Serves the connection until it ends. Never throws. */
  async serve(): Promise<void> {
    this.#handshakeTimer = setTimeout(() => {
      this.fail(
        new ProtocolError(
          ErrorCode.HANDSHAKE_TIMEOUT,
          `No hello or resume within ${this.#ctx.handshakeTimeoutMs}ms`,
        ),
      );
    }, this.#ctx.handshakeTimeoutMs);
    const decoder = new FrameDecoder(MAX_FRAME_VALUE, isMessageType);
    const buf = new Uint8Array(512);
    let first = true;
    try {
      while (this.#phase !== "ended") {
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
          await this.#onMessage(decodeMessage(frame));
          if ((this.#phase as Phase) === "ended") break;
        }
      }
    } catch (err) {
      if (err instanceof ProtocolError) await this.fail(err);
      else if (err instanceof Deno.errors.InvalidData) {
        // A TLS listener's handshake failed (a plain-TCP client, or an untrusted certificate).
        this.#ctx.log.debug("tls handshake failed", {
          remote: this.remote,
          error: err.message,
        });
      }
      // Anything else is the socket dying: nothing to tell the peer.
    } finally {
      await this.#cleanup();
    }
  }

  async #onMessage(msg: Message): Promise<void> {
    switch (this.#phase) {
      case "handshake":
        if (msg.type === "hello" || msg.type === "resume") {
          clearTimeout(this.#handshakeTimer);
          this.#requestedId = msg.id;
          if (this.#ctx.shuttingDown) {
            throw new ProtocolError(
              ErrorCode.SHUTTING_DOWN,
              "Server is shutting down",
            );
          }
          const att = msg.type === "hello"
            ? await this.#ctx.sessions.open(msg.id, msg.count, msg.token)
            : await this.#ctx.sessions.resume(
              msg.id,
              msg.token,
              msg.nextOffset,
            );
          const next = msg.type === "hello" ? 0 : msg.nextOffset;
          this.#attach(att, next, msg.type);
          return;
        }
        break;
      case "awaiting_ack":
        if (msg.type === "ack") return await this.#complete();
        break;
      case "streaming":
      case "closing":
      case "ended":
        break;
    }
    throw new ProtocolError(
      ErrorCode.UNEXPECTED_MESSAGE,
      `Unexpected ${msg.type} message while ${this.#phase}`,
    );
  }

  #attach(att: Attachment, next: number, how: "hello" | "resume"): void {
    if (this.#phase === "ended") {
      // The socket died during the store round trip.
      void this.#ctx.sessions.detach(att);
      return;
    }
    this.#att = att;
    this.#next = next;
    this.#ctx.attach(this);
    this.#ctx.log.info(
      how === "hello" ? "session started" : "session resumed",
      {
        id: att.id,
        count: att.count,
        offset: next,
        epoch: att.epoch,
        remote: this.remote,
      },
    );
    void this.#writer.write(encodeMessage({
      type: "welcome",
      count: att.count,
      nextOffset: next,
      token: att.token,
      intervalMs: this.#ctx.intervalMs,
      ttlMs: this.#ctx.ttlMs,
    }));
    if (next >= att.count) {
      this.#awaitAck();
      return;
    }
    this.#phase = "streaming";
    if (this.#ctx.intervalMs === 0) void this.#burst();
    else this.#ctx.scheduler.schedule(this, performance.now());
  }

  /** Scheduler callback: send the next number, or hold back if the client is not reading. */
  run(now: number): number | null {
    const att = this.#att;
    if (this.#phase !== "streaming" || att === null) return null;
    const interval = this.#ctx.intervalMs;
    if (this.#writer.busy) {
      if (this.#pausedSince < 0) this.#pausedSince = now;
      else if (now - this.#pausedSince > this.#ctx.stallMs) {
        this.#dropSlow(att);
        return null;
      }
      return now + interval;
    }
    this.#pausedSince = -1;
    const offset = this.#next;
    if (offset === att.count - 1) {
      this.#sendFinal(att);
      return null;
    }
    encodeNumberInto(this.#frame, 0, offset, valueAt(att.seed, offset));
    this.#next = offset + 1;
    this.#ctx.counters.numbersSent++;
    void this.#writer.write(this.#frame);
    const due = this.due + interval;
    return due > now ? due : now + interval;
  }

  #dropSlow(att: Attachment): void {
    this.#ctx.counters.slowConsumersDropped++;
    this.#ctx.log.warn(
      "client stopped reading; dropped, session stays resumable",
      {
        id: att.id,
        remote: this.remote,
      },
    );
    this.end();
  }

  async #burst(): Promise<void> {
    const att = this.#att!;
    const buf = new Uint8Array(BURST_FRAMES * NUMBER_FRAME_SIZE);
    while (this.#phase === "streaming" && this.#next < att.count - 1) {
      const end = Math.min(att.count - 1, this.#next + BURST_FRAMES);
      let pos = 0;
      for (let off = this.#next; off < end; off++) {
        pos = encodeNumberInto(buf, pos, off, valueAt(att.seed, off));
      }
      this.#ctx.counters.numbersSent += end - this.#next;
      this.#next = end;
      // A client that stops reading is dropped after the stall limit, not waited on forever.
      const stall = setTimeout(() => this.#dropSlow(att), this.#ctx.stallMs);
      const ok = await this.#writer.write(buf.subarray(0, pos));
      clearTimeout(stall);
      if (!ok) return;
    }
    if (this.#phase === "streaming") this.#sendFinal(att);
  }

  #sendFinal(att: Attachment): void {
    const offset = att.count - 1;
    const { sum, crc } = sequenceChecksum(att.seed, att.count);
    this.#next = att.count;
    this.#awaitAck();
    this.#ctx.counters.numbersSent++;
    void this.#writer.write(encodeMessage({
      type: "final",
      offset,
      value: valueAt(att.seed, offset),
      sum,
      crc32: crc,
    }));
  }

  /** After the final number: a client that never acks is let go (the session stays resumable). */
  #awaitAck(): void {
    this.#phase = "awaiting_ack";
    this.#handshakeTimer = setTimeout(
      () => this.end(),
      this.#ctx.handshakeTimeoutMs,
    );
  }

  async #complete(): Promise<void> {
    clearTimeout(this.#handshakeTimer);
    const att = this.#att!;
    if (await this.#ctx.sessions.complete(att)) {
      this.#ctx.log.info("session completed", { id: att.id, count: att.count });
      await this.#writer.write(encodeMessage({ type: "done" }));
    }
    this.end();
  }

  /** Sends an error frame (best effort, bounded in time) and closes. */
  async fail(err: ProtocolError): Promise<void> {
    if (this.#phase === "ended") return;
    if (this.#phase === "handshake") {
      this.#ctx.refused(errorName(err.code));
      this.#ctx.log.info("refused", {
        id: this.#requestedId,
        code: errorName(err.code),
        remote: this.remote,
        reason: err.message,
      });
    }
    await this.#sendAndEnd(
      encodeMessage({ type: "error", code: err.code, message: err.message }),
    );
  }

  /** Tells the client the server is going away, then closes. The session stays resumable. */
  async goAway(message: string): Promise<void> {
    if (this.#phase === "ended") return;
    await this.#sendAndEnd(
      encodeMessage({ type: "goaway", retryAfterMs: 0, message }),
    );
  }

  async #sendAndEnd(bytes: Uint8Array): Promise<void> {
    this.#ctx.scheduler.cancel(this);
    this.#phase = "closing";
    // A client that is not reading must not hold the close up.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#writer.write(bytes),
      new Promise((r) => timer = setTimeout(r, 250)),
    ]);
    clearTimeout(timer);
    this.end();
  }

  /** Closes the socket now. Idempotent. */
  end(): void {
    if (this.#phase === "ended") return;
    this.#phase = "ended";
    clearTimeout(this.#handshakeTimer);
    this.#ctx.scheduler.cancel(this);
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }

  async #cleanup(): Promise<void> {
    this.end();
    const att = this.#att;
    if (att !== null) {
      this.#ctx.detachConnection(this);
      if (this.#ctx.sessions.holds(att)) {
        this.#ctx.log.info("session detached", {
          id: att.id,
          sent: this.#next,
          remote: this.remote,
        });
        await this.#ctx.sessions.detach(att).catch(() => {});
      }
    }
    this.#ctx.connectionClosed(this);
  }
}
