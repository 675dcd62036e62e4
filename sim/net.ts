/**
 * A simulated TCP network: connections whose two directions deliver bytes
 * in order after a latency, at a rate, through a bounded buffer, and that
 * can be cut the ways real ones are (FIN, RST, half-open), on one
 * {@link World}'s time line.
 *
 * Each direction models the sender's and receiver's kernel buffers as one
 * pipe of `capacity` bytes: a write completes at once while the pipe has
 * room, and waits while it is full (a peer that stops reading pushes back);
 * bytes leave at `rate` bytes per ms at most (a slow link) and arrive
 * `latency` later. A frozen process's kernel still receives into the pipe,
 * but its reads wait until it thaws.
 *
 * @module
 */

import type { Node, World } from "./world.ts";

/** How a direction carries bytes. */
export interface LinkShape {
  /** One-way delay (ms). */
  latencyMs: number;
  /** Extra random delay per chunk, 0..jitterMs (ms); order is kept. */
  jitterMs: number;
  /** Bytes per ms at most; Infinity for no limit. */
  rate: number;
  /** Kernel buffers of both ends, in bytes. */
  capacity: number;
}

/** A fast local link. */
export const FAST_LINK: LinkShape = {
  latencyMs: 1,
  jitterMs: 0,
  rate: Infinity,
  capacity: 256 * 1024,
};

interface Chunk {
  bytes: Uint8Array;
  /** When it reaches the receiver's buffer. */
  at: number;
}

/** One direction of a connection. */
class Pipe {
  /** Bytes written and not yet read (in flight or in the receiver's buffer). */
  queued = 0;
  /** Chunks in flight, in order. */
  readonly flying: Chunk[] = [];
  /** Arrived, not read. */
  readonly arrived: Uint8Array[] = [];
  /** The sender closed (FIN queued after the data). */
  finSent = false;
  /** When the FIN reaches the receiver. */
  finAt = Infinity;
  /** Time the last byte leaves the sender (rate limit). */
  wireFree = 0;
  /** Time the last chunk arrives (order). */
  lastAt = 0;
  /** Writers waiting for room. */
  readonly waiting: (() => void)[] = [];
  /** Bytes vanish (half-open: the peer is gone and nobody says so). */
  void = false;

  constructor(readonly shape: LinkShape) {}
}

/** What ended a connection, as a side sees it. */
type Fault = "reset" | "closed";

/** One end of a simulated connection: the socket as a program sees it. */
export class SimSocket {
  #pending:
    | {
      buf: Uint8Array;
      resolve: (n: number | null) => void;
      reject: (e: unknown) => void;
    }
    | undefined;
  #fault: Fault | undefined;
  #eof = false;
  /** This end's peer. */
  peer!: SimSocket;
  /** Told of every write this end makes (the checker's wire tap). */
  onWrite: ((bytes: Uint8Array) => void) | undefined;
  /**
   * Rewrites what this end's program writes before it goes on the wire (a
   * byzantine peer, `sim/byzantine.ts`); the program is told its bytes were
   * all written.
   */
  corrupt: ((bytes: Uint8Array) => Uint8Array) | undefined;
  /** Told once when this end is closed by its program or its process dies. */
  onClose: (() => void) | undefined;

  /**
   * @param net the network
   * @param node the process that owns this end
   * @param inbound bytes towards this end
   * @param outbound bytes from this end
   * @param remoteAddr the peer's address
   */
  constructor(
    readonly net: SimNet,
    readonly node: Node,
    readonly inbound: Pipe,
    readonly outbound: Pipe,
    readonly remoteAddr: { hostname: string; port: number },
  ) {}

  /** Whether this end is closed by its program, reset, or dead. */
  get closed(): boolean {
    return this.#fault !== undefined;
  }

  /** Reads what has arrived; waits if nothing has. `null` at end of stream. */
  read(buf: Uint8Array): Promise<number | null> {
    if (this.#fault === "reset") {
      return Promise.reject(
        new Deno.errors.ConnectionReset("connection reset"),
      );
    }
    if (this.#fault === "closed") {
      return Promise.reject(new Deno.errors.BadResource("socket closed"));
    }
    if (this.#pending !== undefined) {
      return Promise.reject(new Deno.errors.Busy("read already pending"));
    }
    const n = this.#take(buf);
    if (n !== undefined) return Promise.resolve(n);
    return new Promise((resolve, reject) => {
      this.#pending = { buf, resolve, reject };
    });
  }

