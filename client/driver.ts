/**
 * The one loop that runs a {@link ClientSession}: it feeds the session its
 * events and carries out the actions it returns, over a {@link DriverPort}
 * (connections, wall clock, sleep, checkpoints). `client.ts` (the library and
 * CLI client) and `load/lean_client.ts` (the load tool) each give it a port.
 *
 * @module
 */

import type { ClientMessage, ServerMessage } from "../protocol/messages.ts";
import type { ClientSession, SessionAction, SessionEvent } from "./session.ts";
import type { ClientResult, ClientState } from "./types.ts";

/** One open connection; `R` is what its reads resolve to (a chunk, a byte count). */
export interface DriverLink<R = unknown> {
  /** Waits for bytes from the server. @throws what ended the link */
  read(): Promise<R>;
  /** Takes what `read` resolved to, at wall time `wallMs`. @throws what ended the link (EOF, say) */
  push(read: R, wallMs: number): void;
  /** The next whole message pushed, or undefined. @throws {ClientError} for bytes that are not one */
  next(): ServerMessage | undefined;
  /** Writes `message` after every earlier one. */
  send(message: ClientMessage): Promise<unknown>;
  /** Welcomed: silence beyond `idleLimitMs` now ends the link; the first tick is due at `tickAt` (wall ms). */
  welcomed(idleLimitMs: number, tickAt: number): void;
  /**
   * While `on`, the server's silence does not end the link: it waits for
   * the ACK(count) that a durable save in flight holds back. Turned off,
   * silence counts from that moment.
   */
  hold(on: boolean): void;
  /** Whether this client closed the link because the server fell silent. */
  readonly silent: boolean;
  /** What `error`, met on this link, means (the silence that caused it, say). */
  explain(error: unknown): unknown;
  /** Closes the link (idempotent); `error`: what ended it, absent after DONE. */
  close(error?: unknown): void;
}

/** What the driver runs a session over. */
export interface DriverPort<R = unknown> {
  /** Opens a connection; dial plus WELCOME within `limitMs`. Once welcomed, call `tick` at the wall time it returns (first: `welcomed`'s `tickAt`). */
  open(
    limitMs: number,
    tick: (wallMs: number) => number,
  ): Promise<DriverLink<R>>;
  /** The wall clock (ms since the epoch). */
  wallMs(): number;
  /** Resolves after `ms`, or sooner when `signal` aborts. */
  sleep(ms: number): Promise<void>;
  readonly signal: AbortSignal;
  /** Saves a checkpoint; a durable one is awaited before ACK(count). */
  checkpoint?: ((state: ClientState, durable: boolean) => unknown) | undefined;
  /** Sees every action as it is carried out. */
  observe?: ((action: SessionAction, wallMs: number) => void) | undefined;
}

type DialAction = Extract<SessionAction, { type: "dial" }>;
const DIAL: SessionEvent = Object.freeze({ type: "dial" });
const OPEN: SessionEvent = Object.freeze({ type: "open" });
const TICK: SessionEvent = Object.freeze({ type: "tick" });
const DURABLE: SessionEvent = Object.freeze({ type: "durable" });
const ABORT: SessionEvent = Object.freeze({ type: "abort" });

/**
 * Runs `session` to its end over `port`. Never rejects.
 *
 * @example
 * ```ts
 * const r = await drive(new ClientSession({ id, count, wallMs: Date.now() }), port);
 * ```
 */
export async function drive<R>(
  session: ClientSession,
  port: DriverPort<R>,
): Promise<ClientResult> {
  let link: DriverLink<R> | undefined;
  const tick = (now: number) => {
    for (const a of session.handle(TICK, now)) {
      port.observe?.(a, now);
      // A failed keep-alive ends the link; the read reports why.
      if (a.type === "send") link?.send(a.message).catch(() => link?.close());
    }
    return session.nextTickAt;
  };
  const run = async (
    acts: readonly SessionAction[],
    now: number,
  ): Promise<ClientResult | undefined> => {
    for (const a of acts) {
      port.observe?.(a, now);
      if (a.type === "send") await link!.send(a.message);
      else if (a.type === "welcome") {
        link!.welcomed(a.idleLimitMs, session.nextTickAt);
      } else if (a.type === "checkpoint" && a.durable) {
        let saved: SessionEvent = DURABLE;
        link!.hold(true);
        try {
          await port.checkpoint?.(a.state, true);
        } catch (error) {
          saved = { type: "durable", error };
        } finally {
          link!.hold(false);
        }
        const r = await run(session.handle(saved, now = port.wallMs()), now);
        if (r) return r;
      } else if (a.type === "checkpoint") {
        // Not awaited: only the final state must be durable.
        const p = port.checkpoint?.(a.state, false);
        if (p instanceof Promise) p.catch(() => {});
      } else if (a.type === "close") throw a.error;
      else if (a.type === "retry") await port.sleep(a.delayMs);
      else if (a.type === "end") return a.result;
    }
  };
  for (;;) {
    let now = port.wallMs();
    if (port.signal.aborted) {
      return (await run(session.handle(ABORT, now), now))!;
    }
    const dial = session.handle(DIAL, now)[0] as DialAction;
    port.observe?.(dial, now);
    let error: unknown;
    link = undefined;
    try {
      link = await port.open(dial.limitMs, tick);
      let end = await run(session.handle(OPEN, now = port.wallMs()), now);
      // One event object per connection, not per message.
      const ev = { type: "message" as const, message: {} as ServerMessage };
      while (!end) {
        const got = await link.read();
        now = port.wallMs(); // one reading per read: its frames came together
        link.push(got, now);
        for (let m = link.next(); m; m = end ? undefined : link.next()) {
          ev.message = m;
          const acts = session.handle(ev, now);
          if (acts.length === 1 && acts[0]!.type === "number") {
            port.observe?.(acts[0]!, now); // the common case: no await
          } else end = await run(acts, now);
        }
      }
      link.close();
      return end;
    } catch (err) {
      error = link ? link.explain(err) : err;
      link?.close(error);
    }
    const closed = port.signal.aborted
      ? ABORT
      : { type: "closed" as const, error, silent: link?.silent ?? false };
    const end = await run(session.handle(closed, now = port.wallMs()), now);
    if (end) return end;
  }
}
