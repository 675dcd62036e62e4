/**
 * The seqstream client: asks for a session, verifies the numbers it gets,
 * and reconnects and resumes on its own from the first number it lacks.
 *
 * @module
 */

import { Checksum, formatCrc } from "../protocol/checksum.ts";
import {
  ErrorCode,
  errorName,
  isRetriable,
  ProtocolError,
} from "../protocol/errors.ts";
import { FrameDecoder } from "../protocol/frame.ts";
import {
  decodeMessage,
  encodeMessage,
  MAX_COUNT,
  PROTOCOL_VERSION,
} from "../protocol/messages.ts";
import { bytesToHex, hexToBytes, isUuid } from "../protocol/uuid.ts";
import { exponentialBackoff } from "./backoff.ts";

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
  /** Ms since the epoch of the last byte from the server. */
  lastContact: number;
  /**
   * The server's checksums once its final message arrived, so a client
   * restarted between the final and the server's DONE can still decide PASS.
   */
  server?: { sum: number; crc: number };
}

/** Options for {@link connect} and {@link runClient}. */
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
  dial?: (
    opts: { hostname: string; port: number; signal: AbortSignal },
  ) => Promise<Deno.Conn>;
  /** Status changes. */
  onEvent?: (e: ClientEvent) => void;
  /** Every number as it is accepted (offset, value, arrival time in ms). */
  onNumber?: (offset: number, value: number) => void;
  /** The resumable state after every welcome and at most every `checkpointEvery` numbers. */
  onCheckpoint?: (s: ClientState) => void;
  /** Numbers between checkpoints. Default 100. */
  checkpointEvery?: number;
  /**
   * Also checkpoint at the first number this long after the last checkpoint
   * (ms), so a saved `lastContact` is never older than this while numbers
   * flow (slow intervals). Default: off.
   */
  checkpointMs?: number;
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
  error?: { code: string; message: string };
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

class ClientError extends Error {
  constructor(readonly code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ClientError";
  }
}

/** Connection ended without an error frame (EOF, reset, idle timeout). */
class ConnectionLost extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConnectionLost";
  }
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });

function human(ms: number): string {
  return ms < 10_000 ? `${Math.round(ms)}ms` : `${Math.round(ms / 1000)}s`;
}

/**
 * A TLS failure (handshake or certificate) as a final error, or undefined for
 * anything else: retrying cannot fix a protocol or trust mismatch.
 */
function tlsFailure(err: unknown, where: string): ClientError | undefined {
  if (!(err instanceof Deno.errors.InvalidData)) return undefined;
  if (/not valid for name/i.test(err.message)) {
    return new ClientError(
      "tls_error",
      `The TLS certificate of ${where} does not name that host (${err.message}); connect by a name or address it lists`,
      { cause: err },
    );
  }
  if (/certificate/i.test(err.message)) {
    return new ClientError(
      "tls_error",
      `The TLS certificate of ${where} was rejected (${err.message}); trust the CA that signed it (client --ca FILE)`,
      { cause: err },
    );
  }
  return new ClientError(
    "tls_error",
    `TLS handshake with ${where} failed (${err.message}); is the server serving TLS (server --tls-cert/--tls-key)?`,
    { cause: err },
  );
}

/** TLS record content types (alert 0x15, handshake 0x16, …): never the first byte of a seqstream reply. */
const isTlsRecordType = (b: number | undefined) =>
  b !== undefined && b >= 0x14 && b <= 0x17;

function describe(err: unknown): string {
  if (err instanceof Deno.errors.ConnectionRefused) return "connection refused";
  if (err instanceof Error) return err.message;
  return String(err);
}

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

/** Runs a client to the end and resolves with its outcome. Never rejects. */
export function runClient(opts: ClientOptions): Promise<ClientResult> {
  return connect(opts).result;
}

