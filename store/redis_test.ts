/**
 * RedisStore against a real `redis-server` per test: the contract, the expiry
 * hint seen through a second client, and outages (server killed, server
 * paused, server never there).
 *
 * @module
 */

import { Redis } from "ioredis";
import { assert_, assertEquals, assertRejects } from "../tests/_assert.ts";
import {
  redisIgnoreReason,
  type RedisServer,
  startRedis,
} from "../tests/_redis.ts";
import { storeContractTests } from "./_contract.ts";
import { parseRedisUrl, RedisStore, type RedisStoreOptions } from "./redis.ts";
import { RedisKeys } from "./redis_keys.ts";
import {
  type SessionRecord,
  type SessionStore,
  StoreUnavailableError,
} from "./types.ts";

const ignore = await redisIgnoreReason();

/** Short timings so that outage tests take milliseconds. */
const FAST: RedisStoreOptions = {
  commandTimeoutMs: 300,
  connectTimeoutMs: 500,
  backoff: () => 20,
};

/** A RedisStore that owns its redis-server and stops it on close. */
class OwnedRedisStore extends RedisStore {
  readonly server: RedisServer;
  constructor(server: RedisServer, opts: RedisStoreOptions = {}) {
    super(server.url, opts);
    this.server = server;
  }
  static async open(opts: RedisStoreOptions = {}): Promise<OwnedRedisStore> {
    const server = await startRedis();
    const store = new OwnedRedisStore(server, opts);
    try {
      await store.ready();
    } catch (e) {
      await store.close();
      throw e;
    }
    return store;
  }
  override async close(): Promise<void> {
    await super.close();
    await this.server.stop();
  }
}

/** The record's absolute expiry, from PTTL through a second client. */
async function redisExpiryHint(
  store: SessionStore,
  id: string,
): Promise<number | null> {
  const other = new Redis(parseRedisUrl((store as OwnedRedisStore).server.url));
  try {
    const pttl = await other.pttl(new RedisKeys("seqstream").record(id));
    assert_(pttl !== -2, `no key for session ${id}`);
    return pttl === -1 ? null : Date.now() + pttl;
  } finally {
    await other.quit();
  }
}

storeContractTests("RedisStore", () => OwnedRedisStore.open(), {
  // Redis deletes a key whose PEXPIREAT is in the past at once: nothing to trigger.
  sweep: () => {},
  expiryHint: redisExpiryHint,
  ...ignore ? { ignore } : {},
});

function redisTest(name: string, fn: () => Promise<void>): void {
  Deno.test({
    name: ignore ? `${name} (ignored: ${ignore})` : name,
    ignore: ignore !== undefined,
    fn,
  });
}

function record(): SessionRecord {
  return {
    id: crypto.randomUUID(),
    seed: "0123456789abcdef",
    count: 10,
    token: "0123456789abcdef0123456789abcdef",
    epoch: 1,
    owner: "srv-a",
    status: "live",
    expiresAt: 0,
    retainUntil: 0,
  };
}

