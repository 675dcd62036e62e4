import { ErrorCode, errorName, ProtocolError } from "../protocol/errors.ts";
import { FrameDecoder } from "../protocol/frame.ts";
import {
  decodeMessage,
  encodeMessage,
  type Message,
} from "../protocol/messages.ts";
import { seedFromHex, valueAt } from "../protocol/prng.ts";
import { assert_, assertEquals } from "../tests/_assert.ts";
import { hello as rawHello, resume as rawResume } from "../tests/_raw.ts";
import {
  CLOSE_GRACE_MS,
  ConnAction,
  ConnectionMachine,
  ConnPhase,
  type LogLine,
} from "./connection_machine.ts";
import type { Attachment } from "./sessions.ts";

const SETTINGS = {
  intervalMs: 10,
  ttlMs: 1000,
  handshakeTimeoutMs: 1000,
  clientTimeoutMs: 1000,
  stallMs: 1000,
  window: 4,
  ackIntervalMs: 500,
};

const REMOTE = { hostname: "10.0.0.1", port: 4242 };
const ID = "00000000-0000-4000-8000-000000000001";
const TOKEN = new Uint8Array(16).fill(7);

function attachment(count: number, epoch = 1): Attachment {
  return {
    id: ID,
    seed: seedFromHex("0011223344556677"),
    count,
    token: TOKEN,
    epoch,
  };
}

/** What the bytes of a WRITE say, one word per message. */
function describe(bytes: Uint8Array): string {
  const d = new FrameDecoder();
  return [...d.push(bytes)].map((f) => {
    const m = decodeMessage(f);
    switch (m.type) {
      case "number":
        return `number ${m.offset}`;
      case "final":
        return `final ${m.offset}`;
      case "error":
        return `error ${errorName(m.code)}`;
      default:
        return m.type;
    }
  }).join(",");
}

/**
 * A machine and a recorder: every event's actions, drained at once as the
 * shell does, rendered as short strings.
 */
function machine(settings = SETTINGS, acceptedAt = 0) {
  const m = new ConnectionMachine(settings, REMOTE, acceptedAt);
  const lines: LogLine[] = [];
  const run = (a: ConnAction): string[] => {
    const out: string[] = [];
    for (; a !== ConnAction.NONE; a = m.next()) {
      switch (a) {
        case ConnAction.WRITE:
          out.push(
            `write ${describe(m.bytes)}` + (m.numbers ? ` (${m.numbers})` : ""),
          );
          break;
        case ConnAction.OPEN:
          out.push(`open ${m.request.id}`);
          break;
        case ConnAction.RESUME:
          out.push(`resume ${m.request.id}`);
          break;
        case ConnAction.COMPLETE:
          out.push(`complete ${m.attachment.epoch}`);
          break;
        case ConnAction.DETACH:
          out.push(`detach ${m.attachment.epoch}`);
          break;
        case ConnAction.ATTACHED:
          out.push("attached");
          break;
        case ConnAction.DETACHED:
          out.push("detached");
          break;
        case ConnAction.END:
          out.push("end");
          break;
        case ConnAction.ACKED:
          out.push("count acksReceived");
          break;
        case ConnAction.COUNT:
          out.push(`count ${m.counter}`);
          break;
        case ConnAction.REFUSED:
          out.push(`refused ${m.refusal}`);
          break;
        case ConnAction.WELCOMED:
          out.push(`welcomed ${m.welcomed} ${m.ms}ms`);
          break;
        case ConnAction.LOG:
          lines.push(m.line);
          out.push(`log ${m.line.msg}`);
          break;
        case ConnAction.READ:
          out.push("read");
          break;
        default:
          throw new Error(`unknown action ${a}`);
      }
    }
    return out;
  };
  /** Feeds one message as a decoded frame. */
  const send = (msg: Message, now: number): string[] => {
    const bytes = encodeMessage(msg);
    let out: string[] = [];
    for (const f of new FrameDecoder().push(bytes)) {
      out = out.concat(run(m.frame(f.type, f.value, now)));
    }
    return out;
  };
  return { m, run, send, lines };
}

const hello = (count: number): Message => rawHello(ID, count, TOKEN);
const resume = (nextOffset: number): Message =>
  rawResume(ID, TOKEN, nextOffset);

