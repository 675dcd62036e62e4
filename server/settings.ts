/**
 * The validated settings of a server, from its options: shared by
 * {@link createServerCore} and `startServer`.
 *
 * @module
 */

import {
  ackIntervalFor,
  checkMs,
  DURATION_RANGES,
  SERVER_DEFAULTS,
  stallFor,
  windowFor,
} from "../common/defaults.ts";
import { MAX_COUNT } from "../protocol/messages.ts";
import type { ConnectionSettings } from "./connection.ts";

/** The options {@link settingsOf} reads; each absent one takes its default. */
export interface SettingsOptions {
  intervalMs?: number;
  ttlMs?: number;
  handshakeTimeoutMs?: number;
  clientTimeoutMs?: number;
  window?: number;
  stallMs?: number;
  leaseMs?: number;
  maxConnections?: number;
}

/** The validated settings of a server. */
export interface ServerSettings extends ConnectionSettings {
  readonly leaseMs: number;
  readonly maxConnections: number;
}

/**
 * Checks every option and fills in the defaults (`SERVER_DEFAULTS`).
 *
 * @example
 * ```ts
 * settingsOf({ intervalMs: 10 }).window; // windowFor(10, 10_000)
 * ```
 * @throws {RangeError} for a duration outside `DURATION_RANGES`, or a window
 * outside 1..65535
 */
export function settingsOf(opts: SettingsOptions): ServerSettings {
  const D = SERVER_DEFAULTS, R = DURATION_RANGES;
  const intervalMs = checkMs(
    "intervalMs",
    opts.intervalMs ?? D.intervalMs,
    R.interval,
  );
  const clientTimeoutMs = checkMs(
    "clientTimeoutMs",
    opts.clientTimeoutMs ?? D.clientTimeoutMs,
    R.clientTimeout,
  );
  const window = opts.window ?? windowFor(intervalMs, clientTimeoutMs);
  if (!Number.isInteger(window) || window < 1 || window > MAX_COUNT) {
    throw new RangeError(
      `window must be a whole number from 1 to ${MAX_COUNT}, got ${window}`,
    );
  }
  return {
    intervalMs,
    clientTimeoutMs,
    window,
    ackIntervalMs: ackIntervalFor(clientTimeoutMs),
    stallMs: checkMs(
      "stallMs",
      opts.stallMs ?? stallFor(clientTimeoutMs),
      R.clientTimeout,
    ),
    ttlMs: checkMs("ttlMs", opts.ttlMs ?? D.ttlMs, R.sessionTtl),
    handshakeTimeoutMs: checkMs(
      "handshakeTimeoutMs",
      opts.handshakeTimeoutMs ?? D.handshakeTimeoutMs,
      R.handshakeTimeout,
    ),
    leaseMs: checkMs("leaseMs", opts.leaseMs ?? D.leaseMs, R.lease),
    maxConnections: opts.maxConnections ?? D.maxConnections,
  };
}
