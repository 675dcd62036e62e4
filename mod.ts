/**
 * seqstream as a library: a TCP server and client for a stream of numbers
 * that survives dropped connections.
 *
 * - `startServer()` (`server/mod.ts`) serves sessions from any session store;
 * - `connect()` / `runClient()` (`client/mod.ts`) stream, verify and resume;
 * - `protocol/mod.ts` is the pure wire codec, sequence and checksums;
 * - `store/mod.ts` has the store interface, the memory and Deno KV stores
 *   and `openStore()`; the Redis store is its own export (`./store/redis`),
 *   so that nothing here loads the Redis client;
 * - `Clock`, `FakeClock`, `Logger`, `LineLogger` and the defaults are the
 *   pieces both sides take.
 *
 * The command lines (`server.ts`, `client.ts`, `proxy.ts`) are not part of it.
 *
 * @example
 * ```ts
 * import { runClient, startServer } from "@seqstream/seqstream";
 *
 * await using server = await startServer({ port: 0, intervalMs: 10 });
 * const r = await runClient({ port: server.addr.port, count: 100 });
 * console.log(r.result, r.sum, r.checksum);
 * ```
 *
 * @module
 */

export * from "./client/mod.ts";
export * from "./server/mod.ts";
export * from "./protocol/mod.ts";
export * from "./store/mod.ts";
export { type Clock, systemClock, type TimerId } from "./common/clock.ts";
export { FakeClock } from "./common/fake_clock.ts";
export {
  LineLogger,
  type LineLoggerOptions,
  type LogFormat,
  type LogLevel,
  silentLogger,
} from "./common/logger.ts";
export {
  ackIntervalFor,
  CLIENT_DEFAULTS,
  DURATION_RANGES,
  type MsRange,
  SERVER_DEFAULTS,
  stallFor,
  windowFor,
} from "./common/defaults.ts";
