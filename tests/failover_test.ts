/**
 * Failover with real `server.ts` processes sharing a KV file or a Redis:
 * kill -9 of the serving process mid-stream, and what becomes of the
 * sessions it held (resumable at once elsewhere; if nobody resumes them,
 * expired TTL after the crash plus at most one lease, whichever server is asked).
 */

import { runClient } from "../client/client.ts";
import { ErrorCode } from "../protocol/errors.ts";
import type { Message } from "../protocol/messages.ts";
import { startProxy } from "../proxy/fault_proxy.ts";
import { assert_, assertEquals } from "./_assert.ts";
import {
  type Backend,
  eventually,
  ids,
  redisIgnore,
  reference,
  type ServerProc,
  sharedStore,
  spawnServer,
} from "./_cluster.ts";
import { hello, rawConnect, type RawPeer, resume } from "./_raw.ts";

const SEED = 31;
const TTL_MS = 1000;
const tok = (b: number) => new Uint8Array(16).fill(b);

/** Sends one resume to `port` and returns the first answer (welcome or error); closes at once. */
async function resumeOnce(
  port: number,
  id: string,
  token: Uint8Array,
  offset: number,
): Promise<Message | null> {
  await using p = await rawConnect(port);
  await p.send(resume(id, token, offset));
  return await p.next();
}

function codeOf(m: Message | null): string {
  return m === null ? "eof" : m.type === "error" ? `error ${m.code}` : m.type;
}

const sleepUntil = (t: number) =>
  new Promise((r) => setTimeout(r, Math.max(0, t - Date.now())));

for (const kind of ["kv", "redis"] as Backend[]) {
  const ignore = kind === "redis" ? redisIgnore : undefined;
  Deno.test({
    name:
      `kill -9 of the serving ${kind} server process: the client PASSes on another, ` +
      `the crashed server's sessions are resumable at once and expire TTL after its last heartbeat` +
      (ignore ? ` (ignored: ${ignore})` : ""),
    ignore: ignore !== undefined,
    fn: async () => {
      await using shared = await sharedStore(kind);
      const args = [
        "--port",
        "0",
        "--store",
        shared.spec,
        "--interval",
        "5ms",
        "--session-ttl",
        `${TTL_MS}ms`,
        "--seed",
        String(SEED),
      ];
      const procs: ServerProc[] = [];
      const held: RawPeer[] = [];
      try {
        procs.push(
          ...await Promise.all([
            spawnServer(args),
            spawnServer(args),
            spawnServer(args),
          ]),
        );
        const [a, b, c] = procs as [ServerProc, ServerProc, ServerProc];
        const [streamId, s1, s2, s3, s4] = ids(
          5,
          kind === "kv" ? "c4a54" : "c4a55",
        );
        const count = 400;
        const ref = await reference(SEED, [{ id: streamId!, count }]);

        // Sessions attached on A when it dies: s1..s4 on raw connections, and a real client through a proxy.
        for (const [i, id] of [s1!, s2!, s3!, s4!].entries()) {
          const p = await rawConnect(a.port);
          held.push(p);
          await p.send(hello(id, 10_000, tok(i + 1)));
          await p.until("welcome");
          await p.until("number");
        }
        await using proxy = await startProxy({
          upstreams: [a, b].map((s) => ({
            hostname: "127.0.0.1",
            port: s.port,
          })),
        });
        let numbers = 0;
        const client = runClient({
          port: proxy.port,
          id: streamId!,
          count,
          backoff: () => 10,
          signal: AbortSignal.timeout(20_000),
          onNumber: () => {
            numbers++;
          },
        });
        await eventually(() => numbers >= 100, "100 numbers from A");
        await a.crash();
        const crashedAt = Date.now();
        for (const p of held) await p[Symbol.asyncDispose]();

        // Resumable at once elsewhere, s1 on B and s3 on C (each then
        // detached there, by closing): the dead server's last heartbeat was
        // at most a third of a lease (capped at the TTL) before the crash.
        assertEquals(
          codeOf(await resumeOnce(b.port, s1!, tok(1), 1)),
          "welcome",
        );
        const s1DetachedAt = Date.now();
        assertEquals(
          codeOf(await resumeOnce(c.port, s3!, tok(3), 1)),
          "welcome",
        );
        assert_(
          Date.now() < crashedAt + TTL_MS / 2,
          "the resumes took too long to show 'at once'",
        );

        // The client finishes on B with the fault-free numbers.
        const r = await client;
        assertEquals(r.result, "PASS", JSON.stringify(r));
        assertEquals({ sum: r.sum, checksum: r.checksum }, ref.get(streamId!));
        assert_(r.reconnects >= 1);
        // Detached on B and never resumed: expired after the TTL, asked on C.
        await sleepUntil(s1DetachedAt + TTL_MS + 200);
        assertEquals(
          codeOf(await resumeOnce(c.port, s1!, tok(1), 1)),
          `error ${ErrorCode.SESSION_EXPIRED}`,
        );
        // Never resumed after the crash: expired TTL after the dead server's
        // last heartbeat (so by crash + TTL), whichever server is asked.
        await sleepUntil(crashedAt + TTL_MS + 300);
        assertEquals(
          codeOf(await resumeOnce(b.port, s2!, tok(2), 1)),
          `error ${ErrorCode.SESSION_EXPIRED}`,
        );
        assertEquals(
          codeOf(await resumeOnce(c.port, s2!, tok(2), 1)),
          `error ${ErrorCode.SESSION_EXPIRED}`,
        );
        assertEquals(
          codeOf(await resumeOnce(c.port, s4!, tok(4), 1)),
          `error ${ErrorCode.SESSION_EXPIRED}`,
        );
      } finally {
        for (const p of held) await p[Symbol.asyncDispose]();
        await Promise.all(procs.map((p) => p[Symbol.asyncDispose]()));
      }
    },
  });
}
