import { assertEquals } from "../tests/_assert.ts";
import { FakeClock } from "./fake_clock.ts";

Deno.test("FakeClock fires timers in due order, each at its own time, and not before", async () => {
  const clock = new FakeClock(1000);
  const fired: [string, number][] = [];
  clock.setTimeout(() => fired.push(["b", clock.now()]), 20);
  clock.setTimeout(() => fired.push(["a", clock.now()]), 10);
  const c = clock.setTimeout(() => fired.push(["c", clock.now()]), 15);
  clock.clearTimeout(c);
  await clock.advance(9);
  assertEquals(fired, []);
  await clock.advance(11);
  assertEquals(fired, [["a", 1010], ["b", 1020]]);
  assertEquals(clock.now(), 1020);
  assertEquals(clock.pending, 0);
});

Deno.test("FakeClock lets async work behind a timer finish and fires the timers it arms", async () => {
  const clock = new FakeClock(0);
  const seen: number[] = [];
  const tick = async () => {
    await Promise.resolve();
    seen.push(clock.now());
    if (seen.length < 3) clock.setTimeout(() => void tick(), 100);
  };
  clock.setTimeout(() => void tick(), 100);
  await clock.advance(1000);
  assertEquals(seen, [100, 200, 300]);
});
