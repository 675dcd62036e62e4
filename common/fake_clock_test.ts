import { assertEquals, assertRejects } from "../tests/_assert.ts";
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

Deno.test("FakeClock.advance moves the wall and monotonic readings together", async () => {
  const clock = new FakeClock(1_000_000, 50);
  assertEquals([clock.now(), clock.monotonic()], [1_000_000, 50]);
  await clock.advance(25);
  assertEquals([clock.now(), clock.monotonic()], [1_000_025, 75]);
});

Deno.test("FakeClock.set steps the wall reading only: monotonic time and timers are unaffected", async () => {
  const clock = new FakeClock(1_000_000, 0);
  const fired: [number, number][] = [];
  clock.setTimeout(() => fired.push([clock.now(), clock.monotonic()]), 100);
  clock.set(5_000_000); // forward: fires nothing
  assertEquals([fired, clock.monotonic()], [[], 0]);
  await clock.advance(99);
  assertEquals(fired, []);
  clock.set(0); // backward: delays nothing
  await clock.advance(1);
  assertEquals(fired, [[1, 100]]);
  assertEquals(clock.pending, 0);
});

Deno.test("FakeClock.advance refuses to go back", async () => {
  const clock = new FakeClock();
  await assertRejects(() => clock.advance(-1), RangeError);
  assertEquals(clock.monotonic(), 0);
});

Deno.test("FakeClock keeps due order across many timers, cleared ones included", async () => {
  const clock = new FakeClock(0, 0);
  const fired: number[] = [];
  const ids = [];
  // 500 timers in a scrambled order, every third cleared.
  for (let i = 0; i < 500; i++) {
    const due = (i * 7919) % 500;
    ids.push([due, clock.setTimeout(() => fired.push(due), due)] as const);
  }
  const kept: number[] = [];
  for (const [due, id] of ids) {
    if (due % 3 === 0) clock.clearTimeout(id);
    else kept.push(due);
  }
  assertEquals(clock.pending, kept.length);
  await clock.advance(499);
  assertEquals(fired, kept.sort((a, b) => a - b));
  assertEquals(clock.pending, 0);
});