/** Calls `fn` until it resolves, for up to `ms`; waits on the store's own reconnect. */
async function eventually<T>(fn: () => Promise<T>, ms = 5_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** How long `p` takes to settle, and how. */
async function timed(
  p: Promise<unknown>,
): Promise<{ ms: number; error: unknown }> {
  const t0 = performance.now();
  try {
    await p;
    return { ms: performance.now() - t0, error: undefined };
  } catch (error) {
    return { ms: performance.now() - t0, error };
  }
}

redisTest(
  "RedisStore rejects promptly while Redis is down and recovers when it is back",
  async () => {
    await using store = await OwnedRedisStore.open(FAST);
    const rec = record();
    assertEquals(await store.create(rec), true);
    await store.server.stop();
    for (
      const op of [
        () => store.get(rec.id),
        () => store.create(record()),
        () => store.drainFences("x"),
      ]
    ) {
      const { ms, error } = await timed(op());
      assert_(
        error instanceof StoreUnavailableError,
        `expected StoreUnavailableError, got ${error}`,
      );
      assert_(ms < 250, `took ${ms.toFixed(0)} ms`);
    }
    await store.server.start(); // empty: nothing is persisted
    assertEquals(await eventually(() => store.get(rec.id)), null);
    assertEquals(await store.create(rec), true);
    assertEquals(await store.get(rec.id), rec);
  },
);

redisTest(
  "RedisStore times out commands to a hung Redis and recovers when it resumes",
  async () => {
    await using store = await OwnedRedisStore.open(FAST);
    const rec = record();
    assertEquals(await store.create(rec), true);
    store.server.pause();
    try {
      const { ms, error } = await timed(store.get(rec.id));
      assert_(
        error instanceof StoreUnavailableError,
        `expected StoreUnavailableError, got ${error}`,
      );
      assert_(
        (error as Error).message.includes("timed out"),
        (error as Error).message,
      );
      assert_(ms >= 250 && ms < 1_000, `took ${ms.toFixed(0)} ms`);
    } finally {
      store.server.resume();
    }
    assertEquals(await eventually(() => store.get(rec.id)), rec);
  },
);

redisTest(
  "RedisStore rejects a command in flight when the connection drops",
  async () => {
    await using store = await OwnedRedisStore.open({
      ...FAST,
      commandTimeoutMs: 5_000,
    });
    store.server.pause();
    const pending = timed(store.get(crypto.randomUUID()));
    await store.server.stop();
    const { ms, error } = await pending;
    assert_(
      error instanceof StoreUnavailableError,
      `expected StoreUnavailableError, got ${error}`,
    );
    assert_(ms < 2_000, `took ${ms.toFixed(0)} ms, not rejected on the drop`);
  },
);

Deno.test(
  "RedisStore.connect fails fast with StoreUnavailableError when nothing listens",
  async () => {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const url = `redis://127.0.0.1:${(l.addr as Deno.NetAddr).port}`;
    l.close();
    const { ms, error } = await timed(RedisStore.connect(url, FAST));
    assert_(
      error instanceof StoreUnavailableError,
      `expected StoreUnavailableError, got ${error}`,
    );
    assert_(
      (error as Error).message.includes("ECONNREFUSED"),
      (error as Error).message,
    );
    assert_(ms < 1_000, `took ${ms.toFixed(0)} ms`);
  },
);

redisTest("RedisStore close quits cleanly while Redis is down", async () => {
  const store = await OwnedRedisStore.open(FAST);
  await store.server.stop();
  await assertRejects(() => store.get("x"), StoreUnavailableError);
  await store.close();
  await store.close();
  await assertRejects(() => store.get("x"), StoreUnavailableError, "closed");
});

redisTest("RedisStore selects the database in the URL", async () => {
  await using server = await startRedis();
  await using a = await RedisStore.connect(`${server.url}/3`);
  await using b = await RedisStore.connect(`${server.url}/4`);
  const rec = record();
  assertEquals(await a.create(rec), true);
  assertEquals(await b.get(rec.id), null);
  const raw = new Redis({ ...parseRedisUrl(server.url), db: 3 });
  try {
    assertEquals(
      await raw.exists(new RedisKeys("seqstream").record(rec.id)),
      1,
    );
  } finally {
    await raw.quit();
  }
});

Deno.test("parseRedisUrl accepts redis://[user:pass@]host[:port][/db]", () => {
  assertEquals(parseRedisUrl("redis://localhost"), {
    host: "localhost",
    port: 6379,
    db: 0,
  });
  assertEquals(parseRedisUrl("redis://127.0.0.1:6380/2"), {
    host: "127.0.0.1",
    port: 6380,
    db: 2,
  });
  assertEquals(parseRedisUrl("redis://[::1]:7000/"), {
    host: "::1",
    port: 7000,
    db: 0,
  });
  assertEquals(parseRedisUrl("redis://u:p%40ss@h:1/0"), {
    host: "h",
    port: 1,
    db: 0,
    username: "u",
    password: "p@ss",
  });
});

Deno.test("parseRedisUrl rejects anything else with TypeError", async (t) => {
  for (
    const bad of [
      "",
      "localhost:6379",
      "http://h:6379",
      "rediss://h:6379",
      "redis+sentinel://h:26379/m",
      "redis://",
      "redis://h:notaport",
      "redis://h:6379/x",
      "redis://h:6379/1/2",
      "redis://h:6379/0?timeout=1",
    ]
  ) {
    await t.step(JSON.stringify(bad), () => {
      let threw: unknown;
      try {
        parseRedisUrl(bad);
      } catch (e) {
        threw = e;
      }
      assert_(threw instanceof TypeError, `${bad}: ${threw}`);
    });
  }
});
