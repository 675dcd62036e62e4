/**
 * The client's session as a pure state machine with one entry,
 * {@link ClientSession.handle}: an event in (dial, open, a decoded server
 * message, a timer tick, a durable checkpoint done, the connection closed,
 * abort), the actions out, each with its data (dial within this limit, send
 * this message, this number was accepted, welcomed with this idle limit,
 * checkpoint this state, close with this error, retry after this delay, end
 * with this result). It holds no socket, reads no clock and arms no timer:
 * every event comes with the wall time, and {@link ClientSession.nextTickAt}
 * says when the loop should send the next tick. `client/driver.ts` is the
 * loop.
 *
 * The v2 delivery rules live here (PROTOCOL.md):
 * - ACK(nextOffset) every `ceil(window / 4)` numbers, and at least every
 *   `ackIntervalMs` even with no progress (keep-alive);
 * - ACK(count) only after FINAL and only once the final state has been
 *   checkpointed durably (the `durable` event);
 * - a NUMBER or FINAL at an offset other than `nextOffset`, or at or beyond
 *   `count`, is a protocol violation;
 * - the give-up clock counts from the last stream progress (WELCOME, NUMBER,
 *   FINAL, the end of a welcomed connection that the server or the network
 *   ended); ERROR frames and failed dials do not reset it, and a checkpoint
 *   saves it whenever it moves;
 * - GOAWAY's `retryAfterMs` is honoured (bounded by the TTL).
 *
 * @module
 */

import { Checksum, formatCrc } from "../protocol/checksum.ts";
import { ErrorCode } from "../protocol/errors.ts";
import {
  type ClientMessage,
  type Final,
  type NumberMsg,
  PROTOCOL_VERSION,
  type ServerMessage,
} from "../protocol/messages.ts";
import { bytesToHex, hexToBytes } from "../protocol/uuid.ts";
import { CLIENT_DEFAULTS } from "../common/defaults.ts";
import { CLIENT_CODES, ClientError } from "./errors.ts";
import { exponentialBackoff } from "./backoff.ts";
import { classify, type Verdict } from "./retry.ts";
import type { ClientResult, ClientState } from "./types.ts";
import { SERVER_DEFAULTS } from "../common/defaults.ts";

/**
 * What happened, for {@link ClientSession.handle}. One connection goes
 * `dial` → `open` → `message`… (with `tick`s and `durable` in between) →
 * `closed`; `abort` may come at any point.
 */
export type SessionEvent =
  /** A decoded message from the server. */
  | { readonly type: "message"; readonly message: ServerMessage }
  /** A timer at (or after) {@link ClientSession.nextTickAt}: maybe a keep-alive ACK. */
  | { readonly type: "tick" }
  /** A connection is about to be opened: answered by `dial`. */
  | { readonly type: "dial" }
  /** The connection is open: answered by the HELLO or RESUME to send. */
  | { readonly type: "open" }
  /**
   * The durable checkpoint asked for is saved: answered by ACK(count). With
   * `error`, the save failed: answered by `close` (`checkpoint_failed`).
   */
  | { readonly type: "durable"; readonly error?: unknown }
  /**
   * The connection ended (or its dial failed) with `error`. `silent`: this
   * client closed it because the server fell silent (before WELCOME: it
   * abandoned the handshake). Answered by `retry` or `end`, maybe after a
   * `checkpoint` that saves the moved `lastContact`.
   */
  | {
    readonly type: "closed";
    readonly error: unknown;
    readonly silent: boolean;
  }
  /** The run is cancelled: answered by `end` with ERROR `aborted`. */
  | { readonly type: "abort" };

/**
 * What the loop must do, in order. The `number` action is one object per
 * session, rewritten for every number: read it before the next
 * {@link ClientSession.handle}.
 */