/** A machine attached by a HELLO at `t` (WELCOME and the first number sent). */
function streaming(count: number, t = 0) {
  const c = machine(SETTINGS, t);
  assertEquals(c.send(hello(count), t), [`open ${ID}`]);
  c.run(c.m.attached(attachment(count), true, t, 1_700_000_000_000));
  c.run(c.m.writerIdle(t));
  return c;
}

Deno.test("ConnectionMachine arms the handshake deadline at accept and refuses with handshake_timeout at it, not a millisecond before", () => {
  const c = machine(SETTINGS, 100);
  assertEquals(c.m.wakeAt, 1100);
  assertEquals(c.run(c.m.timer(1099)), []);
  assertEquals(c.run(c.m.timer(1100)), [
    "refused handshake_timeout",
    "log refused",
    "write error handshake_timeout",
  ]);
  assertEquals(c.m.phase, ConnPhase.CLOSING);
  assertEquals(c.m.wakeAt, 1100 + CLOSE_GRACE_MS);
  assertEquals(c.run(c.m.writerIdle(1101)), ["end"]);
  assertEquals(c.m.wakeAt, Infinity);
});

Deno.test("ConnectionMachine closes at the close grace when the last frame is not taken, and only then", () => {
  const c = machine();
  c.run(c.m.timer(1000));
  assertEquals(c.run(c.m.timer(1000 + CLOSE_GRACE_MS - 1)), []);
  assertEquals(c.run(c.m.timer(1000 + CLOSE_GRACE_MS)), ["end"]);
  assertEquals(c.run(c.m.writerIdle(2000)), []); // ended: idempotent
  assertEquals(c.run(c.m.readEnded()), []);
});

Deno.test("ConnectionMachine refuses a TLS ClientHello on its first bytes with malformed_frame, and checks only the first chunk", () => {
  const c = machine();
  assertEquals(c.run(c.m.received(new Uint8Array([0x16, 3, 1, 0, 5]), 3)), [
    "refused malformed_frame",
    "log refused",
    "write error malformed_frame",
  ]);
  assert_(String(c.lines[0]!.fields["reason"]).includes("TLS"));
  const d = machine();
  assertEquals(d.run(d.m.received(new Uint8Array([1, 0, 0]), 3)), []);
  assertEquals(d.run(d.m.received(new Uint8Array([0x16, 3, 1]), 4)), []);
});

const refusals: {
  name: string;
  how: "hello" | "resume";
  err: unknown;
  code: string;
  logs: string[];
}[] = [
  {
    name: "a refusal of a hello is passed on",
    how: "hello",
    err: new ProtocolError(ErrorCode.SESSION_IN_USE, "in use"),
    code: "session_in_use",
    logs: ["refused"],
  },
  {
    name: "a refusal of a resume is passed on",
    how: "resume",
    err: new ProtocolError(ErrorCode.SESSION_EXPIRED, "expired"),
    code: "session_expired",
    logs: ["refused"],
  },
  {
    name: "a hello's non-protocol failure becomes store_unavailable",
    how: "hello",
    err: new TypeError("boom"),
    code: "store_unavailable",
    logs: ["session layer failed", "refused"],
  },
  {
    name: "a resume's non-protocol failure becomes store_unavailable",
    how: "resume",
    err: new TypeError("boom"),
    code: "store_unavailable",
    logs: ["session layer failed", "refused"],
  },
];
for (const t of refusals) {
  Deno.test(`ConnectionMachine handshake refusal: ${t.name}`, () => {
    const c = machine();
    const asked = c.send(
      t.how === "hello" ? hello(5) : resume(2),
      20,
    );
    assertEquals(asked, [`${t.how === "hello" ? "open" : "resume"} ${ID}`]);
    assertEquals(c.m.phase, ConnPhase.OPENING);
    assertEquals(c.m.wakeAt, Infinity); // no deadline while the store answers
    const out = c.run(c.m.handshakeFailed(t.err, 30));
    assertEquals(
      out.filter((s) => s.startsWith("log")),
      t.logs.map((l) => `log ${l}`),
    );
    assertEquals(out.filter((s) => !s.startsWith("log")), [
      `refused ${t.code}`,
      `write error ${t.code}`,
    ]);
    const refused = c.lines.find((l) => l.msg === "refused")!;
    assertEquals(
      refused.fields["id"],
      ID,
      "a refusal names the id asked for",
    );
    if (t.code === "store_unavailable") {
      const reason = String(refused.fields["reason"]);
      assert_(reason.includes(t.how === "hello" ? "start" : "resume"), reason);
    }
    assertEquals(c.m.phase, ConnPhase.CLOSING);
  });
}

