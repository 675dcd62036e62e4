/**
 * The server's table of connections: every open one, and the attached ones by
 * session id, so that a fence (the session was resumed on another server or
 * connection) closes the right one.
 *
 * @module
 */

import type { Logger } from "../common/logger.ts";
import { ErrorCode, ProtocolError } from "../protocol/errors.ts";
import type { Connection, SessionView } from "./connection.ts";
import type { Attachment } from "./sessions.ts";

/** Open connections, attached sessions, and the flow-control figures over them. */
export class Registry {
  readonly #open = new Set<Connection>();
  readonly #byId = new Map<string, Connection>();
  readonly #log: Logger;
  /** The largest in-flight count of connections that have closed. */
  #closedPeak = 0;

  /** @param log where takeovers are reported */
  constructor(log: Logger) {
    this.#log = log;
  }

  /** Open connections. */
  get size(): number {
    return this.#open.size;
  }

  /** A connection was accepted. */
  add(conn: Connection): void {
    this.#open.add(conn);
  }

  /** A connection has closed. */
  remove(conn: Connection): void {
    if (conn.unackedPeak > this.#closedPeak) {
      this.#closedPeak = conn.unackedPeak;
    }
    this.#open.delete(conn);
  }

  /** `conn` attached `att`: it is now the one a fence of `att.id` closes. */
  attached(conn: Connection, att: Attachment): void {
    this.#byId.set(att.id, conn);
  }

  /** `conn`, which attached `att`, is closing. */
  detached(conn: Connection, att: Attachment): void {
    if (this.#byId.get(att.id) === conn) this.#byId.delete(att.id);
  }

  /**
   * The session `id` was taken over at `epoch`: closes the local connection
   * that holds an older epoch with `taken_over`.
   */
  fenced(id: string, epoch: number): void {
    const conn = this.#byId.get(id);
    if (conn === undefined || conn.epoch >= epoch) return;
    this.#byId.delete(id);
    this.#log.info("session taken over", { id, remote: conn.remote });
    conn.fail(
      new ProtocolError(
        ErrorCode.TAKEN_OVER,
        `Session "${id}" was resumed by another connection`,
      ),
    );
  }

  /** Numbers sent and not acknowledged, over every open connection (O(connections)). */
  unacked(): number {
    let sum = 0;
    for (const c of this.#open) sum += c.unacked;
    return sum;
  }

  /** The largest in-flight count any connection reached (O(connections)). */
  unackedPeak(): number {
    let peak = this.#closedPeak;
    for (const c of this.#open) if (c.unackedPeak > peak) peak = c.unackedPeak;
    return peak;
  }

  /** Sessions attached to a connection here. */
  get attachedCount(): number {
    return this.#byId.size;
  }

  /**
   * A read-only page of the attached sessions, in attach order: `limit` at
   * most from the `skip`th on. O(skip + limit), whatever the number of sessions.
   */
  *sessionViews(skip: number, limit: number): Iterable<SessionView> {
    let i = 0, n = 0;
    for (const conn of this.#byId.values()) {
      if (n >= limit) return;
      if (i++ < skip) continue;
      const v = conn.view;
      if (v === undefined) continue;
      n++;
      yield v;
    }
  }

  /** Sends GOAWAY to every open connection; each closes within its grace. */
  goAwayAll(message: string): void {
    for (const c of this.#open) c.goAway(message);
  }
}
