/**
 * A small in-test v2 server for the client's tests: speaks protocol version 2
 * bytes through `protocol/` on 127.0.0.1:0, keeps sessions in a map across
 * connections, sends WELCOME, then numbers within the window (paced or
 * burst), FINAL, and DONE on ACK(count). Hooks let a test refuse, cut, stall
 * or watch ACKs. Not the real server: just enough of rule 1–2 of the v2
 * delivery rules to exercise the client over real sockets.
 *
 * @module
 */

import { sequenceChecksum } from "../protocol/checksum.ts";
import { ErrorCode } from "../protocol/errors.ts";
import { FrameDecoder } from "../protocol/frame.ts";
import {
  type ClientMessage,
  decodeMessage,
  encodeMessage,
  type ServerMessage,
} from "../protocol/messages.ts";
import { type Seed, valueAt } from "../protocol/prng.ts";
import { bytesToHex } from "../protocol/uuid.ts";

/** A session as the fake server keeps it. */
export interface FakeSession {
  id: string;
  count: number;
  token: string;
  seed: Seed;
  acked: number;
  complete: boolean;
}

/** One accepted connection, for hooks. */
export interface FakePeer {
  /** Sends a message. */
  send(m: ServerMessage): Promise<void>;
  /** Sends raw bytes. */
  raw(b: Uint8Array): Promise<void>;
  /** Closes the connection. */
  close(): void;
  /** Connections accepted before this one. */
  readonly index: number;
}

/** Options for {@link startFakeServer}. */
export interface FakeServerOptions {
  /** Ms between numbers; 0 sends as fast as the window allows. Default 0. */
  intervalMs?: number;
  /** Flow-control window sent in WELCOME. Default 16. */
  window?: number;
  /** ACK interval sent in WELCOME (ms). Default 1000. */
  ackIntervalMs?: number;
  /** Session TTL sent in WELCOME (ms). Default 30000. */
  ttlMs?: number;
  /** The sessions' seed. Default `{ hi: 1, lo: 2 }`. */
  seed?: Seed;
  /**
   * Called with the HELLO or RESUME of every connection before the default
   * handling; return true when the hook handled the connection itself
   * (refused it, cut it, …).
   */
  onHandshake?: (
    m: ClientMessage,
    peer: FakePeer,
  ) => boolean | Promise<boolean>;
  /** Called before each NUMBER/FINAL is sent; return false to cut the connection instead. */
  beforeSend?: (offset: number, peer: FakePeer) => boolean;
  /**
   * The offset at which a connection stops sending (it stays open and still
   * takes ACKs), or undefined to send everything.
   */
  pauseAt?: (peer: FakePeer) => number | undefined;
  /** Every ACK received (awaited before it is acted on). */
  onAck?: (
    nextOffset: number,
    session: FakeSession,
    peer: FakePeer,
  ) => void | Promise<void>;
}

/** A running fake server. */
export interface FakeServer extends AsyncDisposable {
  readonly port: number;
  readonly sessions: Map<string, FakeSession>;
  /** Every ACK offset received, in order. */
  readonly acks: number[];
  /** Connections accepted so far. */
  readonly connections: number;
  /** Sum and CRC-32 the fake sends for a session of `count`. */
  expected(count: number): { sum: number; crc: number };
  close(): Promise<void>;
}

