/**
 * Every default and every range, in one place. The library, the command
 * lines and the docs read them from here; README "Server" and "Client" list
 * them once.
 *
 * @module
 */

/** Server defaults. */
export const SERVER_DEFAULTS = {
  /** TCP port of the command line (the library picks a free one). */
  port: 8080,
  /** Time between numbers (ms). */
  intervalMs: 1000,
  /** How long a detached session stays resumable (ms). */
  ttlMs: 30_000,
  /** A server's liveness lease in the store (ms); renewed every third of it. */
  leaseMs: 3000,
  /** How long tombstones of completed and expired sessions are kept (ms). */
  tombstoneMs: 300_000,
  /** A complete HELLO or RESUME must arrive within this after accept (ms). */
  handshakeTimeoutMs: 10_000,
  /**
   * A client that sends nothing for this long is closed (ms); its session
   * detaches and the TTL starts. Clients report every half of it.
   */
  clientTimeoutMs: 10_000,
  /** Connections held at most. */
  maxConnections: 16_000,
  /** Largest flow-control window (numbers). */
  maxWindow: 4096,
  /** Smallest flow-control window (numbers). */
  minWindow: 16,
} as const;

/** Client defaults. */
export const CLIENT_DEFAULTS = {
  /** Connect plus WELCOME must take at most this (ms). */
  handshakeTimeoutMs: 5000,
  /** Give up when the server was never reached for this long (ms). */
  connectGiveUpMs: 10_000,
  /** Numbers between checkpoints of the resumable state. */
  checkpointEvery: 100,
  /** Reconnect backoff: ceiling of the first step, and the cap (ms). */
  backoffBaseMs: 100,
  backoffCapMs: 5000,
  /** The server's silence after WELCOME that counts as a lost connection: max(this, 3 intervals) (ms). */
  minIdleTimeoutMs: 1000,
} as const;

/**
 * How often the client must send an ACK (the WELCOME's `ackIntervalMs`): half
 * the server's client timeout, so one late report is not fatal.
 */
export function ackIntervalFor(clientTimeoutMs: number): number {
  return Math.max(1, Math.floor(clientTimeoutMs / 2));
}

/**
 * The flow-control window (numbers in flight beyond the last ACK). Unpaced
 * streams get the largest; paced ones about two client timeouts' worth of
 * numbers, so that a healthy client, which acknowledges every quarter window
 * and every `ackIntervalMs`, never makes the server wait, while a client that
 * stops reading is paused after a bounded number of unread frames.
 */
export function windowFor(intervalMs: number, clientTimeoutMs: number): number {
  const { minWindow, maxWindow } = SERVER_DEFAULTS;
  if (intervalMs <= 0) return maxWindow;
  return Math.min(
    maxWindow,
    Math.max(minWindow, Math.ceil((2 * clientTimeoutMs) / intervalMs)),
  );
}

/**
 * How long a stream may lag (numbers sent and not acknowledged) with no ACK
 * progress before the server drops it as a slow consumer: max(10 s, the
 * client timeout), always longer than a healthy client's report period.
 */
export function stallFor(clientTimeoutMs: number): number {
  return Math.max(10_000, clientTimeoutMs);
}

/** An inclusive range of milliseconds. */
export interface MsRange {
  readonly min: number;
  readonly max: number;
}

/**
 * The range of every duration setting, enforced by the command lines (exit
 * 64) and by the library (`RangeError`). Every maximum fits a runtime timer
 * (< 2^31 ms) and a u32 wire field.
 */
export const DURATION_RANGES = {
  interval: { min: 0, max: 3_600_000 },
  sessionTtl: { min: 100, max: 86_400_000 },
  handshakeTimeout: { min: 100, max: 600_000 },
  clientTimeout: { min: 200, max: 3_600_000 },
  idleTimeout: { min: 100, max: 86_400_000 },
  connectTimeout: { min: 100, max: 86_400_000 },
  lease: { min: 60, max: 600_000 },
} as const satisfies Record<string, MsRange>;

/**
 * Checks that `ms` is a whole number of milliseconds inside `range`.
 *
 * @throws {RangeError} naming `what`, the value and the range
 */
export function checkMs(what: string, ms: number, range: MsRange): number {
  if (!Number.isInteger(ms) || ms < range.min || ms > range.max) {
    throw new RangeError(
      `${what} must be from ${formatMs(range.min)} to ${
        formatMs(range.max)
      }, got ${Number.isFinite(ms) ? formatMs(ms) : String(ms)}`,
    );
  }
  return ms;
}

/** Formats milliseconds the way users type durations: `0`, `250ms`, `1.5s`, `2m`, `24h`. */
export function formatMs(ms: number): string {
  if (ms === 0) return "0";
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  if (ms > 1000 && ms % 100 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
