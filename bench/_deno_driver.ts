/**
 * The Deno driver's session: one protocol v2 session over a bare socket that
 * acknowledges exactly as the real client does (`client/session.ts`), for the
 * benches that drive a server from a Deno process (`bench:server`,
 * `bench:lateness`, `bench/memory.ts`). No checksums: only the server's work
 * is measured.
 *
 * HELLO; after WELCOME an ACK(nextOffset) as soon as
 * `nextOffset − lastAck ≥ ⌈window / 4⌉` (checked after every number), and a
 * keep-alive ACK only when no ACK has gone out for `ackIntervalMs` (one timer,
 * armed for `lastAckAt + ackIntervalMs` and re-armed when it fires, like the
 * client's loop); ACK(count) on FINAL, the end on DONE. Other frames (GOAWAY)
 * are ignored.
 *
 * ```ts
 * const counts = { acks: 0, keepAlives: 0 };
 * const end = await denoSession({ port, count: 100, counts, onNumber: () => n++ });
 * ```
 *
 * @module
 */

import { FrameDecoder } from "../protocol/frame.ts";
import {
  decodeMessage,
  encodeMessage,
  MessageType,
  PROTOCOL_VERSION,
  type Welcome,
} from "../protocol/messages.ts";

/** What the driver sent, summed over the sessions that share it. */
export interface DriverCounts {
  /** Every ACK, keep-alives included. */
  acks: number;
  /** Of those, keep-alives (no ACK for `ackIntervalMs`). */
  keepAlives: number;
}

/** One session's settings and what it reports back. */
export interface DenoSessionOptions {
  /** The server's port on 127.0.0.1. */
  port: number;
  /** Numbers asked for in HELLO. */
  count: number;
  /** Counts the ACKs this session sends (shared by many sessions). */
  counts?: DriverCounts;
  /** Send keep-alive ACKs (default `true`; `bench/memory.ts` sends none). */
  keepAlive?: boolean;
  /** Bytes per socket read (default 4096). */
  readBytes?: number;
  /** At WELCOME, with the time (`performance.now()`) its read returned. */
  onWelcome?: (welcome: Welcome, at: number) => void;
  /** Per NUMBER: its offset and the time its read returned. */
  onNumber?: (offset: number, at: number) => void;
  /** Aborting closes the socket; the session then ends as `"stopped"`. */
  signal?: AbortSignal;
}

/**
 * How a session ended: `"done"` (DONE after FINAL), `"closed"` (the server
 * closed the connection first), `"refused"` (an ERROR frame), `"stopped"`
 * (the signal was aborted).
 */
export type SessionEnd = "done" | "closed" | "refused" | "stopped";

/**
 * Runs one session to its end.
 *
 * @throws {Error} when the connection cannot be opened, or fails while the
 *   signal is not aborted
 */
export async function denoSession(o: DenoSessionOptions): Promise<SessionEnd> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: o.port });
  const counts = o.counts ?? { acks: 0, keepAlives: 0 };
  let every = 1, next = 0, lastAck = 0, lastAckAt = 0, ackIntervalMs = 0;
  let closed = false;
  let keepAlive: ReturnType<typeof setTimeout> | undefined;
  const ack = (nextOffset: number) => {
    lastAck = nextOffset;
    lastAckAt = performance.now();
    counts.acks++;
    return conn.write(encodeMessage({ type: "ack", nextOffset }));
  };
  const armKeepAlive = () => {
    clearTimeout(keepAlive);
    if (closed) return;
    keepAlive = setTimeout(
      onKeepAlive,
      Math.max(0, lastAckAt + ackIntervalMs - performance.now()),
    );
  };
  const onKeepAlive = () => {
    if (closed) return;
    if (performance.now() - lastAckAt >= ackIntervalMs) {
      counts.keepAlives++;
      ack(next).catch(() => {});
    }
    armKeepAlive();
  };
  const stop = () => {
    closed = true;
    clearTimeout(keepAlive);
    try {
      conn.close();
    } catch { /* closed */ }
  };
  o.signal?.addEventListener("abort", stop, { once: true });
  const stopped = () => o.signal?.aborted === true;
  try {
    await conn.write(
      encodeMessage({
        type: "hello",
        version: PROTOCOL_VERSION,
        id: crypto.randomUUID(),
        count: o.count,
        token: crypto.getRandomValues(new Uint8Array(16)),
      }),
    );
    const decoder = new FrameDecoder();
    const buf = new Uint8Array(o.readBytes ?? 4096);
    while (!stopped()) {
      const n = await conn.read(buf);
      if (n === null) return stopped() ? "stopped" : "closed";
      const at = performance.now();
      for (const f of decoder.push(buf.subarray(0, n))) {
        if (f.type === MessageType.NUMBER) {
          o.onNumber?.(next, at);
          next++;
          if (next - lastAck >= every) await ack(next);
        } else if (f.type === MessageType.WELCOME) {
          const w = decodeMessage(f) as Welcome;
          every = Math.max(1, Math.ceil(w.window / 4));
          ackIntervalMs = Math.max(1, w.ackIntervalMs);
          next = lastAck = w.nextOffset;
          lastAckAt = at;
          o.onWelcome?.(w, at);
          if (o.keepAlive ?? true) armKeepAlive();
        } else if (f.type === MessageType.FINAL) {
          closed = true;
          clearTimeout(keepAlive);
          next = o.count;
          await ack(o.count);
        } else if (f.type === MessageType.DONE) return "done";
        else if (f.type === MessageType.ERROR) return "refused";
      }
    }
    return "stopped";
  } catch (err) {
    if (stopped()) return "stopped";
    throw err;
  } finally {
    o.signal?.removeEventListener("abort", stop);
    stop();
  }
}
