/**
 * A raw protocol peer for tests: speaks frames directly, so tests can do what
 * the real client never would (bad tokens, races, garbage, half frames).
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
  close(): void;
}

/** Opens a raw connection to `port` on 127.0.0.1. */
export async function rawConnect(port: number): Promise<RawPeer> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const decoder = new FrameDecoder();
  const queue: (Message | null)[] = [];
  const wake = { fn: null as (() => void) | null };
  let eof = false;
  const pump = (async () => {
    const buf = new Uint8Array(4096);
    try {
      while (true) {
        const n = await conn.read(buf);
        if (n === null) break;
        for (const f of decoder.push(buf.subarray(0, n))) {
          queue.push(decodeMessage(f));
        }
        wake.fn?.();
      }
    } catch {
      // reset or closed locally
    }
    eof = true;
    queue.push(null);
    wake.fn?.();
  })();
  let closedLocally = false;
  const close = () => {
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
    close,
    async [Symbol.asyncDispose]() {
      close();
      await pump;
    },
  };
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
