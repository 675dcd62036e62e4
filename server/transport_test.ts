import { assertEquals, assertRejects } from "../tests/_assert.ts";
import { memoryPair } from "./_memory_transport.ts";
import { connTransport } from "./transport.ts";

Deno.test("connTransport carries bytes both ways over a real socket, gives the peer's address, and close() is idempotent", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const dialed = Deno.connect({ hostname: "127.0.0.1", port });
  const t = connTransport(await listener.accept());
  const peer = await dialed;
  assertEquals(t.remoteAddr, {
    hostname: "127.0.0.1",
    port: (peer.localAddr as Deno.NetAddr).port,
  });
  await peer.write(new Uint8Array([1, 2, 3]));
  const buf = new Uint8Array(8);
  assertEquals(await t.read(buf), 3);
  assertEquals(await t.write(new Uint8Array([9])), 1);
  assertEquals(await peer.read(buf), 1);
  await t.closeWrite!();
  assertEquals(await peer.read(buf), null, "half-closed: the peer reads EOF");
  peer.close();
  assertEquals(await t.read(buf), null);
  t.close();
  t.close();
  await assertRejects(() => t.read(buf), Deno.errors.BadResource);
});

Deno.test("memoryPair follows the transport contract: EOF after close, BrokenPipe on write to a closed peer, ConnectionReset on reset", async () => {
  const buf = new Uint8Array(4);
  const [a, b] = memoryPair();
  await a.write(new Uint8Array([1, 2, 3, 4, 5]));
  assertEquals(await b.read(buf), 4);
  a.close();
  a.close();
  assertEquals(await b.read(buf), 1, "what was sent before the close arrives");
  assertEquals(await b.read(buf), null);
  await assertRejects(() => b.write(buf), Deno.errors.BrokenPipe);
  await assertRejects(() => a.read(buf), Deno.errors.BadResource);

  const [c, d] = memoryPair();
  const pending = d.read(buf);
  await c.write(new Uint8Array([7]));
  c.reset();
  assertEquals(await pending, 1);
  await assertRejects(() => d.read(buf), Deno.errors.ConnectionReset);
  await assertRejects(() => c.write(buf), Deno.errors.ConnectionReset);

  const [e, f] = memoryPair();
  await e.closeWrite();
  assertEquals(await f.read(buf), null);
  await f.write(new Uint8Array([1]));
  assertEquals(await e.read(buf), 1, "a half-closed side still reads");
});
