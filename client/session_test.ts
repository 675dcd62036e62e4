import { assertEquals } from "../tests/_assert.ts";
import { ErrorCode } from "../protocol/errors.ts";
import type { ServerMessage, Welcome } from "../protocol/messages.ts";
import { ClientError } from "./errors.ts";
import { ClientSession, type SessionAction } from "./session.ts";
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
      case "violation":
      case "stop":
        return `${a.type} ${a.error.code}`;
      default:
        return a.type;
    }
  });
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
    now: T0,
    checkpointEvery: every,
  });
}

/** A session welcomed at 0 that has taken numbers 0..n-1 (value = offset + 1). */
function streamed(n: number, count = 10) {
  const s = session(count);
  s.connected(T0);
  s.receive(welcome({ count }), T0);
  for (let i = 0; i < n; i++) s.receive(num(i), T0 + i);
  return s;
}

const sumTo = (n: number) => (n * (n + 1)) / 2;

Deno.test("ClientSession sends HELLO first, then RESUME at nextOffset after a WELCOME", () => {
  const s = session();
  assertEquals(show(s.connected(T0)), ["hello"]);
  assertEquals(show(s.receive(welcome(), T0)), ["welcome", "checkpoint"]);
  s.receive(num(0), T0 + 1);
  s.linkLost(T0 + 1);
  const [a] = s.connected(T0 + 2);
  assertEquals(
    a?.type === "send" && a.message.type === "resume" && a.message.nextOffset,
    1,
  );
  assertEquals(show(s.receive(welcome({ nextOffset: 1 }), T0 + 3)), [
    "welcome resumed",
    "checkpoint",
  ]);
  assertEquals(s.reconnects, 1);
});

