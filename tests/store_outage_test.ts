/**
 * Store outages: servers keep the streams they have, refuse new sessions and
 * resumes with the retriable `store_unavailable`, never crash, retry the
 * writes they could not make, and recover on their own, even when the store
 * comes back empty (a Redis restarted without persistence).
 *
 * Two levels: the lifecycle on a store that can be switched off and wiped
 * (exact and fast), and real servers on a real Redis that is killed or paused.
 */

import { runClient } from "../client/client.ts";
import { ErrorCode, ProtocolError } from "../protocol/errors.ts";
import type { Message } from "../protocol/messages.ts";
import { startProxy } from "../proxy/fault_proxy.ts";
import { newCounters } from "../server/metrics.ts";
import type { ServerHandle } from "../server/server.ts";
import { SessionManager } from "../server/sessions.ts";
import { FlakyStore } from "../store/_flaky.ts";
import { RedisKeys } from "../store/redis_keys.ts";
import type { SessionStore } from "../store/types.ts";
import { assert_, assertEquals } from "./_assert.ts";
import {
  drained,
  eventually,
  ids,
  redisIgnore,
  reference,
  sharedStore,
  startCluster,
} from "./_cluster.ts";
import { testLog } from "./_fixtures.ts";
import { redisCommand } from "./_redis.ts";
import { hello, rawConnect, resume } from "./_raw.ts";

const tok = (b: number) => new Uint8Array(16).fill(b);

const LEASE_MS = 150; // heartbeat every 50ms

async function manager(store: SessionStore, serverId: string, ttlMs = 200) {
  const counters = newCounters();
  const m = new SessionManager(store, {
    serverId,
    ttlMs,
    leaseMs: LEASE_MS,
    counters,
    log: testLog(),
    onFenced: () => {},
  });
  await m.start();
  return Object.assign(m, { counters, [Symbol.asyncDispose]: () => m.close() });
}

async function codeOf(p: Promise<unknown>): Promise<number | "ok"> {
  try {
    await p;
    return "ok";
  } catch (e) {
    assert_(e instanceof ProtocolError, String(e));
    return e.code;
  }
}

Deno.test("SessionManager retries a detach the store missed and writes it once the store is back", async () => {
  await using store = new FlakyStore();
  await using m = await manager(store, "a", 60_000);
  const [id] = ids(1, "de7a");
  const att = await m.open(id!, 100, tok(1));
  store.down = true;
  await m.detach(att); // does not throw
  assertEquals([m.sessions, m.unsynced], [1, 1]);
  assertEquals(
    await codeOf(m.open(crypto.randomUUID(), 5, tok(2))),
    ErrorCode.STORE_UNAVAILABLE,
  );
  assertEquals(
    await codeOf(m.resume(id!, tok(1), 3)),
    ErrorCode.STORE_UNAVAILABLE,
  );
  store.down = false;
  await eventually(() => m.unsynced === 0, "the detach to be written");
  const rec = await store.get(id!);
  assertEquals([rec?.owner, rec?.status], ["", "live"]);
  assert_(rec!.expiresAt > Date.now());
  assertEquals(await codeOf(m.resume(id!, tok(1), 3)), "ok");
});

Deno.test("SessionManager expires a session whose TTL ran out while the store was down, once it is back", async () => {
  await using store = new FlakyStore();
  await using m = await manager(store, "a", 100);
  const [detachedOk, detachedDown] = ids(2, "e4b1");
  const a1 = await m.open(detachedOk!, 100, tok(1));
  const a2 = await m.open(detachedDown!, 100, tok(2));
  await m.detach(a1); // recorded
  store.down = true;
  await m.detach(a2); // not recorded: the record still names this server
  await eventually(
    () => m.sessions === 0,
    "both TTLs to run out",
    AbortSignal.timeout(2000),
  );
  assertEquals(m.counters.sessionsExpired, 0); // no tombstone could be written
  store.down = false;
  await eventually(
    () => m.counters.sessionsExpired === 2 && m.unsynced === 0,
    "both tombstones to be written",
  );
  for (const id of [detachedOk!, detachedDown!]) {
    assertEquals((await store.get(id))?.status, "expired");
  }
  assertEquals(
    await codeOf(m.resume(detachedDown!, tok(2), 1)),
    ErrorCode.SESSION_EXPIRED,
  );
});

Deno.test("SessionManager keeps a session attached when its completion cannot be recorded", async () => {
  await using store = new FlakyStore();
  await using m = await manager(store, "a");
  const [id] = ids(1, "c0de");
  const att = await m.open(id!, 3, tok(1));
  store.down = true;
  assertEquals(await codeOf(m.complete(att)), ErrorCode.STORE_UNAVAILABLE);
  assert_(m.holds(att));
  store.down = false;
  assertEquals(await m.complete(att), true);
  assertEquals((await store.get(id!))?.status, "completed");
});

