/**
 * Session rules through real sockets, with a raw protocol peer: refusals,
 * expiry, fenced takeover, completion.
 */

import { runClient } from "../client/client.ts";
import { ErrorCode } from "../protocol/errors.ts";
import type { Message } from "../protocol/messages.ts";
import { assert_, assertEquals } from "./_assert.ts";
import { eventually, testServer } from "./_fixtures.ts";
import { hello, rawConnect, resume } from "./_raw.ts";

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

Deno.test("hello is refused with invalid_count for 0 and 65536, unsupported_version for 2", async () => {
  await using server = await testServer();
  for (const count of [0, 65536]) {
    await using p = await rawConnect(server.addr.port);
    await p.send(hello(crypto.randomUUID(), count, tok(1)));
    assertEquals(errorOf(await p.next()).code, ErrorCode.INVALID_COUNT);
    await p.closed();
  }
  await using p = await rawConnect(server.addr.port);
  await p.send({ type: "hello", version: 2, id: ID, count: 5, token: tok(1) });
  const e = errorOf(await p.next());
  assertEquals(e.code, ErrorCode.UNSUPPORTED_VERSION);
  assert_(e.message.includes("version 2"));
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
  await p.send({ type: "ack" });
  await p.until("done");
  await p.closed();
  assertEquals(server.metrics().sessions, 0);
  await using late = await rawConnect(server.addr.port);
  await late.send(resume(ID, w.token, 4));
  assertEquals(errorOf(await late.next()).code, ErrorCode.SESSION_COMPLETED);
  const r = await runClient({ port: server.addr.port, id: ID, count: 7 });
  assertEquals(r.result, "PASS");
});

Deno.test("an ack before the final message is refused as unexpected and the session stays resumable", async () => {
  await using server = await testServer({ intervalMs: 50 });
  const { peer, token } = await started(server.addr.port);
  await peer.send({ type: "ack" });
  assertEquals(
    errorOf(await peer.until("error")).code,
    ErrorCode.UNEXPECTED_MESSAGE,
  );
  await peer.closed();
  await peer[Symbol.asyncDispose]();
  await using p = await rawConnect(server.addr.port);
  await p.send(resume(ID, token, 0));
  assertEquals((await p.until("welcome")).nextOffset, 0);
});
