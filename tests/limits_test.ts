/**
 * Abuse limits through a real server: `--max-handshakes-per-sec` refuses the
 * connections one address opens beyond its budget with `server_busy`, and a
 * client that retries that retriable code still completes.
 */

import { ErrorCode, isRetriableCode } from "../protocol/errors.ts";
import { assert_, assertEquals } from "./_assert.ts";
import { eventually, scrape, testServer } from "./_fixtures.ts";
import { freePort, spawnDeno } from "./_process.ts";
import { hello, rawConnect, runSession } from "./_raw.ts";

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

/** A session that retries retriable refusals every 50 ms, as a client would. */
async function retrying(port: number, count: number): Promise<number> {
  const id = crypto.randomUUID(), tok = token();
  for (let attempt = 0;; attempt++) {
    try {
      return await runSession(port, { id, count, token: tok });
    } catch (err) {
      const code = /^ERROR (\d+)/.exec((err as Error).message)?.[1];
      if (attempt > 100 || !isRetriableCode(Number(code))) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

Deno.test("--max-handshakes-per-sec: clients retry past server_busy and all complete", async () => {
  await using server = await testServer({
    maxHandshakesPerSec: 5,
    intervalMs: 0,
  });
  const results = await Promise.all(
    Array.from({ length: 12 }, () => retrying(server.addr.port, 20)),
  );
  for (const r of results) assertEquals(r, 20);
  const refused = (await scrape(server)).get(
    "seqstream_connections_rejected_rate_total",
  )!;
  assert_(
    refused > 0,
    "12 clients at once against 5 per second: some must have been refused",
  );
  await eventually(() => server.metrics().connections === 0, "no sockets");
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
