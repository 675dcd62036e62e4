/**
 * Confirmed promises on real Redis (docs/durability.md): a new session's
 * record is confirmed with `WAIT` on the connection that wrote it (on a
 * cluster, the key's shard primary) before its WELCOME; a confirmation that
 * falls short refuses the HELLO with `store_unavailable`, counted in
 * `seqstream_store_unconfirmed_total`; a completion the replicas do not
 * confirm gets no DONE; one plain Redis sends no `WAIT` at all; and the
 * startup check warns, once, when the topology cannot confirm.
 *
 * @module
 */

import type { Logger } from "../common/logger.ts";
import { ErrorCode } from "../protocol/errors.ts";
import { hashSlot, RedisKeys } from "../store/redis_keys.ts";
import { RedisStore } from "../store/redis.ts";
import { StoreUnconfirmedError } from "../store/types.ts";
import { assert_, assertEquals } from "./_assert.ts";
import { FAST_REDIS, PATIENT_REDIS, patientSpec } from "./_cluster.ts";
import { scrape, testLog, testServer } from "./_fixtures.ts";
import { ack, hello, rawConnect, resume, runSession } from "./_raw.ts";
import {
  redisIgnoreReason,
  redisInfo,
  startRedis,
  startRedisCluster,
  startSentinelGroup,
} from "./_redis.ts";

const ignore = await redisIgnoreReason();
const named = (n: string) => ignore ? `${n} (ignored: ${ignore})` : n;
const tok = (b: number) => new Uint8Array(16).fill(b);

/** `WAIT` commands the Redis on `port` has run since it started. */
async function waits(port: number): Promise<number> {
  const stats = await redisInfo(port, "commandstats");
  return Number(/calls=(\d+)/.exec(stats.get("cmdstat_wait") ?? "")?.[1] ?? 0);
}

/** A logger that keeps the warnings (the rest as the tests' logger does). */
function warnings(): Logger & { warned: string[] } {
  const base = testLog();
  const warned: string[] = [];
  return {
    warned,
    debug: (m, f) => base.debug(m, f),
    info: (m, f) => base.info(m, f),
    warn: (m, f) => {
      warned.push(m);
      base.warn(m, f);
    },
    error: (m, f) => base.error(m, f),
  };
}

Deno.test({
  name: named(
    "RedisStore on one Redis sends no WAIT by default; ?replicas=1 without a replica leaves a new record unconfirmed",
  ),
  ignore: ignore !== undefined,
  fn: async () => {
    await using redis = await startRedis();
    await using server = await testServer({
      store: await RedisStore.connect(redis.url, FAST_REDIS),
      ownStore: true,
    });
    assertEquals(await runSession(server.addr.port, { count: 20 }), 20);
    assertEquals(await waits(redis.port), 0, "a plain Redis paid for WAIT");
    await using confirmed = await RedisStore.connect(
      `${redis.url}?replicas=1&waitMs=20`,
      FAST_REDIS,
    );
    assert_(
      (await confirmed.durabilityWarning())?.includes("0 replica(s)"),
      "no warning for a primary without replicas",
    );
    const id = crypto.randomUUID();
    let err: unknown;
    try {
      await confirmed.create({
        id,
        seed: "0000000000000001",
        count: 5,
        token: "00".repeat(16),
        epoch: 1,
        owner: "x",
        status: "live",
        expiresAt: 0,
        retainUntil: 0,
      });
    } catch (e) {
      err = e;
    }
    assert_(err instanceof StoreUnconfirmedError, String(err));
    assert_(
      (err as Error).message.includes("0 of 1 replica(s)"),
      (err as Error).message,
    );
    assertEquals(await waits(redis.port), 1);
  },
});

Deno.test({
  name: named(
    "Sentinel: a new session is confirmed by one WAIT, its completion by another, and nothing else is (lease); " +
      "a confirmation that falls short refuses the HELLO with store_unavailable, counts it, " +
      "and the startup check warns once; the client's retried HELLO is welcomed where replicas suffice",
  ),
  ignore: ignore !== undefined,
  sanitizeOps: false, // ioredis's sentinel connector leaves a retry timer behind close()
  sanitizeResources: false,
  fn: async () => {
    await using g = await startSentinelGroup();
    const primary = await g.primaryPort();
    const okLog = warnings();
    await using a = await testServer({
      // Counts WAITs: a confirmation missed on a loaded host would add a retry's.
      store: await RedisStore.connect(patientSpec(g.spec), PATIENT_REDIS),
      ownStore: true,
      log: okLog,
      leaseMs: 300,
    });
    assertEquals(okLog.warned, [], "the default topology was warned about");
    const before = await waits(primary);
    assertEquals(await runSession(a.addr.port, { count: 30 }), 30);
    // The create and the completion tombstone, confirmed; the heartbeats not.
    assertEquals(await waits(primary) - before, 2);

    const shortLog = warnings();
    await using b = await testServer({
      store: await RedisStore.connect(
        `${g.spec}?replicas=3&waitMs=50`,
        FAST_REDIS,
      ),
      ownStore: true,
      log: shortLog,
    });
    assertEquals(shortLog.warned.length, 1, shortLog.warned.join("\n"));
    assert_(
      shortLog.warned[0]!.includes(
        "2 replica(s) connected, fewer than ?replicas=3",
      ),
      shortLog.warned[0],
    );
    const id = crypto.randomUUID();
    {
      await using p = await rawConnect(b.addr.port);
      await p.send(hello(id, 40, tok(7)));
      const m = await p.next();
      assert_(
        m?.type === "error" && m.code === ErrorCode.STORE_UNAVAILABLE,
        JSON.stringify(m),
      );
    }
    assertEquals(b.metrics().counters.storeUnconfirmed, 1);
    assertEquals(
      (await scrape(b)).get("seqstream_store_unconfirmed_total"),
      1,
    );
    assertEquals(shortLog.warned.length, 1, "warned again");
    // The client retries its HELLO (same id, count and token) on a server
    // whose confirmation succeeds: the unconfirmed record is taken over.
    assertEquals(
      await runSession(a.addr.port, { id, count: 40, token: tok(7) }),
      40,
    );
    assertEquals(a.metrics().counters.storeUnconfirmed, 0);
  },
});

