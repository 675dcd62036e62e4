/**
 * The seqstream client as a library: run a session against a server, verify
 * every number, and survive dropped connections by resuming on its own.
 *
 * @example
 * ```ts
 * import { runClient } from "./client/mod.ts";
 * const r = await runClient({ port: 8080, count: 10 });
 * console.log(r.result, r.checksum);
 * ```
 *
 * @module
 */

/** Start a run ({@link connect}) or run one to the end ({@link runClient}). */
export { connect, runClient } from "./client.ts";
/** Options, events, state and result shapes of a run. */
export type {
  ClientEvent,
  ClientHandle,
  ClientOptions,
  ClientResult,
  ClientState,
  Dialer,
} from "./types.ts";
/** A `dial` for TLS, with extra trusted CAs. */
export { tlsDialer, type TlsDialOptions } from "./tls.ts";
/** The default reconnect delays: exponential with full jitter. */
export { type BackoffOptions, exponentialBackoff } from "./backoff.ts";
/** The one error class and its code catalogue. */
export {
  CLIENT_CODES,
  ClientError,
  type ClientErrorCode,
  type ClientErrorOptions,
  type ClientOwnCode,
} from "./errors.ts";
/** The one retry policy: retry, final or complete. */
export {
  classify,
  isConnectionError,
  isSessionGone,
  type RetryContext,
  type Verdict,
} from "./retry.ts";
/** Keep a run's resumable state in a file (`--state`). */
export {
  loadState,
  STATE_FORMAT,
  StateFile,
  StateFileError,
  type StateFileProblem,
} from "./state_file.ts";
