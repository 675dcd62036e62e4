/**
 * TLS to Redis (`rediss://`) with a certificate made at run time, passwords
 * that never reach a message, and the server CLI's answer to bad or
 * unreachable Redis specs: one line, exit 64 (malformed) or 2 (unreachable).
 *
 * @module
 */

import { RedisStore } from "../store/redis.ts";
import { REDIS_ENV } from "../store/redis_spec.ts";
import { StoreUnavailableError } from "../store/types.ts";
import { assert_, assertEquals } from "./_assert.ts";
import { makeTestCert } from "./_certs.ts";
import { FAST_REDIS } from "./_cluster.ts";
import { freePort, spawnDeno } from "./_process.ts";
import { startTlsRedis } from "./_redis.ts";
import { startOnce } from "./_redis_ha.ts";

const cert = await makeTestCert();
const started = await startOnce(
  "redis-server with --tls-port",
  () => startTlsRedis(cert, ["--requirepass", "tls-s3cret"]),
);
const redis = started.ignore === undefined ? started.topology : undefined;
const ignore = started.ignore;

function tlsTest(name: string, fn: () => Promise<void>): void {
  Deno.test({
    name: ignore ? `${name} (ignored: ${ignore})` : name,
    ignore: ignore !== undefined,
    fn,
  });
}

function record() {
  return {
    id: crypto.randomUUID(),
    seed: "0123456789abcdef",
    count: 10,
    token: "0123456789abcdef0123456789abcdef",
    epoch: 1,
    owner: "srv-a",
    status: "live" as const,
    expiresAt: 0,
    retainUntil: 0,
  };
}

/**
 * {@link FAST_REDIS} with a 20 s connect budget: a failure that takes a
 * small part of it did not wait for it.
 */
const PATIENT_CONNECT = { ...FAST_REDIS, connectTimeoutMs: 20_000 };

async function failure(
  p: Promise<unknown>,
): Promise<{ ms: number; err: Error }> {
  const t0 = performance.now();
  try {
    await p;
  } catch (e) {
    return { ms: performance.now() - t0, err: e as Error };
  }
  throw new Error("expected a failure");
}

tlsTest(
  "rediss:// with ?ca= (or SEQSTREAM_REDIS_CA) and the password from the URL (or SEQSTREAM_REDIS_PASSWORD) works",
  async () => {
    const url = redis!.url.replace("rediss://", "rediss://:tls-s3cret@");
    {
      await using store = await RedisStore.connect(
        `${url}?ca=${cert.certFile}`,
        FAST_REDIS,
      );
      const rec = record();
      assertEquals(await store.create(rec), true);
      assertEquals(await store.get(rec.id), rec);
      assert_(!store.url.includes("tls-s3cret"), store.url);
    }
    const env = new Map<string, string>([[REDIS_ENV.ca, cert.certFile], [
      REDIS_ENV.password,
      "tls-s3cret",
    ]]);
    await using store = await RedisStore.connect(redis!.url, {
      ...FAST_REDIS,
      env: (k) => env.get(k),
    });
    assertEquals(await store.get(crypto.randomUUID()), null);
  },
);

tlsTest(
  "rediss:// with the wrong CA fails at once, saying the certificate is not signed by that CA",
  async () => {
    await using other = await makeTestCert();
    const { ms, err } = await failure(
      RedisStore.connect(
        `${
          redis!.url.replace("rediss://", "rediss://:tls-s3cret@")
        }?ca=${other.certFile}`,
        PATIENT_CONNECT,
      ),
    );
    assert_(err instanceof StoreUnavailableError, String(err));
    assert_(
      err.message.includes(`not signed by the CA in ${other.certFile}`),
      err.message,
    );
    assert_(!err.message.includes("tls-s3cret"), err.message);
    // At once, not at the end of the 20 s connect budget (a real-time
    // ceiling far from both, so a loaded host does not make it fail).
    assert_(
      ms < PATIENT_CONNECT.connectTimeoutMs / 2,
      `took ${ms.toFixed(0)} ms`,
    );
  },
);

tlsTest(
  "a wrong password fails with a clear message that does not contain it",
  async () => {
    const { err } = await failure(
      RedisStore.connect(
        `${
          redis!.url.replace("rediss://", "rediss://:wrong-pw-123@")
        }?ca=${cert.certFile}`,
        FAST_REDIS,
      ),
    );
    assert_(err instanceof StoreUnavailableError, String(err));
    assert_(
      /WRONGPASS|invalid username-password/i.test(err.message),
      err.message,
    );
    assert_(!err.message.includes("wrong-pw-123"), err.message);
  },
);

Deno.test("server.ts: a malformed Redis spec is one line and exit 64; an unreachable one one line and exit 2; never the password", async () => {
  const port = freePort();
  const cases: [string, number, RegExp][] = [
    [
      "redis+sentinel://127.0.0.1:26379",
      64,
      /the path must be the master name/,
    ],
    ["redis+cluster://127.0.0.1:7000/2", 64, /a cluster has no database/],
    ["redis+nope://u:hunter2@127.0.0.1:1", 64, /Unknown store/],
    [
      "rediss://127.0.0.1:1?ca=/no/such/ca.pem",
      64,
      /Cannot read the Redis CA file/,
    ],
    [
      `redis+sentinel://:hunter2@127.0.0.1:${port}/mymaster`,
      2,
      /master "mymaster" via sentinels/,
    ],
    [`redis://:hunter2@127.0.0.1:${port}/0`, 2, /ECONNREFUSED/],
  ];
  const results = await Promise.all(cases.map(async ([spec]) => {
    await using p = spawnDeno("server.ts", ["--port", "0", "--store", spec]);
    return await p.done();
  }));
  for (const [i, r] of results.entries()) {
    const [spec, code, re] = cases[i]!;
    assertEquals(r.code, code, `${spec}: exit ${r.code}\n${r.stderr}`);
    const lines = r.stderr.split("\n").filter((l) => l !== "");
    assertEquals(lines.length, 1, `${spec}: ${JSON.stringify(r.stderr)}`);
    assert_(re.test(lines[0]!), `${spec}: ${lines[0]}`);
    assert_(
      !r.stderr.includes("hunter2") && !r.stdout.includes("hunter2"),
      lines[0],
    );
  }
});

// Last: the server and the certificate are shared by every test above.
Deno.test({
  name: `TLS: the test server stops${ignore ? ` (ignored: ${ignore})` : ""}`,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await redis?.stop();
    await cert[Symbol.asyncDispose]();
  },
});
