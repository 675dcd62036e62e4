/**
 * The seqstream client: asks for a session, verifies the numbers it gets,
 * and reconnects and resumes on its own from the first number it lacks.
 *
 * This file wires the parts together: the transport ({@link Link}) and the
 * frame codec as the driver's link, the session state machine
 * ({@link ClientSession}, which applies the one retry policy of `retry.ts`
 * and the backoff), the clock, and the options' callbacks; the one loop
 * (`driver.ts`) runs them.
 *
 * @module
 */

import { type Clock, systemClock, type TimerId } from "../common/clock.ts";
import { checkMs, DURATION_RANGES } from "../common/defaults.ts";
import { ErrorCode, ProtocolError } from "../protocol/errors.ts";
import { type Frame, FrameDecoder } from "../protocol/frame.ts";
import {
  decodeMessage,
  encodeMessage,
  MAX_COUNT,
} from "../protocol/messages.ts";
import { isUuid } from "../protocol/uuid.ts";
import { drive, type DriverLink } from "./driver.ts";
import { CLIENT_CODES, ClientError } from "./errors.ts";
import { Link } from "./link.ts";
import { ClientSession } from "./session.ts";
import type {
  ClientHandle,
  ClientOptions,
  ClientResult,
  ClientState,
} from "./types.ts";

/**
 * Starts a client run and returns its handle at once.
 *
 * @example
 * ```ts
 * await using client = connect({ port: 8080, count: 10 });
 * const r = await client.result;
 * ```
 */
export function connect(opts: ClientOptions): ClientHandle {
  const ac = new AbortController();
  const signal = opts.signal
    ? AbortSignal.any([opts.signal, ac.signal])
    : ac.signal;
  const id = opts.resumeFrom?.id ?? opts.id ?? crypto.randomUUID();
  const result = run({ ...opts, signal }, id);
  const close = async () => {
    ac.abort();
    await result;
  };
  return { id, result, close, [Symbol.asyncDispose]: close };
}

/**
 * Runs a client to the end and resolves with its outcome. Never rejects.
 *
 * @example
 * ```ts
 * const r = await runClient({ port: 8080, count: 10 });
 * if (r.result !== "PASS") console.error(r.error?.code);
 * ```
 */
export function runClient(opts: ClientOptions): Promise<ClientResult> {
  return connect(opts).result;
}

const DURABLE = Object.freeze({ durable: true });
const NOT_DURABLE = Object.freeze({ durable: false });