Deno.test({
  name: named(
    "Sentinel: a completion the replicas do not confirm in time gets store_unavailable, not DONE; " +
      "the client's re-ack is then told the session completed",
  ),
  ignore: ignore !== undefined,
  sanitizeOps: false, // ioredis's sentinel connector leaves a retry timer behind close()
  sanitizeResources: false,
  fn: async () => {
    await using g = await startSentinelGroup();
    const primary = await g.primaryPort();
    const replicas = g.nodes.filter((n) => n.port !== primary);
    await using server = await testServer({
      // The create must be confirmed for the test to reach the completion:
      // a 200 ms WAIT was missed once on a host loaded to 10 ("Connection
      // closed before a final message"). The completion's WAIT, with the
      // replicas stopped, fails after the same 2 s.
      store: await RedisStore.connect(patientSpec(g.spec), PATIENT_REDIS),
      ownStore: true,
    });
    const id = crypto.randomUUID(), count = 5;
    {
      await using p = await rawConnect(server.addr.port, { autoAck: false });
      await p.send(hello(id, count, tok(3)));
      await p.until("final");
      // The replicas stop answering (SIGSTOP) just before the ACK(count).
      for (const r of replicas) r.pause();
      try {
        await p.send(ack(count));
        const m = await p.next(15_000);
        assert_(
          m?.type === "error" && m.code === ErrorCode.STORE_UNAVAILABLE,
          `the completion was answered ${JSON.stringify(m)}`,
        );
      } finally {
        for (const r of replicas) r.resume();
      }
    }
    assertEquals(server.metrics().counters.storeUnconfirmed, 1);
    assertEquals(server.metrics().counters.sessionsCompleted, 0);
    // The tombstone is on the primary (a failover could have lost it, and
    // then the re-ack would be welcomed and completed, once): the client
    // resumes at the end and is told the session completed, which it takes
    // as success (PROTOCOL.md, Tombstones).
    await using p = await rawConnect(server.addr.port);
    await p.send(resume(id, tok(3), count));
    const m = await p.next();
    assert_(
      m?.type === "error" && m.code === ErrorCode.SESSION_COMPLETED,
      `the re-ack was answered ${JSON.stringify(m)}`,
    );
  },
});

Deno.test({
  name: named(
    "Cluster: each session's WAITs (its create, its completion) run on the primary of its record's shard",
  ),
  ignore: ignore !== undefined,
  sanitizeOps: false, // ioredis's cluster client may leave a slot-refresh timer behind close()
  sanitizeResources: false,
  fn: async () => {
    await using g = await startRedisCluster();
    await using server = await testServer({
      // Counts WAITs: a confirmation missed on a loaded host would add a retry's.
      store: await RedisStore.connect(patientSpec(g.spec), PATIENT_REDIS),
      ownStore: true,
    });
    const keys = new RedisKeys("seqstream");
    const sessions = Array.from({ length: 24 }, () => crypto.randomUUID());
    const expected = new Map<number, number>();
    for (const id of sessions) {
      const node = await g.primaryOf(hashSlot(keys.record(id)));
      expected.set(node.port, (expected.get(node.port) ?? 0) + 1);
    }
    assert_(expected.size > 1, "the sessions did not span two shards");
    const before = new Map<number, number>();
    for (const port of expected.keys()) before.set(port, await waits(port));
    // One at a time, so that each create and each completion has a WAIT of
    // its own (writes made while one is out share the next: see
    // store/redis_confirm.ts).
    for (const id of sessions) {
      await runSession(server.addr.port, { id, count: 5 });
    }
    for (const [port, n] of expected) {
      assertEquals(
        await waits(port) - before.get(port)!,
        2 * n,
        `WAITs on the primary at ${port}`,
      );
    }
    // The replicas ran none: WAIT went to the shard that took the write.
    for (const n of g.nodes) {
      if (expected.has(n.port)) continue;
      const role = (await redisInfo(n.port, "replication")).get("role");
      if (role === "slave") assertEquals(await waits(n.port), 0);
    }
  },
});