async function run(
  opts: ClientOptions & { signal: AbortSignal },
  id: string,
): Promise<ClientResult> {
  const hostname = opts.hostname ?? "127.0.0.1";
  const from = opts.resumeFrom;
  const count = from?.count ?? opts.count ??
    1 + Math.floor(Math.random() * MAX_COUNT);
  const backoff = opts.backoff ?? exponentialBackoff();
  const dial = opts.dial ??
    ((o) =>
      Deno.connect({ hostname: o.hostname, port: o.port, signal: o.signal }));
  const checksum = new Checksum(from ?? undefined);
  // Chosen here, so a hello whose welcome was lost can be sent again safely.
  let token: Uint8Array = from
    ? hexToBytes(from.token)
    : crypto.getRandomValues(new Uint8Array(16));
  let welcomedOnce = from !== undefined;
  let next = from?.nextOffset ?? 0;
  let intervalMs = from?.intervalMs ?? 1000;
  let ttlMs = from?.ttlMs ?? 30_000;
  let lastContact = from?.lastContact ?? Date.now();
  let serverSum: number | null = from?.server?.sum ?? null;
  let serverCrc: number | null = from?.server?.crc ?? null;
  let reconnects = 0;
  let abandonedHandshake = false;
  let attempt = 0;
  const started = Date.now();
  const every = opts.checkpointEvery ?? 100;
  const everyMs = opts.checkpointMs ?? Infinity;
  let checkpointedAt = 0;

  const base = () => ({
    id,
    count,
    sum: checksum.sum,
    checksum: formatCrc(checksum.crc),
    serverChecksum: serverCrc === null ? null : formatCrc(serverCrc),
    serverSum,
    reconnects,
  });
  const finish = (r: ClientResult): ClientResult => {
    opts.onEvent?.({ type: "done", result: r.result });
    return r;
  };
  const error = (code: string, message: string) =>
    finish({ result: "ERROR", ...base(), error: { code, message } });
  const verdict = () =>
    finish({
      result: serverSum === checksum.sum && serverCrc === checksum.crc &&
          next === count
        ? "PASS"
        : "FAIL",
      ...base(),
    });
  const checkpoint = () => {
    checkpointedAt = lastContact;
    opts.onCheckpoint?.({
      id,
      count,
      token: bytesToHex(token),
      nextOffset: next,
      sum: checksum.sum,
      crc: checksum.crc,
      ttlMs,
      intervalMs,
      lastContact,
      ...(serverSum !== null && serverCrc !== null
        ? { server: { sum: serverSum, crc: serverCrc } }
        : {}),
    });
  };

  if (!isUuid(id)) {
    return error("usage", `Session id must be a UUID, got "${id}"`);
  }
  if (!Number.isInteger(count) || count < 1 || count > MAX_COUNT) {
    return error(
      "usage",
      `Count must be between 1 and ${MAX_COUNT}, got ${count}`,
    );
  }

  /** One connection: resolves true when the session is done (acknowledged). */
  async function once(): Promise<boolean> {
    // Never wait for a welcome past the point where the session has expired.
    const hsMs = welcomedOnce
      ? Math.max(
        50,
        Math.min(
          opts.handshakeTimeoutMs ?? 5000,
          ttlMs - (Date.now() - lastContact),
        ),
      )
      : opts.handshakeTimeoutMs ?? 5000;
    const hsSignal = AbortSignal.any([opts.signal, AbortSignal.timeout(hsMs)]);
    let conn: Deno.Conn;
    try {
      conn = await dial({ hostname, port: opts.port, signal: hsSignal });
    } catch (err) {
      const tls = tlsFailure(err, `${hostname}:${opts.port}`);
      if (tls) throw tls;
      if (hsSignal.aborted && !opts.signal.aborted) {
        throw new ConnectionLost(
          `Connect to ${hostname}:${opts.port} timed out`,
          { cause: err },
        );
      }
      throw new ConnectionLost(
        `Cannot connect to ${hostname}:${opts.port}: ${describe(err)}`,
        { cause: err },
      );
    }
    let welcomed = false;
    let idleFired = false;
    let lastByte = Date.now();
    let firstChunk = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const limit = () =>
      welcomed ? opts.idleTimeoutMs ?? Math.max(1000, 3 * intervalMs) : hsMs;
    const arm = (grace = false) => {
      const delay = grace ? 50 : Math.max(1, limit() - (Date.now() - lastByte));
      const due = Date.now() + delay;
      timer = setTimeout(() => {
        const now = Date.now();
        if (limit() - (now - lastByte) > 0) return arm();
        // Fired far too late: this process's own event loop stalled (a busy
        // host, a load generator), and the server's bytes may be waiting
        // unread. Let pending reads land once before calling it silent.
        if (!grace && now - due > 250) return arm(true);
        idleFired = true;
        try {
          conn.close();
        } catch { /* closed */ }
      }, delay);
    };
    arm();
    const onAbort = () => {
      try {
        conn.close();
      } catch { /* closed */ }
    };
    opts.signal.addEventListener("abort", onAbort, { once: true });
    const send = async (bytes: Uint8Array) => {
      let off = 0;
      while (off < bytes.length) off += await conn.write(bytes.subarray(off));
    };
    try {
      await send(encodeMessage(
        welcomedOnce
          ? {
            type: "resume",
            version: PROTOCOL_VERSION,
            id,
            token,
            nextOffset: next,
          }
          : { type: "hello", version: PROTOCOL_VERSION, id, count, token },
      ));
      const decoder = new FrameDecoder();
      const buf = new Uint8Array(4 * 1024);
      while (true) {
        const n = await conn.read(buf);
        if (n === null) {
          throw new ConnectionLost("Server closed the connection");
        }
        if (firstChunk && isTlsRecordType(buf[0])) {
          throw new ClientError(
            "tls_mismatch",
            `The server at ${hostname}:${opts.port} answered with TLS; connect with TLS (client --tls)`,
          );
        }
        firstChunk = false;
        lastByte = Date.now();
        lastContact = lastByte;
        for (const frame of decoder.push(buf.subarray(0, n))) {
          const msg = decodeMessage(frame);
          switch (msg.type) {
            case "welcome": {
              if (welcomed || msg.count !== count || msg.nextOffset !== next) {
                throw new ClientError(
                  "protocol_violation",
                  `Server welcomed count ${msg.count} at offset ${msg.nextOffset}; expected ${count} at ${next}`,
                );
              }
              const resumed = welcomedOnce;
              if (resumed) reconnects++;
              welcomed = true;
              welcomedOnce = true;
              token = msg.token;
              intervalMs = msg.intervalMs;
              ttlMs = msg.ttlMs;
              attempt = 0;
              clearTimeout(timer);
              arm(); // now on the idle limit rather than the handshake's
              checkpoint();
              opts.onEvent?.({
                type: "streaming",
                nextOffset: next,
                count,
                resumed,
              });
              if (next === count) await send(encodeMessage({ type: "ack" }));
              break;
            }
            case "number":
            case "final": {
              if (
                !welcomed || msg.offset !== next ||
                (msg.type === "final") !== (next === count - 1)
              ) {
                throw new ClientError(
                  "protocol_violation",
                  `Server sent ${msg.type} for offset ${msg.offset}; expected offset ${next}`,
                );
              }
              checksum.update(msg.value);
              next++;
              opts.onNumber?.(msg.offset, msg.value);
              if (msg.type === "final") {
                serverSum = msg.sum;
                serverCrc = msg.crc32;
                checkpoint();
                await send(encodeMessage({ type: "ack" }));
              } else if (
                next % every === 0 || lastContact - checkpointedAt >= everyMs
              ) checkpoint();
              break;
            }
            case "done":
              if (next !== count) {
                throw new ClientError(
                  "protocol_violation",
                  "Server sent done before the final number",
                );
              }
              return true;
            case "goaway":
              throw new ConnectionLost(`Server is going away: ${msg.message}`);
            case "error":
              throw new ProtocolError(msg.code, msg.message);
            default:
              throw new ClientError(
                "protocol_violation",
                `Unexpected ${msg.type} from the server`,
              );
          }
        }
      }
    } catch (err) {
      if (idleFired) {
        // The server may still finish that hello or resume after we left.
        if (!welcomed) abandonedHandshake = true;
        throw new ConnectionLost(
          welcomed
            ? `No data from the server for ${limit()}ms`
            : `No welcome within ${limit()}ms`,
        );
      }
      if (
        err instanceof ProtocolError &&
        err.code === ErrorCode.MALFORMED_FRAME && !welcomed
      ) {
        throw new ClientError(
          "protocol_violation",
          `The server's reply is not seqstream protocol (${err.message}); is this a seqstream server, and does TLS match?`,
        );
      }
      if (
        err instanceof ProtocolError || err instanceof ClientError ||
        err instanceof ConnectionLost
      ) throw err;
      throw tlsFailure(err, `${hostname}:${opts.port}`) ??
        new ConnectionLost(describe(err), { cause: err });
    } finally {
      clearTimeout(timer);
      opts.signal.removeEventListener("abort", onAbort);
      try {
        conn.close();
      } catch { /* closed */ }
    }
  }

  while (true) {
    if (opts.signal.aborted) return error("aborted", "Aborted");
    opts.onEvent?.({ type: "connecting", attempt });
    try {
      if (await once()) return verdict();
    } catch (err) {
      if (opts.signal.aborted) return error("aborted", "Aborted");
      if (err instanceof ClientError) return error(err.code, err.message);
      if (err instanceof ProtocolError) {
        const done = next === count && serverCrc !== null;
        if (
          done &&
          (err.code === ErrorCode.SESSION_COMPLETED ||
            err.code === ErrorCode.UNKNOWN_SESSION)
        ) {
          // Our ack landed but its confirmation did not: the session is complete.
          return verdict();
        }
        if (err.code === ErrorCode.TAKEN_OVER && abandonedHandshake) {
          // Most likely our own abandoned attempt, finished late by a slow
          // server, took the session from this connection: resume again,
          // once per abandoned attempt, rather than fight a real second client.
          abandonedHandshake = false;
        } else if (!isRetriable(err)) {
          return error(errorName(err.code), err.message);
        }
      }
      const now = Date.now();
      if (!welcomedOnce && now - started >= (opts.connectGiveUpMs ?? 10_000)) {
        return error("unreachable", (err as Error).message);
      }
      if (welcomedOnce && now - lastContact >= ttlMs) {
        return error(
          "session_expired",
          `No contact with the server for ${
            human(now - lastContact)
          }, longer than the session TTL of ${
            human(ttlMs)
          }; the session has expired (last error: ${(err as Error).message})`,
        );
      }
      const delay = Math.min(
        backoff(attempt++),
        Math.max(0, ttlMs - (now - lastContact)),
      );
      opts.onEvent?.({
        type: "disconnected",
        error: (err as Error).message,
        retryInMs: delay,
      });
      await sleep(delay, opts.signal);
    }
  }
}
