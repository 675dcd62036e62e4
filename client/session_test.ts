import { assertEquals } from "../tests/_assert.ts";
import { Checksum } from "../protocol/checksum.ts";
import { ErrorCode } from "../protocol/errors.ts";
import type { ServerMessage, Welcome } from "../protocol/messages.ts";
import { ClientError } from "./errors.ts";
import {
  ClientSession,
  type SessionAction,
  type SessionEvent,
} from "./session.ts";
import type { ClientState } from "./types.ts";

const ID = "5eed5eed-0000-4000-8000-00000000c0de";
const TOKEN = new Uint8Array(16).fill(7);
const T0 = 1_000_000;

function welcome(p: Partial<Welcome> = {}): Welcome {
  return {
    type: "welcome",
    count: 10,
    nextOffset: 0,
    token: TOKEN,
    intervalMs: 100,
    ttlMs: 5000,
    window: 8,
    ackIntervalMs: 1000,
    ...p,
  };
}

const num = (offset: number, value = offset + 1): ServerMessage => ({
  type: "number",
  offset,
  value,
});

/** Actions as short strings, for table comparisons. */
function show(acts: readonly SessionAction[]): string[] {
  return acts.map((a) => {
    switch (a.type) {
      case "send":
        return a.message.type === "ack"
          ? `ack ${a.message.nextOffset}`
          : a.message.type;
      case "checkpoint":
        return a.durable ? "checkpoint durable" : "checkpoint";
      case "welcome":
        return a.resumed ? "welcome resumed" : "welcome";
      case "close":
        return `close ${a.error.code}`;
      case "end":
        return a.result.error
          ? `end ${a.result.result} ${a.result.error.code}`
          : `end ${a.result.result}`;
      default:
        return a.type;
    }
  });
}

const OPEN: SessionEvent = { type: "open" };
const TICK: SessionEvent = { type: "tick" };
const DURABLE: SessionEvent = { type: "durable" };
const DIAL: SessionEvent = { type: "dial" };
const msg = (message: ServerMessage): SessionEvent => ({
  type: "message",
  message,
});
const closed = (error: unknown, silent = false): SessionEvent => ({
  type: "closed",
  error,
  silent,
});
const RESET = new Deno.errors.ConnectionReset("reset");

/** The last action of a `closed` event: "retry", or "end <result> <code>". */
function verdict(acts: readonly SessionAction[]): string {
  return show(acts.slice(-1))[0]!;
}

function session(count = 10, p: Partial<ClientState> = {}, every = 1000) {
  const resumeFrom: ClientState | undefined = Object.keys(p).length
    ? {
      id: ID,
      count,
      token: "07".repeat(16),
      nextOffset: 0,
      sum: 0,
      crc: 0,
      ttlMs: 5000,
      intervalMs: 100,
      lastContact: T0,
      ...p,
    }
    : undefined;
  return new ClientSession({
    id: ID,
    count,
    token: TOKEN,
    resumeFrom,
    wallMs: T0,
    checkpointEvery: every,
    backoff: () => 0,
  });
}

/** A session welcomed at 0 that has taken numbers 0..n-1 (value = offset + 1). */
function streamed(n: number, count = 10) {
  const s = session(count);
  s.handle(OPEN, T0);
  s.handle(msg(welcome({ count })), T0);
  for (let i = 0; i < n; i++) s.handle(msg(num(i)), T0 + i);
  return s;
}

const sumTo = (n: number) => (n * (n + 1)) / 2;

Deno.test("ClientSession sends HELLO first, then RESUME at nextOffset after a WELCOME", () => {
  const s = session();
  assertEquals(show(s.handle(OPEN, T0)), ["hello"]);
  assertEquals(show(s.handle(msg(welcome()), T0)), ["welcome", "checkpoint"]);
  s.handle(msg(num(0)), T0 + 1);
  assertEquals(show(s.handle(closed(RESET), T0 + 1)), ["retry"]);
  assertEquals(show(s.handle(DIAL, T0 + 2)), ["dial"]);
  const [a] = s.handle(OPEN, T0 + 2);
  assertEquals(
    a?.type === "send" && a.message.type === "resume" && a.message.nextOffset,
    1,
  );
  assertEquals(show(s.handle(msg(welcome({ nextOffset: 1 })), T0 + 3)), [
    "welcome resumed",
    "checkpoint",
  ]);
  assertEquals(s.reconnects, 1);
});

