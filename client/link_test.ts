/**
 * The client's transport on a fake clock over a real loopback socket to a
 * listener that never answers: what its handshake limit covers.
 */

import { assertEquals } from "../tests/_assert.ts";
import { FakeClock } from "../common/fake_clock.ts";
import { ClientError } from "./errors.ts";
import { Link } from "./link.ts";

Deno.test("Link: one handshake limit covers dial plus WELCOME, counted from the start of the dial", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const accepted = listener.accept();
  const clock = new FakeClock();
  let dialed!: () => void;
  const slowDial = new Promise<void>((r) => dialed = r);
  const opening = Link.open({
    hostname: "127.0.0.1",
    port,
    signal: new AbortController().signal,
    clock,
    limitMs: 1000,
    // The dial takes 600 ms of the 1000 ms.
    dial: async (o) => {
      await slowDial;
      return await Deno.connect(o);
    },
  });
  await clock.advance(600);
  dialed();
  using link = await opening;
  using _server = await accepted;
  const read = link.read(false).then(() => "data", (e) => e);
  await clock.advance(399);
  assertEquals(link.idleFired, false, "399 ms left of the limit: still open");
  await clock.advance(1);
  assertEquals(link.idleFired, true, "no WELCOME 1000 ms after the dial began");
  const err = await read;
  assertEquals(
    [err instanceof ClientError && err.code, (err as Error).message],
    ["connection_lost", "No welcome within 1000ms"],
  );
});

Deno.test("Link.holdIdle: no silence counts while held (a durable save in flight); released, it counts from then", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const accepted = listener.accept();
  const clock = new FakeClock();
  using link = await Link.open({
    hostname: "127.0.0.1",
    port,
    signal: new AbortController().signal,
    clock,
    limitMs: 1000,
  });
  using _server = await accepted;
  const read = link.read(true).then(() => "data", (e) => e);
  link.holdIdle(true);
  await clock.advance(5000);
  assertEquals(link.idleFired, false, "held for 5 s, five times the limit");
  link.holdIdle(false);
  await clock.advance(999);
  assertEquals(link.idleFired, false, "999 ms after the release");
  await clock.advance(1);
  assertEquals(link.idleFired, true, "1000 ms after the release");
  await read;
});
