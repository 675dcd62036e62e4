/**
 * The client's public shapes: options, events, the resumable state and the
 * result. Kept apart from the loop so that the state machine, the state file
 * and the progress report depend on types only.
 *
 * @module
 */

import type { Clock } from "../common/clock.ts";
import type { ClientErrorCode } from "./errors.ts";

/** What the client reports as it goes, told apart by `type`. */
export type ClientEvent =
  | { type: "connecting"; attempt: number }
  | { type: "streaming"; nextOffset: number; count: number; resumed: boolean }
  | { type: "disconnected"; error: string; retryInMs: number }
  | { type: "done"; result: ClientResult["result"] };

/** Everything needed to resume a session, constant size. Serialisable as JSON. */
export interface ClientState {
  id: string;
  count: number;
  /** Resume token as 32 hex digits. */
  token: string;
  nextOffset: number;
  sum: number;
  crc: number;
  /** Learned from the server (ms). */
  ttlMs: number;
  intervalMs: number;
  /**
   * Ms since the epoch of the last stream progress (WELCOME, NUMBER, FINAL):
   * the server's TTL cannot have started before it.
   */
  lastContact: number;
  /**
   * The server's checksums once its final message arrived, so a client
   * restarted between the final and the server's DONE can still decide PASS.
   */
  server?: { sum: number; crc: number };
}

/** Opens the byte stream to the server (plain TCP by default; TLS plugs in here). */
export type Dialer = (
  opts: { hostname: string; port: number; signal: AbortSignal },
) => Promise<Deno.Conn>;

/** Options for `connect` and `runClient`. */
export interface ClientOptions {
  /** Server host. Default `127.0.0.1`. */
  hostname?: string;
  /** Server port. */
  port: number;
  /** Numbers to ask for, 1..65535. Default: random in that range. */
  count?: number;
  /** Session id (a UUID). Default: a random v4 UUID. */
  id?: string;
  /** Resume an earlier session instead of starting one. */
  resumeFrom?: ClientState;
  /**
   * The 16-byte resume token of a new session. Default: random bytes from
   * `crypto.getRandomValues` (the simulator passes seeded ones).
   */
  token?: Uint8Array;
  /**
   * This run restarts a session an earlier run of the same client started
   * (the same `id` and `token`, after a crash), which may have left a
   * handshake on its way: the first `taken_over` or `session_in_use` is
   * then retried once, as after an attempt this run abandoned. Implied by
   * `resumeFrom`.
   */
  restart?: boolean;
  /** Cancels the run; the result is then an `ERROR` with code `aborted`. */
  signal?: AbortSignal;
  /** Reconnect delay per attempt. Default: exponential, full jitter, 100ms..5s. */
  backoff?: (attempt: number) => number;
  /** Reconnect when no byte arrives for this long (ms). Default max(1000, 3 intervals). */
  idleTimeoutMs?: number;
  /** Time allowed for connect plus welcome (ms). Default 5000. */
  handshakeTimeoutMs?: number;
  /** Give up when the server was never reached for this long (ms). Default 10000. */
  connectGiveUpMs?: number;
  /** Opens the byte stream; default `Deno.connect`. (TLS plugs in here.) */
  dial?: Dialer;
  /** Status changes. */
  onEvent?: (e: ClientEvent) => void;
  /** Every number as it is accepted (offset, value). */
  onNumber?: (offset: number, value: number) => void;
  /**
   * The resumable state after every welcome and at most every
   * `checkpointEvery` numbers. For the final state (after FINAL, or a resume
   * at count) `durable` is true and the client awaits the returned Promise
   * before it sends the ACK that completes the session: save it durably
   * there (`StateFile.saveDurable`). A rejection then ends the run in ERROR
   * `checkpoint_failed`, the session still resumable. Other checkpoints are
   * not awaited.
   */
  onCheckpoint?: (s: ClientState, info: { durable: boolean }) => unknown;
  /** Numbers between checkpoints. Default 100. */
  checkpointEvery?: number;
  /**
   * Also checkpoint at the first number this long after the last checkpoint
   * (ms), so a saved `lastContact` is never older than this while numbers
   * flow (slow intervals). Default: off.
   */
  checkpointMs?: number;
  /** Time and timers (idle timer, keep-alive, backoff). Default: the system clock. */
  clock?: Clock;
}

/** The outcome of a run. */
export interface ClientResult {
  result: "PASS" | "FAIL" | "ERROR";
  id: string;
  count: number;
  /** Sum of the numbers received. */
  sum: number;
  /** CRC-32 of the numbers received, 8 hex digits. */
  checksum: string;
  /** The server's CRC-32 of the whole sequence, when its final message arrived. */
  serverChecksum: string | null;
  /** The server's sum, when its final message arrived. */
  serverSum: number | null;
  /** Reconnections after the first connection. */
  reconnects: number;
  /** Why the run ended in `ERROR`. */
  error?: { code: ClientErrorCode; message: string };
}

/** A running client. */
export interface ClientHandle extends AsyncDisposable {
  /** The session id. */
  readonly id: string;
  /** Settles with the outcome; never rejects. */
  readonly result: Promise<ClientResult>;
  /** Aborts the run. */
  close(): Promise<void>;
}
