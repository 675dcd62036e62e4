/**
 * The dashboard's JSON: `GET /sessions` (a page of the live sessions) and
 * `GET /info` (the server's identity and settings). Pure: built from the
 * read-only views the registry and the session layer give. Neither ever
 * holds a resume token or a seed.
 *
 * @module
 */

import type { SessionView } from "../connection.ts";
import type { DetachedView } from "../detached.ts";

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
  /**
   * With a filter or a sort: the rows that matched among the first
   * {@link MAX_SCAN} sessions scanned, and whether there were more.
   */
  matched?: number;
  scanned?: number;
  truncated?: boolean;
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

/** Columns `GET /sessions?sort=` takes. */
export const SORT_KEYS = [
  "id",
  "state",
  "count",
  "acked",
  "sent",
  "reconnects",
  "remote",
  "attachedFor",
  "expiresIn",
] as const;

/** A column to sort by. */
export type SortKey = typeof SORT_KEYS[number];

/** Most sessions a filtered or sorted request looks at (a bounded scan). */
export const MAX_SCAN = 10_000;

/** The filter and order of a sessions request; all optional. */
export interface SessionsQuery {
  skip: number;
  limit: number;
  /** Ids starting with this (case-insensitive). */
  idPrefix?: string | undefined;
  state?: SessionState | undefined;
  /** Remote addresses containing this. */
  remote?: string | undefined;
  sort?: SortKey | undefined;
  desc?: boolean | undefined;
}

/**
 * The query of `GET /sessions`: `skip`, `limit`, `id` (prefix), `state`,
 * `remote` (substring), `sort` (a {@link SORT_KEYS} column) and `order`
 * (`asc`, `desc`). Unknown values are ignored.
 */
export function sessionsQuery(q: URLSearchParams): SessionsQuery {
  const { skip, limit } = pageParams(q);
  const str = (k: string) => {
    const v = q.get(k)?.trim();
    return v ? v : undefined;
  };
  const state = str("state");
  const sort = str("sort");
  return {
    skip,
    limit,
    idPrefix: str("id")?.toLowerCase(),
    state: state === "streaming" || state === "completing" ||
        state === "awaiting resume"
      ? state
      : undefined,
    remote: str("remote"),
    sort: (SORT_KEYS as readonly string[]).includes(sort ?? "")
      ? sort as SortKey
      : undefined,
    desc: q.get("order") === "desc",
  };
}

const SORT_VALUE: Record<SortKey, (r: SessionRow) => string | number | null> = {
  id: (r) => r.id,
  state: (r) => r.state,
  count: (r) => r.count,
  acked: (r) => r.acked,
  sent: (r) => r.sent,
  reconnects: (r) => r.reconnects,
  remote: (r) => r.remote,
  attachedFor: (r) => r.attachedForMs,
  expiresIn: (r) => r.expiresInMs,
};

/**
 * A page of sessions, filtered and sorted as `q` asks. Without a filter or a
 * sort it is {@link sessionsPage} (O(skip + limit)); with one, it scans at
 * most {@link MAX_SCAN} sessions (attached first) and says whether it
 * stopped short. Missing values (a detached session's remote) sort last.
 */
export function querySessions(
  src: SessionSource,
  q: SessionsQuery,
  now: number,
): SessionsPage {
  const filtered = q.idPrefix !== undefined || q.state !== undefined ||
    q.remote !== undefined;
  if (!filtered && q.sort === undefined) {
    return sessionsPage(src, q.skip, q.limit, now);
  }
  const all = sessionsPage(src, 0, MAX_SCAN, now);
  const rows = all.sessions.filter((r) =>
    (q.idPrefix === undefined || r.id.toLowerCase().startsWith(q.idPrefix)) &&
    (q.state === undefined || r.state === q.state) &&
    (q.remote === undefined || (r.remote ?? "").includes(q.remote))
  );
  if (q.sort !== undefined) {
    const key = SORT_VALUE[q.sort], dir = q.desc ? -1 : 1;
    rows.sort((a, b) => {
      const x = key(a), y = key(b);
      if (x === y) return 0;
      if (x === null) return 1;
      if (y === null) return -1;
      return (x < y ? -1 : 1) * dir;
    });
  }
  return {
    attached: src.attachedCount,
    awaiting: src.awaitingCount,
    skip: q.skip,
    limit: q.limit,
    matched: rows.length,
    scanned: all.sessions.length,
    truncated: src.attachedCount + src.awaitingCount > all.sessions.length,
    sessions: rows.slice(q.skip, q.skip + q.limit),
  };
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
