/**
 * The lean client over real sockets against the in-test v2 server
 * (`client/_fake_server.ts`): it verifies every number, acknowledges as v2
 * says (every quarter window, ACK(count) after FINAL, a keep-alive only when
 * no ACK went out for `ackIntervalMs`), resumes after a cut, and reports a
 * server that breaks the offset order.
 *
 * @module
 */

import { assert_, assertEquals } from "../tests/_assert.ts";
import { startFakeServer } from "../client/_fake_server.ts";
import { formatCrc } from "../protocol/checksum.ts";
import { encodeMessage } from "../protocol/messages.ts";
import { ackFrame, runLeanClient, Sweeper } from "./lean_client.ts";

const noBackoff = () => 0;

Deno.test("lean client: PASS with the server's sum and CRC, an ACK every quarter window and ACK(count) last", async () => {
  await using server = startFakeServer({ window: 16 });
  const ac = new AbortController();
  const sweeper = new Sweeper(20, ac.signal);
  let numbers = 0;
  const r = await runLeanClient({
    hostname: "127.0.0.1",
    port: server.port,
    count: 200,
    sweeper,
    signal: ac.signal,
    backoff: noBackoff,
    onNumber: () => numbers++,
  });
  sweeper.close();
  const want = server.expected(200);
  assertEquals(
    [r.result, r.sum, r.checksum, r.serverChecksum, r.reconnects, numbers],
    ["PASS", want.sum, formatCrc(want.crc), formatCrc(want.crc), 0, 200],
  );
  assertEquals(server.acks.at(-1), 200);
  const cadence = server.acks.slice(0, -1);
  assert_(cadence.every((n, i) => n === 4 * (i + 1)), `${cadence}`);
  assertEquals(sweeper.size, 0, "nothing left watched");
});

Deno.test("lean client: a keep-alive ACK only after ackIntervalMs without one, never ACK(count) early", async () => {
  await using server = startFakeServer({
    window: 16,
    ackIntervalMs: 100,
    pauseAt: () => 3,
  });
  const ac = new AbortController();
  const sweeper = new Sweeper(10, ac.signal);
  const t0 = performance.now();
  const done = runLeanClient({
    hostname: "127.0.0.1",
    port: server.port,
    count: 10,
    sweeper,
    signal: ac.signal,
    backoff: noBackoff,
    idleTimeoutMs: 5000,
  });
  while (server.acks.length < 3) await new Promise((r) => setTimeout(r, 20));
  const elapsed = performance.now() - t0;
  ac.abort();
  const r = await done;
  sweeper.close();
  assertEquals(server.acks.slice(0, 3), [3, 3, 3], "keep-alives at offset 3");
  assert_(elapsed >= 250, `three keep-alives took ${elapsed} ms (≥ 3 × 100)`);
  assertEquals([r.result, r.error?.code], ["ERROR", "aborted"]);
});

Deno.test("lean client: resumes after a cut from the first number it lacks", async () => {
  let cut = false;
  await using server = startFakeServer({
    intervalMs: 1,
    beforeSend: (offset) => {
      if (offset !== 50 || cut) return true;
      cut = true;
      return false;
    },
  });
  const ac = new AbortController();
  const sweeper = new Sweeper(20, ac.signal);
  const welcomes: boolean[] = [];
  let lost = 0;
  const r = await runLeanClient({
    hostname: "127.0.0.1",
    port: server.port,
    count: 120,
    sweeper,
    signal: ac.signal,
    backoff: noBackoff,
    onWelcome: (resumed) => welcomes.push(resumed),
    onLost: () => lost++,
  });
  sweeper.close();
  assertEquals([r.result, r.reconnects, lost], ["PASS", 1, 1]);
  assertEquals(welcomes, [false, true]);
  assertEquals(server.connections, 2);
});

Deno.test("lean client: a number out of order is a protocol violation, not a PASS", async () => {
  await using server = startFakeServer({
    onHandshake: async (m, peer) => {
      assertEquals(m.type, "hello");
      await peer.send({
        type: "welcome",
        count: 5,
        nextOffset: 0,
        token: new Uint8Array(16),
        intervalMs: 0,
        ttlMs: 30_000,
        window: 16,
        ackIntervalMs: 1000,
      });
      await peer.send({ type: "number", offset: 1, value: 7 });
      return true;
    },
  });
  const ac = new AbortController();
  const sweeper = new Sweeper(20, ac.signal);
  const r = await runLeanClient({
    hostname: "127.0.0.1",
    port: server.port,
    count: 5,
    sweeper,
    signal: ac.signal,
    backoff: noBackoff,
  });
  sweeper.close();
  assertEquals([r.result, r.error?.code], ["ERROR", "protocol_violation"]);
  assert_(/offset 1; expected number for offset 0/.test(r.error!.message));
});

Deno.test("lean client: its ACK frame is the codec's, byte for byte", () => {
  for (const n of [0, 1, 255, 256, 65535, 0x01020304, 0xffffffff]) {
    assertEquals(
      [...ackFrame(n)],
      [...encodeMessage({ type: "ack", nextOffset: n })],
    );
  }
});

Deno.test("lean client: the sweeper closes a connection silent past its idle limit; it resumes and PASSes", async () => {
  await using server = startFakeServer({
    window: 16,
    ackIntervalMs: 50,
    pauseAt: (peer) => peer.index === 0 ? 5 : undefined,
  });
  const ac = new AbortController();
  const sweeper = new Sweeper(20, ac.signal);
  const lost: string[] = [];
  const r = await runLeanClient({
    hostname: "127.0.0.1",
    port: server.port,
    count: 20,
    sweeper,
    signal: ac.signal,
    backoff: noBackoff,
    idleTimeoutMs: 300,
    onLost: (_now, why) => lost.push((why as Error).message),
  });
  sweeper.close();
  assertEquals([r.result, r.reconnects], ["PASS", 1]);
  assertEquals(lost, ["No data from the server for 300ms"]);
  assertEquals(sweeper.size, 0, "nothing left watched");
});