const unexpected: {
  name: string;
  before: "handshake" | "streaming";
  msg: Message;
  refused: boolean;
}[] = [
  {
    name: "an ACK before HELLO",
    before: "handshake",
    msg: { type: "ack", nextOffset: 0 },
    refused: true,
  },
  {
    name: "a DONE before HELLO",
    before: "handshake",
    msg: { type: "done" },
    refused: true,
  },
  {
    name: "a HELLO while streaming",
    before: "streaming",
    msg: hello(5),
    refused: false,
  },
  {
    name: "a RESUME while streaming",
    before: "streaming",
    msg: resume(0),
    refused: false,
  },
];
for (const t of unexpected) {
  Deno.test(`ConnectionMachine answers ${t.name} with unexpected_message`, () => {
    const c = t.before === "handshake" ? machine() : streaming(50);
    const out = c.send(t.msg, 5);
    assertEquals(out, [
      ...(t.refused ? ["refused unexpected_message", "log refused"] : []),
      "write error unexpected_message",
    ]);
    assertEquals(c.m.phase, ConnPhase.CLOSING);
    assertEquals(
      c.send({ type: "ack", nextOffset: 0 }, 6),
      [],
      "closing: ignored",
    );
  });
}

Deno.test("ConnectionMachine attaches: WELCOME, the first number at once, then one per interval on the scheduler", () => {
  const c = machine();
  c.send(hello(50), 3);
  const out = c.run(c.m.attached(attachment(50), true, 8, 1_700_000_000_000));
  assertEquals(out, [
    "attached",
    "log session started",
    "write welcome",
    "welcomed hello 5ms",
    "write number 0 (1)",
  ]);
  assertEquals(c.m.attachedAt, 1_700_000_000_000);
  assertEquals(c.m.wakeAt, 8 + SETTINGS.intervalMs);
  assertEquals(c.run(c.m.timer(17)), [], "early: nothing");
  assertEquals(c.run(c.m.timer(18)), [], "the writer is still busy");
  c.run(c.m.writerIdle(19));
  // The grid point at 18 was used up by the busy writer: no catching up.
  assertEquals(c.run(c.m.timer(28)), ["write number 1 (1)"]);
});

Deno.test("ConnectionMachine encodes every paced number into one reused frame (no allocation per number)", () => {
  const c = streaming(50);
  const frames = new Set<Uint8Array>();
  const att = attachment(50);
  for (let t = 10; t <= 30; t += 10) {
    const a = c.m.timer(t);
    assertEquals(a, ConnAction.WRITE);
    frames.add(c.m.bytes);
    const d = decodeMessage([...new FrameDecoder().push(c.m.bytes)][0]!);
    assert_(d.type === "number");
    assertEquals(d.value, valueAt(att.seed, d.offset));
    assertEquals(c.m.next(), ConnAction.NONE);
    c.run(c.m.writerIdle(t));
    c.run(c.m.frame(...ackFrame(d.offset + 1), t));
  }
  assertEquals(frames.size, 1);
});

function ackFrame(n: number): [number, Uint8Array] {
  const f = [
    ...new FrameDecoder().push(encodeMessage({ type: "ack", nextOffset: n })),
  ][0]!;
  return [f.type, f.value.slice()];
}

Deno.test("ConnectionMachine counts every ACK, and answers one outside acked..sent with invalid_offset", () => {
  const c = streaming(50); // number 0 sent
  assertEquals(c.run(c.m.frame(...ackFrame(1), 4)), ["count acksReceived"]);
  assertEquals(c.run(c.m.frame(...ackFrame(1), 5)), ["count acksReceived"]);
  assertEquals(c.run(c.m.frame(...ackFrame(7), 6)), [
    "count acksReceived",
    "log client protocol error",
    "write error invalid_offset",
  ]);
  assertEquals(c.m.phase, ConnPhase.CLOSING);
});

