import { assertEquals, assertRejects } from "../tests/_assert.ts";
import { WaitBatcher } from "./redis_confirm.ts";

/** A connection whose WAITs answer when the test says, with the replicas it says. */
class FakeConnection {
  stream: object = {};
  waits: {
    replicas: number;
    ms: number;
    answer: (n: number) => void;
    fail: (e: Error) => void;
  }[] = [];
  wait(replicas: number, ms: number): Promise<number> {
    return new Promise((answer, fail) =>
      this.waits.push({ replicas, ms, answer, fail })
    );
  }
}

const tick = () => new Promise((r) => setTimeout(r, 0));

Deno.test("WaitBatcher keeps one WAIT in flight: writes made meanwhile share the next one", async () => {
  const c = new FakeConnection();
  const b = new WaitBatcher(c, 2, 300);
  const first = b.confirm(c.stream);
  const later = Array.from({ length: 10 }, () => b.confirm(c.stream));
  assertEquals(c.waits.length, 1);
  assertEquals([c.waits[0]!.replicas, c.waits[0]!.ms], [2, 300]);
  c.waits[0]!.answer(2);
  assertEquals(await first, 2);
  await tick();
  // The ten writes made while the first WAIT was out need one sent after them.
  assertEquals(c.waits.length, 2);
  c.waits[1]!.answer(1);
  assertEquals(await Promise.all(later), Array(10).fill(1));
  assertEquals(b.sent, 2);
  await tick();
  assertEquals(c.waits.length, 2, "a WAIT with nobody waiting");
});

Deno.test("WaitBatcher counts 0 replicas for a write whose connection was replaced before its WAIT went out", async () => {
  const c = new FakeConnection();
  const b = new WaitBatcher(c, 1, 100);
  const old = c.stream;
  const p = b.confirm(old);
  c.stream = {}; // reconnected (to a new primary, perhaps) while the WAIT was out
  const q = b.confirm(old);
  c.waits[0]!.answer(1);
  assertEquals(await p, 1); // that WAIT went out on the old socket
  await tick();
  c.waits[1]!.answer(1);
  assertEquals(await q, 0); // this one on the new socket: it says nothing of the write
});

Deno.test("WaitBatcher passes a failed WAIT to every write waiting on it, then sends the next", async () => {
  const c = new FakeConnection();
  const b = new WaitBatcher(c, 1, 100);
  const p = b.confirm(c.stream);
  const q = b.confirm(c.stream);
  c.waits[0]!.fail(new Error("Connection is closed."));
  await assertRejects(() => p, Error, "closed");
  await tick();
  c.waits[1]!.fail(new Error("Command timed out"));
  await assertRejects(() => q, Error, "timed out");
  const r = b.confirm(c.stream);
  c.waits[2]!.answer(1);
  assertEquals(await r, 1);
});