Deno.test("ClientSession ACKs every ceil(window/4) numbers and reuses one action list otherwise", () => {
  const s = session(100);
  s.connected(T0);
  s.receive(welcome({ count: 100, window: 10 }), T0); // every 3
  const seen: string[][] = [];
  let first: readonly SessionAction[] | undefined;
  for (let i = 0; i < 7; i++) {
    const acts = s.receive(num(i), T0 + i);
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
  assertEquals(show(s.tick(T0 + 999)), []);
  assertEquals(show(s.tick(T0 + 1000)), ["ack 1"]);
  assertEquals(s.nextTickAt, T0 + 2000);
  assertEquals(show(s.tick(T0 + 1500)), []);
  assertEquals(show(s.tick(T0 + 2000)), ["ack 1"], "repeated with no progress");
  s.linkLost(T0 + 2000);
  assertEquals(s.nextTickAt, Infinity, "no ticks without a welcomed link");
  assertEquals(show(s.tick(T0 + 5000)), []);
});

Deno.test("ClientSession: the final checkpoint is durable and comes before ACK(count), which only durable() releases", () => {
  const s = streamed(9);
  const acts = s.receive(
    { type: "final", offset: 9, value: 10, sum: sumTo(10), crc32: 0 },
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
  assertEquals(show(s.tick(T0 + 5000)).every((a) => a !== "ack 10"), true);
  assertEquals(show(s.durable(T0 + 5001)), ["ack 10"]);
  assertEquals(show(s.tick(T0 + 10_000)), ["ack 10"]);
  assertEquals(show(s.receive({ type: "done" }, T0)), ["verdict"]);
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
  for (const [what, taken, msg] of cases) {
    const s = streamed(taken);
    assertEquals(
      show(s.receive(msg, T0)),
      ["violation protocol_violation"],
      what,
    );
    assertEquals(s.nextOffset, taken, `${what}: nothing accepted`);
  }
  const fresh = session();
  fresh.connected(T0);
  assertEquals(
    show(fresh.receive(num(0), T0)),
    ["violation protocol_violation"],
    "before welcome",
  );
  assertEquals(
    show(fresh.receive(welcome({ count: 11 }), T0)),
    ["violation protocol_violation"],
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
  const [r] = s.connected(T0);
  assertEquals(r?.type === "send" && r.message.type, "resume");
  assertEquals(
    show(s.receive(welcome({ count: 3, nextOffset: 3 }), T0)),
    ["welcome resumed", "checkpoint durable"],
  );
  assertEquals(show(s.durable(T0)), ["ack 3"]);
  assertEquals(show(s.receive({ type: "done" }, T0)), ["verdict"]);
  assertEquals(s.result().result, "PASS");
});

Deno.test("ClientSession: ACK(count) lost, then session_completed or unknown_session → complete, PASS", () => {
  for (const code of [ErrorCode.SESSION_COMPLETED, ErrorCode.UNKNOWN_SESSION]) {
    const u = streamed(2, 3);
    const final = { type: "final", offset: 2, value: 3, sum: 6 } as const;
    u.receive({ ...final, crc32: 0 }, T0);
    const ours = u.snapshot().crc; // the CRC of 1, 2, 3, which the FINAL must carry
    const v = streamed(2, 3);
    v.receive({ ...final, crc32: ours }, T0);
    assertEquals(show(v.durable(T0)), ["ack 3"]);
    v.linkLost(T0); // the ACK was sent, its DONE never came
    v.connected(T0 + 10);
    const err = ClientError.fromWire(code, "gone");
    assertEquals(v.failed(err, T0 + 20).verdict, "complete");
    assertEquals(v.result().result, "PASS");
  }
  // Without FINAL the same refusal is final.
  const s = streamed(1, 3);
  s.linkLost(T0);
  const o = s.failed(
    ClientError.fromWire(ErrorCode.SESSION_COMPLETED, "gone"),
    T0,
  );
  assertEquals(o.verdict, "final");
});

Deno.test("ClientSession: taken_over right after an abandoned handshake is retried once", () => {
  const s = streamed(1);
  s.linkLost(T0);
  s.connected(T0 + 10);
  s.linkLost(T0 + 10, true); // gave up waiting for WELCOME
  const taken = ClientError.fromWire(ErrorCode.TAKEN_OVER, "taken");
  assertEquals(s.failed(taken, T0 + 20).verdict, "retry");
  assertEquals(s.failed(taken, T0 + 30).verdict, "final", "only once");
  const t = streamed(1);
  t.linkLost(T0);
  assertEquals(
    t.failed(taken, T0 + 20).verdict,
    "final",
    "no abandoned attempt",
  );
  // A handshake the network cut (no WELCOME, the client did not give up on
  // it) is abandoned too: the server may act on it late.
  const u = streamed(1);
  u.linkLost(T0);
  u.connected(T0 + 10);
  u.linkLost(T0 + 10);
  assertEquals(u.failed(taken, T0 + 20).verdict, "retry", "a cut resume");
});

Deno.test("ClientSession: a HELLO cut before its WELCOME, welcomed on the next connection, then taken over (the late HELLO won): retried once", () => {
  const s = session();
  s.connected(T0);
  s.linkLost(T0 + 5); // the HELLO went out; the link was cut
  s.connected(T0 + 10);
  s.receive(welcome(), T0 + 15);
  s.linkLost(T0 + 20);
  const taken = ClientError.fromWire(ErrorCode.TAKEN_OVER, "taken");
  assertEquals(s.failed(taken, T0 + 20).verdict, "retry");
  assertEquals(s.failed(taken, T0 + 30).verdict, "final", "only once");
});

Deno.test("ClientSession: GOAWAY stops the link and its retryAfterMs bounds the delay from below, the TTL from above", () => {
  const s = streamed(2);
  const [a] = s.receive(
    { type: "goaway", retryAfterMs: 700, message: "bye" },
    T0 + 100,
  );
  assertEquals(a?.type, "stop");
  s.linkLost(T0 + 100);
  const o = s.failed((a as { error: ClientError }).error, T0 + 200);
  assertEquals(o.verdict, "retry");
  if (o.verdict === "retry") {
    assertEquals(o.minDelayMs, 700);
    // The TTL runs from the GOAWAY, when the server let the session go.
    assertEquals(o.budgetMs, 5000 - 100);
  }
  const late = s.failed((a as { error: ClientError }).error, T0 + 4800);
  assertEquals(late.verdict === "retry" && late.minDelayMs, 5000 - 4700);
});

Deno.test("ClientSession gives up a TTL after the last progress; ERROR frames do not reset the clock", () => {
  const s = streamed(3); // last progress at T0 + 2
  s.linkLost(T0 + 2);
  const busy = ClientError.fromWire(ErrorCode.SERVER_BUSY, "busy");
  // ERROR frames arriving on later connections.
  for (const t of [1000, 3000, 4900]) {
    s.connected(T0 + t);
    const [stop] = s.receive({
      type: "error",
      code: ErrorCode.STORE_UNAVAILABLE,
      message: "down",
    }, T0 + t);
    assertEquals(stop?.type, "stop");
    s.linkLost(T0 + t);
    assertEquals(s.failed(busy, T0 + t).verdict, "retry");
  }
  const o = s.failed(busy, T0 + 5002);
  assertEquals(o.verdict, "final");
  if (o.verdict === "final") assertEquals(o.error.code, "session_expired");
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
    now: T0,
    connectGiveUpMs: 1000,
  });
  const refused = new Deno.errors.ConnectionRefused("refused");
  assertEquals(s.failed(refused, T0 + 999).verdict, "retry");
  const o = s.failed(refused, T0 + 1000);
  assertEquals(o.verdict === "final" && o.error.code, "unreachable");
});

Deno.test("ClientSession client_timeout and slow_consumer are retried; bad_token is final", () => {
  const s = streamed(1);
  s.linkLost(T0);
  for (
    const [code, want] of [
      [ErrorCode.CLIENT_TIMEOUT, "retry"],
      [ErrorCode.SLOW_CONSUMER, "retry"],
      [ErrorCode.BAD_TOKEN, "final"],
    ] as const
  ) {
    assertEquals(
      s.failed(ClientError.fromWire(code, "x"), T0 + 10).verdict,
      want,
    );
  }
});

Deno.test("ClientSession checkpoints every checkpointEvery numbers and by time with checkpointMs", () => {
  const s = new ClientSession({
    id: ID,
    count: 100,
    now: T0,
    checkpointEvery: 4,
    checkpointMs: 50,
  });
  s.connected(T0);
  s.receive(welcome({ count: 100, window: 1000 }), T0);
  const at: number[] = [];
  for (let i = 0; i < 12; i++) {
    const t = T0 + (i < 6 ? i : 100 + i);
    if (show(s.receive(num(i), t)).includes("checkpoint")) at.push(i);
  }
  assertEquals(at, [3, 6, 7, 11]);
});

Deno.test("ClientSession: a welcomed connection that the server or the network ended counts for the give-up clock; a silent server does not", () => {
  // TTL 5 s, and the drop comes 60 s after the last number (a long interval).
  const cut = streamed(2);
  cut.linkLost(T0 + 60_000); // EOF or reset: the server detaches now
  assertEquals(
    cut.failed(new Deno.errors.ConnectionReset("reset"), T0 + 60_001).verdict,
    "retry",
    "the server keeps the session a TTL from the drop",
  );
  assertEquals(cut.snapshot().lastContact, T0 + 60_000);
  const silent = streamed(2);
  silent.linkLost(T0 + 60_000, true); // our idle timer: the server went quiet
  assertEquals(
    silent.failed(new Deno.errors.TimedOut("idle"), T0 + 60_001).verdict,
    "final",
  );
  // A connection that never got a WELCOME proves nothing either.
  const refused = streamed(2);
  refused.linkLost(T0 + 1);
  refused.connected(T0 + 10);
  refused.linkLost(T0 + 60_000);
  assertEquals(
    refused.failed(new Deno.errors.ConnectionReset("reset"), T0 + 60_001)
      .verdict,
    "final",
  );
});
