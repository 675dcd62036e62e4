/**
 * The seqstream client: asks for a session, verifies the numbers it gets,
 * and reconnects and resumes on its own from the first number it lacks.
 *
 * This file is the short loop that wires the parts together: the transport
 * ({@link Link}), the session state machine ({@link ClientSession}), the one
 * retry policy (`retry.ts`, applied by the session), the backoff and the
 * clock.
 *
 * @module
 */

import { type Clock, systemClock, type TimerId } from "../common/clock.ts";
import {
  checkMs,
  CLIENT_DEFAULTS,
  DURATION_RANGES,
} from "../common/defaults.ts";
import { ErrorCode, ProtocolError } from "../protocol/errors.ts";
import { FrameDecoder } from "../protocol/frame.ts";
import {
  decodeMessage,
  encodeMessage,
  MAX_COUNT,
  type ServerMessage,
} from "../protocol/messages.ts";
import { isUuid } from "../protocol/uuid.ts";
import { exponentialBackoff } from "./backoff.ts";
import { CLIENT_CODES, ClientError } from "./errors.ts";
import { Link } from "./link.ts";
import { ClientSession, type SessionAction } from "./session.ts";
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
  const hostname = opts.hostname ?? "127.0.0.1";
  const from: ClientState | undefined = opts.resumeFrom;
  const count = from?.count ?? opts.count ??
    1 + Math.floor(Math.random() * MAX_COUNT);
  const backoff = opts.backoff ?? exponentialBackoff();
  const handshakeTimeoutMs = opts.handshakeTimeoutMs ??
    CLIENT_DEFAULTS.handshakeTimeoutMs;
  const session = new ClientSession({
    id,
    count: Number.isInteger(count) ? count : 0,
    resumeFrom: from,
    now: clock.now(),
    token: opts.token,
    checkpointEvery: opts.checkpointEvery,
    checkpointMs: opts.checkpointMs,
    connectGiveUpMs: opts.connectGiveUpMs,
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
  let attempt = 0;

  /** One connection: resolves true when the session is done (DONE received). */
  async function once(): Promise<boolean> {
    const link = await Link.open({
      hostname,
      port: opts.port,
      dial: opts.dial,
      signal: opts.signal,
      clock,
      limitMs: session.handshakeMs(clock.now(), handshakeTimeoutMs),
    });
    let tick: TimerId | undefined;
    const armTick = () => {
      clock.clearTimeout(tick);
      const at = session.nextTickAt;
      if (at !== Infinity) tick = clock.setTimeout(onTick, at - clock.now());
    };
    const onTick = () => {
      const acts = session.tick(clock.now());
      for (const a of acts) {
        if (a.type === "send") {
          // A failed keep-alive ends the link; the read loop reports why.
          link.write(encodeMessage(a.message)).catch(() => link.close());
        }
      }
      armTick();
    };
    const act = async (a: SessionAction): Promise<boolean> => {
      switch (a.type) {
        case "send":
          await link.write(encodeMessage(a.message));
          return false;
        case "checkpoint":
          return await checkpoint(a.durable);
        case "welcome":
          attempt = 0;
          link.setIdleLimit(session.idleLimitMs(opts.idleTimeoutMs));
          armTick();
          opts.onEvent?.({
            type: "streaming",
            nextOffset: session.nextOffset,
            count,
            resumed: a.resumed,
          });
          return false;
        case "verdict":
          return true;
        case "violation":
        case "stop":
          throw a.error;
        case "number":
          return false; // handled inline
      }
    };
    const checkpoint = async (durable: boolean): Promise<boolean> => {
      const save = opts.onCheckpoint;
      if (save && durable) {
        try {
          await save(session.snapshot(), DURABLE);
        } catch (err) {
          throw new ClientError(
            CLIENT_CODES.CHECKPOINT_FAILED,
            `Could not save the final state, so the session is not acknowledged (${
              err instanceof Error ? err.message : String(err)
            })`,
            { cause: err },
          );
        }
      } else if (save) {
        const p = save(session.snapshot(), NOT_DURABLE);
        // Not awaited: only the final state must be durable.
        if (p instanceof Promise) p.catch(() => {});
      }
      if (!durable) return false;
      for (const a of session.durable(clock.now())) await act(a);
      return false;
    };
    try {
      for (const a of session.connected(clock.now())) await act(a);
      const decoder = new FrameDecoder();
      while (true) {
        const chunk = await link.read(session.welcomed);
        // One clock reading per chunk, not per frame: a burst chunk holds
        // hundreds of numbers, and they all arrived at this moment.
        const now = clock.now();
        let frames;
        try {
          frames = decoder.push(chunk);
        } catch (err) {
          throw undecodable(err, session.welcomed);
        }
        while (true) {
          let msg: ServerMessage;
          try {
            const it = frames.next();
            if (it.done) break;
            const m = decodeMessage(it.value);
            if (m.type === "hello" || m.type === "resume" || m.type === "ack") {
              throw new ClientError(
                CLIENT_CODES.PROTOCOL_VIOLATION,
                `Unexpected ${m.type} from the server`,
              );
            }
            msg = m;
          } catch (err) {
            throw undecodable(err, session.welcomed);
          }
          const acts = session.receive(msg, now);
          for (let i = 0; i < acts.length; i++) {
            const a = acts[i]!;
            if (a.type === "number") {
              const m = msg as { offset: number; value: number };
              opts.onNumber?.(m.offset, m.value);
            } else if (await act(a)) return true;
          }
        }
      }
    } catch (err) {
      const why = link.idleFired ? link.explain(err, session.welcomed) : err;
      session.linkLost(clock.now(), link.idleFired);
      throw why;
    } finally {
      clock.clearTimeout(tick);
      session.linkLost(clock.now());
      link.close();
    }
  }

  while (true) {
    if (opts.signal.aborted) return fail(CLIENT_CODES.ABORTED, "Aborted");
    opts.onEvent?.({ type: "connecting", attempt });
    let err: unknown;
    try {
      if (await once()) return finish(session.result());
    } catch (e) {
      err = e;
    }
    if (opts.signal.aborted) return fail(CLIENT_CODES.ABORTED, "Aborted");
    const o = session.failed(err, clock.now());
    if (o.verdict === "complete") return finish(session.result());
    if (o.verdict === "final") return finish(session.result(o.error));
    const delay = Math.max(
      o.minDelayMs,
      Math.min(backoff(attempt++), o.budgetMs),
    );
    opts.onEvent?.({
      type: "disconnected",
      error: err instanceof Error ? err.message : String(err),
      retryInMs: delay,
    });
    await sleep(clock, delay, opts.signal);
  }
}
