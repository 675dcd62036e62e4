/**
 * Scale-out: several servers share one store, and a proxy sends each
 * reconnect to the next server round-robin while cutting connections often.
 * Every client ends with the numbers of a fault-free run.
 */

import { runClient } from "../client/client.ts";
import { startProxy } from "../proxy/fault_proxy.ts";
import { assert_, assertEquals } from "./_assert.ts";
import { type Backend, drained, ids, redisIgnore, reference, sharedStore, startCluster } from "./_cluster.ts";

const SEED = 4242;

for (const kind of ["kv", "redis"] as Backend[]) {
  const ignore = kind === "redis" ? redisIgnore : undefined;
  Deno.test({
    name: `three servers on one ${kind} store, a round-robin proxy cutting every 20..80ms: ` +
      `every client PASSes with the fault-free sums${ignore ? ` (ignored: ${ignore})` : ""}`,
    ignore: ignore !== undefined,
    fn: async () => {
      await using shared = await sharedStore(kind);
      await using cluster = await startCluster(3, shared, {
        seed: SEED,
        intervalMs: 1,
        // Above the KV lock-contention tail (a resume can take a few hundred ms
        // with three writers on one SQLite file), or clients give up on their own.
        ttlMs: 1500,
      });
      await using proxy = await startProxy({
        upstreams: cluster.upstreams,
        lifetime: { minMs: 20, maxMs: 80 },
        resetProbability: 0.3,
        seed: 7,
      });
      const counts = [1, 2, 40, 150, 250, 300, 300, 300];
      const sessions = ids(counts.length, "5ca1e").map((id, i) => ({ id, count: counts[i]! }));
      const ref = await reference(SEED, sessions);
      const results = await Promise.all(
        sessions.map((s) =>
          runClient({ port: proxy.port, id: s.id, count: s.count, backoff: () => 20, idleTimeoutMs: 500 })
        ),
      );
      for (const r of results) {
        assertEquals(r.result, "PASS", JSON.stringify(r));
        assertEquals({ sum: r.sum, checksum: r.checksum }, ref.get(r.id), r.id);
      }
      const moved = results.reduce((n, r) => n + r.reconnects, 0);
      assert_(moved >= 10, `only ${moved} reconnects: the proxy cut too little to prove anything`);
      // Every server streamed, and sessions moved between them.
      for (const s of cluster.servers) {
        const c = s.metrics().counters;
        assert_(c.numbersSent > 0, `server ${s.id} sent nothing`);
        assert_(c.resumes > 0, `server ${s.id} resumed nothing`);
      }
      const completed = cluster.servers.reduce((n, s) => n + s.metrics().counters.sessionsCompleted, 0);
      assertEquals(completed, sessions.length);
      // Detached copies left behind on the servers a session moved away from expire after the TTL.
      await drained(cluster.servers, 5000);
    },
  });
}
