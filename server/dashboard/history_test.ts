import type { Clock, TimerId } from "../../common/clock.ts";
import { FakeClock } from "../../common/fake_clock.ts";
import { assert_, assertEquals } from "../../tests/_assert.ts";
import {
  type MetricsSnapshot,
  newCounters,
  newHistograms,
  observeIn,
} from "../metrics.ts";
import {
  bucketQuantile,
  HISTORY_CAPACITY,
  HistoryRing,
  HistorySampler,
  SERIES,
} from "./history.ts";

function snapshot(): MetricsSnapshot {
  return {
    connections: 0,
    sessions: 0,
    unackedNumbers: 0,
    unackedPeak: 0,
    window: 10,
    counters: newCounters(),
    refusals: new Map(),
    storeOps: new Map(),
    histograms: newHistograms(),
  };
}

Deno.test("HistorySampler takes one point a second on the injected clock, rates over the step", async () => {
  const clock = new FakeClock(1_000_000);
  const m = snapshot();
  using sampler = new HistorySampler({ clock, metrics: () => m });
  assertEquals(sampler.ring.size, 1, "a first point at start");
  m.sessions = 3;
  m.connections = 2;
  m.counters.numbersSent += 500;
  m.counters.clientTimeouts += 2;
  m.counters.connectionsRejectedBusy += 1;
  (m.refusals as Map<string, number>).set("store_unavailable", 4);
  observeIn(m.histograms!.welcome, "hello", 0.003);
  observeIn(m.histograms!.storeOps, "create", 0.0007);
  await clock.advance(999);
  assertEquals(sampler.ring.size, 1, "not before the step");
  await clock.advance(1);
  const h = sampler.ring.toJson();
  assertEquals(h.t, [1_000_000, 1_001_000]);
  assertEquals(h.series.sessions, [0, 3]);
  assertEquals(h.series.connections, [0, 2]);
  assertEquals(h.series.numbers_per_s, [null, 500]);
  assertEquals(h.series.client_timeouts_per_s, [null, 2]);
  assertEquals(h.series.busy_per_s, [null, 1]);
  assertEquals(h.series.refused_store_unavailable_per_s, [null, 4]);
  assertEquals(h.series.slow_consumers_per_s, [null, 0]);
  // One welcome of 3 ms lands in the (2.5, 5] ms bucket.
  const w = h.series.welcome_p99_ms![1]!;
  assert_(w > 2.5 && w <= 5, `welcome p99 ${w}`);
  assertEquals(h.series.loop_p99_ms, [null, null], "nothing observed: none");
  assertEquals(Math.round(h.series.store_mean_ms![1]! * 10) / 10, 0.7);
  // The next second, nothing happens: rates fall to 0.
  await clock.advance(1000);
  const next = sampler.ring.toJson(1_001_000);
  assertEquals(next.t, [1_002_000]);
  assertEquals(next.series.numbers_per_s, [0]);
  assertEquals(next.series.welcome_p99_ms, [null]);
});

Deno.test("HistorySampler keeps 15 minutes and no more, in memory fixed at start", async () => {
  const clock = new FakeClock(0);
  const m = snapshot();
  using sampler = new HistorySampler({ clock, metrics: () => m });
  const bytes = sampler.ring.bytes;
  assertEquals(bytes, HISTORY_CAPACITY * (SERIES.length + 1) * 8);
  for (let i = 0; i < HISTORY_CAPACITY + 100; i++) {
    m.sessions = i + 1;
    await clock.advance(1000);
  }
  const h = sampler.ring.toJson();
  assertEquals(h.t.length, HISTORY_CAPACITY);
  assertEquals(h.capacity, 900);
  assertEquals(h.t[0], 101_000, "the oldest points were overwritten");
  assertEquals(h.t.at(-1), 1_000_000);
  assertEquals(h.series.sessions!.at(-1), 1000);
  assertEquals(h.bytes, bytes, "memory did not grow");
  assertEquals(sampler.ring.recent("sessions", 3), [998, 999, 1000]);
});

/**
 * A {@link FakeClock} whose event loop can be blocked: {@link stall} moves
 * both readings on by `ms` while the timers that fall due wait, then runs
 * them late, in due order, the way a runtime does after a long synchronous
 * task. (`FakeClock.advance` fires every timer on time; `FakeClock.set`
 * steps the wall reading alone and fires nothing.)
 */
class StallingClock implements Clock {
  readonly fake: FakeClock;
  #held: { id: TimerId; fn: () => void }[] | undefined;