Deno.test("ConnectionMachine drops a silent client at clientTimeoutMs and a stalled one at stallMs, counted and logged", () => {
  const silent = streaming(50);
  silent.run(silent.m.frame(...ackFrame(1), 0));
  let out: string[] = [];
  for (let t = 10; t <= 1000 && out.length < 2; t += 10) {
    out = silent.run(silent.m.timer(t));
    silent.run(silent.m.writerIdle(t));
  }
  assertEquals(out, [
    "count clientTimeouts",
    "log client timed out; session stays resumable",
    "write error client_timeout",
  ]);
  const stalled = streaming(50, 0);
  out = [];
  // ACKs that make no progress keep it heard from, not moving.
  for (let t = 10; t <= 1000 && out.length < 2; t += 10) {
    stalled.run(stalled.m.frame(...ackFrame(0), t));
    out = stalled.run(stalled.m.timer(t));
    stalled.run(stalled.m.writerIdle(t));
  }
  assertEquals(out, [
    "count slowConsumersDropped",
    "log client too slow; dropped, session stays resumable",
    "write error slow_consumer",
  ]);
});

/** A machine that sent every number of a 2-number session and FINAL. */
function finished() {
  const c = streaming(2);
  c.run(c.m.frame(...ackFrame(1), 5));
  assertEquals(c.run(c.m.timer(10)), ["write final 1 (1)"]);
  return c;
}

Deno.test("ConnectionMachine completes on ACK(count): asks the session layer, with no deadline meanwhile, then DONE and close", () => {
  const c = finished();
  assertEquals(c.run(c.m.frame(...ackFrame(2), 12)), [
    "count acksReceived",
    "complete 1",
  ]);
  assertEquals(c.m.wakeAt, Infinity);
  assertEquals(c.run(c.m.timer(5000)), []);
  assertEquals(c.run(c.m.completed(true, 20)), [
    "log session completed",
    "write done",
  ]);
  assertEquals(c.run(c.m.writerIdle(21)), ["end"]);
  assertEquals(c.run(c.m.closed(false)), ["detached"]);
});

Deno.test("ConnectionMachine answers a completion lost to a takeover with ERROR taken_over, never a bare close", () => {
  const c = finished();
  c.run(c.m.frame(...ackFrame(2), 12));
  assertEquals(c.run(c.m.completed(false, 20)), [
    "count sessionsTakenOver",
    "log session taken over",
    "write error taken_over",
  ]);
  assertEquals(c.m.phase, ConnPhase.CLOSING);
  assertEquals(c.m.wakeAt, 20 + CLOSE_GRACE_MS);
});

Deno.test("ConnectionMachine says nothing more when fenced while the completion is recorded", () => {
  const c = finished();
  c.run(c.m.frame(...ackFrame(2), 12));
  const taken = new ProtocolError(ErrorCode.TAKEN_OVER, "taken");
  assertEquals(c.run(c.m.fail(taken, 15)), ["write error taken_over"]);
  assertEquals(c.run(c.m.completed(false, 20)), []);
  assertEquals(c.run(c.m.completed(true, 20)), []);
});

Deno.test("ConnectionMachine answers a completion the store failed with store_unavailable, logged", () => {
  const c = finished();
  c.run(c.m.frame(...ackFrame(2), 12));
  assertEquals(c.run(c.m.completeFailed(new TypeError("boom"), 20)), [
    "log session layer failed",
    "write error store_unavailable",
  ]);
});

Deno.test("ConnectionMachine says GOAWAY once and closes; an attachment that arrives after it is detached, never welcomed", () => {
  const c = machine();
  c.send(hello(5), 1);
  assertEquals(c.run(c.m.goAway("bye", 2)), ["write goaway"]);
  assertEquals(c.run(c.m.goAway("bye", 3)), []);
  assertEquals(c.run(c.m.writerIdle(3)), ["end"]);
  assertEquals(c.run(c.m.attached(attachment(5), true, 9, 0)), ["detach 1"]);
  assertEquals(c.m.session, undefined);
  assertEquals(c.run(c.m.closed(true)), []);
});

