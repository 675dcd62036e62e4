/**
 * The error-code catalogue shared by the server, the client and the wire.
 *
 * Every code has a stable number (what goes on the wire), a stable name (what
 * logs, JSON output and metrics show) and a retriable flag (whether a client
 * should try again). {@link isRetriableCode} is the one table that says which
 * codes are worth a retry; the client's classifier (`client/retry.ts`) adds
 * connection failures on top of it. Pure: nothing here knows sockets.
 *
 * @module
 */

/** Stable error codes: the numbers are part of the wire protocol. */
export const ErrorCode = {
  /** A frame or message could not be parsed. */
  MALFORMED_FRAME: 1,
  /** The hello or resume named a protocol version this server does not speak. */
  UNSUPPORTED_VERSION: 2,
  /** The requested count is outside 1..65535. */
  INVALID_COUNT: 3,
  /** No session with this id exists (never did, or was discarded long ago). */
  UNKNOWN_SESSION: 4,
  /** The session existed but was not resumed within the session TTL. */
  SESSION_EXPIRED: 5,
  /** A new session was asked for an id that still has a live or resumable session. */
  SESSION_IN_USE: 6,
  /** The resume token does not match the session's. */
  BAD_TOKEN: 7,
  /** The server is at a connection or rate limit; retry later. */
  SERVER_BUSY: 8,
  /** The server is shutting down; the session stays resumable. */
  SHUTTING_DOWN: 9,
  /** The session store cannot be reached; retry later. */
  STORE_UNAVAILABLE: 10,
  /** The resume offset is beyond the session's count. */
  INVALID_OFFSET: 11,
  /** No complete hello arrived within the handshake timeout. */
  HANDSHAKE_TIMEOUT: 12,
  /** Another connection resumed this session; this one is closed (fenced). */
  TAKEN_OVER: 13,
  /** The client stopped reading for too long; the session stays resumable. */
  SLOW_CONSUMER: 14,
  /** The session was completed and acknowledged; there is nothing to resume. */
  SESSION_COMPLETED: 15,
  /** A well-formed message arrived where the protocol does not allow it. */
  UNEXPECTED_MESSAGE: 16,
  /**
   * The client sent nothing (no ACK) for the server's client timeout: it is
   * frozen, or its host is gone. The session stays resumable.
   */
  CLIENT_TIMEOUT: 17,
} as const;

/** A numeric error code from {@link ErrorCode}. */
export type ErrorCode = typeof ErrorCode[keyof typeof ErrorCode];

/** The stable lowercase name of an error code, e.g. `"session_expired"`. */
export type ErrorName = Lowercase<keyof typeof ErrorCode>;

const NAMES = new Map<number, ErrorName>(
  Object.entries(ErrorCode).map((
    [k, v],
  ) => [v, k.toLowerCase() as ErrorName]),
);

/** Codes after which a client should reconnect (with backoff) and resume. */
const RETRIABLE: ReadonlySet<number> = new Set<number>([
  ErrorCode.SERVER_BUSY,
  ErrorCode.SHUTTING_DOWN,
  ErrorCode.STORE_UNAVAILABLE,
  ErrorCode.HANDSHAKE_TIMEOUT,
  ErrorCode.SLOW_CONSUMER,
  ErrorCode.CLIENT_TIMEOUT,
]);

/**
 * Returns the stable name of a code, or `"unknown_<n>"` for a code this
 * version does not know (a newer server may send codes we do not know).
 */
export function errorName(code: number): string {
  return NAMES.get(code) ?? `unknown_${code}`;
}

/**
 * Whether a client should reconnect (with backoff) and resume after an ERROR
 * with `code`. Unknown codes are final.
 */
export function isRetriableCode(code: number): boolean {
  return RETRIABLE.has(code);
}

/**
 * An error with a stable protocol code. Thrown by the codec for bad bytes,
 * sent by the server as an ERROR frame, and raised by the client when the
 * server refuses it.
 *
 * @example
 * ```ts
 * throw new ProtocolError(ErrorCode.INVALID_COUNT, "Count must be 1..65535, got 0");
 * ```
 */
export class ProtocolError extends Error {
  /** The numeric wire code. */
  readonly code: number;

  /**
   * @param code the wire code, one of {@link ErrorCode}
   * @param message a sentence-case human message
   * @param options standard error options (`cause`)
   */
  constructor(code: number, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ProtocolError";
    this.code = code;
  }
}
