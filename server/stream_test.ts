import { ErrorCode } from "../protocol/errors.ts";
import { assert_, assertEquals, assertThrows } from "../tests/_assert.ts";
import { Stream, StreamAction as A, type StreamSettings } from "./stream.ts";

const BASE: StreamSettings & { count: number } = {
  count: 100,
  window: 4,
  intervalMs: 10,
  clientTimeoutMs: 1000,
  stallMs: 2000,
};

function stream(
  over: Partial<typeof BASE> = {},
  offset = 0,
  now = 0,
) {
  const { count, ...limits } = { ...BASE, ...over };
  const s = new Stream(limits, count);
  s.start(offset, now);
  return s;
}

/** Ticks at `now` and reports what was sent as `[from, to]`, or the action. */
function sent(s: Stream, action: number): string {
  if (action === A.SEND || action === A.SEND_FINAL) {
    s.writerIdle(0); // the write completed at once
    return `${action === A.SEND_FINAL ? "final" : "send"} ${s.from}..${s.to}`;
  }
  return ["none", "", "", "complete", `close ${s.code}`][action]!;
}

Deno.test("Stream paced: one number per grid tick, paused when the window is full, resumed by an ACK", () => {
  const s = stream();
  const log: string[] = [];
  for (let t = 0; t <= 60; t += 10) log.push(`${t}: ${sent(s, s.tick(t))}`);
  assertEquals(log, [
    "0: send 0..1",
    "10: send 1..2",
    "20: send 2..3",
    "30: send 3..4",
    "40: none", // 4 in flight = window: paused
    "50: none",
    "60: none",
  ]);
  assertEquals(s.unacked, 4);
  assertEquals(sent(s, s.ack(2, 65)), "none");
  assertEquals(sent(s, s.tick(70)), "send 4..5");
  assertEquals(sent(s, s.tick(80)), "send 5..6");
  assertEquals(sent(s, s.tick(90)), "none");
  assertEquals(s.peak, 4);
});

Deno.test("Stream paced: a busy writer skips the tick instead of queueing", () => {
  const s = stream();
  assertEquals(s.tick(0), A.SEND);
  assertEquals(s.tick(10), A.NONE); // the write of 0 is still in flight
  s.writerIdle(12);
  assertEquals(s.tick(20), A.SEND);
  assertEquals([s.from, s.to], [1, 2]);
});

Deno.test("Stream paced: a late tick does not catch up, and an early wake for a deadline sends nothing", () => {
  const s = stream({ clientTimeoutMs: 5 * 60_000, stallMs: 5 * 60_000 });
  assertEquals(sent(s, s.tick(0)), "send 0..1");
  assertEquals(s.nextWake(), 10);
  assertEquals(sent(s, s.tick(5)), "none");
  assertEquals(sent(s, s.tick(35)), "send 1..2"); // late
  assertEquals(s.nextWake(), 45);
  assertEquals(sent(s, s.tick(45)), "send 2..3");
});

Deno.test("Stream burst: batches never exceed the window and wait for the writer and an ACK", () => {
  const s = stream({ intervalMs: 0, window: 16, count: 40 });
  assertEquals(s.tick(0), A.SEND);
  assertEquals([s.from, s.to], [0, 16]);
  assertEquals(s.writerIdle(1), A.NONE); // window full
  assertEquals(s.ack(4, 2), A.SEND); // room for 4 more
  assertEquals([s.from, s.to], [16, 20]);
  assertEquals(s.ack(20, 3), A.NONE); // the writer is still busy with 16..20
  assertEquals(s.writerIdle(4), A.SEND);
  assertEquals([s.from, s.to], [20, 36]);
  s.writerIdle(5);
  assertEquals(s.ack(36, 6), A.SEND_FINAL);
  assertEquals([s.from, s.to], [36, 40]);
  assert_(s.finalSent);
  assertEquals(s.peak, 16);
  s.writerIdle(7);
  assertEquals(s.ack(40, 8), A.COMPLETE);
});

