import { FakeClock } from "../common/fake_clock.ts";
import { silentLogger } from "../common/logger.ts";
import { ErrorCode } from "../protocol/errors.ts";
import { seedFromHex, valueAt } from "../protocol/prng.ts";
import { assert_, assertEquals } from "../tests/_assert.ts";
import { ack, hello, resume } from "../tests/_raw.ts";
import { FramePeer } from "./_frame_peer.ts";
import { memoryPair, type MemoryTransport } from "./_memory_transport.ts";
import {
  Connection,
  type ConnectionHost,
  type SessionPort,
} from "./connection.ts";
import { newCounters } from "./metrics.ts";
import { Scheduler } from "./scheduler.ts";
import type { Attachment } from "./sessions.ts";

const SETTINGS = {
  intervalMs: 10,
  ttlMs: 1000,
  handshakeTimeoutMs: 1000,
  clientTimeoutMs: 1000,
  stallMs: 1000,
  window: 16,
  ackIntervalMs: 500,
};

/**
 * One connection on a fake clock over an in-memory transport, served by a
 * fake host whose session layer is `sessions`. No socket, no real timer.
 */
function serveOne(sessions: SessionPort, settings = SETTINGS) {
  const clock = new FakeClock(1_700_000_000_000, 0);
  const scheduler = new Scheduler(clock);
  const events: string[] = [];
  const refused: string[] = [];
  const host: ConnectionHost = {
    settings,
    shuttingDown: false,
    clock,
    scheduler,
    sessions,
    counters: newCounters(),
    log: silentLogger,
    attached: () => events.push("attached"),
    detached: () => events.push("detached"),
    closed: () => events.push("closed"),
    refused: (code) => refused.push(code),
  };
  const [client, server] = memoryPair();
  const conn = new Connection(server, host);
  const served = conn.serve();
  const peer = new FramePeer(client);
  return {
    clock,
    conn,
    client: client as MemoryTransport,
    peer,
    events,
    refused,
    served,
    scheduler,
    host,
  };
}

const unexpected = (): Promise<never> =>
  Promise.reject(new TypeError('Invalid seed hex ""'));

const noSessions: SessionPort = {
  open: unexpected,
  resume: unexpected,
  holds: () => false,
  detach: () => Promise.resolve(),
  complete: () => Promise.resolve(false),
};

function attachment(count: number): Attachment {
  return {
    id: crypto.randomUUID(),
    seed: seedFromHex("0011223344556677"),
    count,
    token: new Uint8Array(16),
    epoch: 1,
  };
}

/** A session layer that attaches `att` and records detaches and completions. */
function oneSession(att: Attachment) {
  const calls: string[] = [];
  let held = true;
  const port: SessionPort = {
    open: () => (calls.push("open"), Promise.resolve(att)),
    resume: () => (calls.push("resume"), Promise.resolve(att)),
    holds: () => held,
    detach: () => (calls.push("detach"), held = false, Promise.resolve()),
    complete:
      () => (calls.push("complete"), held = false, Promise.resolve(true)),
  };
  return { port, calls };
}

for (const how of ["hello", "resume"] as const) {
  Deno.test(`Connection answers a non-protocol error of the session layer on ${how} with store_unavailable and closes`, async () => {
    const c = serveOne(noSessions);
    const id = crypto.randomUUID(), token = new Uint8Array(16);
    await c.peer.send(
      how === "hello" ? hello(id, 5, token) : resume(id, token, 0),
    );
    await c.clock.advance(0);
    const m = c.peer.messages[0];
    assert_(m?.type === "error", JSON.stringify(m));
    assertEquals(m.code, ErrorCode.STORE_UNAVAILABLE);
    assert_(m.message.includes(id), m.message);
    await c.served;
    assertEquals(c.peer.end, "eof");
    assertEquals(c.events, ["closed"]);
    assertEquals(c.refused, ["store_unavailable"]);
    assertEquals(c.clock.pending, 0);
  });
}

