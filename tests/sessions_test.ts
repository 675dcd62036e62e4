/**
 * Session rules through real sockets, with a raw protocol v2 peer: refusals,
 * expiry, fenced takeover, flow control, liveness, completion.
 */

import { ErrorCode } from "../protocol/errors.ts";
import type { Message } from "../protocol/messages.ts";
import { assert_, assertEquals } from "./_assert.ts";
import { eventually, scrape, testServer } from "./_fixtures.ts";
import { ack, hello, rawConnect, resume } from "./_raw.ts";

const ID = "11111111-2222-4333-8444-555555555555";
const tok = (b: number) => new Uint8Array(16).fill(b);

function errorOf(m: Message | null): { code: number; message: string } {
  assert_(
    m !== null && m.type === "error",
    `expected an error frame, got ${JSON.stringify(m)}`,
  );
  return m as { code: number; message: string };
}

/** Starts a session and returns its welcome token, leaving the peer attached. */
async function started(port: number, id = ID, count = 1000) {
  const peer = await rawConnect(port);
  await peer.send(hello(id, count, tok(1)));
  const w = await peer.until("welcome");
  await peer.until("number");
  return { peer, token: w.token };
}

Deno.test("hello is refused with invalid_count for 0 and 65536, unsupported_version for 1", async () => {
  await using server = await testServer();
  for (const count of [0, 65536]) {
    await using p = await rawConnect(server.addr.port);
    await p.send(hello(crypto.randomUUID(), count, tok(1)));
    assertEquals(errorOf(await p.next()).code, ErrorCode.INVALID_COUNT);
    await p.closed();
  }
  await using p = await rawConnect(server.addr.port);
  await p.send({ type: "hello", version: 1, id: ID, count: 5, token: tok(1) });
  const e = errorOf(await p.next());
  assertEquals(e.code, ErrorCode.UNSUPPORTED_VERSION);
  assert_(e.message.includes("version 1"), e.message);
  assert_(e.message.includes("upgrade the client"), e.message);
  assertEquals(server.metrics().refusals.get("invalid_count"), 2);
});

Deno.test("a second live connection for one id is refused with session_in_use", async () => {
  await using server = await testServer();
  const { peer } = await started(server.addr.port);
  await using _ = peer;
  await using thief = await rawConnect(server.addr.port);
  await thief.send(hello(ID, 1000, tok(2)));
  assertEquals(errorOf(await thief.next()).code, ErrorCode.SESSION_IN_USE);
  // Even with the same token but another count: it is not the same hello.
  await using other = await rawConnect(server.addr.port);
  await other.send(hello(ID, 999, tok(1)));
  assertEquals(errorOf(await other.next()).code, ErrorCode.SESSION_IN_USE);
  // The first stream is unharmed.
  assertEquals((await peer.until("number")).type, "number");
});

Deno.test("resume needs the token: bad_token, unknown_session and invalid_offset", async () => {
  await using server = await testServer();
  const { peer, token } = await started(server.addr.port);
  await using _ = peer;
  await using a = await rawConnect(server.addr.port);
  await a.send(resume(ID, tok(9), 0));
  assertEquals(errorOf(await a.next()).code, ErrorCode.BAD_TOKEN);
  await using b = await rawConnect(server.addr.port);
  await b.send(resume(crypto.randomUUID(), token, 0));
  assertEquals(errorOf(await b.next()).code, ErrorCode.UNKNOWN_SESSION);
  await using c = await rawConnect(server.addr.port);
  await c.send(resume(ID, token, 1001));
  assertEquals(errorOf(await c.next()).code, ErrorCode.INVALID_OFFSET);
});

Deno.test("a resume with the token takes over a half-open connection, which is closed with taken_over", async () => {
  await using server = await testServer();
  const { peer: old, token } = await started(server.addr.port);
  await using _ = old;
  await using fresh = await rawConnect(server.addr.port);
  await fresh.send(resume(ID, token, 5));
  const w = await fresh.until("welcome");
  assertEquals(w.nextOffset, 5);
  assertEquals((await fresh.until("number")).offset, 5);
  assertEquals(errorOf(await old.until("error")).code, ErrorCode.TAKEN_OVER);
  await old.closed();
  assertEquals(server.metrics().counters.sessionsTakenOver, 1);
  assertEquals(server.metrics().sessions, 1);
});