export type SessionAction =
  /** Open a connection; dial plus WELCOME must take at most `limitMs`. `attempt`: reconnects since the last WELCOME. */
  | {
    readonly type: "dial";
    readonly attempt: number;
    readonly limitMs: number;
  }
  /** Write this message to the connection. */
  | { readonly type: "send"; readonly message: ClientMessage }
  /** The NUMBER or FINAL just received was accepted. */
  | { readonly type: "number"; readonly offset: number; readonly value: number }
  /**
   * WELCOME accepted: the stream (re)starts at `nextOffset`. From now on
   * silence beyond `idleLimitMs` is a lost connection, and ticks are due
   * at {@link ClientSession.nextTickAt}.
   */
  | {
    readonly type: "welcome";
    readonly resumed: boolean;
    readonly nextOffset: number;
    readonly count: number;
    readonly idleLimitMs: number;
  }
  /**
   * Save `state`. When `durable`, await the save, then send the event
   * `durable` (which releases ACK(count)); otherwise do not wait for it.
   */
  | {
    readonly type: "checkpoint";
    readonly state: ClientState;
    readonly durable: boolean;
  }
  /**
   * Close this connection and send the event `closed` with `error`: the
   * server ended it (ERROR, GOAWAY) or broke the protocol.
   */
  | { readonly type: "close"; readonly error: ClientError }
  /** Wait `delayMs`, then dial again. `error` ended the last connection. */
  | {
    readonly type: "retry";
    readonly error: unknown;
    readonly delayMs: number;
  }
  /** The run is over with `result` (after DONE: close the connection). */
  | { readonly type: "end"; readonly result: ClientResult };

/** Options for {@link ClientSession}. */
export interface SessionOptions {
  /** Session id (a UUID; checked by the caller). */
  id: string;
  /** Numbers asked for (1..65535; checked by the caller). */
  count: number;
  /** The 16-byte resume token chosen for a new session. Ignored with `resumeFrom`. */
  token?: Uint8Array;
  /**
   * An earlier run of this session may have left a handshake on its way
   * (it crashed); implied by `resumeFrom`. See `ClientOptions.restart`.
   */
  restart?: boolean | undefined;
  /** Continue a saved session. */
  resumeFrom?: ClientState | undefined;
  /** The wall clock when the run starts (ms since the epoch): the connect give-up counts from here. */
  wallMs: number;
  /** Numbers between checkpoints; `Infinity`: only the welcome and final ones. Default 100. */
  checkpointEvery?: number | undefined;
  /** Also checkpoint at the first number this long after the last checkpoint (ms). Default: off. */
  checkpointMs?: number | undefined;
  /** Give up when the server was never reached for this long (ms). Default 10000. */
  connectGiveUpMs?: number | undefined;
  /** Time allowed for dial plus WELCOME (ms); never past the TTL when resuming. Default 5000. */
  handshakeTimeoutMs?: number | undefined;
  /** Silence after WELCOME that counts as a lost connection (ms). Default max(1 s, 3 intervals). */
  idleTimeoutMs?: number | undefined;
  /** Reconnect delay per attempt (ms), bounded by the give-up budget. Default: exponential, full jitter. */
  backoff?: ((attempt: number) => number) | undefined;
}

/** What to do after a connection ended. */
type Outcome =
  | { verdict: "retry"; error: unknown; budgetMs: number; minDelayMs: number }
  | { verdict: "final"; error: ClientError }
  | { verdict: "complete" };

const EMPTY: readonly SessionAction[] = Object.freeze([]);

function human(ms: number): string {
  return ms < 10_000 ? `${Math.round(ms)}ms` : `${Math.round(ms / 1000)}s`;
}

function messageOf(err: unknown): string {
  if (err instanceof Deno.errors.ConnectionRefused) return "connection refused";
  return err instanceof Error ? err.message : String(err);
}

/**
 * One client session across all its connections.
 *
 * @example
 * ```ts
 * const s = new ClientSession({ id, count: 10, wallMs: Date.now() });
 * const [dial] = s.handle({ type: "dial" }, Date.now()); // { type: "dial", limitMs, … }
 * for (const a of s.handle({ type: "open" }, Date.now())) perform(a); // send HELLO
 * for (const a of s.handle({ type: "message", message }, Date.now())) perform(a);
 * ```
 */
export class ClientSession {
  /** Session id. */
  readonly id: string;
  /** Numbers in the session. */
  readonly count: number;
  readonly #checksum: Checksum;
  readonly #every: number;
  readonly #everyMs: number;
  readonly #connectGiveUpMs: number;
  readonly #handshakeLimitMs: number;
  readonly #idleTimeoutMs: number | undefined;
  readonly #backoff: (attempt: number) => number;
  readonly #startedAt: number;
  /** The one `number` action, rewritten per number (no allocation per number). */
  readonly #numberAction = { type: "number" as const, offset: 0, value: 0 };
  readonly #numberOnly: readonly SessionAction[] = [this.#numberAction];
  #token: Uint8Array;
  #next: number;
  #intervalMs: number;
  #ttlMs: number;
  #window = 0;
  #ackEvery = 1;
  #ackIntervalMs = Infinity;
  #serverSum: number | null;
  #serverCrc: number | null;
  #lastProgress: number;
  #checkpointedAt = 0;
  #welcomedOnce: boolean;
  #welcomed = false;
  #lastAckSent = 0;
  #lastAckAt = 0;
  #finalDurable = false;
  #reconnects = 0;
  /** Reconnect attempts since the last WELCOME. */
  #attempt = 0;
  #abandonedHandshake = false;
  /** A HELLO or RESUME was sent on this connection and no WELCOME has come yet. */
  #handshaking = false;