Deno.test("ClientSession ACKs every ceil(window/4) numbers and reuses one action list otherwise", () => {
  const s = session(100);
  s.handle(OPEN, T0);
  s.handle(msg(welcome({ count: 100, window: 10 })), T0); // every 3
  const seen: string[][] = [];
  let first: readonly SessionAction[] | undefined;
  for (let i = 0; i < 7; i++) {
    const acts = s.handle(msg(num(i)), T0 + i);
    seen.push(show(acts));
    if (i === 0) first = acts;
    if (i === 1) {
      assertEquals(acts, first, "the same shared list, no allocation");
    }
  }
  assertEquals(seen, [
    ["number"],
    ["number"],
    ["number", "ack 3"],
    ["number"],
    ["number"],
    ["number", "ack 6"],
    ["number"],
  ]);
});

Deno.test("ClientSession keep-alive: an ACK every ackIntervalMs with no progress, none sooner", () => {
  const s = streamed(1); // below the ACK cadence (every 2)
  assertEquals(s.nextTickAt, T0 + 1000);
  assertEquals(show(s.handle(TICK, T0 + 999)), []);
  assertEquals(show(s.handle(TICK, T0 + 1000)), ["ack 1"]);
  assertEquals(s.nextTickAt, T0 + 2000);
  assertEquals(show(s.handle(TICK, T0 + 1500)), []);
  assertEquals(
    show(s.handle(TICK, T0 + 2000)),
    ["ack 1"],
    "repeated with no progress",
  );
  s.handle(closed(RESET), T0 + 2000);
  assertEquals(s.nextTickAt, Infinity, "no ticks without a welcomed link");
  assertEquals(show(s.handle(TICK, T0 + 5000)), []);
});

Deno.test("ClientSession: the final checkpoint is durable and comes before ACK(count), which only the durable event releases", () => {
  const s = streamed(9);
  const crc = new Checksum();
  for (let v = 1; v <= 10; v++) crc.update(v);
  const acts = s.handle(
    msg({
      type: "final",
      offset: 9,
      value: 10,
      sum: sumTo(10),
      crc32: crc.crc,
    }),
    T0 + 50,
  );
  assertEquals(show(acts), ["number", "checkpoint durable"]);
  assertEquals(
    s.snapshot().server?.sum,
    sumTo(10),
    "the checkpoint holds the server's sums",
  );
  assertEquals(s.snapshot().nextOffset, 10);
  // A keep-alive while the state is being written never ACKs count.
  assertEquals(
    show(s.handle(TICK, T0 + 5000)).every((a) => a !== "ack 10"),
    true,
  );
  assertEquals(show(s.handle(DURABLE, T0 + 5001)), ["ack 10"]);
  assertEquals(show(s.handle(TICK, T0 + 10_000)), ["ack 10"]);
  assertEquals(show(s.handle(msg({ type: "done" }), T0)), ["end PASS"]);
});

Deno.test("ClientSession refuses stray and out-of-order numbers as protocol violations", () => {
  const cases: [string, number, ServerMessage][] = [
    ["stray number at count", 3, num(10)],
    ["stray number far beyond count", 3, num(70_000)],
    ["out of order (gap)", 3, num(5)],
    ["out of order (repeat)", 3, num(2)],
    ["final before the last offset", 3, {
      type: "final",
      offset: 3,
      value: 1,
      sum: 1,
      crc32: 1,
    }],
    ["number at the final's offset", 9, num(9)],
    ["done before the final", 3, { type: "done" }],
    ["a second welcome", 3, welcome({ nextOffset: 3 })],
  ];
  for (const [what, taken, m] of cases) {
    const s = streamed(taken);
    assertEquals(
      show(s.handle(msg(m), T0)),
      ["close protocol_violation"],
      what,
    );
    assertEquals(s.nextOffset, taken, `${what}: nothing accepted`);
  }
  const fresh = session();
  fresh.handle(OPEN, T0);
  assertEquals(
    show(fresh.handle(msg(num(0)), T0)),
    ["close protocol_violation"],
    "before welcome",
  );
  assertEquals(
    show(fresh.handle(msg(welcome({ count: 11 })), T0)),
    ["close protocol_violation"],
    "welcome for another count",
  );
});