function sleep(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const t = clock.setTimeout(done, ms);
    function done() {
      clock.clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

/** A failure to decode the server's bytes, as the violation it is. */
function undecodable(err: unknown, welcomed: boolean): unknown {
  if (!(err instanceof ProtocolError)) return err;
  return new ClientError(
    CLIENT_CODES.PROTOCOL_VIOLATION,
    welcomed || err.code !== ErrorCode.MALFORMED_FRAME
      ? `The server sent a malformed frame (${err.message})`
      : `The server's reply is not seqstream protocol (${err.message}); is this a seqstream server, and does TLS match?`,
    { cause: err },
  );
}

async function run(
  opts: ClientOptions & { signal: AbortSignal },
  id: string,
): Promise<ClientResult> {
  const clock = opts.clock ?? systemClock;
  const from: ClientState | undefined = opts.resumeFrom;
  const count = from?.count ?? opts.count ??
    1 + Math.floor(Math.random() * MAX_COUNT);
  const session = new ClientSession({
    id,
    count: Number.isInteger(count) ? count : 0,
    resumeFrom: from,
    wallMs: clock.now(),
    token: opts.token,
    restart: opts.restart,
    // With nowhere to save them, only the checkpoints the protocol needs (the final one gates ACK(count)).
    checkpointEvery: opts.onCheckpoint ? opts.checkpointEvery : Infinity,
    checkpointMs: opts.checkpointMs,
    connectGiveUpMs: opts.connectGiveUpMs,
    handshakeTimeoutMs: opts.handshakeTimeoutMs,
    idleTimeoutMs: opts.idleTimeoutMs,
    backoff: opts.backoff,
  });
  const finish = (r: ClientResult): ClientResult => {
    opts.onEvent?.({ type: "done", result: r.result });
    return r;
  };
  const fail = (code: ClientError["code"], message: string) =>
    finish(session.result(new ClientError(code, message)));

  if (!isUuid(id)) {
    return fail(CLIENT_CODES.USAGE, `Session id must be a UUID, got "${id}"`);
  }
  if (!Number.isInteger(count) || count < 1 || count > MAX_COUNT) {
    return fail(
      CLIENT_CODES.USAGE,
      `Count must be between 1 and ${MAX_COUNT}, got ${count}`,
    );
  }
  for (
    const [what, ms, range] of [
      ["idleTimeoutMs", opts.idleTimeoutMs, DURATION_RANGES.idleTimeout],
      [
        "handshakeTimeoutMs",
        opts.handshakeTimeoutMs,
        DURATION_RANGES.handshakeTimeout,
      ],
      [
        "connectGiveUpMs",
        opts.connectGiveUpMs,
        DURATION_RANGES.connectTimeout,
      ],
    ] as const
  ) {
    if (ms === undefined) continue;
    try {
      checkMs(what, ms, range);
    } catch (err) {
      return fail(CLIENT_CODES.USAGE, (err as Error).message);
    }
  }
  return await drive(session, {
    open: (limitMs, tick) => open(opts, session, clock, limitMs, tick),
    wallMs: () => clock.now(),
    sleep: (ms) => sleep(clock, ms, opts.signal),
    signal: opts.signal,
    checkpoint: opts.onCheckpoint &&
      ((s, durable) => opts.onCheckpoint!(s, durable ? DURABLE : NOT_DURABLE)),
    observe(a) {
      if (a.type === "number") opts.onNumber?.(a.offset, a.value);
      else if (a.type === "dial") {
        opts.onEvent?.({ type: "connecting", attempt: a.attempt });
      } else if (a.type === "welcome") {
        opts.onEvent?.({
          type: "streaming",
          nextOffset: a.nextOffset,
          count: a.count,
          resumed: a.resumed,
        });
      } else if (a.type === "retry") {
        opts.onEvent?.({
          type: "disconnected",
          error: a.error instanceof Error ? a.error.message : String(a.error),
          retryInMs: a.delayMs,
        });
      } else if (a.type === "end") {
        opts.onEvent?.({ type: "done", result: a.result.result });
      }
    },
  });
}

/**
 * One connection as the driver's link: {@link Link} for the bytes and the
 * idle limit, the frame codec for the messages, and one clock timer for the
 * keep-alive ticks.
 */
async function open(
  opts: ClientOptions & { signal: AbortSignal },
  session: ClientSession,
  clock: Clock,
  limitMs: number,
  tick: (wallMs: number) => number,
): Promise<DriverLink<Uint8Array>> {
  const link = await Link.open({
    hostname: opts.hostname ?? "127.0.0.1",
    port: opts.port,
    dial: opts.dial,
    signal: opts.signal,
    clock,
    limitMs,
  });
  const decoder = new FrameDecoder();
  let frames: Generator<Frame> | undefined;
  let timer: TimerId | undefined;
  const arm = (at: number) => {
    clock.clearTimeout(timer);
    if (at !== Infinity) {
      timer = clock.setTimeout(() => arm(tick(clock.now())), at - clock.now());
    }
  };
  return {
    read: () => link.read(session.welcomed),
    push(chunk) {
      try {
        frames = decoder.push(chunk);
      } catch (err) {
        throw undecodable(err, session.welcomed);
      }
    },
    next() {
      try {
        const it = frames?.next();
        if (!it || it.done) return undefined;
        const m = decodeMessage(it.value);
        if (m.type === "hello" || m.type === "resume" || m.type === "ack") {
          throw new ClientError(
            CLIENT_CODES.PROTOCOL_VIOLATION,
            `Unexpected ${m.type} from the server`,
          );
        }
        return m;
      } catch (err) {
        throw undecodable(err, session.welcomed);
      }
    },
    send: (m) => link.write(encodeMessage(m)),
    welcomed(idleLimitMs, tickAt) {
      link.setIdleLimit(idleLimitMs);
      arm(tickAt);
    },
    hold: (on) => link.holdIdle(on),
    get silent() {
      return link.idleFired;
    },
    explain: (err) =>
      link.idleFired ? link.explain(err, session.welcomed) : err,
    close() {
      clock.clearTimeout(timer);
      link.close();
    },
  };
}
