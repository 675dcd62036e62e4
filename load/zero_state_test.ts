import { assert_, assertEquals } from "../tests/_assert.ts";
import { testServer } from "../tests/_fixtures.ts";
import { awaitZeroState, describeLeft, leftOver } from "./zero_state.ts";

/** A loopback port nothing listens on. */
function deadPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test("awaitZeroState stops waiting for a server that does not answer, and says so", async () => {
  const at = { hostname: "127.0.0.1", port: deadPort() };
  const t0 = Date.now();
  const z = await awaitZeroState([at], 60_000, new AbortController().signal);
  assertEquals(z.zeroState, false);
  assertEquals(z.ended, "unreachable");
  assert_(Date.now() - t0 < 30_000, "did not wait out the settle time");
  assertEquals(
    describeLeft(z.left!),
    `127.0.0.1:${at.port} did not answer /metrics`,
  );
});

Deno.test("awaitZeroState returns at once on a server at zero", async () => {
  await using server = await testServer();
  const a = server.metricsAddr!;
  const z = await awaitZeroState(
    [{ hostname: a.hostname, port: a.port }],
    60_000,
    new AbortController().signal,
  );
  assertEquals([z.zeroState, z.ended, z.left], [true, "zero", []]);
});

Deno.test("leftOver names what each server still held", () => {
  const m = new Map([["seqstream_connections", 2], ["seqstream_sessions", 5]]);
  const zero = new Map([["seqstream_connections", 0], [
    "seqstream_sessions",
    0,
  ]]);
  const at = (port: number) => ({ hostname: "127.0.0.1", port });
  const left = leftOver([at(1), at(2), at(3)], [m, zero, null]);
  assertEquals(
    describeLeft(left),
    "127.0.0.1:1 held 2 connections and 5 sessions; 127.0.0.1:3 did not answer /metrics",
  );
});
