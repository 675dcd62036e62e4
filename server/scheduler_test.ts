import { assert_, assertEquals } from "../tests/_assert.ts";
import type { Clock, TimerId } from "../common/clock.ts";
import { FakeClock } from "../common/fake_clock.ts";
import { Scheduler, type Task } from "./scheduler.ts";

/** A task whose behaviour is a function; `runs` records the scheduler's `now` at each run. */
class FnTask implements Task {
  due = 0;
  slot = -1;
  readonly runs: number[] = [];
  constructor(readonly fn: (now: number, self: FnTask) => number | null) {}
  run(now: number): number | null {
    this.runs.push(now);
    return this.fn(now, this);
  }
}

/**
 * A {@link FakeClock} (monotonic time starting at 0) that counts the timers
 * armed through it and the callbacks fired; `live` is the timers pending.
 */
class CountingClock implements Clock {
  readonly fake = new FakeClock(1_700_000_000_000, 0);
  created = 0;
  fired = 0;
  maxLive = 0;
  get live(): number {
    return this.fake.pending;
  }
  now(): number {
    return this.fake.now();
  }
  monotonic(): number {
    return this.fake.monotonic();
  }
  setTimeout(fn: () => void, ms: number): TimerId {
    this.created++;
    const id = this.fake.setTimeout(() => {
      this.fired++;
      fn();
    }, ms);
    this.maxLive = Math.max(this.maxLive, this.live);
    return id;
  }
  clearTimeout(id: TimerId | undefined): void {
    this.fake.clearTimeout(id);
  }
  advance(ms: number): Promise<void> {
    return this.fake.advance(ms);
  }
}

Deno.test("Scheduler runs tasks in due order, whatever the order they were scheduled in, each at its due time", async () => {
  const clock = new CountingClock();
  const s = new Scheduler(clock);
  const order: [number, number][] = [];
  const offsets = [30, 5, 20, 0, 25, 10, 15];
  for (const off of offsets) {
    s.schedule(new FnTask((now) => (order.push([off, now]), null)), off);
  }
  assertEquals(s.size, offsets.length);
  await clock.advance(29);
  assertEquals(order.length, 6);
  await clock.advance(1);
  assertEquals(order, [0, 5, 10, 15, 20, 25, 30].map((o) => [o, o]));
  assertEquals([s.size, clock.live], [0, 0]);
});

Deno.test("Scheduler runs what is due within 1ms in one tick, and nothing due later", async () => {
  const clock = new CountingClock();
  const s = new Scheduler(clock);
  const a = new FnTask(() => null);
  const b = new FnTask(() => null);
  const c = new FnTask(() => null);
  s.schedule(a, 10);
  s.schedule(b, 11); // within 1ms of the tick at 10
  s.schedule(c, 11.5); // not
  await clock.advance(10);
  assertEquals([a.runs, b.runs, c.runs], [[10], [10], []]);
  assertEquals(clock.fired, 1);
  await clock.advance(1.5);
  assertEquals(c.runs, [11.5]);
  assertEquals(clock.fired, 2);
});

Deno.test("Scheduler reschedules a task at the due time it returns, on the clock's monotonic time", async () => {
  const clock = new CountingClock();
  await clock.advance(1000); // monotonic 1000
  clock.fake.set(0); // a wall-clock step changes nothing
  const s = new Scheduler(clock);
  const task = new FnTask((now, self) => self.runs.length < 5 ? now + 7 : null);
  s.schedule(task, clock.monotonic() + 7);
  await clock.advance(100);
  assertEquals(task.runs, [1007, 1014, 1021, 1028, 1035]);
  assertEquals([s.size, clock.live], [0, 0]);
});

Deno.test("Scheduler stops a task that returns null and keeps running others", async () => {
  const clock = new CountingClock();
  const s = new Scheduler(clock);
  const stopper = new FnTask((now, self) =>
    self.runs.length < 3 ? now + 1 : null
  );
  const sentinel = new FnTask((now, self) =>
    self.runs.length < 10 ? now + 2 : null
  );
  s.schedule(stopper, 0);
  s.schedule(sentinel, 1);
  await clock.advance(100);
  assertEquals(stopper.runs.length, 3);
  assertEquals(stopper.slot, -1);
  assertEquals(sentinel.runs.length, 10);
  assertEquals([s.size, clock.live], [0, 0]);
});

