/**
 * Hostile input never crashes the server or harms other clients: each bad
 * socket gets an error frame where possible and is closed promptly.
 */

import { ErrorCode } from "../protocol/errors.ts";
import { encodeMessage } from "../protocol/messages.ts";
import { assert_, assertEquals } from "./_assert.ts";
import { eventually, testServer } from "./_fixtures.ts";
import { rawConnect, runSession } from "./_raw.ts";

const enc = new TextEncoder();

const CASES: [string, Uint8Array, number][] = [
  [
    "an HTTP request",
    enc.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
    ErrorCode.MALFORMED_FRAME,
  ],
  [
    "an oversized length",
    new Uint8Array([0x01, 0xff, 0xff]),
    ErrorCode.MALFORMED_FRAME,
  ],
  ["an unknown type", new Uint8Array([0x7f, 0, 0]), ErrorCode.MALFORMED_FRAME],
  [
    "a version 1 hello",
    new Uint8Array([0x01, 0, 2, 1, 2]),
    ErrorCode.UNSUPPORTED_VERSION,
  ],
  [
    "a hello of the wrong length",
    new Uint8Array([0x01, 0, 2, 2, 2]),
    ErrorCode.MALFORMED_FRAME,
  ],
  [
    "a server message",
    encodeMessage({ type: "done" }),
    ErrorCode.UNEXPECTED_MESSAGE,
  ],
  [
    "half a frame, then silence",
    new Uint8Array([0x01, 0x00, 0x25, 1, 2, 3]),
    ErrorCode.HANDSHAKE_TIMEOUT,
  ],
  ["nothing at all", new Uint8Array(0), ErrorCode.HANDSHAKE_TIMEOUT],
];

for (const [what, bytes, code] of CASES) {
  Deno.test(`server answers ${what} with error ${code} and closes, while a good client completes`, async () => {
    await using server = await testServer({
      handshakeTimeoutMs: 200,
      intervalMs: 1,
    });
    const good = runSession(server.addr.port, { count: 50 });
    await using p = await rawConnect(server.addr.port);
    if (bytes.length > 0) await p.sendBytes(bytes);
    const m = await p.next(2000);
    assert_(
      m !== null && m.type === "error",
      `expected an error, got ${JSON.stringify(m)}`,
    );
    assertEquals(m.code, code);
    await p.closed(2000);
    assertEquals(await good, 50);
    await eventually(() => server.metrics().connections === 0, "no sockets");
  });
}

Deno.test("server survives 300 sockets of random garbage at once and still serves", async () => {
  await using server = await testServer({
    handshakeTimeoutMs: 300,
    intervalMs: 1,
  });
  const peers = await Promise.all(
    Array.from({ length: 300 }, () => rawConnect(server.addr.port)),
  );
  await Promise.all(peers.map(async (p, i) => {
    const junk = crypto.getRandomValues(new Uint8Array(1 + (i * 37) % 2000));
    await p.sendBytes(junk).catch(() => {}); // the server may close first
  }));
  await Promise.all(peers.map((p) => p.closed(3000)));
  for (const p of peers) await p[Symbol.asyncDispose]();
  assertEquals(await runSession(server.addr.port, { count: 20 }), 20);
  await eventually(() => server.metrics().connections === 0, "no sockets");
  assertEquals(server.metrics().sessions, 0);
});

Deno.test("beyond --max-connections new sockets get server_busy and the held ones are unharmed", async () => {
  await using server = await testServer({ maxConnections: 2, intervalMs: 1 });
  const a = runSession(server.addr.port, { count: 200 });
  const b = runSession(server.addr.port, { count: 200 });
  await eventually(() => server.metrics().connections === 2, "two connections");
  await using p = await rawConnect(server.addr.port);
  const m = await p.next();
  assert_(m !== null && m.type === "error");
  assertEquals(m.code, ErrorCode.SERVER_BUSY);
  await p.closed();
  assertEquals(await a, 200);
  assertEquals(await b, 200);
  assertEquals(server.metrics().counters.connectionsRejectedBusy, 1);
});