Deno.test("ConnectionMachine tells a gone peer from a failure when the read side ends", () => {
  const cases: [unknown, string[]][] = [
    [undefined, ["end"]],
    [new Deno.errors.ConnectionReset("reset"), ["end"]],
    [new Deno.errors.InvalidData("bad cert"), [
      "log tls handshake failed",
      "end",
    ]],
    [new TypeError("bug"), ["log connection failed", "end"]],
  ];
  for (const [err, want] of cases) {
    const c = machine();
    assertEquals(c.run(c.m.readEnded(err)), want, String(err));
  }
});

Deno.test("ConnectionMachine detaches a session still held when the connection closed, and only tells the host otherwise", () => {
  const held = streaming(50);
  held.run(held.m.readEnded());
  assertEquals(held.run(held.m.closed(true)), [
    "detached",
    "log session detached",
    "detach 1",
  ]);
  const gone = streaming(50);
  gone.run(gone.m.readEnded());
  assertEquals(gone.run(gone.m.closed(false)), ["detached"]);
});

Deno.test("ConnectionMachine refuses with taken_over an attachment the session layer no longer holds when it arrives, and never registers it", () => {
  const c = machine();
  c.send(resume(3), 1);
  assertEquals(c.run(c.m.attached(attachment(50, 2), false, 9, 0)), [
    "refused taken_over",
    "log refused",
    "write error taken_over",
  ]);
  assertEquals(c.m.session, undefined);
  assertEquals(c.run(c.m.writerIdle(10)), ["end"]);
  assertEquals(c.run(c.m.closed(false)), []);
});

// --- reading (rule 7): a paced stream reads when an ACK is due ---------------

/** Window 16: the client acknowledges every 4 numbers; readGap 500 ms. */
const PACED = { ...SETTINGS, window: 16 };

/** Attached at 0 (number 0 sent, writer idle) and the HELLO's read fed. */
function pacedReading(settings = PACED, count = 1000) {
  const c = machine(settings, 0);
  c.send(hello(count), 0);
  c.run(c.m.attached(attachment(count), true, 0, 1_700_000_000_000));
  c.run(c.m.writerIdle(0));
  return c;
}

/** Runs the scheduler from `from` to `to` every ms, writer idle at once; the times a READ was asked. */
function readsBetween(c: ReturnType<typeof machine>, from: number, to: number) {
  const reads: number[] = [];
  for (let t = from; t <= to; t++) {
    if (t < c.m.wakeAt) continue;
    if (c.run(c.m.timer(t)).includes("read")) reads.push(t);
    c.run(c.m.writerIdle(t));
  }
  return reads;
}

Deno.test("ConnectionMachine reads at accept and reads on at once until the session streams", () => {
  const c = machine(PACED, 0);
  assert_(c.m.reading, "the first read starts at accept");
  assertEquals(c.run(c.m.readDone(false, 1)), ["read"]);
  assertEquals(c.run(c.m.readDone(true, 2)), ["read"]);
});

Deno.test("ConnectionMachine paced: no read in flight until an ACK is due, then one in the turn that sends the number making sent − acked reach ⌈window / 4⌉", () => {
  const c = pacedReading();
  assertEquals(c.m.ackEvery, 4);
  assertEquals(
    c.run(c.m.readDone(false, 0)),
    [],
    "nothing due after the HELLO",
  );
  assert_(!c.m.reading);
  assertEquals(c.run(c.m.timer(10)), ["write number 1 (1)"]);
  c.run(c.m.writerIdle(10));
  assertEquals(c.run(c.m.timer(20)), ["write number 2 (1)"]);
  c.run(c.m.writerIdle(20));
  assertEquals(c.run(c.m.timer(30)), ["write number 3 (1)", "read"]);
  assert_(c.m.reading);
  c.run(c.m.writerIdle(30));
  // The read stays in flight; the stream goes on meanwhile.
  assertEquals(c.run(c.m.timer(40)), ["write number 4 (1)"]);
  c.run(c.m.writerIdle(40));
  // The client's ACK(4) arrives: one behind (number 4 is out), not due.
  assertEquals(c.run(c.m.frame(...ackFrame(4), 41)), ["count acksReceived"]);
  assertEquals(c.run(c.m.readDone(false, 41)), []);
  assertEquals(readsBetween(c, 42, 69), [], "sent − acked is 3 until 70");
  assertEquals(readsBetween(c, 70, 70), [70]);
});