  /** @param opts the session, its limits and its checkpoint policy */
  constructor(opts: SessionOptions) {
    const from = opts.resumeFrom;
    this.id = opts.id;
    this.count = opts.count;
    this.#checksum = new Checksum(from ?? undefined);
    this.#token = from
      ? hexToBytes(from.token)
      : opts.token ?? crypto.getRandomValues(new Uint8Array(16));
    this.#welcomedOnce = from !== undefined;
    // A crashed earlier run's HELLO or RESUME may still reach a server and
    // take the session from this run's connection (simulator seed
    // 591850075): resume once to take it back, as after our own abandoned
    // attempt.
    this.#abandonedHandshake = from !== undefined || opts.restart === true;
    this.#next = from?.nextOffset ?? 0;
    this.#intervalMs = from?.intervalMs ?? SERVER_DEFAULTS.intervalMs;
    this.#ttlMs = from?.ttlMs ?? SERVER_DEFAULTS.ttlMs;
    this.#lastProgress = from?.lastContact ?? opts.wallMs;
    this.#serverSum = from?.server?.sum ?? null;
    this.#serverCrc = from?.server?.crc ?? null;
    this.#every = opts.checkpointEvery ?? CLIENT_DEFAULTS.checkpointEvery;
    this.#everyMs = opts.checkpointMs ?? Infinity;
    this.#connectGiveUpMs = opts.connectGiveUpMs ??
      CLIENT_DEFAULTS.connectGiveUpMs;
    this.#handshakeLimitMs = opts.handshakeTimeoutMs ??
      CLIENT_DEFAULTS.handshakeTimeoutMs;
    this.#idleTimeoutMs = opts.idleTimeoutMs;
    this.#backoff = opts.backoff ?? exponentialBackoff();
    this.#startedAt = opts.wallMs;
  }

  /** The first offset the client lacks. */
  get nextOffset(): number {
    return this.#next;
  }
  /** Whether the current connection has been welcomed. */
  get welcomed(): boolean {
    return this.#welcomed;
  }
  /** Whether any connection was ever welcomed (or the run resumes a saved state). */
  get welcomedOnce(): boolean {
    return this.#welcomedOnce;
  }
  /** The server's interval (ms), from the last WELCOME. */
  get intervalMs(): number {
    return this.#intervalMs;
  }
  /** The session TTL (ms), from the last WELCOME. */
  get ttlMs(): number {
    return this.#ttlMs;
  }
  /** The flow-control window (numbers), from the last WELCOME; 0 before. */
  get window(): number {
    return this.#window;
  }
  /** Wall time of the last stream progress (WELCOME, NUMBER, FINAL, or the end of a welcomed connection), ms. */
  get lastProgress(): number {
    return this.#lastProgress;
  }
  /** The last ACK offset sent on this connection. */
  get lastAckSent(): number {
    return this.#lastAckSent;
  }
  /** Reconnections after the first connection. */
  get reconnects(): number {
    return this.#reconnects;
  }
  /** The client holds FINAL and every number. */
  get complete(): boolean {
    return this.#next === this.count && this.#serverCrc !== null;
  }
  /** When (wall ms) the loop should send the next `tick`, or `Infinity`. */
  get nextTickAt(): number {
    return this.#welcomed ? this.#lastAckAt + this.#ackIntervalMs : Infinity;
  }