Deno.test("ClientSession resumed at count re-acks: WELCOME, durable checkpoint, ACK(count), DONE → PASS", () => {
  const s = session(3, {
    nextOffset: 3,
    sum: 6,
    crc: 42,
    server: { sum: 6, crc: 42 },
  });
  const [r] = s.handle(OPEN, T0);
  assertEquals(r?.type === "send" && r.message.type, "resume");
  assertEquals(
    show(s.handle(msg(welcome({ count: 3, nextOffset: 3 })), T0)),
    ["welcome resumed", "checkpoint durable"],
  );
  assertEquals(show(s.handle(DURABLE, T0)), ["ack 3"]);
  assertEquals(show(s.handle(msg({ type: "done" }), T0)), ["end PASS"]);
  assertEquals(s.result().result, "PASS");
});

Deno.test("ClientSession: ACK(count) lost, then session_completed or unknown_session → complete, PASS", () => {
  for (const code of [ErrorCode.SESSION_COMPLETED, ErrorCode.UNKNOWN_SESSION]) {
    const u = streamed(2, 3);
    const final = { type: "final", offset: 2, value: 3, sum: 6 } as const;
    u.handle(msg({ ...final, crc32: 0 }), T0);
    const ours = u.snapshot().crc; // the CRC of 1, 2, 3, which the FINAL must carry
    const v = streamed(2, 3);
    v.handle(msg({ ...final, crc32: ours }), T0);
    assertEquals(show(v.handle(DURABLE, T0)), ["ack 3"]);
    // The ACK was sent, its DONE never came.
    assertEquals(verdict(v.handle(closed(RESET), T0)), "retry");
    v.handle(OPEN, T0 + 10);
    const err = ClientError.fromWire(code, "gone");
    assertEquals(verdict(v.handle(closed(err), T0 + 20)), "end PASS");
  }
  // Without FINAL the same refusal is final.
  const s = streamed(1, 3);
  assertEquals(
    verdict(
      s.handle(
        closed(ClientError.fromWire(ErrorCode.SESSION_COMPLETED, "gone")),
        T0,
      ),
    ),
    "end ERROR session_completed",
  );
});

Deno.test("ClientSession: taken_over right after an abandoned handshake is retried once", () => {
  const taken = ClientError.fromWire(ErrorCode.TAKEN_OVER, "taken");
  const s = streamed(1);
  s.handle(closed(RESET), T0);
  s.handle(OPEN, T0 + 10);
  // Gave up waiting for WELCOME; the server's late answer took the session.
  assertEquals(verdict(s.handle(closed(taken, true), T0 + 20)), "retry");
  assertEquals(
    verdict(s.handle(closed(taken), T0 + 30)),
    "end ERROR taken_over",
    "only once",
  );
  const t = streamed(1);
  assertEquals(
    verdict(t.handle(closed(taken), T0 + 20)),
    "end ERROR taken_over",
    "no abandoned attempt",
  );
  // A handshake the network cut (no WELCOME, the client did not give up on
  // it) is abandoned too: the server may act on it late.
  const u = streamed(1);
  u.handle(closed(RESET), T0);
  u.handle(OPEN, T0 + 10);
  u.handle(closed(RESET), T0 + 10);
  assertEquals(
    verdict(u.handle(closed(taken), T0 + 20)),
    "retry",
    "a cut resume",
  );
});

