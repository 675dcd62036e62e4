/**
 * The run loop over real sockets against the in-test fake v2 server
 * (`_fake_server.ts`, port 0): the wiring of link, session, classifier,
 * backoff and clock. The rules themselves are table-tested in
 * `session_test.ts` and `retry_test.ts`.
 */

import { assert_, assertEquals } from "../tests/_assert.ts";
import { ErrorCode } from "../protocol/errors.ts";
import { formatCrc } from "../protocol/checksum.ts";
import { FakeClock } from "../common/fake_clock.ts";
import { eventually } from "../tests/_fixtures.ts";
import { type FakePeer, startFakeServer } from "./_fake_server.ts";
import { connect, runClient } from "./client.ts";
import type { ClientEvent } from "./types.ts";

const noBackoff = () => 0;

Deno.test("runClient PASSes against a v2 server, acknowledging every quarter window and ACK(count) last", async () => {
  await using server = startFakeServer({ window: 16 });
  const r = await runClient({ port: server.port, count: 200 });
  const want = server.expected(200);
  assertEquals(
    [r.result, r.sum, r.checksum, r.serverChecksum, r.reconnects],
    ["PASS", want.sum, formatCrc(want.crc), formatCrc(want.crc), 0],
  );
  assertEquals(server.acks.at(-1), 200);
  const cadence = server.acks.slice(0, -1);
  assert_(cadence.every((n, i) => n === 4 * (i + 1)), `${cadence}`);
  assertEquals(server.sessions.get(r.id)?.complete, true);
});

Deno.test("runClient resumes after a cut mid-stream and after a retriable refusal", async () => {
  let cut = false;
  await using server = startFakeServer({
    intervalMs: 1,
    onHandshake: async (m, peer) => {
      if (peer.index !== 1) return false;
      assertEquals(m.type, "resume");
      await peer.send({
        type: "error",
        code: ErrorCode.SERVER_BUSY,
        message: "busy",
      });
      peer.close();
      return true;
    },
    beforeSend: (offset) => {
      if (offset !== 50 || cut) return true;
      cut = true;
      return false;
    },
  });
  const events: string[] = [];
  const r = await runClient({
    port: server.port,
    count: 120,
    backoff: noBackoff,
    onEvent: (e) => events.push(e.type),
  });
  assertEquals([r.result, r.reconnects], ["PASS", 1]);
  assertEquals(server.connections, 3);
  assertEquals(events.filter((e) => e === "disconnected").length, 2);
});

Deno.test("runClient waits GOAWAY's retryAfterMs before reconnecting", async () => {
  let goneAt = 0;
  let backAt = 0;
  await using server = startFakeServer({
    onHandshake: async (_m, peer) => {
      if (peer.index === 0) {
        await peer.send({ type: "goaway", retryAfterMs: 300, message: "bye" });
        goneAt = Date.now();
        peer.close();
        return true;
      }
      backAt = Date.now();
      return false;
    },
  });
  let retryIn = -1;
  const r = await runClient({
    port: server.port,
    count: 10,
    backoff: noBackoff,
    onEvent: (e) => {
      if (e.type === "disconnected") retryIn = e.retryInMs;
    },
  });
  assertEquals(r.result, "PASS");
  assertEquals(retryIn, 300);
  assert_(backAt - goneAt >= 290, `reconnected after ${backAt - goneAt}ms`);
});

Deno.test("runClient awaits the durable final checkpoint before ACK(count)", async () => {
  let saved = -1;
  let savedAtAck = -2;
  await using server = startFakeServer({
    onAck: (n, s) => {
      if (n === s.count) savedAtAck = saved;
    },
  });
  const r = await runClient({
    port: server.port,
    count: 30,
    onCheckpoint: async (s) => {
      if (s.nextOffset !== 30) return;
      await new Promise((r) => setTimeout(r, 100));
      saved = s.nextOffset;
    },
  });
  assertEquals(r.result, "PASS");
  assertEquals(savedAtAck, 30, "ACK(count) came before the state was saved");
});

Deno.test("runClient: ACK(count) landed but DONE was lost, session_completed on resume → PASS", async () => {
  await using server = startFakeServer({
    onAck: (n, s, peer) => {
      if (n === s.count && peer.index === 0) {
        s.complete = true; // the server completed, and the DONE is lost
        peer.close();
      }
    },
  });
  const r = await runClient({
    port: server.port,
    count: 20,
    backoff: noBackoff,
  });
  assertEquals([r.result, r.reconnects], ["PASS", 0]);
  assertEquals(server.connections, 2);
});

