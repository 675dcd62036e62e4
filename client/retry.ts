/**
 * The client's one retry policy: how a connection's end is classified as
 * `retry` (reconnect with backoff and resume), `final` (end the run in ERROR)
 * or `complete` (the session is done; decide PASS or FAIL). The run loop and
 * the CLI both read it from here; the wire codes' own table is
 * `isRetriableCode` in `protocol/errors.ts`, and the runtime's connection
 * errors (`Deno.errors`) are judged here, on top of it.
 *
 * @module
 */

import { ErrorCode, isRetriableCode } from "../protocol/errors.ts";
import { CLIENT_CODES, ClientError, type ClientErrorCode } from "./errors.ts";

/** What to do after a connection ended. */
export type Verdict = "retry" | "final" | "complete";

/** What the session knows that changes the verdict. */
export interface RetryContext {
  /** The client holds FINAL and every number (and so the server's checksums). */
  complete: boolean;
  /** The last connection gave up waiting for WELCOME: the server may finish that attempt late. */
  abandonedHandshake: boolean;
}

const NONE: RetryContext = { complete: false, abandonedHandshake: false };

/** The client's own codes that are worth another connection. */
const RETRIABLE_OWN: ReadonlySet<ClientErrorCode> = new Set<ClientErrorCode>([
  CLIENT_CODES.CONNECTION_LOST,
  CLIENT_CODES.GOING_AWAY,
]);

/** Codes after which the session cannot be resumed: a saved state is of no further use. */
const SESSION_GONE: ReadonlySet<string> = new Set<string>([
  "session_expired",
  "unknown_session",
  "bad_token",
  "session_completed",
  "invalid_offset",
]);

/**
 * Runtime errors of a connection that a new connection may not meet:
 * refused, reset, aborted, broken pipe, EOF, timeouts, an unreachable
 * network, or a socket already closed under a read.
 */
export function isConnectionError(err: unknown): boolean {
  return err instanceof Deno.errors.ConnectionRefused ||
    err instanceof Deno.errors.ConnectionReset ||
    err instanceof Deno.errors.ConnectionAborted ||
    err instanceof Deno.errors.NotConnected ||
    err instanceof Deno.errors.BrokenPipe ||
    err instanceof Deno.errors.UnexpectedEof ||
    err instanceof Deno.errors.TimedOut ||
    err instanceof Deno.errors.Interrupted ||
    err instanceof Deno.errors.WriteZero ||
    err instanceof Deno.errors.AddrNotAvailable ||
    err instanceof Deno.errors.NetworkUnreachable ||
    err instanceof Deno.errors.BadResource ||
    (err instanceof DOMException &&
      (err.name === "TimeoutError" || err.name === "AbortError"));
}

/**
 * Classifies how a connection ended.
 *
 * - `session_completed` or `unknown_session` while the client already holds
 *   FINAL and every number: our ACK(count) landed and its DONE was lost, so
 *   `complete`.
 * - `taken_over` right after an abandoned handshake: most likely our own late
 *   attempt took the session, so `retry` (the caller allows this once per
 *   abandoned attempt).
 * - a wire code that {@link isRetriableCode} allows (`server_busy`,
 *   `client_timeout`, `slow_consumer`, …), a lost connection, GOAWAY, or a
 *   runtime connection error ({@link isConnectionError}): `retry`.
 * - anything else: `final`.
 *
 * The TTL and connect give-up bounds are applied by the caller, not here.
 *
 * @example
 * ```ts
 * classify(new ClientError("server_busy", "busy", { wireCode: 8 })); // "retry"
 * ```
 */
export function classify(err: unknown, ctx: RetryContext = NONE): Verdict {
  if (err instanceof ClientError) {
    const wire = err.wireCode;
    if (wire === undefined) {
      return RETRIABLE_OWN.has(err.code) ? "retry" : "final";
    }
    if (
      ctx.complete &&
      (wire === ErrorCode.SESSION_COMPLETED ||
        wire === ErrorCode.UNKNOWN_SESSION)
    ) return "complete";
    // Taken over after an abandoned handshake (our own late attempt won), or
    // once we hold FINAL and every number (the server may have recorded our
    // completion and answered late): resume once to learn the outcome.
    if (
      wire === ErrorCode.TAKEN_OVER && (ctx.abandonedHandshake || ctx.complete)
    ) {
      return "retry";
    }
    // Held by our own abandoned attempt, which its server has not let go of
    // yet (a slow store): resume again rather than give up (simulator seed
    // 17 with 300 clients).
    if (wire === ErrorCode.SESSION_IN_USE && ctx.abandonedHandshake) {
      return "retry";
    }
    return isRetriableCode(wire) ? "retry" : "final";
  }
  return isConnectionError(err) ? "retry" : "final";
}

/**
 * Whether a run that ended in ERROR with `code` left nothing to resume (the
 * CLI then deletes its `--state` file).
 */
export function isSessionGone(code: string): boolean {
  return SESSION_GONE.has(code);
}