Deno.test("ClientSession: a HELLO cut before its WELCOME, welcomed on the next connection, then taken over (the late HELLO won): retried once", () => {
  const taken = ClientError.fromWire(ErrorCode.TAKEN_OVER, "taken");
  const s = session();
  s.handle(OPEN, T0);
  s.handle(closed(RESET), T0 + 5); // the HELLO went out; the link was cut
  s.handle(OPEN, T0 + 10);
  s.handle(msg(welcome()), T0 + 15);
  assertEquals(verdict(s.handle(closed(taken), T0 + 20)), "retry");
  assertEquals(
    verdict(s.handle(closed(taken), T0 + 30)),
    "end ERROR taken_over",
    "only once",
  );
});

Deno.test("ClientSession: a restarted run, welcomed, then taken over (the crashed run's late HELLO or RESUME won): retried once (simulator seed 591850075)", () => {
  const taken = ClientError.fromWire(ErrorCode.TAKEN_OVER, "taken");
  const restarted = (from: Partial<ClientState>, restart?: boolean) => {
    const s = new ClientSession({
      id: ID,
      count: 10,
      token: TOKEN,
      resumeFrom: Object.keys(from).length
        ? {
          id: ID,
          count: 10,
          token: "07".repeat(16),
          nextOffset: 0,
          sum: 0,
          crc: 0,
          ttlMs: 5000,
          intervalMs: 100,
          lastContact: T0,
          ...from,
        }
        : undefined,
      restart,
      wallMs: T0,
      backoff: () => 0,
    });
    s.handle(OPEN, T0);
    s.handle(msg(welcome()), T0 + 5);
    return s;
  };
  for (
    const [what, s] of [
      ["restart", restarted({}, true)],
      ["from a saved state", restarted({ nextOffset: 0 })],
    ] as const
  ) {
    assertEquals(verdict(s.handle(closed(taken), T0 + 20)), "retry", what);
    assertEquals(
      verdict(s.handle(closed(taken), T0 + 30)),
      "end ERROR taken_over",
      `${what}: only once`,
    );
  }
  assertEquals(
    verdict(restarted({}).handle(closed(taken), T0 + 20)),
    "end ERROR taken_over",
    "a first run",
  );
});

Deno.test("ClientSession: GOAWAY closes the link and its retryAfterMs bounds the delay from below, the TTL from above", () => {
  /** Welcomed, GOAWAY at T0 + 100; the backoff is `backoffMs` for every attempt. */
  const goneAway = (backoffMs: number) => {
    const s = new ClientSession({
      id: ID,
      count: 10,
      token: TOKEN,
      wallMs: T0,
      backoff: () => backoffMs,
    });
    s.handle(OPEN, T0);
    s.handle(msg(welcome()), T0);
    const acts = s.handle(
      msg({ type: "goaway", retryAfterMs: 700, message: "bye" }),
      T0 + 100,
    );
    assertEquals(show(acts), ["close going_away"]);
    const error = (acts[0] as { error: ClientError }).error;
    return (t: number) => {
      const a = s.handle(closed(error), t).at(-1);
      return a?.type === "retry" ? a.delayMs : a?.type;
    };
  };
  assertEquals(goneAway(0)(T0 + 100), 700, "retryAfterMs beats the backoff");
  // The TTL runs from the GOAWAY, when the server let the session go.
  const s = goneAway(60_000);
  assertEquals(s(T0 + 100), 5000, "the TTL caps the backoff");
  assertEquals(s(T0 + 4800), 5000 - 4700, "and retryAfterMs late in the TTL");
});

Deno.test("ClientSession gives up a TTL after the last progress; ERROR frames do not reset the clock", () => {
  const s = streamed(3); // last progress at T0 + 2
  s.handle(closed(RESET), T0 + 2);
  const busy = ClientError.fromWire(ErrorCode.SERVER_BUSY, "busy");
  // ERROR frames arriving on later connections.
  for (const t of [1000, 3000, 4900]) {
    s.handle(OPEN, T0 + t);
    const stop = s.handle(
      msg({
        type: "error",
        code: ErrorCode.STORE_UNAVAILABLE,
        message: "down",
      }),
      T0 + t,
    );
    assertEquals(show(stop), ["close store_unavailable"]);
    assertEquals(
      show(
        s.handle(closed((stop[0] as { error: ClientError }).error), T0 + t),
      ),
      ["retry"],
      "no checkpoint: lastContact did not move",
    );
  }
  assertEquals(
    show(s.handle(closed(busy), T0 + 5002)),
    ["end ERROR session_expired"],
  );
  assertEquals(
    s.snapshot().lastContact,
    T0 + 2,
    "the state's lastContact is the last progress",
  );
});

