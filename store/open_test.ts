import { assert_, assertEquals, assertRejects } from "../tests/_assert.ts";
import { redisIgnoreReason, startRedis } from "../tests/_redis.ts";
import { KvStore } from "./kv.ts";
import { MemoryStore } from "./memory.ts";
import { openStore } from "./open.ts";
import { RedisStore } from "./redis.ts";
import { StoreUnavailableError } from "./types.ts";

const redisIgnore = await redisIgnoreReason();

Deno.test("openStore(memory) opens a MemoryStore", async () => {
  await using store = await openStore("memory");
  assert_(store instanceof MemoryStore);
  assertEquals(store.kind, "memory");
});

Deno.test("openStore(kv::memory:) opens an in-memory KvStore", async () => {
  await using store = await openStore("kv::memory:");
  assert_(store instanceof KvStore);
  assertEquals(store.path, ":memory:");
});

Deno.test("openStore(kv:PATH) opens a KvStore on that file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/sessions.kv`;
    {
      await using store = await openStore(`kv:${path}`);
      assertEquals(store.kind, "kv");
      assertEquals((store as KvStore).path, path);
    }
    assert_((await Deno.stat(path)).isFile);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openStore(kv:http://…) opens KV Connect (and reports an unreachable one)", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  const err = await assertRejects(
    () => openStore(`kv:http://127.0.0.1:${port}`),
    StoreUnavailableError,
  );
  // Either way it went to KV Connect, not to a file named "http:…".
  assert_(/DENO_KV_ACCESS_TOKEN|127\.0\.0\.1/.test(err.message), err.message);
});

Deno.test({
  name: `openStore(redis://…) connects a RedisStore${
    redisIgnore ? ` (ignored: ${redisIgnore})` : ""
  }`,
  ignore: redisIgnore !== undefined,
  fn: async () => {
    await using server = await startRedis();
    await using store = await openStore(`${server.url}/1`);
    assert_(store instanceof RedisStore);
    assertEquals(await store.get(crypto.randomUUID()), null);
  },
});

Deno.test("openStore(redis://…) rejects with StoreUnavailableError when Redis is unreachable", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  await assertRejects(
    () =>
      openStore(`redis://127.0.0.1:${port}`, {
        redis: { connectTimeoutMs: 500 },
      }),
    StoreUnavailableError,
    "ECONNREFUSED",
  );
});

Deno.test("openStore rejects unknown specs with a TypeError naming the accepted forms", async (t) => {
  for (
    const spec of [
      "",
      "mem",
      "Memory",
      "kv:",
      "kv:ftp://host/db",
      "kv:https://",
      "redis://",
      "redis://h:x",
      "redis://h:6379/db",
      "redis://h:6379/0?timeout=1",
      "redis+sentinel://h:26379",
      "redis+sentinel://h:26379/",
      "redis+sentinel://h:26379/m?db=x",
      "redis+cluster://h:7000/0",
      "redis+cluster://",
      "redis+cluster://h:7000,:7001",
      "rediss://h:6379/0?nope=1",
      "redis://h:6379?ca=/x.pem",
      "redis+foo://h:1",
      "postgres://h/db",
      "/var/lib/sessions.kv",
    ]
  ) {
    await t.step(JSON.stringify(spec), async () => {
      const err = await assertRejects(() => openStore(spec), TypeError);
      assert_(err.message.includes(`"${spec}"`), err.message);
    });
  }
  const err = await assertRejects(() => openStore("mem"), TypeError);
  assert_(err.message.includes("memory, kv:PATH, kv::memory:"), err.message);
  for (const form of ["redis[s]+sentinel://", "redis[s]+cluster://"]) {
    assert_(err.message.includes(form), err.message);
  }
});

Deno.test("openStore never puts a Redis password in its errors, malformed spec or unreachable server", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  const secret = "s3cr3t-pw";
  for (
    const [spec, cls] of [
      [`redis://u:${secret}@h:x`, TypeError],
      [`redis+sentinel://u:${secret}@h:1`, TypeError],
      [`redis+fo://u:${secret}@h:1`, TypeError],
      [`redis://u:${secret}@127.0.0.1:${port}/0`, StoreUnavailableError],
      [
        `redis+sentinel://:${secret}@127.0.0.1:${port}/m`,
        StoreUnavailableError,
      ],
    ] as const
  ) {
    const err = await assertRejects(
      () => openStore(spec, { redis: { connectTimeoutMs: 300 } }),
      cls as unknown as typeof Error,
    );
    assert_(!err.message.includes(secret), err.message);
    assert_(
      !String((err as Error & { cause?: unknown }).cause ?? "").includes(
        secret,
      ),
      "cause",
    );
  }
});