Deno.test("Stream ACK validation: offsets below acked or above sent are invalid_offset", () => {
  const cases: [string, number[], number, number][] = [
    ["above sent", [], 3, A.CLOSE],
    ["below acked", [2], 1, A.CLOSE],
    ["equal to acked (keep-alive)", [2], 2, A.NONE],
    ["equal to sent", [], 2, A.NONE],
    ["count before FINAL", [], 100, A.CLOSE],
  ];
  for (const [what, before, n, want] of cases) {
    const s = stream();
    sent(s, s.tick(0));
    sent(s, s.tick(10)); // sent = 2
    for (const b of before) s.ack(b, 15);
    assertEquals(s.ack(n, 20), want, what);
    if (want === A.CLOSE) {
      assertEquals(s.code, ErrorCode.INVALID_OFFSET, what);
      assert_(s.message().includes(`ACK ${n} is outside`), s.message());
      assertEquals(s.tick(30), A.NONE, `${what}: closed streams stay closed`);
    }
  }
});

Deno.test("Stream completes only on ACK(count) after FINAL", () => {
  const s = stream({ count: 2 });
  assertEquals(sent(s, s.tick(0)), "send 0..1");
  assertEquals(s.ack(1, 5), A.NONE);
  assertEquals(sent(s, s.tick(10)), "final 1..2");
  assertEquals(s.ack(1, 12), A.NONE); // FINAL not acknowledged yet
  assertEquals(s.ack(2, 14), A.COMPLETE);
  assertEquals(s.ack(2, 15), A.NONE); // completing: further ACKs change nothing
  assertEquals(s.nextWake(), Infinity);
});

Deno.test("Stream resumed at count awaits only ACK(count); at count − 1 it sends FINAL again", () => {
  const atCount = stream({ count: 5 }, 5, 100);
  assert_(atCount.finalSent);
  assertEquals(atCount.tick(100), A.NONE);
  assertEquals(atCount.nextWake(), 100 + BASE.clientTimeoutMs);
  assertEquals(atCount.ack(5, 150), A.COMPLETE);

  const before = stream({ count: 5 }, 4, 100);
  assertEquals(sent(before, before.tick(100)), "final 4..5");
  assertEquals(before.ack(5, 120), A.COMPLETE);

  const burst = stream({ count: 5, intervalMs: 0 }, 4, 100);
  assertEquals(sent(burst, burst.tick(100)), "final 4..5");
});

Deno.test("Stream client timeout: nothing heard for clientTimeoutMs closes with client_timeout", () => {
  const s = stream({ window: 1000, stallMs: 5000 });
  for (let t = 0; t < 1000; t += 10) sent(s, s.tick(t));
  assertEquals(s.nextWake(), 1000);
  assertEquals(s.tick(1000), A.CLOSE);
  assertEquals(s.code, ErrorCode.CLIENT_TIMEOUT);
  assert_(/Heard nothing from the client for 1000ms/.test(s.message()));

  // Awaiting ACK(count) has no deadline but this one.
  const idle = stream({ count: 3 }, 3, 0);
  assertEquals(idle.tick(999), A.NONE);
  assertEquals(idle.tick(1000), A.CLOSE);
  assertEquals(idle.code, ErrorCode.CLIENT_TIMEOUT);
});

Deno.test("Stream slow consumer: lag with no progress for stallMs closes; keep-alives do not help, progress does", () => {
  // Keep-alives every 400 ms, never any progress.
  const s = stream({ clientTimeoutMs: 1000, stallMs: 2000 });
  sent(s, s.tick(0)); // lag begins at 0
  let t = 10;
  let action: number = A.NONE;
  for (; t <= 3000 && action !== A.CLOSE; t += 10) {
    if (t % 400 === 0) s.ack(0, t);
    action = s.tick(t);
    if (action === A.SEND) s.writerIdle(t);
  }
  assertEquals(action, A.CLOSE);
  assertEquals(s.code, ErrorCode.SLOW_CONSUMER);
  assertEquals(t - 10, 2000);
  assert_(/acknowledged none of 4 numbers/.test(s.message()), s.message());

  // The same, but each ACK makes progress: it streams on past any deadline.
  const p = stream({
    count: 10_000,
    window: 64,
    clientTimeoutMs: 1000,
    stallMs: 2000,
  });
  for (let t = 0; t <= 20_000; t += 10) {
    if (t % 400 === 0) assertEquals(p.ack(p.sent, t), A.NONE);
    const a = p.tick(t);
    assert_(a === A.SEND || a === A.NONE, `at ${t}: ${a}`);
    if (a === A.SEND) p.writerIdle(t);
  }
  assert_(p.sent > 1500, `sent ${p.sent}`);
});