  /** Queues bytes; resolves when the kernel took them (there was room). */
  write(bytes: Uint8Array): Promise<number> {
    if (this.#fault === "reset") {
      return Promise.reject(
        new Deno.errors.ConnectionReset("connection reset"),
      );
    }
    if (this.#fault === "closed") {
      return Promise.reject(new Deno.errors.BadResource("socket closed"));
    }
    if (this.#eof && this.peer.closed) {
      // The peer closed and its FIN arrived: the stack answers with EPIPE.
      return Promise.reject(new Deno.errors.BrokenPipe("broken pipe"));
    }
    const copy = bytes.slice();
    this.onWrite?.(copy);
    const wire = this.corrupt?.(copy) ?? copy;
    // Room now (most writes): an already resolved promise, as the one below
    // would be, without its closures.
    if (this.#fault === undefined && this.#fits(wire)) {
      this.#put(wire);
      return Promise.resolve(copy.length);
    }
    return new Promise((resolve, reject) =>
      this.#send(wire, () => resolve(copy.length), reject)
    );
  }

  #send(bytes: Uint8Array, done: () => void, fail: (e: unknown) => void): void {
    if (this.#fault !== undefined) {
      fail(new Deno.errors.ConnectionReset("connection reset"));
      return;
    }
    if (!this.#fits(bytes)) {
      this.outbound.waiting.push(() => this.#send(bytes, done, fail));
      return;
    }
    this.#put(bytes);
    done();
  }

  /** Whether the pipe takes `bytes` now (an empty one takes any write). */
  #fits(bytes: Uint8Array): boolean {
    const p = this.outbound;
    return p.queued + bytes.length <= p.shape.capacity || p.queued === 0;
  }

  #put(bytes: Uint8Array): void {
    this.outbound.queued += bytes.length;
    this.net.carry(this.outbound, this, bytes);
  }

  /** Closes this end (FIN after the data). Idempotent. */
  close(): void {
    if (this.#fault !== undefined) return;
    this.#fault = "closed";
    this.#failPending(() => new Deno.errors.BadResource("socket closed"));
    this.net.fin(this.outbound, this.peer);
    this.onClose?.();
  }

  /** The process died or the network reset the connection: RST. */
  reset(): void {
    if (this.#fault === "reset") return;
    const wasOpen = this.#fault === undefined;
    this.#fault = "reset";
    this.#failPending(() =>
      new Deno.errors.ConnectionReset("connection reset")
    );
    for (const w of this.outbound.waiting.splice(0)) w();
    if (wasOpen) this.onClose?.();
  }

  /** The process died: its end vanishes without a word to its program. */
  die(): void {
    const wasOpen = this.#fault === undefined;
    this.#fault = "reset";
    this.#pending = undefined; // a dead program never hears back
    if (wasOpen) this.onClose?.();
  }

  /** Called by the network when bytes or the FIN arrive, or the node thaws. */
  wake(): void {
    const p = this.#pending;
    if (p === undefined || this.node.frozen || !this.node.alive) return;
    const n = this.#take(p.buf);
    if (n === undefined) return;
    this.#pending = undefined;
    p.resolve(n);
  }

  #take(buf: Uint8Array): number | null | undefined {
    const inb = this.inbound;
    if (inb.arrived.length > 0) {
      let n = 0;
      while (n < buf.length && inb.arrived.length > 0) {
        const c = inb.arrived[0]!;
        const k = Math.min(c.length, buf.length - n);
        buf.set(c.subarray(0, k), n);
        n += k;
        if (k === c.length) inb.arrived.shift();
        else inb.arrived[0] = c.subarray(k);
      }
      inb.queued -= n;
      this.net.room(inb);
      return n;
    }
    if (inb.finAt <= this.net.world.time && inb.flying.length === 0) {
      this.#eof = true;
      return null;
    }
    return undefined;
  }

  /** Fails a pending read with `err()` (an error, with its stack, only if one waits). */
  #failPending(err: () => Error): void {
    const p = this.#pending;
    if (p === undefined) return;
    this.#pending = undefined;
    p.reject(err());
  }

  /** The peer's RST arrived. */
  resetByPeer(): void {
    if (this.#fault !== undefined) return;
    this.#fault = "reset";
    this.#failPending(() =>
      new Deno.errors.ConnectionReset("connection reset by peer")
    );
    for (const w of this.outbound.waiting.splice(0)) w();
    this.onClose?.();
  }
}

/** The network: makes connections and carries their bytes. */
export class SimNet {
  #port = 40000;
  /** Bytes carried (for the report). */
  bytes = 0;