Deno.test("the TTL restarts at every disconnect, and a resume after it gets session_expired", async () => {
  const ttlMs = 400;
  await using server = await testServer({ ttlMs, intervalMs: 5 });
  const first = await started(server.addr.port);
  const token = first.token;
  first.peer.close();
  // Two disconnects 0.6·TTL apart: the session outlives 1.2·TTL in total.
  for (let i = 0; i < 2; i++) {
    await new Promise((r) => setTimeout(r, ttlMs * 0.6));
    await using p = await rawConnect(server.addr.port);
    await p.send(resume(ID, token, 1));
    assertEquals((await p.until("welcome")).nextOffset, 1);
  }
  await eventually(
    () => server.metrics().counters.sessionsExpired === 1,
    "expiry",
    3000,
  );
  assertEquals(server.metrics().sessions, 0);
  await using late = await rawConnect(server.addr.port);
  await late.send(resume(ID, token, 1));
  const e = errorOf(await late.next());
  assertEquals(e.code, ErrorCode.SESSION_EXPIRED);
  assert_(/expired \d+m?s ago/.test(e.message), e.message);
  // The id is free again for a new session.
  await using again = await rawConnect(server.addr.port);
  await again.send(hello(ID, 3, tok(5)));
  assertEquals((await again.until("welcome")).count, 3);
});

Deno.test("a completed session is discarded: resume says session_completed, a new hello may reuse the id", async () => {
  await using server = await testServer({ intervalMs: 0 });
  await using p = await rawConnect(server.addr.port);
  await p.send(hello(ID, 4, tok(3)));
  const w = await p.until("welcome");
  const f = await p.until("final");
  assertEquals(f.offset, 3);
  // FINAL is not delivered until acknowledged: the session is still held.
  assertEquals(server.metrics().sessions, 1);
  await p.send(ack(4));
  await p.until("done");
  await p.closed();
  assertEquals(server.metrics().sessions, 0);
  assertEquals(server.metrics().counters.sessionsCompleted, 1);
  await using late = await rawConnect(server.addr.port);
  await late.send(resume(ID, w.token, 4));
  assertEquals(errorOf(await late.next()).code, ErrorCode.SESSION_COMPLETED);
  await using again = await rawConnect(server.addr.port);
  await again.send(hello(ID, 7, tok(4)));
  assertEquals((await again.until("welcome")).count, 7);
});

/**
 * For tests of what the server makes of a client's frame mid-stream: a
 * paced stream reads only when an ACK is due (every `⌈window / 4⌉` numbers,
 * rule 7 of server/connection_machine.ts), so at the default window a frame
 * sent off that cadence waited seconds to be read. A window of 8 makes it
 * every 2 numbers (100 ms here); what the server answers does not change.
 */
const READS_OFTEN = { intervalMs: 50, window: 8 };

Deno.test("an ACK beyond what was sent is invalid_offset and the session stays resumable", async () => {
  await using server = await testServer(READS_OFTEN);
  const { peer, token } = await started(server.addr.port);
  await peer.send(ack(1000)); // ACK(count) before FINAL
  const e = errorOf(await peer.until("error"));
  assertEquals(e.code, ErrorCode.INVALID_OFFSET);
  assert_(/ACK 1000 is outside/.test(e.message), e.message);
  await peer.closed();
  await peer[Symbol.asyncDispose]();
  await using p = await rawConnect(server.addr.port);
  await p.send(resume(ID, token, 0));
  assertEquals((await p.until("welcome")).nextOffset, 0);
});

Deno.test("a second hello on an attached connection is unexpected_message", async () => {
  await using server = await testServer(READS_OFTEN);
  const { peer } = await started(server.addr.port);
  await using _ = peer;
  await peer.send(hello(ID, 1000, tok(1)));
  assertEquals(
    errorOf(await peer.until("error")).code,
    ErrorCode.UNEXPECTED_MESSAGE,
  );
  await peer.closed();
});

Deno.test("a resume at count gets a WELCOME and no numbers; its ACK(count) completes", async () => {
  await using server = await testServer({ intervalMs: 0 });
  await using p = await rawConnect(server.addr.port);
  await p.send(hello(ID, 5, tok(3)));
  const w = await p.until("welcome");
  await p.until("final");
  p.close(); // the ACK(count) never left
  await eventually(() => server.metrics().connections === 0, "the detach");
  await using again = await rawConnect(server.addr.port, { autoAck: false });
  await again.send(resume(ID, w.token, 5));
  const w2 = await again.until("welcome");
  assertEquals([w2.count, w2.nextOffset], [5, 5]);
  await again.send(ack(5));
  assertEquals((await again.next())?.type, "done");
  await again.closed();
  assertEquals(server.metrics().sessions, 0);
});

