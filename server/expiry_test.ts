import { FakeClock } from "../common/fake_clock.ts";
import { assertEquals } from "../tests/_assert.ts";
import { ExpiryQueue } from "./expiry.ts";

function queue(clock: FakeClock) {
  const fired: [string, number][] = [];
  const q = new ExpiryQueue<number>(
    clock,
    () => clock.now(),
    (due) => {
      for (const e of due) fired.push([e.id, clock.now() - e.deadline]);
    },
  );
  return { q, fired };
}

Deno.test("ExpiryQueue fires each entry exactly at its deadline, in deadline order, with one timer", async () => {
  const clock = new FakeClock(0);
  const { q, fired } = queue(clock);
  // [id, deadline]: out of order, and ties.
  const table: [string, number][] = [
    ["c", 300],
    ["a", 100],
    ["b", 200],
    ["b2", 200],
    ["d", 1000],
  ];
  for (const [id, at] of table) q.add(id, at, at);
  assertEquals([q.size, clock.pending], [5, 1]);
  await clock.advance(99);
  assertEquals(fired, []);
  await clock.advance(1000);
  assertEquals(fired.map(([id]) => id), ["a", "b", "b2", "c", "d"]);
  assertEquals(fired.every(([, late]) => late === 0), true, "fired late");
  assertEquals([q.size, clock.pending], [0, 0]);
});

Deno.test("ExpiryQueue: a deleted or re-added entry fires only at its last deadline", async () => {
  const clock = new FakeClock(0);
  const { q, fired } = queue(clock);
  q.add("gone", 100, 0);
  q.add("moved", 100, 0);
  assertEquals(q.delete("gone"), true);
  q.add("moved", 500, 0); // a new detach restarts the TTL
  await clock.advance(499);
  assertEquals(fired, []);
  await clock.advance(1);
  assertEquals(fired, [["moved", 0]]);
  assertEquals(q.get("moved"), undefined);
});

Deno.test("ExpiryQueue re-arms when its time line moves against the local clock", async () => {
  const clock = new FakeClock(0);
  let offset = 0;
  const fired: string[] = [];
  const q = new ExpiryQueue<void>(
    clock,
    () => clock.now() + offset,
    (due) => fired.push(...due.map((e) => e.id)),
  );
  q.add("x", 100, undefined);
  offset = -50; // the store clock turned out to be behind
  await clock.advance(100);
  assertEquals(fired, []);
  await clock.advance(50);
  assertEquals(fired, ["x"]);
});

Deno.test("ExpiryQueue.close stops the timer", async () => {
  const clock = new FakeClock(0);
  const { q, fired } = queue(clock);
  q.add("a", 10, 0);
  q.close();
  await clock.advance(100);
  assertEquals([fired.length, clock.pending], [0, 0]);
});
