/**
 * The dashboard's JSON: `GET /sessions` (a page of the live sessions) and
 * `GET /info` (the server's identity and settings). Pure: built from the
 * read-only views the registry and the session layer give. Neither ever
 * holds a resume token or a seed.
 *
 * @module
 */

import type { SessionView } from "../connection.ts";
import type { DetachedView } from "../sessions.ts";

/** A session's state on the dashboard. */
export type SessionState = "streaming" | "completing" | "awaiting resume";

/** One row of `GET /sessions`. */
export interface SessionRow {
  id: string;
  state: SessionState;
  count: number;
  /** Offset the client acknowledged (unknown, null, while detached). */
  acked: number | null;
  /** Next offset to send (null while detached). */
  sent: number | null;
  /** Attaches after the first (fencing epoch − 1). */
  reconnects: number;
  /** Peer address (null while detached). */
  remote: string | null;
  /** Since the current attach (ms), or null while detached. */
  attachedForMs: number | null;
  /** How long it stays resumable (ms), or null while attached. */
  expiresInMs: number | null;
}

/** The answer of `GET /sessions`. */
export interface SessionsPage {
  /** Sessions attached here. */
  attached: number;
  /** Sessions detached here, awaiting resume. */
  awaiting: number;
  skip: number;
  limit: number;
  /** Attached sessions first (attach order), then those awaiting resume. */
  sessions: SessionRow[];
}

/** Most rows one request returns. */
export const MAX_SESSIONS_LIMIT = 500;
/** Rows when the request does not say. */
export const DEFAULT_SESSIONS_LIMIT = 50;

/** What {@link sessionsPage} reads. */
export interface SessionSource {
  attachedCount: number;
  awaitingCount: number;
  attached(skip: number, limit: number): Iterable<SessionView>;
  awaiting(skip: number, limit: number): Iterable<DetachedView>;
}

/** `skip` and `limit` from a query string, clamped: never a full scan of a large server. */
export function pageParams(
  q: URLSearchParams,
): { skip: number; limit: number } {
  const int = (v: string | null, d: number) => {
    const n = v === null ? d : Number(v);
    return Number.isInteger(n) && n >= 0 ? n : d;
  };
  return {
    skip: int(q.get("skip"), 0),
    limit: Math.min(
      MAX_SESSIONS_LIMIT,
      int(q.get("limit"), DEFAULT_SESSIONS_LIMIT),
    ),
  };
}

/** One page of sessions at wall time `now` (ms since the epoch). */
export function sessionsPage(
  src: SessionSource,
  skip: number,
  limit: number,
  now: number,
): SessionsPage {
  const rows: SessionRow[] = [];
  for (const v of src.attached(skip, limit)) {
    rows.push({
      id: v.id,
      state: v.completing ? "completing" : "streaming",
      count: v.count,
      acked: v.acked,
      sent: v.sent,
      reconnects: Math.max(0, v.epoch - 1),
      remote: v.remote,
      attachedForMs: Math.max(0, now - v.attachedAt),
      expiresInMs: null,
    });
  }
  const left = limit - rows.length;
  if (left > 0) {
    const dskip = Math.max(0, skip - src.attachedCount);
    for (const d of src.awaiting(dskip, left)) {
      rows.push({
        id: d.id,
        state: "awaiting resume",
        count: d.count,
        acked: null,
        sent: null,
        reconnects: Math.max(0, d.epoch - 1),
        remote: null,
        attachedForMs: null,
        expiresInMs: Math.round(d.expiresInMs),
      });
    }
  }
  return {
    attached: src.attachedCount,
    awaiting: src.awaitingCount,
    skip,
    limit,
    sessions: rows,
  };
}

/** The answer of `GET /info`. */
export interface ServerInfo {
  name: "seqstream";
  version: string;
  serverId: string;
  intervalMs: number;
  ttlMs: number;
  window: number;
  clientTimeoutMs: number;
  maxConnections: number;
  tls: boolean;
  store: {
    kind: string;
    /** This server's lease is in the store: sessions can attach. */
    registered: boolean;
    /** Writes the store has not confirmed yet. */
    unsynced: number;
    /** `ok` when registered with nothing unsynced, else `degraded`. */
    health: "ok" | "degraded";
  };
  /** When the server started (ms since the epoch). */
  startedAt: number;
  uptimeS: number;
}
