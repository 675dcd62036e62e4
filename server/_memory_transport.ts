/**
 * Test helper: two {@link Transport}s joined in memory, for running a server
 * connection (or a whole server core) with no socket. Writes are taken at
 * once and whole (the link never pushes back); what one side writes, the
 * other reads, in order. It follows the transport contract of
 * `server/transport.ts`:
 *
 * - `close()` on one side: its own pending and later reads and writes reject
 *   with `Deno.errors.BadResource`; the other side reads what was already
 *   sent, then EOF, and its writes reject with `Deno.errors.BrokenPipe`.
 * - `closeWrite()`: the other side reads EOF after the data; reading goes on.
 * - `reset()` (a test's RST): both sides' reads and writes reject with
 *   `Deno.errors.ConnectionReset`, data in flight is lost.
 *
 * @module
 */

import type { RemoteAddr, Transport } from "./transport.ts";

/** One end of a {@link memoryPair}. */
export interface MemoryTransport extends Transport {
  /** Half-closes (the peer reads EOF). */
  closeWrite(): Promise<void>;
  /** Kills the link both ways as a TCP reset would. */
  reset(): void;
  /** Whether this end was closed (by `close()` or a reset). */
  readonly closed: boolean;
}

/** Bytes flowing one way, with at most one reader waiting. */
class Pipe {
  readonly chunks: Uint8Array[] = [];
  /** The writer half-closed or closed: EOF once drained. */
  eof = false;
  /** The reading side closed: its reads reject, writes to it break. */
  readerClosed = false;
  /** A reset: every read and write rejects with it. */
  resetError: Error | undefined;
  waiter: (() => void) | undefined;

  wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  async read(buf: Uint8Array): Promise<number | null> {
    for (;;) {
      if (this.resetError) throw this.resetError;
      if (this.readerClosed) {
        throw new Deno.errors.BadResource("Transport closed");
      }
      const head = this.chunks[0];
      if (head !== undefined) {
        const n = Math.min(buf.length, head.length);
        buf.set(head.subarray(0, n));
        if (n === head.length) this.chunks.shift();
        else this.chunks[0] = head.subarray(n);
        return n;
      }
      if (this.eof) return null;
      await new Promise<void>((r) => this.waiter = r);
    }
  }
}

class End implements MemoryTransport {
  closed = false;
  constructor(
    readonly remoteAddr: RemoteAddr,
    readonly inbound: Pipe,
    readonly outbound: Pipe,
    readonly resetBoth: () => void,
  ) {}

  read(buf: Uint8Array): Promise<number | null> {
    return this.inbound.read(buf);
  }

  write(bytes: Uint8Array): Promise<number> {
    const out = this.outbound;
    if (out.resetError) return Promise.reject(out.resetError);
    if (this.closed) {
      return Promise.reject(new Deno.errors.BadResource("Transport closed"));
    }
    if (out.eof || out.readerClosed) {
      return Promise.reject(new Deno.errors.BrokenPipe("Write after close"));
    }
    if (bytes.length === 0) return Promise.resolve(0);
    out.chunks.push(bytes.slice());
    out.wake();
    return Promise.resolve(bytes.length);
  }

  closeWrite(): Promise<void> {
    this.outbound.eof = true;
    this.outbound.wake();
    return Promise.resolve();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.inbound.readerClosed = true;
    this.inbound.wake();
    // The peer reads what was sent, then EOF; its writes break.
    this.outbound.eof = true;
    this.outbound.wake();
  }

  reset(): void {
    this.resetBoth();
  }
}

/**
 * Two connected in-memory transports: `[client, server]`.
 *
 * @example
 * ```ts
 * const [client, server] = memoryPair();
 * core.accept(server);
 * await client.write(encodeMessage(hello));
 * ```
 */
export function memoryPair(
  clientAddr: RemoteAddr = { hostname: "10.0.0.1", port: 40000 },
  serverAddr: RemoteAddr = { hostname: "10.0.0.2", port: 7000 },
): [MemoryTransport, MemoryTransport] {
  const toServer = new Pipe(), toClient = new Pipe();
  const reset = () => {
    for (const p of [toServer, toClient]) {
      p.chunks.length = 0;
      p.resetError ??= new Deno.errors.ConnectionReset("Connection reset");
      p.wake();
    }
    client.closed = server.closed = true;
  };
  const client = new End(serverAddr, toClient, toServer, reset);
  const server = new End(clientAddr, toServer, toClient, reset);
  return [client, server];
}
