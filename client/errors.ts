/**
 * The client's error catalogue: one {@link ClientError} class whose `code` is
 * either one of the client's own codes ({@link CLIENT_CODES}) or the stable
 * name of a server's ERROR code (`errorName` in `protocol/errors.ts`), so a
 * run's result, the CLI's JSON and a library caller all see the same strings.
 * Whether a code is worth a retry is decided in one place: `client/retry.ts`.
 *
 * @module
 */

import { type ErrorName, errorName } from "../protocol/errors.ts";

/** The client's own codes, beside the wire codes. */
export const CLIENT_CODES = {
  /** A mistake in the options or flags (bad id, count, duration). */
  USAGE: "usage",
  /** The server could not be reached before the connect give-up time. */
  UNREACHABLE: "unreachable",
  /** The client gave up: no stream progress for longer than the session TTL. */
  SESSION_EXPIRED: "session_expired",
  /** The server sent something the protocol does not allow. */
  PROTOCOL_VIOLATION: "protocol_violation",
  /** TLS handshake or certificate failure. */
  TLS_ERROR: "tls_error",
  /** A plain client spoke to a TLS server. */
  TLS_MISMATCH: "tls_mismatch",
  /** The run was cancelled (signal, `close()`). */
  ABORTED: "aborted",
  /** The connection ended without an ERROR frame (EOF, reset, silence). */
  CONNECTION_LOST: "connection_lost",
  /** The server sent GOAWAY: resume after its `retryAfterMs`. */
  GOING_AWAY: "going_away",
  /** A durable checkpoint (the final state before ACK(count)) failed. */
  CHECKPOINT_FAILED: "checkpoint_failed",
  /** A `--state` file is not valid. */
  STATE_CORRUPT: "state_corrupt",
  /** A `--state` file cannot be read, or its directory does not exist. */
  STATE_UNREADABLE: "state_unreadable",
} as const;

/** One of the client's own codes. */
export type ClientOwnCode = typeof CLIENT_CODES[keyof typeof CLIENT_CODES];

/**
 * Every code a {@link ClientError} (and so `ClientResult.error.code`) can
 * carry: the client's own, a known server code, or `unknown_<n>` for a wire
 * code this version does not know.
 */
export type ClientErrorCode = ClientOwnCode | ErrorName | `unknown_${number}`;

/** Options for {@link ClientError}. */
export interface ClientErrorOptions extends ErrorOptions {
  /** The numeric wire code, when the server sent this as an ERROR frame. */
  wireCode?: number;
  /** For `going_away`: the server's minimum wait before reconnecting (ms). */
  retryAfterMs?: number;
}

/**
 * Every failure the client reports: a stable machine `code` and a
 * sentence-case message.
 *
 * @example
 * ```ts
 * const r = await runClient({ port });
 * if (r.error?.code === "session_expired") console.error("too late to resume");
 * ```
 */
export class ClientError extends Error {
  /** The stable code. */
  readonly code: ClientErrorCode;
  /** The wire code, when the server refused with an ERROR frame. */
  readonly wireCode: number | undefined;
  /** For `going_away`: wait at least this long before reconnecting (ms). */
  readonly retryAfterMs: number | undefined;

  /**
   * @param code a stable code
   * @param message a human sentence
   * @param options `cause`, and `wireCode`/`retryAfterMs` where they apply
   */
  constructor(
    code: ClientErrorCode,
    message: string,
    options?: ClientErrorOptions,
  ) {
    super(message, options);
    this.name = "ClientError";
    this.code = code;
    this.wireCode = options?.wireCode;
    this.retryAfterMs = options?.retryAfterMs;
  }

  /** The error for a server's ERROR frame `{ code, message }`. */
  static fromWire(code: number, message: string): ClientError {
    return new ClientError(errorName(code) as ClientErrorCode, message, {
      wireCode: code,
    });
  }
}
