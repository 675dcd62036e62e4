/**
 * The CLIs as users run them: real server and client processes.
 */

import { assert_, assertEquals } from "./_assert.ts";
import { freePort, spawnDeno } from "./_process.ts";

const ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";

Deno.test("client --json prints exactly one JSON line with the result contract and exits 0 on PASS", async () => {
  const port = freePort();
  await using server = spawnDeno("server.ts", [
    "--port",
    String(port),
    "--interval",
    "2ms",
    "--seed",
    "5",
  ]);
  await server.waitForLine(/server listening/);
  await using client = spawnDeno("client.ts", [
    "--port",
    String(port),
    "--count",
    "100",
    "--id",
    ID,
    "--json",
  ]);
  const { code, stdout } = await client.done();
  assertEquals(code, 0);
  const lines = stdout.trim().split("\n");
  assertEquals(lines.length, 1);
  const r = JSON.parse(lines[0]!);
  assertEquals(r.result, "PASS");
  assertEquals([r.id, r.count, r.reconnects], [ID, 100, 0]);
  assertEquals(r.checksum, r.serverChecksum);
  assert_(/^[0-9a-f]{8}$/.test(r.checksum));
  assert_(Number.isSafeInteger(r.sum) && r.sum > 0);
  assertEquals("error" in r, false);
  // Same seed and id on another server: the same numbers.
  await using human = spawnDeno("client.ts", [
    "--port",
    String(port),
    "--count",
    "100",
    "--id",
    ID,
  ]);
  const h = await human.done();
  assertEquals(h.code, 0);
  assert_(h.stdout.startsWith("PASS"), h.stdout);
  assert_(h.stdout.includes(`sum              ${r.sum}`), h.stdout);
  assert_(h.stdout.includes(`server checksum  ${r.checksum}`), h.stdout);
});

Deno.test("client exits 2 with session_in_use for a duplicate id", async () => {
  const port = freePort();
  await using server = spawnDeno("server.ts", [
    "--port",
    String(port),
    "--interval",
    "50ms",
  ]);
  await server.waitForLine(/server listening/);
  await using first = spawnDeno("client.ts", [
    "--port",
    String(port),
    "--count",
    "1000",
    "--id",
    ID,
  ]);
  await server.waitForLine(/session started/);
  await using second = spawnDeno("client.ts", [
    "--port",
    String(port),
    "--count",
    "10",
    "--id",
    ID,
    "--json",
  ]);
  const { code, stdout } = await second.done();
  assertEquals(code, 2);
  const r = JSON.parse(stdout);
  assertEquals([r.result, r.error.code], ["ERROR", "session_in_use"]);
  first.kill();
});

Deno.test("SIGTERM: server says goaway, exits 0, and the client resumes on a new server sharing the KV file", async () => {
  const port = freePort();
  const dir = await Deno.makeTempDir();
  const store = `kv:${dir}/sessions.kv`;
  const args = [
    "--port",
    String(port),
    "--interval",
    "10ms",
    "--seed",
    "9",
    "--store",
    store,
  ];
  try {
    const a = spawnDeno("server.ts", args);
    await a.waitForLine(/server listening/);
    await using client = spawnDeno("client.ts", [
      "--port",
      String(port),
      "--count",
      "150",
      "--id",
      ID,
      "--json",
    ]);
    await a.waitForLine(/session started/);
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    a.kill("SIGTERM");
    const exit = await a.done();
    assertEquals(exit.code, 0);
    // A ceiling against a hang, far from the ~100 ms a shutdown takes.
    assert_(Date.now() - t0 < 20_000, "shutdown took too long");
    assert_(a.stderr.some((l) => /server stopped/.test(l)));
    await using b = spawnDeno("server.ts", args);
    await b.waitForLine(/session resumed/);
    const { code, stdout } = await client.done();
    assertEquals(code, 0, stdout);
    const r = JSON.parse(stdout);
    assertEquals(r.result, "PASS");
    assert_(r.reconnects >= 1);
    await using ref = spawnDeno("client.ts", [
      "--port",
      String(port),
      "--count",
      "150",
      "--id",
      ID,
      "--json",
    ]);
    assertEquals(JSON.parse((await ref.done()).stdout).sum, r.sum);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
