/**
 * A raw protocol peer for tests: speaks frames directly, so tests can do what
 * the real client never would (bad tokens, races, garbage, half frames).
 *
 * Protocol v2 servers pause a stream whose numbers are not acknowledged and
 * close a connection that stays silent, so by default the peer acknowledges
 * like a client would: ACK(nextOffset) every quarter window and every
 * `ackIntervalMs` of the WELCOME. It never sends ACK(count) by itself
 * (completion is the test's call), and {@link RawPeer.freeze} stops it
 * sending anything, like a frozen process whose kernel still reads.
 *
 * @module
 */

import { FrameDecoder } from "../protocol/frame.ts";
import {
  decodeMessage,
  encodeMessage,
  type Message,
  PROTOCOL_VERSION,
} from "../protocol/messages.ts";

/** A raw connection. */
export interface RawPeer extends AsyncDisposable {
  /** Sends one message. */
  send(m: Message): Promise<void>;
  /** Sends raw bytes. */
  sendBytes(b: Uint8Array): Promise<void>;
  /** The next message; `null` at EOF or reset. Rejects after `timeoutMs` (default 5000). */
  next(timeoutMs?: number): Promise<Message | null>;
  /** Reads until a message of `type` arrives (others are collected). */
  until<T extends Message["type"]>(
    type: T,
    timeoutMs?: number,
  ): Promise<Extract<Message, { type: T }>>;
  /** Resolves when the server closes the connection (EOF or reset). */
  closed(timeoutMs?: number): Promise<void>;
  /** The offset after the last NUMBER or FINAL received (or the WELCOME's). */
  readonly nextOffset: number;
  /** Stops every automatic ACK from now on (the peer keeps reading). */
  freeze(): void;
  close(): void;
}

/** Options for {@link rawConnect}. */
export interface RawOptions {
  /** Acknowledge automatically (default true); false: only what the test sends. */
  autoAck?: boolean;
}

/** Opens a raw connection to `port` on 127.0.0.1. */
export async function rawConnect(
  port: number,
  opts: RawOptions = {},
): Promise<RawPeer> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const decoder = new FrameDecoder();
  const queue: (Message | null)[] = [];
  const wake = { fn: null as (() => void) | null };
  let eof = false;
  let auto = opts.autoAck ?? true;
  let count = 0, have = 0, lastAck = 0, every = 1;
  let keepAlive: ReturnType<typeof setInterval> | undefined;
  const ack = (n: number) => {
    lastAck = n;
    void sendBytes(encodeMessage({ type: "ack", nextOffset: n })).catch(
      () => {},
    );
  };
  const onMessage = (m: Message) => {
    if (m.type === "welcome") {
      count = m.count;
      have = lastAck = m.nextOffset;
      every = Math.ceil(m.window / 4);
      clearInterval(keepAlive);
      if (auto) {
        keepAlive = setInterval(() => {
          // At count only ACK(count) is valid, and that is the test's call.
          const n = Math.min(have, count - 1);
          if (auto && n >= lastAck) ack(n);
        }, m.ackIntervalMs);
      }
    } else if (m.type === "number" || m.type === "final") {
      have = m.offset + 1;
      // Never ACK(count) on its own: that completes the session.
      const n = Math.min(have, count - 1);
      if (auto && n - lastAck >= every) ack(n);
    }
  };
  const pump = (async () => {
    const buf = new Uint8Array(4096);
    try {
      while (true) {
        const n = await conn.read(buf);
        if (n === null) break;
        for (const f of decoder.push(buf.subarray(0, n))) {
          const m = decodeMessage(f);
          onMessage(m);
          queue.push(m);
        }
        wake.fn?.();
      }
    } catch {
      // reset or closed locally
    }
    clearInterval(keepAlive);
    eof = true;
    queue.push(null);
    wake.fn?.();
  })();
  let closedLocally = false;
  const close = () => {
    clearInterval(keepAlive);
    if (closedLocally) return;
    closedLocally = true;
    try {
      conn.close();
    } catch { /* closed */ }
  };
  const next = async (timeoutMs = 5000): Promise<Message | null> => {
    const deadline = Date.now() + timeoutMs;
    while (queue.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`No message within ${timeoutMs}ms`);
      let t: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((r) => {
        wake.fn = r;
        t = setTimeout(r, left);
      });
      clearTimeout(t);
      wake.fn = null;
    }
    const m = queue.shift()!;
    if (m === null) queue.unshift(null); // EOF stays visible
    return m;
  };
  const sendBytes = async (b: Uint8Array) => {
    let off = 0;
    while (off < b.length) off += await conn.write(b.subarray(off));
  };
  return {
    send: (m) => sendBytes(encodeMessage(m)),
    sendBytes,
    next,
    async until(type, timeoutMs = 5000) {
      while (true) {
        const m = await next(timeoutMs);
        if (m === null) {
          throw new Error(`Connection closed before a ${type} message`);
        }
        if (m.type === type) return m as never;
      }
    },
    async closed(timeoutMs = 5000) {
      while (!eof || queue[0] !== null) {
        if ((await next(timeoutMs)) === null) break;
      }
    },
    get nextOffset() {
      return have;
    },
    freeze() {
      auto = false;
      clearInterval(keepAlive);
    },
    close,
    async [Symbol.asyncDispose]() {
      close();
      await pump;
    },
  };
}

/** An ACK of every offset below `nextOffset`. */
export function ack(nextOffset: number): Message {
  return { type: "ack", nextOffset };
}

/** A hello for `id` and `count` at the current version. */
export function hello(id: string, count: number, token: Uint8Array): Message {
  return { type: "hello", version: PROTOCOL_VERSION, id, count, token };
}

/** A resume for `id` with `token` at `nextOffset`. */
export function resume(
  id: string,
  token: Uint8Array,
  nextOffset: number,
): Message {
  return { type: "resume", version: PROTOCOL_VERSION, id, token, nextOffset };
}

/**
 * Runs a whole session as a well-behaved v2 client would, on a raw peer:
 * HELLO (or RESUME when `resumeAt` is given), every offset in order,
 * ACK(count) after FINAL, DONE. Resolves the numbers received.
 *
 * @throws {Error} on an ERROR frame, an offset out of order or an early close
 */
export async function runSession(
  port: number,
  opts: {
    id?: string;
    count: number;
    token?: Uint8Array;
    resumeAt?: number;
  },
): Promise<number> {
  const id = opts.id ?? crypto.randomUUID();
  const token = opts.token ?? crypto.getRandomValues(new Uint8Array(16));
  await using p = await rawConnect(port);
  await p.send(
    opts.resumeAt === undefined
      ? hello(id, opts.count, token)
      : resume(id, token, opts.resumeAt),
  );
  let next = opts.resumeAt ?? 0, received = 0;
  while (true) {
    const m = await p.next();
    if (m === null) throw new Error(`Closed at offset ${next}`);
    switch (m.type) {
      case "welcome":
        if (m.nextOffset !== next) {
          throw new Error(`WELCOME at ${m.nextOffset}`);
        }
        if (next === opts.count) await p.send(ack(opts.count));
        break;
      case "number":
      case "final":
        if (m.offset !== next) {
          throw new Error(`${m.type} at ${m.offset}, expected ${next}`);
        }
        next++;
        received++;
        if (m.type === "final") await p.send(ack(opts.count));
        break;
      case "done":
        if (next !== opts.count) throw new Error(`DONE at ${next}`);
        await p.closed();
        return received;
      case "error":
        throw new Error(`ERROR ${m.code}: ${m.message}`);
      default:
        throw new Error(`Unexpected ${m.type}`);
    }
  }
}