  /**
   * The one entry: `event` happened at wall time `wallMs` (ms since the
   * epoch); returns what to do, in order. The list (and the `number`
   * action in it) is valid until the next call.
   */
  handle(event: SessionEvent, wallMs: number): readonly SessionAction[] {
    switch (event.type) {
      case "message":
        return this.#receive(event.message, wallMs);
      case "tick":
        return this.#tick(wallMs);
      case "dial":
        return [{
          type: "dial",
          attempt: this.#attempt,
          limitMs: this.#handshakeMs(wallMs),
        }];
      case "open":
        return this.#open();
      case "durable":
        return "error" in event
          ? this.#saveFailed(event.error)
          : this.#durable(wallMs);
      case "closed":
        return this.#closed(event.error, event.silent, wallMs);
      case "abort":
        return this.#closed(
          new ClientError(CLIENT_CODES.ABORTED, "Aborted"),
          false,
          wallMs,
          true,
        );
    }
  }

  /**
   * How long dial plus WELCOME may take (ms): the handshake limit, but never
   * past the point where the session has expired.
   */
  #handshakeMs(now: number): number {
    const limitMs = this.#handshakeLimitMs;
    if (!this.#welcomedOnce) return limitMs;
    return Math.max(
      50,
      Math.min(limitMs, this.#ttlMs - (now - this.#lastProgress)),
    );
  }

  /** A connection is up: the HELLO or RESUME to send. */
  #open(): readonly SessionAction[] {
    this.#welcomed = false;
    this.#handshaking = true;
    const message: ClientMessage = this.#welcomedOnce
      ? {
        type: "resume",
        version: PROTOCOL_VERSION,
        id: this.id,
        token: this.#token,
        nextOffset: this.#next,
      }
      : {
        type: "hello",
        version: PROTOCOL_VERSION,
        id: this.id,
        count: this.count,
        token: this.#token,
      };
    return [{ type: "send", message }];
  }

  /**
   * The connection ended at `now`; `silent`: this client closed it because
   * the server fell silent.
   *
   * A connection that was welcomed and then ended by the server or the
   * network (EOF, reset, an ERROR frame) had the session attached until now,
   * so the server's TTL starts no earlier than now: that counts as progress
   * for the give-up clock (otherwise, with an interval near the TTL, a drop
   * long after the last number would give up a session the server still
   * keeps). A silent server proves nothing: then the last frame counts.
   * When this moves `lastProgress`, a checkpoint saves it: a restart from
   * the saved state judges staleness by that same clock.
   */
  #closed(
    err: unknown,
    silent: boolean,
    now: number,
    aborted = false,
  ): readonly SessionAction[] {
    const before = this.#lastProgress;
    if (this.#welcomed && !silent) {
      this.#lastProgress = Math.max(this.#lastProgress, now);
    }
    // A HELLO or RESUME went out and no WELCOME came back, whether this
    // client gave up on it or the link was cut: the server may still act
    // on it later and take the session from the next connection.
    // (A refusal answered it: that attempt is over, not abandoned, unless
    // it was store_unavailable, whose write the store may still have
    // applied.)
    const wire = err instanceof ClientError ? err.wireCode : undefined;
    if (
      !this.#welcomed && this.#handshaking &&
      (silent || wire === undefined || wire === ErrorCode.STORE_UNAVAILABLE)
    ) this.#abandonedHandshake = true;
    this.#handshaking = false;
    this.#welcomed = false;
    const last = aborted
      ? this.#end(this.result(err as ClientError))
      : this.#outcome(err, now);
    if (this.#lastProgress === before) return [last];
    return [
      { type: "checkpoint", state: this.snapshot(), durable: false },
      last,
    ];
  }

  #end(result: ClientResult): SessionAction {
    return { type: "end", result };
  }

  #outcome(err: unknown, now: number): SessionAction {
    const o = this.#failed(err, now);
    if (o.verdict === "complete") return this.#end(this.result());
    if (o.verdict === "final") return this.#end(this.result(o.error));
    const delayMs = Math.max(
      o.minDelayMs,
      Math.min(this.#backoff(this.#attempt++), o.budgetMs),
    );
    return { type: "retry", error: o.error, delayMs };
  }

  /** A timer tick: the keep-alive ACK when `ackIntervalMs` passed since the last one. */
  #tick(now: number): readonly SessionAction[] {
    if (!this.#welcomed || now - this.#lastAckAt < this.#ackIntervalMs) {
      return EMPTY;
    }
    // Before the final state is durable, never ACK(count): repeat the last
    // ACK (the server's acknowledged offset never goes back).
    const n = this.#next < this.count || this.#finalDurable
      ? this.#next
      : this.#lastAckSent;
    return [this.#ack(n, now)];
  }

  /**
   * The durable checkpoint asked for (after FINAL, or a WELCOME at count) is
   * done: the ACK(count) that completes the session.
   */
  #durable(now: number): readonly SessionAction[] {
    if (this.#next !== this.count) return EMPTY;
    // Saved, even if the link closed while it was being saved: a resume at
    // count then ACKs at once instead of saving again (a save slower than
    // the server's patience would otherwise repeat forever).
    this.#finalDurable = true;
    return this.#welcomed ? [this.#ack(this.count, now)] : EMPTY;
  }

  /** The durable save failed: without it, no ACK(count); the session stays resumable. */
  #saveFailed(err: unknown): readonly SessionAction[] {
    return [{
      type: "close",
      error: new ClientError(
        CLIENT_CODES.CHECKPOINT_FAILED,
        `Could not save the final state, so the session is not acknowledged (${
          err instanceof Error ? err.message : String(err)
        })`,
        { cause: err },
      ),
    }];
  }

  /** A decoded message from the server. */
  #receive(msg: ServerMessage, now: number): readonly SessionAction[] {
    switch (msg.type) {
      case "number":
      case "final":
        return this.#number(msg, now);
      case "welcome": {
        if (
          this.#welcomed || msg.count !== this.count ||
          msg.nextOffset !== this.#next
        ) {
          return this.#violation(
            `Server welcomed count ${msg.count} at offset ${msg.nextOffset}; expected ${this.count} at ${this.#next}`,
          );
        }
        const resumed = this.#welcomedOnce;
        if (resumed) this.#reconnects++;
        this.#attempt = 0;
        this.#welcomed = true;
        this.#handshaking = false;
        this.#welcomedOnce = true;
        this.#token = msg.token;
        this.#intervalMs = msg.intervalMs;
        this.#ttlMs = msg.ttlMs;
        this.#window = msg.window;
        this.#ackEvery = Math.max(1, Math.ceil(msg.window / 4));
        this.#ackIntervalMs = Math.max(1, msg.ackIntervalMs);
        this.#lastAckSent = msg.nextOffset;
        this.#lastAckAt = now;
        this.#lastProgress = now;
        this.#checkpointedAt = now;
        const welcome: SessionAction = {
          type: "welcome",
          resumed,
          nextOffset: this.#next,
          count: this.count,
          idleLimitMs: this.#idleTimeoutMs ??
            Math.max(CLIENT_DEFAULTS.minIdleTimeoutMs, 3 * this.#intervalMs),
        };
        if (this.#next === this.count && this.#finalDurable) {
          // Resumed at count with the final state already saved durably
          // (our ACK(count) or its DONE was lost): ACK again at once.
          return [
            welcome,
            this.#checkpoint(false),
            this.#ack(this.count, now),
          ];
        }
        // Resumed at count (our ACK(count) or its DONE was lost): the state
        // must be durable before the ACK(count) that `durable` releases.
        return [welcome, this.#checkpoint(this.#next === this.count)];
      }
      case "done":
        if (this.#next !== this.count) {
          return this.#violation("Server sent done before the final number");
        }
        return [this.#end(this.result())];
      case "goaway":
        return [{
          type: "close",
          error: new ClientError(
            CLIENT_CODES.GOING_AWAY,
            `Server is going away: ${msg.message}`,
            { retryAfterMs: msg.retryAfterMs },
          ),
        }];
      case "error":
        return [{
          type: "close",
          error: ClientError.fromWire(msg.code, msg.message),
        }];
    }
  }

  #number(msg: NumberMsg | Final, now: number): readonly SessionAction[] {
    const isFinal = msg.type === "final";
    if (
      !this.#welcomed || msg.offset !== this.#next ||
      msg.offset >= this.count || isFinal !== (msg.offset === this.count - 1)
    ) {
      return this.#violation(
        !this.#welcomed
          ? `Server sent ${msg.type} for offset ${msg.offset} before welcome`
          : msg.offset >= this.count
          ? `Server sent ${msg.type} for offset ${msg.offset}, beyond the session's count ${this.count}`
          : `Server sent ${msg.type} for offset ${msg.offset}; expected ${
            this.#next === this.count - 1 ? "final" : "number"
          } for offset ${this.#next}`,
      );
    }
    this.#checksum.update(msg.value);
    this.#next++;
    this.#lastProgress = now;
    const number = this.#numberAction;
    number.offset = msg.offset;
    number.value = msg.value;
    if (msg.type === "final") {
      this.#serverSum = msg.sum;
      this.#serverCrc = msg.crc32;
      this.#checkpointedAt = now;
      return [number, this.#checkpoint(true)];
    }
    const checkpoint = this.#next % this.#every === 0 ||
      now - this.#checkpointedAt >= this.#everyMs;
    const ack = this.#next - this.#lastAckSent >= this.#ackEvery;
    if (!checkpoint && !ack) return this.#numberOnly;
    const out: SessionAction[] = [number];
    if (checkpoint) {
      this.#checkpointedAt = now;
      out.push(this.#checkpoint(false));
    }
    if (ack) out.push(this.#ack(this.#next, now));
    return out;
  }

  #checkpoint(durable: boolean): SessionAction {
    return { type: "checkpoint", state: this.snapshot(), durable };
  }

  #ack(nextOffset: number, now: number): SessionAction {
    this.#lastAckSent = nextOffset;
    this.#lastAckAt = now;
    return { type: "send", message: { type: "ack", nextOffset } };
  }

  #violation(message: string): readonly SessionAction[] {
    return [{
      type: "close",
      error: new ClientError(CLIENT_CODES.PROTOCOL_VIOLATION, message),
    }];
  }

  /**
   * The connection ended with `err`: retry (within `budgetMs`, and not
   * before `minDelayMs`), end the run, or complete it. Applies the give-up
   * bounds: the connect give-up before the first WELCOME, the TTL from the
   * last stream progress after it.
   */
  #failed(err: unknown, now: number): Outcome {
    const verdict: Verdict = classify(err, {
      complete: this.complete,
      abandonedHandshake: this.#abandonedHandshake,
    });
    if (verdict === "complete") return { verdict };
    if (verdict === "final") {
      return {
        verdict,
        error: err instanceof ClientError ? err : new ClientError(
          CLIENT_CODES.CONNECTION_LOST,
          messageOf(err),
          { cause: err },
        ),
      };
    }
    if (
      err instanceof ClientError &&
      (err.wireCode === ErrorCode.TAKEN_OVER ||
        err.wireCode === ErrorCode.SESSION_IN_USE)
    ) this.#abandonedHandshake = false; // once per abandoned attempt
    if (!this.#welcomedOnce) {
      if (now - this.#startedAt >= this.#connectGiveUpMs) {
        return {
          verdict: "final",
          error: new ClientError(CLIENT_CODES.UNREACHABLE, messageOf(err), {
            cause: err,
          }),
        };
      }
    } else if (now - this.#lastProgress >= this.#ttlMs) {
      return {
        verdict: "final",
        error: new ClientError(
          CLIENT_CODES.SESSION_EXPIRED,
          `No stream progress for ${
            human(now - this.#lastProgress)
          }, longer than the session TTL of ${
            human(this.#ttlMs)
          }; the session has expired (last error: ${messageOf(err)})`,
          { cause: err },
        ),
      };
    }
    const budgetMs = this.#welcomedOnce
      ? Math.max(0, this.#ttlMs - (now - this.#lastProgress))
      : Math.max(0, this.#connectGiveUpMs - (now - this.#startedAt));
    const after = err instanceof ClientError ? err.retryAfterMs ?? 0 : 0;
    return {
      verdict: "retry",
      error: err,
      budgetMs,
      minDelayMs: Math.min(after, budgetMs),
    };
  }

  /** The resumable state, for a checkpoint. */
  snapshot(): ClientState {
    return {
      id: this.id,
      count: this.count,
      token: bytesToHex(this.#token),
      nextOffset: this.#next,
      sum: this.#checksum.sum,
      crc: this.#checksum.crc,
      ttlMs: this.#ttlMs,
      intervalMs: this.#intervalMs,
      lastContact: this.#lastProgress,
      ...(this.#serverSum !== null && this.#serverCrc !== null
        ? { server: { sum: this.#serverSum, crc: this.#serverCrc } }
        : {}),
    };
  }

  /**
   * The run's outcome: PASS or FAIL from the checksums, or ERROR with `error`.
   */
  result(error?: ClientError): ClientResult {
    const base = {
      id: this.id,
      count: this.count,
      sum: this.#checksum.sum,
      checksum: formatCrc(this.#checksum.crc),
      serverChecksum: this.#serverCrc === null
        ? null
        : formatCrc(this.#serverCrc),
      serverSum: this.#serverSum,
      reconnects: this.#reconnects,
    };
    if (error) {
      return {
        result: "ERROR",
        ...base,
        error: { code: error.code, message: error.message },
      };
    }
    const pass = this.#serverSum === this.#checksum.sum &&
      this.#serverCrc === this.#checksum.crc && this.#next === this.count;
    return { result: pass ? "PASS" : "FAIL", ...base };
  }
}