Deno.test("Stream slow consumer counts from when the lag began, not from the last progress", () => {
  const s = stream({
    intervalMs: 1000,
    clientTimeoutMs: 60_000,
    stallMs: 2000,
  });
  sent(s, s.tick(0));
  s.ack(1, 10); // caught up: no lag
  // 5 s with nothing in flight: no stall however long ago the progress was.
  assertEquals(s.nextWake(), 1000);
  sent(s, s.tick(1000)); // lag begins at 1000
  assertEquals(s.nextWake(), 2000);
  sent(s, s.tick(2000));
  sent(s, s.tick(2999));
  assertEquals(s.tick(3000), A.CLOSE);
  assertEquals(s.code, ErrorCode.SLOW_CONSUMER);
});

Deno.test("Stream has no completion deadline while the client progresses slowly", () => {
  // A long stream at 1 ms per number on a 10-number window, acked just in time.
  const s = stream({
    count: 5000,
    window: 10,
    intervalMs: 1,
    clientTimeoutMs: 200,
    stallMs: 300,
  });
  let t = 0;
  for (; !s.finalSent && t < 20_000; t++) {
    if (t % 5 === 0) s.ack(s.sent, t);
    const a = s.tick(t);
    assert_(a !== A.CLOSE, `closed at ${t}: ${s.message()}`);
    if (a !== A.NONE) s.writerIdle(t);
  }
  assert_(s.finalSent);
  // Awaiting ACK(count): only the liveness rules apply; the client keeps
  // alive while it records the result, then acknowledges.
  for (let i = 0; i < 2; i++, t += 100) {
    assertEquals(s.ack(s.acked, t), A.NONE);
    assertEquals(s.tick(t), A.NONE);
  }
  assertEquals(s.ack(5000, t), A.COMPLETE);
});

Deno.test("Stream awaiting ACK(count) with keep-alives only is a slow consumer after stallMs", () => {
  const s = stream({ count: 1, clientTimeoutMs: 200, stallMs: 300 });
  assertEquals(sent(s, s.tick(0)), "final 0..1");
  for (let t = 100; t < 300; t += 100) {
    assertEquals(s.ack(0, t), A.NONE);
    assertEquals(s.tick(t), A.NONE);
  }
  assertEquals(s.ack(0, 300), A.NONE);
  assertEquals(s.tick(300), A.CLOSE);
  assertEquals(s.code, ErrorCode.SLOW_CONSUMER);
});

Deno.test("Stream nextWake is the earliest of the next send, the client deadline and the stall deadline", () => {
  const s = stream({ intervalMs: 500, clientTimeoutMs: 1000, stallMs: 700 });
  assertEquals(s.nextWake(), 0);
  sent(s, s.tick(0));
  assertEquals(s.nextWake(), 500); // next send
  s.ack(1, 100);
  sent(s, s.tick(500));
  s.ack(1, 600);
  assertEquals(s.nextWake(), 1000); // next send, before the stall at 1200
  const burst = stream({ intervalMs: 0, clientTimeoutMs: 1000, stallMs: 700 });
  burst.tick(0);
  assertEquals(burst.nextWake(), 700); // stall
  burst.ack(burst.sent, 50);
  assertEquals(burst.nextWake(), 1050); // client deadline (writer busy: nothing in flight added)
});

Deno.test("Stream rejects a window or count below 1", () => {
  assertThrows(() => new Stream({ ...BASE, window: 0 }, 5), RangeError);
  assertThrows(() => new Stream(BASE, 0), RangeError);
});

Deno.test("Stream: a tick at exactly nextWake() acts, even where now - t rounds below the limit (simulator seed 46)", () => {
  // (1000.1411 + 2000) - 1000.1411 rounds to 1999.9999999999998 in
  // floats: a tick at the deadline nextWake() named did nothing, and the
  // scheduler re-armed it for the same instant, forever.
  const start = 1000.1411;
  for (const over of [{ count: 100 }, { count: 100, intervalMs: 0 }]) {
    const s = stream(
      { ...over, clientTimeoutMs: 2000, stallMs: 60_000 },
      0,
      start,
    );
    // Everything sent that can be, then silence from the client.
    while (s.nextWake() < start + 2000) s.tick(s.nextWake());
    const wake = s.nextWake();
    assertEquals(wake, start + 2000);
    assert_(wake - start < 2000, "the rounding this test is about");
    assertEquals(s.tick(wake), A.CLOSE);
    assertEquals(s.code, ErrorCode.CLIENT_TIMEOUT);
  }
});