  /** @param world the time line; @param random the run's random source */
  constructor(readonly world: World, readonly random: () => number) {}

  /**
   * A connection between `client` and `server` processes: returns both ends.
   * `toServer` and `toClient` shape each direction.
   */
  connect(
    client: Node,
    server: Node,
    toServer: LinkShape,
    toClient: LinkShape,
  ): { client: SimSocket; server: SimSocket } {
    const up = new Pipe(toServer), down = new Pipe(toClient);
    const port = this.#port++;
    const c = new SimSocket(this, client, down, up, {
      hostname: "10.0.0.1",
      port: 8080,
    });
    const s = new SimSocket(this, server, up, down, {
      hostname: "127.0.0.1",
      port,
    });
    c.peer = s;
    s.peer = c;
    return { client: c, server: s };
  }

  /** Puts `bytes` from `from` on the wire of `p`, towards its peer. */
  carry(p: Pipe, from: SimSocket, bytes: Uint8Array): void {
    const to = from.peer;
    this.bytes += bytes.length;
    if (p.void) {
      // Nobody is there: nothing is acknowledged, so the bytes stay in the
      // send buffer, which fills, and writes then block (a black hole).
      return;
    }
    const now = this.world.time;
    const s = p.shape;
    const leave = Math.max(now, p.wireFree) +
      (s.rate === Infinity ? 0 : bytes.length / s.rate);
    p.wireFree = leave;
    const jitter = s.jitterMs > 0 ? this.random() * s.jitterMs : 0;
    const at = Math.max(p.lastAt, leave + s.latencyMs + jitter);
    p.lastAt = at;
    const chunk = { bytes, at };
    p.flying.push(chunk);
    this.world.at(at, () => {
      if (p.flying[0] !== chunk) return; // dropped by a reset
      p.flying.shift();
      if (p.void) return;
      if (to.closed) {
        // Data for a closed socket: its stack answers with a reset.
        p.queued -= chunk.bytes.length;
        this.world.after(p.shape.latencyMs, () => from.resetByPeer());
        return;
      }
      p.arrived.push(chunk.bytes);
      to.wake();
    });
  }

  /** Queues a FIN behind the data of `p`. */
  fin(p: Pipe, to: SimSocket): void {
    if (p.finSent) return;
    p.finSent = true;
    const at = Math.max(p.lastAt, this.world.time + p.shape.latencyMs);
    p.finAt = at;
    this.world.at(at, () => to.wake());
  }

  /** Room was made in `p`: let a waiting writer go on. */
  room(p: Pipe): void {
    while (p.waiting.length > 0 && p.queued < p.shape.capacity) {
      p.waiting.shift()!();
    }
  }

  /**
   * Cuts a connection. `fin`: both ends see an orderly close; `rst`: both
   * see a reset after the latency; `half-open-server`: the client is told
   * (reset) and the server is not (its writes vanish, nothing more
   * arrives); `half-open-client`: the reverse.
   */
  cut(
    pair: { client: SimSocket; server: SimSocket },
    how: "fin" | "rst" | "half-open-server" | "half-open-client",
  ): void {
    const { client, server } = pair;
    const lat = client.outbound.shape.latencyMs;
    switch (how) {
      case "fin":
        // A middlebox that closes both ways: data in flight still arrives.
        this.fin(client.outbound, server);
        this.fin(server.outbound, client);
        break;
      case "rst":
        this.world.after(lat, () => {
          dropFlying(client.outbound);
          dropFlying(server.outbound);
          client.resetByPeer();
          server.resetByPeer();
        });
        break;
      case "half-open-server":
        client.outbound.void = true;
        server.outbound.void = true;
        dropFlying(client.outbound);
        dropFlying(server.outbound);
        client.resetByPeer();
        break;
      case "half-open-client":
        client.outbound.void = true;
        server.outbound.void = true;
        dropFlying(client.outbound);
        dropFlying(server.outbound);
        server.resetByPeer();
        break;
    }
  }

  /** A process died: its ends vanish and the peers get a reset or a FIN. */
  died(sock: SimSocket, how: "fin" | "rst"): void {
    if (sock.closed) return;
    sock.die();
    const peer = sock.peer;
    if (how === "fin") this.fin(sock.outbound, peer);
    else {
      this.world.after(sock.outbound.shape.latencyMs, () => {
        dropFlying(sock.outbound);
        peer.resetByPeer();
      });
    }
  }
}

function dropFlying(p: Pipe): void {
  for (const c of p.flying) p.queued -= c.bytes.length;
  p.flying.length = 0;
}
