/**
 * The transport port: what a server connection needs of a byte stream, and
 * nothing about messages. {@link Connection} and {@link Admission} read and
 * write through it; production wires it to a socket with
 * {@link connTransport}, tests and the simulator to an in-memory pair. (The
 * idea is nats.js `core/src/transport.ts`: the protocol never sees a socket.)
 *
 * ## Contract
 * - `read(buf)` resolves with the number of bytes placed at the start of
 *   `buf` (at least 1), or `null` once the peer has closed its side (EOF) and
 *   everything before it was read. It rejects when the link is dead, with a
 *   `Deno.errors.*` error as a socket does: `ConnectionReset` (a reset),
 *   `BrokenPipe`, `BadResource` or `Interrupted` (this side closed it
 *   meanwhile), `InvalidData` (a TLS handshake that failed), ... The server
 *   treats any `Deno.errors.*` rejection as "the peer is gone, nothing to
 *   tell it"; anything else is logged as a failure.
 * - `write(bytes)` resolves with the number of bytes taken, from 1 to
 *   `bytes.length` (the caller writes the rest); it may wait while the link
 *   pushes back. It rejects on a dead link with a `Deno.errors.*` error
 *   (`BrokenPipe`, `ConnectionReset`, `BadResource` after close). The caller
 *   must not change `bytes` until it settles, and never has two writes in
 *   flight.
 * - `close()` closes both directions at once and never throws, even when
 *   called again; a read or write pending on this side then rejects (as
 *   above) and the peer reads EOF (or a reset if it had unread data, for a
 *   real socket).
 * - `closeWrite()`, when present, half-closes: the peer reads EOF, this side
 *   may still read. Without it, a refused connection is answered and read
 *   until the peer closes or the refusal's time limit (1 s) closes it.
 * - `remoteAddr` is the peer's address, for logs, `/sessions` and the
 *   per-address handshake limit.
 *
 * @module
 */

/** The peer of a {@link Transport}. */
export interface RemoteAddr {
  readonly hostname: string;
  readonly port: number;
}

/** A byte stream to one client; see the module documentation for the contract. */
export interface Transport {
  /**
   * Reads into `buf`: bytes read, or `null` at EOF.
   *
   * @throws {Deno.errors.ConnectionReset} and other `Deno.errors.*` when the link is dead
   */
  read(buf: Uint8Array): Promise<number | null>;
  /**
   * Writes some of `bytes`: the number taken (1..`bytes.length`).
   *
   * @throws {Deno.errors.BrokenPipe} and other `Deno.errors.*` when the link is dead
   */
  write(bytes: Uint8Array): Promise<number>;
  /** Closes both directions. Idempotent; never throws. */
  close(): void;
  /** Half-closes (the peer reads EOF); optional. */
  closeWrite?(): Promise<void>;
  /** The peer's address. */
  readonly remoteAddr: RemoteAddr;
}

/**
 * Adapts an accepted `Deno.Conn` (TCP, TLS or Unix) to a {@link Transport}:
 * reads, writes and half-close go straight to the socket, whose errors
 * already follow the contract; `close()` swallows "already closed".
 *
 * @example
 * ```ts
 * const conn = await listener.accept();
 * core.accept(connTransport(conn));
 * ```
 */
export function connTransport(conn: Deno.Conn): Transport {
  return new ConnTransport(conn);
}

class ConnTransport implements Transport {
  readonly #conn: Deno.Conn;
  readonly remoteAddr: RemoteAddr;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
    const a = conn.remoteAddr;
    this.remoteAddr = a.transport === "tcp" || a.transport === "udp"
      ? { hostname: a.hostname, port: a.port }
      : { hostname: "path" in a ? a.path : a.transport, port: 0 };
  }

  read(buf: Uint8Array): Promise<number | null> {
    return this.#conn.read(buf);
  }

  write(bytes: Uint8Array): Promise<number> {
    return this.#conn.write(bytes);
  }

  closeWrite(): Promise<void> {
    return this.#conn.closeWrite();
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }
}
