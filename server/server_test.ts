import { assertEquals, assertRejects } from "../tests/_assert.ts";
import { silentLogger } from "../common/logger.ts";
import { MemoryStore } from "../store/memory.ts";
import { startServer } from "./server.ts";

// Deno 2.9 runs tests without the leak sanitizers unless asked: these
// tests are about leaks, so they ask.
const SANITIZED = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "startServer with the metrics port taken throws and leaves nothing running",
  SANITIZED,
  async () => {
    using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const store = new MemoryStore();
    let closed = 0;
    const close = store.close.bind(store);
    store.close = () => (closed++, close());
    await assertRejects(
      () =>
        startServer({
          metricsPort: (taken.addr as Deno.NetAddr).port,
          store,
          ownStore: true,
          log: silentLogger,
        }),
      Deno.errors.AddrInUse,
    );
    // The owned store was closed; the listener and the heartbeat timer were
    // stopped (the test's resource and op sanitizers would fail otherwise).
    assertEquals(closed, 1);
  },
);

Deno.test(
  "startServer with the client port taken throws and closes the store it made",
  SANITIZED,
  async () => {
    using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    await assertRejects(
      () =>
        startServer({
          port: (taken.addr as Deno.NetAddr).port,
          log: silentLogger,
        }),
      Deno.errors.AddrInUse,
    );
  },
);

Deno.test("startServer refuses out-of-range durations and windows with RangeError, before listening", async () => {
  const cases: [string, Record<string, number>, string][] = [
    ["ttl 600h", { ttlMs: 600 * 3_600_000 }, "ttlMs must be from 100ms to 24h"],
    ["interval -1", { intervalMs: -1 }, "intervalMs"],
    ["client timeout 10ms", { clientTimeoutMs: 10 }, "clientTimeoutMs"],
    ["handshake 1.5ms", { handshakeTimeoutMs: 1.5 }, "handshakeTimeoutMs"],
    ["stall 0", { stallMs: 0 }, "stallMs"],
    ["lease 10ms", { leaseMs: 10 }, "leaseMs"],
    ["window 0", { window: 0 }, "window"],
  ];
  for (const [what, opts, msg] of cases) {
    await assertRejects(
      () => startServer({ ...opts, log: silentLogger }),
      RangeError,
      msg,
    ).catch((err) => {
      throw new Error(`${what}: ${err.message}`);
    });
  }
});

Deno.test("startServer announces the defaults from common/defaults.ts in its metrics", async () => {
  await using server = await startServer({ log: silentLogger, intervalMs: 0 });
  assertEquals(server.metrics().window, 4096);
  await using paced = await startServer({ log: silentLogger });
  assertEquals(paced.metrics().window, 20); // 2 client timeouts of 1 s numbers
});