Deno.test("Connection detaches a session whose attach completed after the server said GOAWAY", async () => {
  const detached: string[] = [];
  const gate = Promise.withResolvers<Attachment>();
  const att = attachment(5);
  const c = serveOne({
    ...noSessions,
    open: () => gate.promise,
    holds: () => true,
    detach: (a) => (detached.push(a.id), Promise.resolve()),
  });
  await c.peer.send(hello(att.id, 5, att.token));
  await c.clock.advance(20);
  c.conn.goAway("Server is shutting down");
  await c.clock.advance(0);
  assertEquals(c.peer.messages.map((m) => m.type), ["goaway"]);
  gate.resolve(att); // the store answers after the GOAWAY
  await c.served;
  assertEquals(c.peer.end, "eof");
  assertEquals(detached, [att.id]);
  assertEquals(c.events, ["closed"]); // never registered as attached
  assertEquals(c.clock.pending, 0);
});

Deno.test("Connection refuses with handshake_timeout at the handshake deadline on the clock, not a millisecond before", async () => {
  const c = serveOne(noSessions);
  await c.clock.advance(SETTINGS.handshakeTimeoutMs - 1);
  assertEquals(c.peer.messages, []);
  await c.clock.advance(1);
  const m = c.peer.messages[0];
  assert_(m?.type === "error", JSON.stringify(m));
  assertEquals(m.code, ErrorCode.HANDSHAKE_TIMEOUT);
  await c.served;
  assertEquals(c.refused, ["handshake_timeout"]);
  assertEquals(c.clock.pending, 0);
});

Deno.test("Connection paces numbers at intervalMs of monotonic time, a wall-clock step changes nothing, and ACK(count) completes with DONE", async () => {
  const att = attachment(5);
  const s = oneSession(att);
  const c = serveOne(s.port);
  await c.clock.advance(3);
  await c.peer.send(hello(att.id, att.count, att.token));
  await c.clock.advance(0);
  assertEquals(c.peer.messages.map((m) => m.type), ["welcome", "number"]);
  assertEquals(c.conn.view?.attachedAt, 1_700_000_000_003);
  c.clock.set(0); // the wall clock is stepped back: pacing goes on
  await c.clock.advance(SETTINGS.intervalMs - 1);
  assertEquals(c.peer.of("number").length, 1);
  await c.clock.advance(1);
  assertEquals(c.peer.of("number").length, 2);
  await c.clock.advance(3 * SETTINGS.intervalMs);
  const numbers = c.peer.of("number");
  assertEquals(
    numbers.map((m) => [m.offset, m.value]),
    [0, 1, 2, 3].map((o) => [o, valueAt(att.seed, o)]),
  );
  assertEquals(c.peer.of("final").length, 1);
  await c.peer.send(ack(att.count));
  await c.clock.advance(0);
  await c.served;
  assertEquals(c.peer.messages.at(-1)?.type, "done");
  assertEquals(s.calls, ["open", "complete"]);
  assertEquals(c.events, ["attached", "detached", "closed"]);
  assertEquals(c.clock.pending, 0);
});

Deno.test("Connection drops a silent client at clientTimeoutMs, and its session detaches", async () => {
  const att = attachment(1000);
  const s = oneSession(att);
  const c = serveOne(s.port);
  await c.peer.send(hello(att.id, att.count, att.token));
  await c.clock.advance(SETTINGS.clientTimeoutMs - 1);
  assertEquals(c.peer.of("error"), []);
  await c.clock.advance(1);
  assertEquals(c.peer.of("error").map((m) => m.code), [
    ErrorCode.CLIENT_TIMEOUT,
  ]);
  await c.served;
  assertEquals(s.calls, ["open", "detach"]);
  assertEquals(c.host.counters.clientTimeouts, 1);
  assertEquals(c.clock.pending, 0);
});