Deno.test("ClientSession before any WELCOME gives up after connectGiveUpMs as unreachable", () => {
  const s = new ClientSession({
    id: ID,
    count: 5,
    wallMs: T0,
    connectGiveUpMs: 1000,
  });
  const refused = new Deno.errors.ConnectionRefused("refused");
  assertEquals(verdict(s.handle(closed(refused), T0 + 999)), "retry");
  assertEquals(
    verdict(s.handle(closed(refused), T0 + 1000)),
    "end ERROR unreachable",
  );
});

Deno.test("ClientSession client_timeout and slow_consumer are retried; bad_token is final", () => {
  const s = streamed(1);
  s.handle(closed(RESET), T0);
  for (
    const [code, want] of [
      [ErrorCode.CLIENT_TIMEOUT, "retry"],
      [ErrorCode.SLOW_CONSUMER, "retry"],
      [ErrorCode.BAD_TOKEN, "end ERROR bad_token"],
    ] as const
  ) {
    assertEquals(
      verdict(s.handle(closed(ClientError.fromWire(code, "x")), T0 + 10)),
      want,
    );
  }
});

Deno.test("ClientSession checkpoints every checkpointEvery numbers and by time with checkpointMs", () => {
  const s = new ClientSession({
    id: ID,
    count: 100,
    wallMs: T0,
    checkpointEvery: 4,
    checkpointMs: 50,
  });
  s.handle(OPEN, T0);
  s.handle(msg(welcome({ count: 100, window: 1000 })), T0);
  const at: number[] = [];
  for (let i = 0; i < 12; i++) {
    const t = T0 + (i < 6 ? i : 100 + i);
    if (show(s.handle(msg(num(i)), t)).includes("checkpoint")) at.push(i);
  }
  assertEquals(at, [3, 6, 7, 11]);
});

Deno.test("ClientSession: a welcomed connection that the server or the network ended counts for the give-up clock; a silent server does not", () => {
  // TTL 5 s, and the drop comes 60 s after the last number (a long interval).
  const cut = streamed(2);
  // EOF or reset: the server detaches now, and keeps the session a TTL from the drop.
  assertEquals(verdict(cut.handle(closed(RESET), T0 + 60_000)), "retry");
  assertEquals(cut.snapshot().lastContact, T0 + 60_000);
  const silent = streamed(2);
  // Our idle timer: the server went quiet.
  assertEquals(
    verdict(silent.handle(
      closed(new Deno.errors.TimedOut("idle"), true),
      T0 + 60_000,
    )),
    "end ERROR session_expired",
  );
  // A connection that never got a WELCOME proves nothing either.
  const refused = streamed(2);
  refused.handle(closed(RESET), T0 + 1);
  refused.handle(OPEN, T0 + 10);
  assertEquals(
    verdict(refused.handle(closed(RESET), T0 + 60_000)),
    "end ERROR session_expired",
  );
});

Deno.test("ClientSession dial: the handshake limit, never past the TTL when resuming; the attempt counts retries since the last WELCOME", () => {
  const dial = (s: ClientSession, t: number) => {
    const [a] = s.handle(DIAL, t);
    return a?.type === "dial" ? [a.attempt, a.limitMs] : show(a ? [a] : []);
  };
  const fresh = new ClientSession({
    id: ID,
    count: 10,
    wallMs: T0,
    handshakeTimeoutMs: 3000,
    backoff: () => 0,
  });
  assertEquals(dial(fresh, T0), [0, 3000]);
  fresh.handle(closed(RESET), T0 + 10);
  assertEquals(dial(fresh, T0 + 10), [1, 3000]);
  fresh.handle(OPEN, T0 + 10);
  fresh.handle(msg(welcome()), T0 + 20); // TTL 5000 from here
  fresh.handle(closed(new Deno.errors.TimedOut("idle"), true), T0 + 4000);
  assertEquals(dial(fresh, T0 + 4000), [1, 1020], "what is left of the TTL");
  // A saved state whose TTL is nearly spent: at least 50 ms.
  assertEquals(dial(session(10, { lastContact: T0 - 4990 }), T0), [0, 50]);
});