Deno.test("SessionManager writes its sessions back after the store lost its data; other servers wait for them", async () => {
  await using store = new FlakyStore();
  await using a = await manager(store, "a", 60_000);
  await using b = await manager(store, "b", 60_000);
  const [attachedId, detachedId, pendingId] = ids(3, "105e");
  const attached = await a.open(attachedId!, 100, tok(1));
  await a.detach(await a.open(detachedId!, 100, tok(2)));
  const pending = await a.open(pendingId!, 100, tok(3));
  store.down = true;
  await a.detach(pending); // missed by the store
  store.wipe();
  store.down = false;
  // Until A has written its sessions back, B answers "unavailable", never "unknown".
  const code = await codeOf(b.resume(attachedId!, tok(1), 1));
  assert_(code === ErrorCode.STORE_UNAVAILABLE || code === "ok", `got ${code}`);
  await eventually(
    async () =>
      (await store.get(attachedId!)) !== null &&
      (await store.get(pendingId!))?.owner === "",
    "A to write its sessions back",
  );
  assertEquals((await store.get(detachedId!))?.owner, "");
  assert_((a.storeOps.get("resync") ?? 0) >= 3);
  assert_(a.holds(attached) || code === "ok");
  // Every one of them can be resumed on B.
  for (const [id, t] of [[detachedId!, 2], [pendingId!, 3]] as const) {
    assertEquals(await codeOf(b.resume(id, tok(t), 1)), "ok");
  }
  // A session nobody holds is unknown again once the recovery window (one lease) has passed.
  await new Promise((r) => setTimeout(r, LEASE_MS * 2));
  assertEquals(
    await codeOf(b.resume(crypto.randomUUID(), tok(9), 0)),
    ErrorCode.UNKNOWN_SESSION,
  );
});

// ---- Real servers on a real Redis ----

const SEED = 99;

function redisTest(name: string, fn: () => Promise<void>): void {
  Deno.test({
    name: redisIgnore ? `${name} (ignored: ${redisIgnore})` : name,
    ignore: redisIgnore !== undefined,
    fn,
  });
}

async function firstAnswer(port: number, m: Message): Promise<Message | null> {
  await using p = await rawConnect(port);
  await p.send(m);
  return await p.next();
}

for (
  const how of [
    "killed and restarted empty",
    "paused (SIGSTOP) and resumed",
  ] as const
) {
  redisTest(
    `Redis ${how} mid-run: streams go on, new sessions and resumes get store_unavailable, ` +
      `and the clients PASS once Redis is back`,
    async () => {
      await using shared = await sharedStore("redis");
      const redis = shared.redis!;
      await using cluster = await startCluster(2, shared, {
        seed: SEED,
        intervalMs: 4,
        ttlMs: 5000,
        leaseMs: 300,
      });
      const servers = cluster.servers;
      await using proxy = await startProxy({ upstreams: cluster.upstreams });
      const [longId, lateId] = ids(2, kind(how));
      const ref = await reference(SEED, [{ id: longId!, count: 500 }, {
        id: lateId!,
        count: 50,
      }]);
      let got = 0;
      let drops = 0;
      const long = runClient({
        port: proxy.port,
        id: longId!,
        count: 500,
        backoff: () => 30,
        onNumber: () => got++,
        onEvent: (e) => {
          if (e.type === "disconnected") drops++;
        },
      });
      await eventually(() => got >= 30, "the long client to stream");
      if (how === "killed and restarted empty") await redis.stop();
      else redis.pause();
      try {
        // The stream it already has goes on without a store.
        const at = got;
        await eventually(
          () => got >= at + 40,
          "numbers to keep coming during the outage",
        );
        assertEquals(drops, 0);
        // New sessions and resumes are refused as retriable.
        const a = servers[0]!.addr.port;
        const b = servers[1]!.addr.port;
        const refusedHello = await firstAnswer(
          a,
          hello(crypto.randomUUID(), 5, tok(1)),
        );
        const refusedResume = await firstAnswer(
          b,
          resume(crypto.randomUUID(), tok(1), 0),
        );
        for (const m of [refusedHello, refusedResume]) {
          assert_(m?.type === "error", JSON.stringify(m));
          assertEquals(m.code, ErrorCode.STORE_UNAVAILABLE);
        }
        // A client that starts now, and the long one cut off now, retry with backoff.
        const late = runClient({
          port: proxy.port,
          id: lateId!,
          count: 50,
          backoff: () => 30,
        });
        await proxy.cutAll();
        const refusals = () =>
          servers.reduce(
            (n, s) => n + (s.metrics().refusals.get("store_unavailable") ?? 0),
            0,
          );
        await eventually(
          () => refusals() >= 6,
          "the clients to be refused and retry",
          AbortSignal.timeout(5000),
        );
        for (const s of servers) assert_(s.metrics().counters.storeErrors > 0);
        if (how === "killed and restarted empty") await redis.start();
        else redis.resume();
        const [rl, rs] = await Promise.all([long, late]);
        for (const r of [rl, rs]) {
          assertEquals(r.result, "PASS", JSON.stringify(r));
          assertEquals({ sum: r.sum, checksum: r.checksum }, ref.get(r.id));
        }
        assert_(rl.reconnects >= 1);
        if (how === "killed and restarted empty") {
          // The server that held the cut session wrote it back into the empty Redis.
          const resynced = servers.reduce(
            (n, s) => n + (s.metrics().storeOps.get("resync") ?? 0),
            0,
          );
          assert_(resynced > 0, "no session was written back");
        }
        await drained(servers, 8000);
      } finally {
        redis.resume(); // never leave it stopped for the teardown
      }
    },
  );
}

