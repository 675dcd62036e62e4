import { assert_, assertEquals } from "../tests/_assert.ts";
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
 * Counts the timers the code under test creates, by wrapping the global
 * `setTimeout`/`clearTimeout` (which the scheduler looks up at call time).
 */
function trackTimers() {
  const realSet = globalThis.setTimeout;
  const realClear = globalThis.clearTimeout;
  type Id = ReturnType<typeof setTimeout>;
  const live = new Set<Id>();
  const stats = { created: 0, maxLive: 0, fired: 0, live };
  globalThis.setTimeout = ((fn: () => void, ms?: number) => {
    const id: Id = realSet(() => {
      live.delete(id);
      stats.fired++;
      fn();
    }, ms);
    live.add(id);
    stats.created++;
    stats.maxLive = Math.max(stats.maxLive, live.size);
    return id;
  }) as unknown as typeof setTimeout;
  globalThis.clearTimeout = ((id?: Id) => {
    if (id !== undefined) live.delete(id);
    realClear(id);
  }) as unknown as typeof clearTimeout;
  return {
    stats,
    [Symbol.dispose]() {
      globalThis.setTimeout = realSet;
      globalThis.clearTimeout = realClear;
    },
  };
}

Deno.test("Scheduler runs tasks in due order, whatever the order they were scheduled in", async () => {
  const s = new Scheduler();
  const order: number[] = [];
  const done = Promise.withResolvers<void>();
  const offsets = [30, 5, 20, 0, 25, 10, 15];
  const t0 = performance.now();
  for (const off of offsets) {
    const task = new FnTask(() => {
      order.push(off);
      if (order.length === offsets.length) done.resolve();
      return null;
    });
    s.schedule(task, t0 + off);
  }
  assertEquals(s.size, offsets.length);
  await done.promise;
  assertEquals(order, [0, 5, 10, 15, 20, 25, 30]);
  assertEquals(s.size, 0);
  s.close();
});

Deno.test("Scheduler never runs a task more than 1ms before it is due", async () => {
  const s = new Scheduler();
  const done = Promise.withResolvers<void>();
  const early: number[] = [];
  const task = new FnTask((now, self) => {
    early.push(self.due - performance.now());
    if (self.runs.length === 5) {
      done.resolve();
      return null;
    }
    return now + 7;
  });
  s.schedule(task, performance.now() + 7);
  await done.promise;
  assertEquals(task.runs.length, 5);
  for (const e of early) assert_(e <= 1, `ran ${e}ms early`);
  s.close();
});

Deno.test("Scheduler stops a task that returns null and keeps running others", async () => {
  const s = new Scheduler();
  const done = Promise.withResolvers<void>();
  const stopper = new FnTask((now, self) =>
    self.runs.length < 3 ? now + 1 : null
  );
  // Runs well after the stopper would have run again, had it not stopped.
  const sentinel = new FnTask((now, self) => {
    if (self.runs.length < 10) return now + 2;
    done.resolve();
    return null;
  });
  const t0 = performance.now();
  s.schedule(stopper, t0);
  s.schedule(sentinel, t0 + 1);
  await done.promise;
  assertEquals(stopper.runs.length, 3);
  assertEquals(stopper.slot, -1);
  assertEquals(sentinel.runs.length, 10);
  assertEquals(s.size, 0);
  s.close();
});

Deno.test("Scheduler.cancel removes a task so it never runs", async () => {
  const s = new Scheduler();
  const done = Promise.withResolvers<void>();
  const t0 = performance.now();
  const cancelled = [0, 1, 2, 3].map(() => new FnTask(() => null));
  const kept = new FnTask(() => {
    done.resolve();
    return null;
  });
  cancelled.forEach((t, i) => s.schedule(t, t0 + i * 3));
  s.schedule(kept, t0 + 15);
  // Cancel from the head, the middle and the tail of the heap.
  for (const t of cancelled) s.cancel(t);
  assertEquals(s.size, 1);
  for (const t of cancelled) assertEquals(t.slot, -1);
  s.cancel(cancelled[0]!); // cancelling twice is a no-op
  assertEquals(s.size, 1);
  await done.promise;
  for (const t of cancelled) assertEquals(t.runs.length, 0);
  assertEquals(kept.runs.length, 1);
  s.close();
});