Deno.test("Connection treats a reset link as a gone peer: the session detaches, nothing is logged as a failure", async () => {
  const att = attachment(1000);
  const s = oneSession(att);
  const errors: string[] = [];
  const c = serveOne(s.port);
  (c.host as { log: ConnectionHost["log"] }).log = {
    ...silentLogger,
    error: (msg) => errors.push(msg),
  };
  await c.peer.send(hello(att.id, att.count, att.token));
  await c.clock.advance(25);
  c.client.reset();
  // No read is in flight (no ACK is due yet): the next NUMBER's write
  // fails and notices the reset.
  await c.clock.advance(SETTINGS.intervalMs);
  await c.served;
  assertEquals(c.peer.end, "ConnectionReset");
  assertEquals(s.calls, ["open", "detach"]);
  assertEquals(errors, []);
  assertEquals(c.events, ["attached", "detached", "closed"]);
  assertEquals(c.clock.pending, 0);
});

Deno.test("Connection answers ACK(count) of a session taken over while its completion was recorded with ERROR taken_over, not a bare EOF", async () => {
  const att = attachment(2);
  const s = oneSession(att);
  // Another server resumed the session: the completion's compare-and-set
  // fails, and the session layer lets the attachment go.
  const c = serveOne({ ...s.port, complete: () => Promise.resolve(false) });
  await c.peer.send(hello(att.id, att.count, att.token));
  await c.clock.advance(3 * SETTINGS.intervalMs);
  assertEquals(c.peer.of("final").length, 1);
  await c.peer.send(ack(att.count));
  await c.served;
  const m = c.peer.messages.at(-1);
  assert_(m?.type === "error", JSON.stringify(m));
  assertEquals(m.code, ErrorCode.TAKEN_OVER);
  assert_(m.message.includes(att.id), m.message);
  assertEquals(c.peer.end, "eof");
  assertEquals(c.host.counters.sessionsTakenOver, 1);
  assertEquals(c.events, ["attached", "detached", "closed"]);
  assertEquals(c.clock.pending, 0);
});

Deno.test("Connection refuses with taken_over an attachment a takeover notice dropped before the connection registered, instead of streaming it", async () => {
  const att = attachment(1000);
  const calls: string[] = [];
  // The session layer attached it, then a takeover notice (a newer resume
  // elsewhere) was drained before this connection registered: it finds no
  // connection to close, and the session layer holds nothing any more.
  const c = serveOne({
    ...noSessions,
    resume: () => Promise.resolve(att),
    holds: () => false,
    detach: () => (calls.push("detach"), Promise.resolve()),
  });
  await c.peer.send(resume(att.id, att.token, 0));
  await c.served;
  assertEquals(c.peer.messages.map((m) => m.type), ["error"]);
  const m = c.peer.messages[0];
  assert_(m?.type === "error");
  assertEquals(m.code, ErrorCode.TAKEN_OVER);
  assertEquals(c.refused, ["taken_over"]);
  assertEquals(c.events, ["closed"]); // never registered as attached
  assertEquals(calls, []);
  assertEquals(c.clock.pending, 0);
});

Deno.test("Connection notices a FIN between reads at its next read: readGap after the last read at the latest, not at once", async () => {
  // Window 4000: the client owes an ACK every 1000 numbers, never here, so
  // only the keep-alive read (readGap = 500 ms after the HELLO's) notices.
  const att = attachment(100_000);
  const s = oneSession(att);
  const c = serveOne(s.port, { ...SETTINGS, window: 4000 });
  await c.peer.send(hello(att.id, att.count, att.token));
  await c.clock.advance(0); // the HELLO's read ended at 0
  await c.client.closeWrite(); // FIN
  await c.clock.advance(499);
  assertEquals(c.events, ["attached"], "no read in flight yet");
  await c.clock.advance(1);
  await c.served;
  assertEquals(c.events, ["attached", "detached", "closed"]);
  assertEquals(s.calls, ["open", "detach"]);
  assertEquals(c.clock.pending, 0);
});

Deno.test("Connection notices a FIN at once while an ACK is due (a read is in flight)", async () => {
  // Window 16: an ACK is due once numbers 0..3 are out (at 30).
  const att = attachment(1000);
  const s = oneSession(att);
  const c = serveOne(s.port);
  await c.peer.send(hello(att.id, att.count, att.token));
  await c.clock.advance(30);
  await c.client.closeWrite();
  await c.served;
  assertEquals(c.events, ["attached", "detached", "closed"]);
  assertEquals(c.clock.monotonic(), 30);
});
