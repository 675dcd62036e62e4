/**
 * The seqstream server as a library: start a server, read its metrics.
 *
 * @example
 * ```ts
 * import { startServer } from "./server/mod.ts";
 *
 * await using server = await startServer({ port: 0, intervalMs: 10 });
 * console.log(`listening on ${server.addr.port}`);
 * ```
 *
 * @module
 */

/**
 * Starts a server on a session store; see {@link ServerOptions} for every
 * setting and its default. Returns a {@link ServerHandle}.
 */
export { startServer } from "./server.ts";
/** Options of {@link startServer}. */
export type { ServerOptions } from "./server.ts";
/** A running server: address, metrics, `close()`, `closed`, `await using`. */
export type { ServerHandle } from "./server.ts";
/** What `ServerHandle.metrics()` and `/metrics` report. */
export type { Counters, MetricsSnapshot } from "./metrics.ts";
/** Renders a {@link MetricsSnapshot} in the Prometheus text format. */
export { renderPrometheus } from "./metrics.ts";
/** The logger interface `ServerOptions.log` takes (pass any object with these methods). */
export type { LogFields, Logger } from "../common/logger.ts";
/** The session store interface `ServerOptions.store` takes (see `store/mod.ts` for the backends). */
export type {
  Fence,
  SessionRecord,
  SessionStatus,
  SessionStore,
} from "../store/types.ts";
