/**
 * Scale-out: several servers share one store, and a proxy sends each
 * reconnect to the next server round-robin while cutting connections often.
 * Every client ends with the numbers of a fault-free run. Also: several
 * server processes on one port and one KV file under concurrent load.
 */

import { runClient } from "../client/client.ts";
import { startProxy } from "../proxy/fault_proxy.ts";
import { assert_, assertEquals } from "./_assert.ts";
import {
  type Backend,
  drained,
  eventually,
  ids,
  redisIgnore,
  reference,
  scrapePort,
  type ServerProc,
  sharedStore,
  spawnServer,
  startCluster,
} from "./_cluster.ts";

const SEED = 4242;

for (const kind of ["kv", "redis"] as Backend[]) {
  const ignore = kind === "redis" ? redisIgnore : undefined;
  Deno.test({
    name:
      `three servers on one ${kind} store, a round-robin proxy cutting every 20..80ms: ` +
      `every client PASSes with the fault-free sums${
        ignore ? ` (ignored: ${ignore})` : ""
      }`,
    ignore: ignore !== undefined,
    fn: async () => {
      await using shared = await sharedStore(kind);
      await using cluster = await startCluster(3, shared, {
        seed: SEED,
        intervalMs: 1,
        // Above the KV lock-contention tail (a resume can take a few hundred ms
        // with three writers on one SQLite file), or clients give up on their
        // own; and above a loaded host's stalls: at 1.5 s a client gave up
        // ("No stream progress for 1519ms") in a suite run at a load of 8.
        ttlMs: 3000,
      });
      await using proxy = await startProxy({
        upstreams: cluster.upstreams,
        lifetime: { minMs: 20, maxMs: 80 },
        resetProbability: 0.3,
        seed: 7,
      });
      const counts = [1, 2, 40, 150, 250, 300, 300, 300];
      const sessions = ids(counts.length, "5ca1e").map((id, i) => ({
        id,
        count: counts[i]!,
      }));
      const ref = await reference(SEED, sessions);
      const results = await Promise.all(
        sessions.map((s) =>
          runClient({
            port: proxy.port,
            id: s.id,
            count: s.count,
            backoff: () => 20,
            idleTimeoutMs: 500,
          })
        ),
      );
      for (const r of results) {
        assertEquals(r.result, "PASS", JSON.stringify(r));
        assertEquals({ sum: r.sum, checksum: r.checksum }, ref.get(r.id), r.id);
      }
      const moved = results.reduce((n, r) => n + r.reconnects, 0);
      assert_(
        moved >= 10,
        `only ${moved} reconnects: the proxy cut too little to prove anything`,
      );
      // Every server streamed, and sessions moved between them.
      for (const s of cluster.servers) {
        const c = s.metrics().counters;
        assert_(c.numbersSent > 0, `server ${s.id} sent nothing`);
        assert_(c.resumes > 0, `server ${s.id} resumed nothing`);
      }
      const completed = cluster.servers.reduce(
        (n, s) => n + s.metrics().counters.sessionsCompleted,
        0,
      );
      assertEquals(completed, sessions.length);
      // Detached copies left behind on the servers a session moved away from expire after the TTL.
      await drained(cluster.servers, 10_000);
    },
  });
}

Deno.test(
  "three server processes on one port (--reuse-port) and one KV file, 80 concurrent clients all cut " +
    "twice at once (80 simultaneous resumes): all PASS, no crash, and no state left on any server",
  async () => {
    await using shared = await sharedStore("kv");
    const common = [
      "--reuse-port",
      "--store",
      shared.spec,
      "--metrics-port",
      "0",
      "--interval",
      "2ms",
      "--session-ttl",
      "3s",
      "--seed",
      String(SEED),
    ];
    const procs: ServerProc[] = [];
    try {
      procs.push(await spawnServer(["--port", "0", ...common]));
      const port = procs[0]!.port;
      procs.push(
        ...await Promise.all(
          [1, 2].map(() => spawnServer(["--port", String(port), ...common])),
        ),
      );
      // The kernel spreads connections (and reconnections) over the three processes.
      await using proxy = await startProxy({
        upstreams: [{ hostname: "127.0.0.1", port }],
      });
      const sessions = ids(80, "c0a7e").map((id, i) => ({
        id,
        count: 100 + (i * 37) % 150,
      }));
      const ref = await reference(SEED, sessions);
      const all = sessions.reduce((n, s) => n + s.count, 0);
      let received = 0;
      const herds = [Math.floor(all * 0.25), Math.floor(all * 0.6)];
      const results = await Promise.all(
        sessions.map((s) =>
          runClient({
            port: proxy.port,
            id: s.id,
            count: s.count,
            backoff: () => 20,
            onNumber: () => {
              if (++received === herds[0]) {
                herds.shift();
                void proxy.cutAll();
              }
            },
          })
        ),
      );
      for (const r of results) {
        assertEquals(r.result, "PASS", JSON.stringify(r));
        assertEquals({ sum: r.sum, checksum: r.checksum }, ref.get(r.id), r.id);
      }
      assertEquals(herds.length, 0, "the clients were not cut twice");
      assert_(
        results.filter((r) => r.reconnects > 0).length >= 40,
        "fewer than half the clients reconnected",
      );
      const metrics = async () =>
        await Promise.all(procs.map((p) => scrapePort(p.metricsPort!)));
      await eventually(
        async () =>
          (await metrics()).every((m) =>
            m.get("seqstream_connections") === 0 &&
            m.get("seqstream_sessions") === 0
          ),
        "every server to hold no connection and no session",
        AbortSignal.timeout(8000),
      );
      const final = await metrics();
      const completed = final.reduce(
        (n, m) => n + m.get("seqstream_sessions_completed_total")!,
        0,
      );
      assertEquals(completed, sessions.length);
      for (const [i, m] of final.entries()) {
        assert_(
          m.get("seqstream_resumes_total")! > 0,
          `server ${i} resumed nothing`,
        );
      }
      // Still running: nothing crashed under contention.
      for (const p of procs) {
        const exited = await Promise.race([
          p.proc.child.status.then(() => true),
          Promise.resolve(false),
        ]);
        assertEquals(exited, false, p.proc.stderr.join("\n"));
      }
    } finally {
      await Promise.all(procs.map((p) => p[Symbol.asyncDispose]()));
    }
  },
);
