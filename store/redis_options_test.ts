import { assertEquals, assertThrows } from "../tests/_assert.ts";
import { parseConfirm } from "./redis_options.ts";
import { RedisStore } from "./redis.ts";
import { parseRedisSpec } from "./redis_spec.ts";

const noEnv = () => undefined;
const confirmOf = (spec: string) => parseRedisSpec(spec, noEnv).confirm;

Deno.test("parseRedisSpec: confirmation defaults to 1 replica on Sentinel and Cluster, none on one Redis", () => {
  assertEquals(confirmOf("redis://h:1"), { replicas: 0, waitMs: undefined });
  assertEquals(confirmOf("rediss://h:1/2"), { replicas: 0, waitMs: undefined });
  assertEquals(confirmOf("redis+sentinel://h:1,h:2/m"), {
    replicas: 1,
    waitMs: undefined,
  });
  assertEquals(confirmOf("redis+cluster://h:1,h:2"), {
    replicas: 1,
    waitMs: undefined,
  });
});

Deno.test("parseRedisSpec reads ?replicas= and ?waitMs= on every form, beside ?db= and ?ca=", () => {
  assertEquals(confirmOf("redis+sentinel://h:1/m?db=2&replicas=2&waitMs=200"), {
    replicas: 2,
    waitMs: 200,
  });
  assertEquals(confirmOf("redis+cluster://h:1?replicas=0"), {
    replicas: 0,
    waitMs: undefined,
  });
  assertEquals(confirmOf("redis://h:1?replicas=1&waitMs=1"), {
    replicas: 1,
    waitMs: 1,
  });
  assertEquals(
    parseRedisSpec("rediss+cluster://h:1?ca=/x.pem&waitMs=60000", noEnv)
      .confirm,
    { replicas: 1, waitMs: 60000 },
  );
});

Deno.test("parseRedisSpec refuses a bad ?replicas= or ?waitMs= with a TypeError naming it", async (t) => {
  const cases: [string, string][] = [
    [
      "redis+sentinel://h:1/m?replicas=-1",
      "?replicas=-1 is not a whole number from 0 to 16",
    ],
    [
      "redis+sentinel://h:1/m?replicas=1.5",
      "?replicas=1.5 is not a whole number",
    ],
    [
      "redis+sentinel://h:1/m?replicas=17",
      "?replicas=17 is not a whole number from 0 to 16",
    ],
    ["redis+sentinel://h:1/m?replicas=", "?replicas= is not a whole number"],
    ["redis+cluster://h:1?replicas=one", "?replicas=one is not"],
    [
      "redis+cluster://h:1?waitMs=0",
      "?waitMs=0 is not a whole number from 1 to 60000",
    ],
    ["redis+cluster://h:1?waitMs=60001", "?waitMs=60001 is not"],
    ["redis+cluster://h:1?waitMs=1e3", "?waitMs=1e3 is not"],
    [
      "redis://u:secret@h:1?replicas=1&replicas=2",
      "?replicas= is given 2 times",
    ],
    ["redis+cluster://h:1?waitms=10", 'unknown parameter "waitms"'],
  ];
  for (const [spec, why] of cases) {
    await t.step(spec, () => {
      const e = assertThrows(() => parseRedisSpec(spec, noEnv), TypeError);
      assertEquals(e.message.includes(why), true, e.message);
      assertEquals(e.message.includes("secret"), false, e.message);
    });
  }
});

Deno.test("parseConfirm leaves waitMs to the store when the URL has none", () => {
  const bad = (w: string) => new TypeError(w);
  assertEquals(parseConfirm(new URLSearchParams(""), true, bad), {
    replicas: 1,
    waitMs: undefined,
  });
});

Deno.test("RedisStore resolves waitMs to 500 ms, or half a shorter command timeout, and refuses a waitMs the command timeout would cut", () => {
  const confirm = (spec: string, commandTimeoutMs?: number) => {
    const s = new RedisStore(spec, {
      env: noEnv,
      ...commandTimeoutMs ? { commandTimeoutMs } : {},
    });
    const c = s.confirm;
    void s.close();
    return c;
  };
  assertEquals(confirm("redis+cluster://h:1"), { replicas: 1, waitMs: 500 });
  assertEquals(confirm("redis+cluster://h:1", 300), {
    replicas: 1,
    waitMs: 150,
  });
  assertEquals(confirm("redis://h:1?waitMs=900"), { replicas: 0, waitMs: 900 });
  const e = assertThrows(
    () =>
      new RedisStore("redis+sentinel://h:1/m?waitMs=300", {
        commandTimeoutMs: 300,
        env: noEnv,
      }),
    TypeError,
  );
  assertEquals(
    e.message,
    'Invalid Redis store "redis+sentinel://h:1/m?waitMs=300": ?waitMs=300 must be below the command timeout (300 ms)',
  );
});