Deno.test("WELCOME announces the window and the ACK interval; the server never has more than the window in flight", async () => {
  await using server = await testServer({
    intervalMs: 1,
    window: 8,
    clientTimeoutMs: 2000,
  });
  await using p = await rawConnect(server.addr.port, { autoAck: false });
  await p.send(hello(ID, 100, tok(1)));
  const w = await p.until("welcome");
  assertEquals([w.window, w.ackIntervalMs, w.intervalMs], [8, 1000, 1]);
  const offsets: number[] = [];
  for (let i = 0; i < 8; i++) offsets.push((await p.until("number")).offset);
  assertEquals(offsets, [0, 1, 2, 3, 4, 5, 6, 7]);
  // Paused: nothing more arrives while nothing is acknowledged.
  await assertSilent(p, 100);
  assertEquals(server.metrics().unackedNumbers, 8);
  await p.send(ack(3));
  for (let i = 8; i < 11; i++) {
    assertEquals((await p.until("number")).offset, i);
  }
  await assertSilent(p, 100);
  const m = await scrape(server);
  assertEquals(m.get("seqstream_window"), 8);
  assertEquals(m.get("seqstream_unacked_peak"), 8);
  assertEquals(m.get("seqstream_unacked_numbers"), 8);
  assertEquals(m.get("seqstream_acks_received_total"), 1);
});

Deno.test("burst mode sends at most the window before an ACK", async () => {
  await using server = await testServer({ intervalMs: 0, window: 50 });
  await using p = await rawConnect(server.addr.port, { autoAck: false });
  await p.send(hello(ID, 1000, tok(1)));
  await p.until("welcome");
  let last = -1;
  for (let i = 0; i < 50; i++) last = (await p.until("number")).offset;
  assertEquals(last, 49);
  await assertSilent(p, 100);
  await p.send(ack(50));
  assertEquals((await p.until("number")).offset, 50);
  assertEquals(server.metrics().unackedPeak, 50);
});

Deno.test("a client that stops sending mid-stream is closed with client_timeout within clientTimeoutMs; its session stays resumable", async () => {
  const clientTimeoutMs = 300;
  await using server = await testServer({
    intervalMs: 5,
    clientTimeoutMs,
    stallMs: 5000,
  });
  await using p = await rawConnect(server.addr.port);
  await p.send(hello(ID, 10_000, tok(1)));
  const w = await p.until("welcome");
  assertEquals(w.ackIntervalMs, 150);
  // Healthy for a few client timeouts: the helper acknowledges.
  await new Promise((r) => setTimeout(r, 3 * clientTimeoutMs));
  assertEquals(server.metrics().connections, 1);
  p.freeze();
  const frozenAt = performance.now();
  const e = errorOf(await p.until("error", 3000));
  const after = performance.now() - frozenAt;
  assertEquals(e.code, ErrorCode.CLIENT_TIMEOUT);
  // Not before the timeout: the last ACK may have left up to one ACK
  // interval before the freeze. How soon after it is the server's timers'
  // business, tested to the millisecond on a fake clock
  // (server/stream_test.ts); here the ceiling is the 3 s wait above, so
  // that a loaded host does not fail the test (it was the timeout + 100 ms).
  assert_(
    after >= clientTimeoutMs - w.ackIntervalMs,
    `closed ${after}ms after the freeze, before the client timeout`,
  );
  await p.closed();
  await eventually(() => server.metrics().connections === 0, "the close");
  assertEquals(server.metrics().sessions, 1);
  assertEquals(server.metrics().counters.clientTimeouts, 1);
  await using again = await rawConnect(server.addr.port);
  await again.send(resume(ID, w.token, p.nextOffset));
  assertEquals((await again.until("welcome")).nextOffset, p.nextOffset);
});

Deno.test("a client that keeps alive but acknowledges nothing is dropped as a slow consumer after stallMs", async () => {
  await using server = await testServer({
    intervalMs: 1,
    window: 8,
    clientTimeoutMs: 300,
    stallMs: 400,
  });
  await using p = await rawConnect(server.addr.port, { autoAck: false });
  await p.send(hello(ID, 100, tok(1)));
  await p.until("welcome");
  const t0 = performance.now();
  const keepAlive = setInterval(() => void p.send(ack(0)).catch(() => {}), 100);
  try {
    const e = errorOf(await p.until("error", 3000));
    assertEquals(e.code, ErrorCode.SLOW_CONSUMER);
    assert_(performance.now() - t0 >= 390, "not before stallMs");
  } finally {
    clearInterval(keepAlive);
  }
  await p.closed();
  await eventually(() => server.metrics().connections === 0, "the close");
  assertEquals(server.metrics().counters.slowConsumersDropped, 1);
  assertEquals(server.metrics().counters.clientTimeouts, 0);
  assertEquals(server.metrics().sessions, 1);
});

/** Asserts that nothing arrives for `ms`. */
async function assertSilent(
  p: Awaited<ReturnType<typeof rawConnect>>,
  ms: number,
): Promise<void> {
  const m = await p.next(ms).catch(() => "silent");
  assertEquals(m, "silent", `expected silence, got ${JSON.stringify(m)}`);
}
