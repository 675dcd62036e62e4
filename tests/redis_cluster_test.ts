/**
 * The Redis store on a Redis Cluster of three primaries, each with a replica,
 * started once for this file: the store contract, sessions spread over the
 * shards, a primary killed mid-stream, and a resume served by a server whose
 * view of the cluster is stale.
 *
 * @module
 */

import { runClient } from "../client/client.ts";
import { startProxy } from "../proxy/fault_proxy.ts";
import { bucketOf, hashSlot, RedisKeys } from "../store/redis_keys.ts";
import { assert_, assertEquals } from "./_assert.ts";
import { drained, eventually, reference, startCluster } from "./_cluster.ts";
import { testServer } from "./_fixtures.ts";
import { type RedisServer, startRedisCluster, until } from "./_redis.ts";
import { sampleRefusals, sharedSpec, topologySuite } from "./_redis_ha.ts";

const suite = await topologySuite(
  "cluster",
  "a Redis Cluster (3 primaries, 3 replicas)",
  () => startRedisCluster(),
);
const group = suite.topology;
const clusterTest = suite.test;

const SEED = 11;
const KEYS = new RedisKeys("seqstream");
const slotOf = (id: string) => hashSlot(KEYS.record(id));

clusterTest(
  "Cluster: sessions spread over every shard PASS; kill -9 a primary with a replica mid-stream: PASS after " +
    "its failover, and a resume on a server whose cluster view is stale succeeds",
  async () => {
    const g = group!;
    await using cluster = await startCluster(2, sharedSpec(g.spec), {
      seed: SEED,
      intervalMs: 4,
      ttlMs: 8000,
      leaseMs: 300,
    });
    const servers = cluster.servers;
    // The stale one: connected now, and given nothing to do until after the failover.
    const { store: staleStore } = await sharedSpec(g.spec).connect();
    await using stale = await testServer({
      seed: SEED,
      intervalMs: 4,
      ttlMs: 8000,
      leaseMs: 300,
      store: staleStore,
      ownStore: true,
    });
    const leaseShard = await g.primaryOf(hashSlot(KEYS.leaseUntil()));
    // Sessions on every shard; the victim serves some of them, not the leases.
    // Random ids until every shard has some (12 random ids alone missed a
    // shard about once in 40 runs: 3·(2/3)^12).
    const ids: string[] = [];
    const shards = new Map<RedisServer, string[]>();
    while (ids.length < 12 || (shards.size < 3 && ids.length < 200)) {
      const id = crypto.randomUUID();
      ids.push(id);
      const p = await g.primaryOf(slotOf(id));
      shards.set(p, [...shards.get(p) ?? [], id]);
    }
    assertEquals(
      shards.size,
      3,
      `${ids.length} sessions did not reach the 3 shards`,
    );
    let victim: RedisServer | undefined;
    for (const p of shards.keys()) {
      if (p !== leaseShard && await g.hasReplica(p)) victim = p;
    }
    assert_(victim, "no primary with a replica outside the lease shard");
    // One session on the victim shard will resume on the stale server.
    const staleId = shards.get(victim)![0]!;
    // Long enough (4 s at 4 ms) that none can finish before the failover is over.
    const sessions = ids.map((id) => ({ id, count: 1000 }));
    const ref = await reference(SEED, sessions);
    await using proxy = await startProxy({ upstreams: cluster.upstreams });
    // First connection to a regular server, every later one to the stale server.
    await using staleProxy = await startProxy({
      upstreams: [
        cluster.upstreams[0]!,
        ...Array(20).fill({
          hostname: "127.0.0.1",
          port: stale.addr.port,
        }),
      ],
    });
    const got = new Map<string, number>();
    const runs = sessions.map((s) =>
      runClient({
        port: s.id === staleId ? staleProxy.port : proxy.port,
        id: s.id,
        count: s.count,
        backoff: () => 30,
        onNumber: () => got.set(s.id, (got.get(s.id) ?? 0) + 1),
      })
    );
    await eventually(
      () => sessions.every((s) => (got.get(s.id) ?? 0) >= 30),
      "every client to stream",
    );
    const killedAt = performance.now();
    await victim.stop(); // kill -9
    await using refusals = sampleRefusals([...servers, stale], () => killedAt);
    await proxy.cutAll();
    await g.settled(10_000, slotOf(staleId));
    const failedOverAfter = performance.now() - killedAt;
    // Writes are confirmed by a replica (the default, docs/durability.md), so
    // the promoted primary, left without one, refuses the resumes of its
    // sessions until a replica is back: the crashed node returns, as an
    // operator would bring it back, and rejoins as its replica.
    const promoted = await g.primaryOf(slotOf(staleId));
    await victim.start();
    await until(
      "the crashed node to rejoin as a replica",
      () => g.hasReplica(promoted),
      10_000,
    );
    const staleOpsBefore = stale.metrics().storeOps.get("get") ?? 0;
    await staleProxy.cutAll();
    const results = await Promise.all(runs);
    const doneAfter = performance.now() - killedAt;
    for (const r of results) {
      assertEquals(r.result, "PASS", JSON.stringify(r));
      assertEquals({ sum: r.sum, checksum: r.checksum }, ref.get(r.id));
    }
    assert_(
      (stale.metrics().storeOps.get("get") ?? 0) > staleOpsBefore,
      "the stale server never served the resume",
    );
    const staleRefused = stale.metrics().refusals.get("store_unavailable") ?? 0;
    await drained([...servers, stale], 8000);
    // deno-lint-ignore no-console
    console.log(
      `cluster failover: slot served again ${
        failedOverAfter.toFixed(0)
      } ms after kill -9; ` +
        `handshakes refused from ${refusals.first?.toFixed(0)} to ${
          refusals.last?.toFixed(0)
        } ms ` +
        `(${refusals.count} refusals); every client done ${
          doneAfter.toFixed(0)
        } ms after; ` +
        `the stale server refused ${staleRefused} resumes before serving it; ` +
        `buckets used ${new Set(ids.map(bucketOf)).size}`,
    );
  },
  // It kills a redis-server this file started before the test.
  false,
);

// Last: the cluster is shared by every test above.
clusterTest("Cluster: the test topology stops", async () => {
  await group![Symbol.asyncDispose]();
}, false);
