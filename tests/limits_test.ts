/**
 * Abuse limits through a real server: `--max-handshakes-per-sec` refuses the
 * connections one address opens beyond its budget with `server_busy`, and a
 * real client, for which that code is retriable, still completes.
 */

import { runClient } from "../client/client.ts";
import { ErrorCode } from "../protocol/errors.ts";
import { assert_, assertEquals } from "./_assert.ts";
import { scrape, testServer } from "./_fixtures.ts";
import { freePort, spawnDeno } from "./_process.ts";
import { hello, rawConnect } from "./_raw.ts";

const token = () => crypto.getRandomValues(new Uint8Array(16));

Deno.test("--max-handshakes-per-sec: connections beyond the burst get server_busy at once; earlier ones are served", async () => {
  await using server = await testServer({
    maxHandshakesPerSec: 2,
    intervalMs: 1,
  });
  await using a = await rawConnect(server.addr.port);
  await using b = await rawConnect(server.addr.port);
  await using c = await rawConnect(server.addr.port);
  const m = await c.next(2000);
  assert_(
    m !== null && m.type === "error",
    `expected an error frame, got ${JSON.stringify(m)}`,
  );
  assertEquals(m.code, ErrorCode.SERVER_BUSY);
  assert_(
    /Too many connections from 127\.0\.0\.1: the limit is 2 per second/.test(
      m.message,
    ),
    m.message,
  );
  await c.closed(2000);
  for (const [i, p] of [a, b].entries()) {
    await p.send(hello(crypto.randomUUID(), 3, token()));
    const w = await p.next(2000);
    assertEquals(w?.type, "welcome", `connection ${i} within the budget`);
  }
  const metrics = await scrape(server);
  assertEquals(metrics.get("seqstream_connections_rejected_rate_total"), 1);
  assertEquals(metrics.get("seqstream_connections_rejected_busy_total"), 0);
});

Deno.test("--max-handshakes-per-sec: real clients retry past server_busy and all pass", async () => {
  await using server = await testServer({
    maxHandshakesPerSec: 5,
    intervalMs: 0,
  });
  const results = await Promise.all(
    Array.from(
      { length: 12 },
      () => runClient({ port: server.addr.port, count: 20, backoff: () => 50 }),
    ),
  );
  for (const r of results) assertEquals(r.result, "PASS", JSON.stringify(r));
  const refused = (await scrape(server)).get(
    "seqstream_connections_rejected_rate_total",
  )!;
  assert_(
    refused > 0,
    "12 clients at once against 5 per second: some must have been refused",
  );
  assertEquals(server.metrics().connections, 0);
});

Deno.test("server CLI --max-handshakes-per-sec 1 refuses the second connection in a second", async () => {
  const port = freePort();
  await using server = spawnDeno("server.ts", [
    "--port",
    String(port),
    "--max-handshakes-per-sec",
    "1",
  ]);
  await server.waitForLine(/server listening/);
  await using first = await rawConnect(port);
  await using second = await rawConnect(port);
  const m = await second.next(2000);
  assert_(
    m !== null && m.type === "error" && m.code === ErrorCode.SERVER_BUSY,
    JSON.stringify(m),
  );
  await first.send(hello(crypto.randomUUID(), 2, token()));
  assertEquals((await first.next(2000))?.type, "welcome");
});