Deno.test("ClientSession: a NUMBER at offset count after FINAL is a protocol violation, not a number beyond the session", () => {
  const crc = new Checksum();
  for (let v = 1; v <= 10; v++) crc.update(v);
  const s = streamed(9);
  s.handle(
    msg({
      type: "final",
      offset: 9,
      value: 10,
      sum: sumTo(10),
      crc32: crc.crc,
    }),
    T0,
  );
  assertEquals(show(s.handle(DURABLE, T0)), ["ack 10"]);
  // nextOffset is now count: only the offset >= count guard refuses this.
  const acts = s.handle(msg(num(10)), T0 + 1);
  assertEquals(show(acts), ["close protocol_violation"]);
  assertEquals(
    acts[0]?.type === "close" && acts[0].error.message,
    "Server sent number for offset 10, beyond the session's count 10",
  );
  assertEquals([s.nextOffset, s.snapshot().sum], [10, sumTo(10)]);
});

Deno.test("ClientSession: the end of a welcomed connection that moves lastContact is checkpointed; silence and refusals are not", () => {
  const checkpoints = (acts: readonly SessionAction[]) =>
    acts.flatMap((a) =>
      a.type === "checkpoint" ? [[a.durable, a.state.lastContact]] : []
    );
  // Cut 60 s after the last number: the server keeps the session a TTL from
  // the cut, and a restart from the saved state must know that.
  const cut = streamed(2);
  const acts = cut.handle(closed(RESET), T0 + 60_000);
  assertEquals(show(acts), ["checkpoint", "retry"]);
  assertEquals(checkpoints(acts), [[false, T0 + 60_000]]);
  // An aborted run (Ctrl-C) closes a live connection: the same.
  const aborted = streamed(2);
  const end = aborted.handle({ type: "abort" }, T0 + 30_000);
  assertEquals(show(end), ["checkpoint", "end ERROR aborted"]);
  assertEquals(checkpoints(end), [[false, T0 + 30_000]]);
  // Our idle timer (a silent server), a refused handshake, a failed dial:
  // lastContact does not move, and nothing is saved.
  const silent = streamed(2);
  assertEquals(
    show(silent.handle(closed(new Deno.errors.TimedOut("idle"), true), T0 + 9)),
    ["retry"],
  );
  silent.handle(OPEN, T0 + 10);
  const busy = ClientError.fromWire(ErrorCode.SERVER_BUSY, "busy");
  assertEquals(show(silent.handle(closed(busy), T0 + 11)), ["retry"]);
  assertEquals(show(silent.handle(closed(RESET), T0 + 12)), ["retry"]);
  assertEquals(silent.snapshot().lastContact, T0 + 1);
});

Deno.test("ClientSession: a failed durable save closes with checkpoint_failed and never ACKs count", () => {
  const s = streamed(9);
  s.handle(
    msg({ type: "final", offset: 9, value: 10, sum: sumTo(10), crc32: 0 }),
    T0,
  );
  const acts = s.handle(
    { type: "durable", error: new Error("disk full") },
    T0 + 1,
  );
  assertEquals(show(acts), ["close checkpoint_failed"]);
  assertEquals(
    acts[0]?.type === "close" && acts[0].error.message,
    "Could not save the final state, so the session is not acknowledged (disk full)",
  );
  assertEquals(
    show(s.handle(TICK, T0 + 5000)).includes("ack 10"),
    false,
    "no ACK(count) from a keep-alive either",
  );
  const error = (acts[0] as { error: ClientError }).error;
  assertEquals(
    verdict(s.handle(closed(error), T0 + 2)),
    "end ERROR checkpoint_failed",
  );
});