/** Starts a fake v2 server on 127.0.0.1, port 0. */
export function startFakeServer(opts: FakeServerOptions = {}): FakeServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const seed = opts.seed ?? { hi: 1, lo: 2 };
  const window = opts.window ?? 16;
  const intervalMs = opts.intervalMs ?? 0;
  const sessions = new Map<string, FakeSession>();
  const acks: number[] = [];
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  let connections = 0;

  async function serve(conn: Deno.Conn, index: number): Promise<void> {
    let closed = false;
    let wake: (() => void) | null = null;
    const poke = () => {
      const w = wake;
      wake = null;
      w?.();
    };
    const peer: FakePeer = {
      index,
      send(m) {
        return peer.raw(encodeMessage(m));
      },
      async raw(b) {
        let off = 0;
        while (off < b.length) off += await conn.write(b.subarray(off));
      },
      close() {
        if (closed) return;
        closed = true;
        poke();
        try {
          conn.close();
        } catch { /* closed */ }
      },
    };
    const decoder = new FrameDecoder();
    const buf = new Uint8Array(4096);
    const inbox: ClientMessage[] = [];
    let readerDone = false;
    const reader = (async () => {
      try {
        while (!closed) {
          const n = await conn.read(buf);
          if (n === null) break;
          for (const f of decoder.push(buf.subarray(0, n))) {
            inbox.push(decodeMessage(f) as ClientMessage);
          }
          poke();
        }
      } catch { /* reset or closed */ }
      readerDone = true;
      poke();
    })();
    const waitInbox = async () => {
      while (inbox.length === 0 && !readerDone && !closed) {
        await new Promise<void>((r) => (wake = r));
      }
      return inbox.shift();
    };
    try {
      const first = await waitInbox();
      if (!first) return;
      if (opts.onHandshake && await opts.onHandshake(first, peer)) return;
      let s: FakeSession | undefined;
      let start: number;
      if (first.type === "hello") {
        s = sessions.get(first.id);
        const token = bytesToHex(first.token);
        if (s && s.token !== token) {
          return void await refuse(peer, ErrorCode.SESSION_IN_USE, "in use");
        }
        if (s?.complete) {
          return void await refuse(peer, ErrorCode.SESSION_COMPLETED, "done");
        }
        s ??= {
          id: first.id,
          count: first.count,
          token,
          seed,
          acked: 0,
          complete: false,
        };
        sessions.set(s.id, s);
        start = 0;
      } else if (first.type === "resume") {
        s = sessions.get(first.id);
        if (!s) {
          return void await refuse(peer, ErrorCode.UNKNOWN_SESSION, "unknown");
        }
        if (s.complete) {
          return void await refuse(peer, ErrorCode.SESSION_COMPLETED, "done");
        }
        if (s.token !== bytesToHex(first.token)) {
          return void await refuse(peer, ErrorCode.BAD_TOKEN, "bad token");
        }
        if (first.nextOffset > s.count) {
          return void await refuse(peer, ErrorCode.INVALID_OFFSET, "offset");
        }
        start = first.nextOffset;
      } else {
        return void await refuse(peer, ErrorCode.UNEXPECTED_MESSAGE, "ack");
      }
      await peer.send({
        type: "welcome",
        count: s.count,
        nextOffset: start,
        token: first.token,
        intervalMs,
        ttlMs: opts.ttlMs ?? 30_000,
        window,
        ackIntervalMs: opts.ackIntervalMs ?? 1000,
      });
      let sent = start;
      let acked = start;
      const pause = opts.pauseAt?.(peer) ?? Infinity;
      const sums = sequenceChecksum(s.seed, s.count);
      while (!closed) {
        // Act on every ACK that arrived.
        let m: ClientMessage | undefined;
        while ((m = inbox.shift()) !== undefined) {
          if (m.type !== "ack" || m.nextOffset < acked || m.nextOffset > sent) {
            await refuse(peer, ErrorCode.INVALID_OFFSET, "bad ack");
            return;
          }
          acks.push(m.nextOffset);
          await opts.onAck?.(m.nextOffset, s, peer);
          if (closed) return;
          acked = m.nextOffset;
          s.acked = Math.max(s.acked, acked);
          if (acked === s.count) {
            s.complete = true;
            await peer.send({ type: "done" });
            return;
          }
        }
        if (readerDone) return;
        if (sent < s.count && sent - acked < window && sent < pause) {
          if (opts.beforeSend && !opts.beforeSend(sent, peer)) {
            peer.close();
            return;
          }
          const value = valueAt(s.seed, sent);
          await peer.send(
            sent === s.count - 1
              ? {
                type: "final",
                offset: sent,
                value,
                sum: sums.sum,
                crc32: sums.crc,
              }
              : { type: "number", offset: sent, value },
          );
          sent++;
          if (intervalMs > 0) {
            await new Promise((r) => setTimeout(r, intervalMs));
          }
          continue;
        }
        if (inbox.length === 0) {
          await new Promise<void>((r) => (wake = r));
        }
      }
    } catch {
      /* the client went away */
    } finally {
      peer.close();
      await reader;
    }
  }

  async function refuse(peer: FakePeer, code: number, message: string) {
    try {
      await peer.send({ type: "error", code, message });
    } catch { /* gone */ }
    peer.close();
  }

  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        conn.setNoDelay(true);
        conns.add(conn);
        const t = serve(conn, connections++).finally(() => {
          conns.delete(conn);
          tasks.delete(t);
        });
        tasks.add(t);
      }
    } catch { /* closed */ }
  })();

  const close = async () => {
    try {
      listener.close();
    } catch { /* closed */ }
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await accepting;
    await Promise.all([...tasks]);
  };
  return {
    port: (listener.addr as Deno.NetAddr).port,
    sessions,
    acks,
    get connections() {
      return connections;
    },
    expected: (count) => sequenceChecksum(seed, count),
    close,
    [Symbol.asyncDispose]: close,
  };
}