Deno.test("Scheduler.cancel of the last task clears the timer", () => {
  using timers = trackTimers();
  const s = new Scheduler();
  const task = new FnTask(() => null);
  s.schedule(task, performance.now() + 60_000);
  assertEquals(timers.stats.live.size, 1);
  s.cancel(task);
  assertEquals(s.size, 0);
  assertEquals(timers.stats.live.size, 0);
  // Deno's sanitizer also fails this test if a timer were left behind.
});

Deno.test("Scheduler.schedule of a scheduled task moves it instead of adding it twice", async () => {
  const s = new Scheduler();
  const done = Promise.withResolvers<void>();
  const t0 = performance.now();
  const task = new FnTask(() => null);
  const after = new FnTask(() => {
    done.resolve();
    return null;
  });
  s.schedule(task, t0 + 60_000);
  s.schedule(task, t0 + 2); // earlier: the timer must be re-armed for it
  s.schedule(after, t0 + 8);
  assertEquals(s.size, 2);
  await done.promise;
  assertEquals(task.runs.length, 1);
  assertEquals(s.size, 0);
  s.close();
});

Deno.test("Scheduler runs 1000 tasks with one timer between them", async () => {
  using timers = trackTimers();
  const s = new Scheduler();
  const N = 1000;
  const ROUNDS = 3;
  let finished = 0;
  const done = Promise.withResolvers<void>();
  const tasks: FnTask[] = [];
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const task = new FnTask((now, self) => {
      if (self.runs.length < ROUNDS) return now + 1 + (i % 5);
      if (++finished === N) done.resolve();
      return null;
    });
    tasks.push(task);
    s.schedule(task, t0 + (i * 7) % 20);
  }
  await done.promise;
  for (const t of tasks) assertEquals(t.runs.length, ROUNDS);
  assertEquals(s.size, 0);
  // One timer at a time, and far fewer timers than runs: due tasks share a tick.
  assertEquals(timers.stats.maxLive, 1);
  assert_(
    timers.stats.created < (N * ROUNDS) / 10,
    `${timers.stats.created} timers for ${N * ROUNDS} runs`,
  );
  assertEquals(timers.stats.live.size, 0);
  s.close();
});

Deno.test("Scheduler runs an always-due task at most once per tick", async () => {
  using timers = trackTimers();
  const s = new Scheduler();
  const done = Promise.withResolvers<void>();
  const ticks: number[] = [];
  const task = new FnTask((now, self) => {
    ticks.push(timers.stats.fired);
    if (self.runs.length === 20) {
      done.resolve();
      return null;
    }
    return now - 5; // already overdue
  });
  s.schedule(task, performance.now());
  await done.promise;
  // Each run happened in a different timer callback: the loop yields to I/O in between.
  assertEquals(new Set(ticks).size, 20);
  s.close();
});

Deno.test("Scheduler.close cancels every task and leaves no pending timer", () => {
  using timers = trackTimers();
  const s = new Scheduler();
  const t0 = performance.now();
  const tasks = Array.from({ length: 10 }, () => new FnTask(() => null));
  tasks.forEach((t, i) => s.schedule(t, t0 + 60_000 + i));
  assertEquals(s.size, 10);
  assertEquals(timers.stats.live.size, 1);
  s.close();
  assertEquals(s.size, 0);
  for (const t of tasks) assertEquals(t.slot, -1);
  assertEquals(timers.stats.live.size, 0);
  // With the sanitizers on, a timer still pending here would fail the test as well.
});

Deno.test("Scheduler can be used again after close", async () => {
  const s = new Scheduler();
  s.schedule(new FnTask(() => null), performance.now() + 60_000);
  s.close();
  const done = Promise.withResolvers<void>();
  const task = new FnTask(() => {
    done.resolve();
    return null;
  });
  s.schedule(task, performance.now());
  await done.promise;
  assertEquals(task.runs.length, 1);
  s.close();
});
