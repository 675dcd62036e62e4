/**
 * What a program loads: the Redis client (ioredis and its packages) is an
 * optional, heavy dependency that only `store/redis.ts` and the server CLI's
 * `--store redis://…` may pull in. `deno info` shows each entry point's module
 * graph (dynamic imports with literal specifiers included), which is what a
 * fresh machine would download.
 *
 * @module
 */

import { assert_ } from "./_assert.ts";
import { runToEnd } from "../internal/spawn.ts";

async function graph(entry: string): Promise<string[]> {
  const out = await runToEnd(Deno.execPath(), ["info", "--json", entry], {
    cwd: new URL("../", import.meta.url),
  });
  assert_(out.code === 0, `deno info ${entry} failed: ${out.stderr}`);
  const info = JSON.parse(out.stdout) as { modules: { specifier: string }[] };
  return info.modules.map((m) => m.specifier);
}

const REDIS = /\/store\/redis\.ts$|^npm:\/?ioredis@/;

Deno.test("the library, the demo and the client load no Redis client; store/redis.ts does", async () => {
  for (const entry of ["mod.ts", "demo.ts", "client.ts", "store/mod.ts"]) {
    const redis = (await graph(entry)).filter((s) => REDIS.test(s));
    assert_(
      redis.length === 0,
      `${entry} loads ${
        redis.join(", ")
      }: a memory or KV user would download the Redis client`,
    );
  }
  // The check can fail: the module that does need it shows up.
  assert_(
    (await graph("store/redis.ts")).some((s) => /^npm:\/?ioredis@/.test(s)),
    "store/redis.ts should load ioredis",
  );
});