Deno.test("Scheduler.cancel removes a task so it never runs", async () => {
  const clock = new CountingClock();
  const s = new Scheduler(clock);
  const cancelled = [0, 1, 2, 3].map(() => new FnTask(() => null));
  const kept = new FnTask(() => null);
  cancelled.forEach((t, i) => s.schedule(t, i * 3));
  s.schedule(kept, 15);
  // Cancel from the head, the middle and the tail of the heap.
  for (const t of cancelled) s.cancel(t);
  assertEquals(s.size, 1);
  for (const t of cancelled) assertEquals(t.slot, -1);
  s.cancel(cancelled[0]!); // cancelling twice is a no-op
  assertEquals(s.size, 1);
  await clock.advance(20);
  for (const t of cancelled) assertEquals(t.runs.length, 0);
  assertEquals(kept.runs, [15]);
});

Deno.test("Scheduler.cancel of the last task clears the timer", () => {
  const clock = new CountingClock();
  const s = new Scheduler(clock);
  const task = new FnTask(() => null);
  s.schedule(task, 60_000);
  assertEquals(clock.live, 1);
  s.cancel(task);
  assertEquals([s.size, clock.live], [0, 0]);
});

Deno.test("Scheduler.schedule of a scheduled task moves it instead of adding it twice", async () => {
  const clock = new CountingClock();
  const s = new Scheduler(clock);
  const task = new FnTask(() => null);
  const after = new FnTask(() => null);
  s.schedule(task, 60_000);
  s.schedule(task, 2); // earlier: the timer must be re-armed for it
  s.schedule(after, 8);
  assertEquals([s.size, clock.live], [2, 1]);
  await clock.advance(8);
  assertEquals([task.runs, after.runs], [[2], [8]]);
  assertEquals([s.size, clock.live], [0, 0]);
});

Deno.test("Scheduler runs 1000 tasks with one timer between them", async () => {
  const clock = new CountingClock();
  const s = new Scheduler(clock);
  const N = 1000;
  const ROUNDS = 3;
  const tasks: FnTask[] = [];
  for (let i = 0; i < N; i++) {
    const task = new FnTask((now, self) =>
      self.runs.length < ROUNDS ? now + 1 + (i % 5) : null
    );
    tasks.push(task);
    s.schedule(task, (i * 7) % 20);
  }
  await clock.advance(100);
  for (const t of tasks) assertEquals(t.runs.length, ROUNDS);
  assertEquals(s.size, 0);
  // One timer at a time, and far fewer timers than runs: due tasks share a tick.
  assertEquals(clock.maxLive, 1);
  assert_(
    clock.created < (N * ROUNDS) / 10,
    `${clock.created} timers for ${N * ROUNDS} runs`,
  );
  assertEquals(clock.live, 0);
});

Deno.test("Scheduler runs an always-due task at most once per tick", async () => {
  const clock = new CountingClock();
  const s = new Scheduler(clock);
  const ticks: number[] = [];
  const task = new FnTask((now, self) => {
    ticks.push(clock.fired);
    return self.runs.length === 20 ? null : now - 5; // already overdue
  });
  s.schedule(task, 0);
  await clock.advance(0);
  // Each run happened in a different timer callback: the loop yields to I/O in between.
  assertEquals(task.runs.length, 20);
  assertEquals(new Set(ticks).size, 20);
  assertEquals(clock.live, 0);
});

Deno.test("Scheduler.close cancels every task and leaves no pending timer", () => {
  const clock = new CountingClock();
  const s = new Scheduler(clock);
  const tasks = Array.from({ length: 10 }, () => new FnTask(() => null));
  tasks.forEach((t, i) => s.schedule(t, 60_000 + i));
  assertEquals([s.size, clock.live], [10, 1]);
  s.close();
  assertEquals(s.size, 0);
  for (const t of tasks) assertEquals(t.slot, -1);
  assertEquals(clock.live, 0);
});

Deno.test("Scheduler can be used again after close", async () => {
  const clock = new CountingClock();
  const s = new Scheduler(clock);
  s.schedule(new FnTask(() => null), 60_000);
  s.close();
  const task = new FnTask(() => null);
  s.schedule(task, 5);
  await clock.advance(5);
  assertEquals(task.runs, [5]);
  assertEquals(clock.live, 0);
});

Deno.test("Scheduler on the system clock runs a task (the production wiring)", async () => {
  const { systemClock } = await import("../common/clock.ts");
  const s = new Scheduler(systemClock);
  const done = Promise.withResolvers<number>();
  const task = new FnTask((now) => (done.resolve(now), null));
  const due = systemClock.monotonic() + 5;
  s.schedule(task, due);
  const ran = await done.promise;
  assert_(ran >= due - 1, `ran ${due - ran}ms early`);
  s.close();
});
