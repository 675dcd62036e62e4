/**
 * What every connection shares with its server: settings, the scheduler, the
 * session manager, counters and the hooks that keep the server's tables.
 *
 * @module
 */

import type { Logger } from "../common/logger.ts";
import type { Counters } from "./metrics.ts";
import type { Scheduler } from "./scheduler.ts";
import type { SessionManager } from "./sessions.ts";
import type { Connection } from "./connection.ts";

/** The server side a {@link Connection} sees. */
export interface ServerContext {
  readonly intervalMs: number;
  readonly ttlMs: number;
  readonly handshakeTimeoutMs: number;
  readonly stallMs: number;
  readonly shuttingDown: boolean;
  readonly scheduler: Scheduler;
  readonly sessions: SessionManager;
  readonly counters: Counters;
  readonly log: Logger;
  /** A connection attached a session. */
  attach(conn: Connection): void;
  /** A connection with a session is closing. */
  detachConnection(conn: Connection): void;
  /** A connection has closed. */
  connectionClosed(conn: Connection): void;
  /** A hello or resume was refused with `code`. */
  refused(code: string): void;
}
