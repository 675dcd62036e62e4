/**
 * Group commit for Redis `WAIT`: the confirmation of writes on one
 * connection, with at most one `WAIT` in flight.
 *
 * `WAIT n ms` on a connection waits until `n` replicas have everything that
 * connection wrote before it, or `ms` pass. It also blocks the connection:
 * Redis reads nothing more from it meanwhile. One `WAIT` per write would
 * queue them one behind the other, and when the replicas stop answering
 * every command on the connection (lease renewals, reads) would wait
 * `ms` times the number of writes ahead of it. So the writes go out as
 * usual, and each one then asks for a `WAIT` sent after its reply: the one
 * in flight was sent before, so it joins the next, which goes out once the
 * one in flight returns and answers every write made before it. Any command
 * waits for at most one `WAIT` (plus the one before, if it had just been
 * sent), whatever the number of writes.
 *
 * A `WAIT` only speaks for its own connection. If the connection was
 * replaced between a write and the `WAIT` (a reconnect, perhaps to a new
 * primary after a failover), the new connection has written nothing and
 * its `WAIT` would answer at once: the socket each write's reply came on is
 * compared with the one its `WAIT` went out on, and a different one counts
 * as 0 replicas.
 *
 * @module
 */

/** What the batcher needs of a connection (an ioredis client has both). */
export interface WaitTarget {
  /** The current socket: a different object after each reconnect. */
  readonly stream: unknown;
  /** `WAIT replicas timeoutMs`: how many replicas acknowledged. */
  wait(replicas: number, timeoutMs: number): Promise<number>;
}

interface Sent {
  /** The socket the WAIT went out on. */
  on: unknown;
  acked: number;
}

/**
 * Confirms writes on one connection, one `WAIT` at a time.
 *
 * @example
 * ```ts
 * const batcher = new WaitBatcher(redis, 1, 500);
 * await redis.set("k", "v");
 * const acked = await batcher.confirm(redis.stream); // replicas that have it
 * ```
 */
export class WaitBatcher {
  readonly #target: WaitTarget;
  readonly #replicas: number;
  readonly #waitMs: number;
  #inflight: Promise<Sent> | undefined;
  #next: PromiseWithResolvers<Sent>[] | undefined;
  /** WAITs sent so far (for tests and figures). */
  sent = 0;

  /**
   * @param target the connection
   * @param replicas replicas each `WAIT` asks for
   * @param waitMs how long each `WAIT` may block
   */
  constructor(target: WaitTarget, replicas: number, waitMs: number) {
    this.#target = target;
    this.#replicas = replicas;
    this.#waitMs = waitMs;
  }

  /**
   * How many replicas have a write whose reply just came on socket
   * `writtenOn`: the answer of a `WAIT` sent after it on that same socket,
   * or 0 if the connection was replaced meanwhile.
   *
   * @throws what the `WAIT` threw (a closed connection, a timeout)
   */
  async confirm(writtenOn: unknown): Promise<number> {
    let sent: Promise<Sent>;
    if (this.#inflight === undefined) {
      sent = this.#send();
    } else {
      const d = Promise.withResolvers<Sent>();
      (this.#next ??= []).push(d);
      sent = d.promise;
    }
    const { on, acked } = await sent;
    return on === writtenOn ? acked : 0;
  }

  #send(): Promise<Sent> {
    this.sent++;
    const on = this.#target.stream;
    const p = this.#target.wait(this.#replicas, this.#waitMs)
      .then((acked) => ({ on, acked }));
    this.#inflight = p;
    const after = () => {
      this.#inflight = undefined;
      const next = this.#next;
      this.#next = undefined;
      if (next === undefined) return;
      const q = this.#send();
      for (const d of next) q.then(d.resolve, d.reject);
    };
    p.then(after, after);
    return p;
  }
}