function kind(how: string): string {
  return how.startsWith("killed") ? "0d1e" : "0d2e";
}

redisTest(
  "Redis paused across a session's expiry: once it is back the session is expired, on the server that held it and on another, " +
    "with an ERROR frame, even before the held detach is written",
  async () => {
    await using shared = await sharedStore("redis");
    const redis = shared.redis!;
    const ttlMs = 400;
    await using cluster = await startCluster(2, shared, {
      intervalMs: 5,
      ttlMs,
      leaseMs: 300,
    });
    const [a, b] = cluster.servers as [ServerHandle, ServerHandle];
    const [id] = ids(1, "0d3e");
    const token = tok(3);
    {
      await using p = await rawConnect(a.addr.port);
      await p.send(hello(id!, 10_000, token));
      await p.until("number");
      redis.pause();
    } // the client goes away while the store is down: the detach cannot be written
    try {
      await eventually(
        () => a.metrics().connections === 0,
        "the server to see the disconnect",
      );
      await new Promise((r) => setTimeout(r, ttlMs + 300));
      assert_(a.metrics().counters.storeErrors > 0, "the store was not down");
    } finally {
      redis.resume();
    }
    // At once, the other server first: it sees a record still attached to A.
    for (const server of [b, a]) {
      const m = await firstAnswer(server.addr.port, resume(id!, token, 1));
      assert_(m?.type === "error", JSON.stringify(m));
      assertEquals(m.code, ErrorCode.SESSION_EXPIRED, m.message);
    }
    await drained([a, b], 5000);
  },
);

// A failover that lost a short tail of writes, on a shard the lease is not
// on: the record of one streaming session vanishes, the leases stay. The
// server that holds the session notices it at the detach or at the resume,
// and writes it back.
redisTest(
  "a record Redis lost under a streaming session (its last write lost in a failover): " +
    "the client is cut, resumes and PASSes, and the record is written back",
  async () => {
    await using shared = await sharedStore("redis");
    const redis = shared.redis!;
    await using cluster = await startCluster(1, shared, {
      seed: SEED,
      intervalMs: 4,
      leaseMs: 300,
    });
    const server = cluster.servers[0]!;
    await using proxy = await startProxy({ upstreams: cluster.upstreams });
    const [id] = ids(1, "105e");
    const count = 300;
    const ref = await reference(SEED, [{ id: id!, count }]);
    const key = new RedisKeys("seqstream").record(id!);
    let got = 0;
    const client = runClient({
      port: proxy.port,
      id: id!,
      count,
      backoff: () => 30,
      onNumber: () => got++,
    });
    await eventually(() => got >= 50, "the client to stream");
    assertEquals(await redisCommand(redis.port, ["DEL", key]), 1);
    await proxy.cutAll();
    const r = await client;
    assertEquals(r.result, "PASS", JSON.stringify(r));
    assertEquals({ sum: r.sum, checksum: r.checksum }, ref.get(id!));
    assert_(r.reconnects >= 1, "the client did not reconnect");
    assert_(
      (server.metrics().storeOps.get("resync") ?? 0) >= 1,
      "the server wrote nothing back",
    );
    // Completed: its tombstone is in Redis, and the server holds nothing.
    const stored = await redisCommand(redis.port, ["GET", key]);
    assert_(
      typeof stored === "string" && stored.includes('"completed"'),
      String(stored),
    );
    await drained([server]);
  },
);