Deno.test("runClient ends a stray number at or beyond count as protocol_violation", async () => {
  await using server = startFakeServer({
    onHandshake: async (m, peer) => {
      if (m.type !== "hello") return false;
      await peer.send({
        type: "welcome",
        count: 5,
        nextOffset: 0,
        token: m.token,
        intervalMs: 0,
        ttlMs: 1000,
        window: 16,
        ackIntervalMs: 1000,
      });
      await peer.send({ type: "number", offset: 5, value: 1 });
      return true;
    },
  });
  const r = await runClient({ port: server.port, count: 5 });
  assertEquals([r.result, r.error?.code], ["ERROR", "protocol_violation"]);
});

Deno.test("runClient keeps a silent connection alive with ACKs every ackIntervalMs, then reconnects on its idle limit", async () => {
  await using server = startFakeServer({
    ackIntervalMs: 40,
    pauseAt: (peer) => peer.index === 0 ? 5 : undefined,
  });
  const events: ClientEvent[] = [];
  const r = await runClient({
    port: server.port,
    count: 20,
    idleTimeoutMs: 300,
    backoff: noBackoff,
    onEvent: (e) => events.push(e),
  });
  assertEquals([r.result, r.reconnects], ["PASS", 1]);
  const lost = events.find((e) => e.type === "disconnected");
  assertEquals(
    lost?.type === "disconnected" && lost.error,
    "No data from the server for 300ms",
  );
  // Window 16 → cadence 4: ACK(4), then keep-alives of ACK(5) during the 300ms silence.
  const keepAlives = server.acks.filter((n) => n === 5).length;
  assert_(keepAlives >= 4, `${keepAlives} keep-alives in 300ms at 40ms`);
});

Deno.test("runClient reports tls_mismatch when a plain client hears TLS", async () => {
  await using server = startFakeServer({
    onHandshake: async (_m, peer) => {
      // A TLS alert record, as a TLS server answers a plain hello.
      await peer.raw(new Uint8Array([0x15, 3, 3, 0, 2, 2, 50]));
      peer.close();
      return true;
    },
  });
  const r = await runClient({ port: server.port, count: 5 });
  assertEquals([r.result, r.error?.code], ["ERROR", "tls_mismatch"]);
});

Deno.test("connect().close() aborts a run with ERROR aborted and leaves nothing open", async () => {
  await using server = startFakeServer({ pauseAt: () => 3 });
  const handle = connect({ port: server.port, count: 10, idleTimeoutMs: 5000 });
  while (server.acks.length === 0 && server.connections === 0) {
    await new Promise((r) => setTimeout(r, 5));
  }
  await handle.close();
  const r = await handle.result;
  assertEquals([r.result, r.error?.code], ["ERROR", "aborted"]);
});

Deno.test("runClient gives up as unreachable after connectGiveUpMs", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close(); // nothing listens there now
  const r = await runClient({
    port,
    count: 5,
    connectGiveUpMs: 200,
    backoff: () => 20,
  });
  assertEquals([r.result, r.error?.code], ["ERROR", "unreachable"]);
  assert_(/connection refused/.test(r.error!.message), r.error!.message);
});

Deno.test("connect() saves the lastContact that the end of a welcomed connection moves, so a restart does not judge a kept session stale", async () => {
  const T0 = 1_700_000_000_000;
  const clock = new FakeClock(T0);
  let first: FakePeer | undefined;
  await using server = startFakeServer({
    pauseAt: (peer) => peer.index === 0 ? 3 : undefined,
    onHandshake: async (_m, peer) => {
      if (peer.index === 0) {
        first = peer;
        return false;
      }
      await peer.send({
        type: "error",
        code: ErrorCode.SERVER_BUSY,
        message: "busy",
      });
      peer.close();
      return true;
    },
  });
  const saved: number[] = [];
  let numbers = 0;
  let disconnected = 0;
  const handle = connect({
    port: server.port,
    count: 10,
    clock,
    backoff: () => 1000,
    onNumber: () => numbers++,
    onCheckpoint: (s) => void saved.push(s.lastContact),
    onEvent: (e) => {
      if (e.type === "disconnected") disconnected++;
    },
  });
  await eventually(() => numbers === 3, "three numbers");
  // A minute later (a slow interval) the server ends the connection: the
  // server's TTL runs from now, and so must the saved state's.
  clock.set(T0 + 60_000);
  first!.close();
  await eventually(() => disconnected === 1, "the disconnect");
  await handle.close();
  assertEquals(saved, [T0, T0 + 60_000]);
  assertEquals((await handle.result).error?.code, "aborted");
});

Deno.test("runClient ends in checkpoint_failed when the durable final save rejects, without ACK(count)", async () => {
  await using server = startFakeServer();
  const r = await runClient({
    port: server.port,
    count: 10,
    onCheckpoint: (_s, { durable }) =>
      durable ? Promise.reject(new Error("disk full")) : undefined,
  });
  assertEquals([r.result, r.error?.code], ["ERROR", "checkpoint_failed"]);
  assert_(/disk full/.test(r.error!.message), r.error!.message);
  assertEquals(server.acks.includes(10), false, `${server.acks}`);
});