  constructor(wall: number, monotonic: number) {
    this.fake = new FakeClock(wall, monotonic);
  }
  now(): number {
    return this.fake.now();
  }
  monotonic(): number {
    return this.fake.monotonic();
  }
  setTimeout(fn: () => void, ms: number): TimerId {
    const id: TimerId = this.fake.setTimeout(
      () => this.#held ? this.#held.push({ id, fn }) : fn(),
      ms,
    );
    return id;
  }
  clearTimeout(id: TimerId | undefined): void {
    this.fake.clearTimeout(id);
    this.#held = this.#held?.filter((t) => t.id !== id);
  }
  advance(ms: number): Promise<void> {
    return this.fake.advance(ms);
  }
  /** The event loop is blocked for `ms`; what fell due runs after it. */
  async stall(ms: number): Promise<void> {
    this.#held = [];
    await this.fake.advance(ms);
    const late = this.#held;
    this.#held = undefined;
    for (const t of late) t.fn();
    await this.fake.advance(0);
  }
}

Deno.test("HistorySampler stays on its grid after a stall and stops when disposed", async () => {
  // Wall and monotonic readings from different origins: pacing on one and
  // stamping with the other must not mix them up.
  const clock = new StallingClock(1_000_000, 500);
  const m = snapshot();
  const sampler = new HistorySampler({ clock, metrics: () => m });
  m.counters.numbersSent = 3000;
  await clock.stall(3000); // the event loop was blocked for 3 s
  const h = sampler.ring.toJson();
  assertEquals(h.t, [1_000_000, 1_003_000], "one late point, no burst");
  assertEquals(h.series.numbers_per_s, [null, 1000], "rate over the real gap");
  await clock.advance(999);
  assertEquals(sampler.ring.size, 2, "a full step after the late point");
  await clock.advance(1);
  assertEquals(sampler.ring.last, 1_004_000);
  // A shorter stall delays one point; the next is back on the grid.
  await clock.stall(1250);
  assertEquals(sampler.ring.last, 1_005_250);
  await clock.advance(749);
  assertEquals(sampler.ring.size, 4, "not a full step after the late point");
  await clock.advance(1);
  assertEquals(sampler.ring.last, 1_006_000);
  sampler[Symbol.dispose]();
  assertEquals(clock.fake.pending, 0);
  await clock.advance(5000);
  assertEquals(sampler.ring.size, 5);
});

Deno.test("HistoryRing: toJson(since) returns only newer points, oldest first", () => {
  const r = new HistoryRing(3);
  const row = (v: number) => SERIES.map(() => v);
  for (let i = 1; i <= 5; i++) r.push(i * 10, row(i));
  assertEquals(r.toJson().t, [30, 40, 50]);
  assertEquals(r.toJson(40).t, [50]);
  assertEquals(r.toJson(50).t, []);
  assertEquals(r.toJson().series.connections, [3, 4, 5]);
  assertEquals(r.recent("sessions", 10), [3, 4, 5]);
});

Deno.test("bucketQuantile interpolates inside the bucket like histogram_quantile", () => {
  const bounds = [1, 2, 4];
  assertEquals(bucketQuantile(bounds, [0, 0, 0, 0], 0.99), NaN);
  assertEquals(bucketQuantile(bounds, [0, 10, 0, 0], 0.5), 1.5);
  assertEquals(bucketQuantile(bounds, [10, 0, 0, 0], 1), 1);
  assertEquals(
    bucketQuantile(bounds, [0, 0, 0, 5], 0.5),
    4,
    "+Inf: the top bound",
  );
});

Deno.test("HistorySampler: a wall clock stepped back does not send time backward", async () => {
  const clock = new FakeClock(100_000);
  const m = snapshot();
  using sampler = new HistorySampler({ clock, metrics: () => m });
  await clock.advance(1000);
  clock.set(40_000); // NTP steps the clock back a minute
  sampler.sample();
  sampler.sample();
  assertEquals(sampler.ring.toJson().t, [100_000, 101_000, 101_001, 101_002]);
  assertEquals(sampler.ring.toJson(101_000).t, [101_001, 101_002]);
  assertEquals(clock.pending, 1, "still sampling");
  // The timer counts monotonic time: the next point is a step after the
  // last one, its rate over that second, not over the 1 ms of stamps.
  m.counters.numbersSent += 500;
  await clock.advance(1000);
  const h = sampler.ring.toJson(101_002);
  assertEquals(h.t, [101_003]);
  assertEquals(h.series.numbers_per_s, [500]);
  await clock.advance(1000);
  assertEquals(sampler.ring.last, 101_004, "and the next a step later");
});