Deno.test("ConnectionMachine paced: an ACK that leaves sent − acked at ⌈window / 4⌉ or more reads on at once (the client owes one)", () => {
  const c = pacedReading();
  c.run(c.m.readDone(false, 0));
  readsBetween(c, 1, 30); // numbers 1..3, a read asked at 30
  c.run(c.m.frame(...ackFrame(0), 31)); // a keep-alive: no progress
  assertEquals(c.run(c.m.readDone(false, 31)), ["read"]);
});

Deno.test("ConnectionMachine paced: with no ACK due, the next read starts readGap after the last one ended, not a millisecond before (a FIN or RST is noticed by then)", () => {
  // Window 400: an ACK every 100 numbers, never due in this test.
  const c = pacedReading({ ...PACED, window: 400 });
  assertEquals(c.m.readGap, 500); // min(ackIntervalMs 500, clientTimeoutMs / 2 500)
  c.run(c.m.readDone(false, 0));
  assert_(c.m.wakeAt <= 500);
  assertEquals(readsBetween(c, 1, 600), [500]);
  // Its answer (a keep-alive) ends it at 520: the next one at 1020.
  c.run(c.m.frame(...ackFrame(50), 520));
  c.run(c.m.readDone(false, 520));
  assertEquals(readsBetween(c, 601, 1100), [1020]);
});

Deno.test("ConnectionMachine paced: readGap is min(ackIntervalMs, clientTimeoutMs / 2)", () => {
  const a = machine({ ...PACED, ackIntervalMs: 300, clientTimeoutMs: 1000 });
  assertEquals(a.m.readGap, 300);
  const b = machine({ ...PACED, ackIntervalMs: 5000, clientTimeoutMs: 1000 });
  assertEquals(b.m.readGap, 500);
});

Deno.test("ConnectionMachine paced: a read is in flight for the last readGap before a liveness deadline (a stall deadline sooner than the gap)", () => {
  // stallMs 600: number 0 went out at 0, so the stall deadline is 600; the
  // read starts at 600 − 500 = 100, not at 0 + 500.
  const c = pacedReading({ ...PACED, window: 400, stallMs: 600 });
  c.run(c.m.readDone(false, 0));
  assertEquals(readsBetween(c, 1, 99), []);
  assertEquals(readsBetween(c, 100, 100), [100]);
});

Deno.test("ConnectionMachine paced: a silent client's read stays in flight until client_timeout", () => {
  const c = pacedReading({ ...PACED, window: 400 });
  c.run(c.m.readDone(false, 0));
  assertEquals(readsBetween(c, 1, 999), [500]);
  assertEquals(c.run(c.m.timer(1000)), [
    "count clientTimeouts",
    "log client timed out; session stays resumable",
    "write error client_timeout",
  ]);
});

Deno.test("ConnectionMachine reads on at once for a burst stream, after FINAL, and when part of a frame is held; never once closing or completing", () => {
  const burst = pacedReading({ ...PACED, intervalMs: 0 });
  assertEquals(burst.run(burst.m.readDone(false, 0)), ["read"]);
  const partial = pacedReading();
  assertEquals(partial.run(partial.m.readDone(true, 0)), ["read"]);
  const fin = finished(); // FINAL sent: ACK(count) is due
  assertEquals(fin.run(fin.m.readDone(false, 10)), ["read"]);
  assertEquals(fin.run(fin.m.frame(...ackFrame(2), 12)), [
    "count acksReceived",
    "complete 1",
  ]);
  assertEquals(fin.run(fin.m.readDone(false, 12)), [], "completing");
  const closing = pacedReading();
  closing.run(closing.m.goAway("bye", 1));
  assertEquals(closing.run(closing.m.readDone(true, 2)), []);
  assertEquals(closing.run(closing.m.readDone(false, 3)), []);
});
