import { FakeClock } from "../common/fake_clock.ts";
import { silentLogger } from "../common/logger.ts";
import { MemoryStore } from "../store/memory.ts";
import type { Fence, SessionRecord } from "../store/types.ts";
import { assert_, assertEquals } from "../tests/_assert.ts";
import { ack, hello } from "../tests/_raw.ts";
import { FramePeer } from "./_frame_peer.ts";
import { memoryPair } from "./_memory_transport.ts";
import { createServerCore } from "./core.ts";

/** A memory store that records every call made to it. */
class RecordingStore extends MemoryStore {
  readonly calls: string[] = [];
  override get(id: string) {
    this.calls.push("get");
    return super.get(id);
  }
  override create(rec: SessionRecord) {
    this.calls.push("create");
    return super.create(rec);
  }
  override replace(expected: number, rec: SessionRecord) {
    this.calls.push("replace");
    return super.replace(expected, rec);
  }
  override renewLease(owner: string, leaseMs: number, hint?: number) {
    this.calls.push("renewLease");
    return super.renewLease(owner, leaseMs, hint);
  }
  override leaseOf(owner: string) {
    this.calls.push("leaseOf");
    return super.leaseOf(owner);
  }
  override fence(owner: string, f: Fence) {
    this.calls.push("fence");
    return super.fence(owner, f);
  }
  override drainFences(owner: string) {
    this.calls.push("drainFences");
    return super.drainFences(owner);
  }
  override collect(graceMs: number, limit: number) {
    this.calls.push("collect");
    return super.collect(graceMs, limit);
  }
}

const token = () => crypto.getRandomValues(new Uint8Array(16));

Deno.test("ServerCore on a FakeClock serves a short session to a raw-frame client over an in-memory transport, and closes with no timer left", async () => {
  const clock = new FakeClock();
  const core = createServerCore({
    clock,
    serverId: "core-a",
    intervalMs: 10,
    seed: 7,
    log: silentLogger,
  });
  assertEquals(core.id, "core-a");
  await core.start();
  const [client, server] = memoryPair();
  core.accept(server);
  const peer = new FramePeer(client);
  const id = crypto.randomUUID();
  await peer.send(hello(id, 3, token()));
  await clock.advance(0);
  const welcome = peer.messages[0];
  assert_(welcome?.type === "welcome", JSON.stringify(welcome));
  assertEquals([welcome.count, welcome.intervalMs], [3, 10]);
  assertEquals(core.metrics().connections, 1);
  await clock.advance(30);
  const numbers = peer.of("number");
  const final = peer.of("final");
  assertEquals(numbers.map((m) => m.offset), [0, 1]);
  assertEquals(final.map((m) => m.offset), [2]);
  await peer.send(ack(3));
  await clock.advance(0);
  assertEquals(peer.messages.at(-1)?.type, "done");
  await clock.advance(1000);
  assertEquals(peer.end, "eof");
  const m = core.metrics();
  assertEquals([m.connections, m.sessions], [0, 0]);
  assertEquals(m.counters.connectionsAccepted, 1);
  await core.close();
  assertEquals(clock.pending, 0);
});

Deno.test("ServerCore.close sends GOAWAY to a streaming client and leaves its session resumable", async () => {
  const clock = new FakeClock();
  await using store = new RecordingStore({ clock });
  const core = createServerCore({ clock, store, log: silentLogger });
  await core.start();
  const [client, server] = memoryPair();
  core.accept(server);
  const peer = new FramePeer(client);
  const id = crypto.randomUUID();
  await peer.send(hello(id, 100, token()));
  await clock.advance(2500);
  const closing = core.close();
  await clock.advance(0);
  await closing;
  assertEquals(peer.of("goaway").length, 1);
  assertEquals(peer.end, "eof");
  const rec = await store.get(id);
  assertEquals(rec?.owner, "", "detached: resumable elsewhere");
  assert_(rec !== null && rec.retainUntil > clock.now());
  // Only the store's own sweep is left.
  assertEquals(clock.pending, 1);
});

Deno.test("ServerCore.abandon is kill -9: no timer left, transports closed, no store call, no further answer delivered", async () => {
  const clock = new FakeClock();
  const logged: string[] = [];
  await using store = new RecordingStore({ clock, sweepIntervalMs: 3_600_000 });
  const baseline = clock.pending; // the store's own sweep
  const core = createServerCore({
    clock,
    store,
    intervalMs: 10,
    ttlMs: 5000,
    leaseMs: 1000,
    probeLoopLag: true,
    log: { ...silentLogger, info: (msg) => logged.push(msg) },
  });
  await core.start();
  // One streaming session, one detached (its expiry armed), one connection in its handshake.
  const [c1, s1] = memoryPair();
  const [c2, s2] = memoryPair();
  const [c3, s3] = memoryPair();
  core.accept(s1);
  core.accept(s2);
  core.accept(s3);
  const streaming = new FramePeer(c1);
  const leaving = new FramePeer(c2);
  const waiting = new FramePeer(c3);
  const id1 = crypto.randomUUID(), id2 = crypto.randomUUID();
  await streaming.send(hello(id1, 1000, token()));
  await leaving.send(hello(id2, 1000, token()));
  await clock.advance(50);
  await leaving.close();
  await clock.advance(50);
  assertEquals(core.metrics().sessions, 2);
  assert_(clock.pending > baseline + 1, `${clock.pending} timers armed`);
  const rec1 = await store.get(id1);
  // A store call in flight when the process dies (the heartbeat's lease
  // renewal): its answer is never delivered.
  const held = Promise.withResolvers<void>();
  let inFlight = 0;
  store.renewLease = async (owner, leaseMs, hint) => {
    store.calls.push("renewLease");
    inFlight++;
    await held.promise; // sent before the crash, applied after it
    return MemoryStore.prototype.renewLease.call(store, owner, leaseMs, hint);
  };
  await streaming.send(ack(5));
  await clock.advance(1000);
  assert_(inFlight > 0, "a lease renewal is in flight");
  const calls = store.calls.length, lines = logged.length;
  core.abandon();
  assertEquals(clock.pending, baseline);
  await clock.advance(0);
  assertEquals([streaming.end, waiting.end], ["eof", "eof"]);
  const received = streaming.messages.length;
  held.resolve();
  // Hours pass: no heartbeat, no expiry, no write-back, no log line.
  await clock.advance(3 * 3_600_000);
  assertEquals(store.calls.length, calls, store.calls.slice(calls).join());
  assertEquals(logged.length, lines, logged.slice(lines).join());
  assertEquals(streaming.messages.length, received);
  assertEquals(clock.pending, baseline);
  // A transport accepted after death is closed at once.
  const [c4, s4] = memoryPair();
  core.accept(s4);
  const late = new FramePeer(c4);
  await clock.advance(0);
  assertEquals(late.end, "eof");
  await core.close(); // resolves at once after abandon
  assertEquals(store.calls.length, calls);
  // The store still shows the session attached to the dead server.
  assertEquals(rec1?.owner, core.id);
  assertEquals((await store.get(id1))?.owner, core.id);
});
