import { assert_, assertEquals, assertThrows } from "../tests/_assert.ts";
import { mulberry32 } from "../internal/mulberry32.ts";
import { BURST_MS, Pacer } from "./_pacer.ts";

/** A piece that left the pacer: when, and how many bytes. */
type Departure = { at: number; bytes: number };

/**
 * Drives `pacer` the way the proxy's pipe does, on a fake clock: a piece is
 * asked for, the "timer" fires `late(at)` ms after the wait it was given
 * (before it, if negative), and the piece is sent when the answer is 0. Pieces of
 * `pieceBytes` are ready at `readyAt[i]`; the next piece is asked for once the
 * previous one has left and it is ready.
 */
function drive(
  pacer: Pacer,
  readyAt: readonly number[],
  pieceBytes: number,
  late: (at: number) => number,
): Departure[] {
  const out: Departure[] = [];
  let now = 0;
  for (const ready of readyAt) {
    now = Math.max(now, ready);
    for (let wait; (wait = pacer.take(pieceBytes, now)) > 0;) {
      now += Math.max(0, wait + late(now));
    }
    out.push({ at: now, bytes: pieceBytes });
  }
  return out;
}

/**
 * The largest excess, over all windows `[departures[i].at, departures[j].at]`,
 * of the bytes that left in it over `rate * window`.
 */
function worstExcess(departures: readonly Departure[], rate: number): number {
  let worst = -Infinity;
  for (let i = 0; i < departures.length; i++) {
    let sum = 0;
    for (let j = i; j < departures.length; j++) {
      sum += departures[j]!.bytes;
      const ms = departures[j]!.at - departures[i]!.at;
      worst = Math.max(worst, sum - (rate * ms) / 1000);
    }
  }
  return worst;
}

/** `n` pieces all ready at time 0 (a bloated link holding megabytes). */
const allAtOnce = (n: number) => Array.from({ length: n }, () => 0);

Deno.test("Pacer.take never lets more than rate * window + burstBytes leave in any window, however early or late the caller wakes", () => {
  const cases = [
    { name: "punctual timers", rate: 100_000, late: () => 0 },
    {
      name: "timers up to 30 ms late",
      rate: 100_000,
      late: ((r) => () => r() * 30)(mulberry32(1)),
    },
    {
      name: "timers up to 1 ms early or 20 ms late",
      rate: 100_000,
      late: ((r) => () => r() * 21 - 1)(mulberry32(3)),
    },
    {
      name: "a 5 s stall at 2 s, a 1.2 s stall at 4 s",
      rate: 100_000,
      late: ((stalled) => (at: number) => {
        for (const [from, ms] of [[2000, 5000], [4000, 1200]] as const) {
          if (at >= from && !stalled.has(from)) {
            stalled.add(from);
            return ms;
          }
        }
        return 0;
      })(new Set<number>()),
    },
    {
      name: "random stalls of up to 400 ms, at a slow rate",
      rate: 3_000,
      late: ((r) => () => r() < 0.1 ? r() * 400 : 0)(mulberry32(2)),
    },
  ];
  for (const c of cases) {
    const pacer = new Pacer(c.rate);
    const departures = drive(
      pacer,
      allAtOnce(800),
      pacer.burstBytes,
      c.late,
    );
    const excess = worstExcess(departures, c.rate);
    assert_(
      excess <= pacer.burstBytes + 1e-6,
      `${c.name}: ${excess} bytes over the rate in some window, burst is ${pacer.burstBytes}`,
    );
  }
});

Deno.test("Pacer.take resumes at the rate after a long stall instead of catching up", () => {
  const pacer = new Pacer(100_000); // 1000-byte pieces, 10 ms each
  let stalled = false;
  const departures = drive(pacer, allAtOnce(300), 1000, (at) => {
    if (at < 1000 || stalled) return 0;
    stalled = true;
    return 5000; // the process got no CPU for 5 s
  });
  const resumed = departures.findIndex((d) => d.at > 5000);
  assert_(resumed > 0, "the stall happened");
  // The piece that was due at the stall leaves when the stall ends; every
  // later one leaves 10 ms after the one before it, not at once.
  const gaps = departures.slice(resumed).map((d, i) =>
    d.at - departures[resumed + i - 1]!.at
  );
  assert_(gaps[0]! > 5000, `the stall was ${gaps[0]} ms`);
  for (const gap of gaps.slice(1)) assertEquals(gap, 10);
});

Deno.test("Pacer.take gives no credit for time the link was idle", () => {
  const pacer = new Pacer(100_000);
  // Two pieces at 0, then nothing for 10 s, then 5 pieces at once.
  const ready = [0, 0, 10_000, 10_000, 10_000, 10_000, 10_000];
  const at = drive(pacer, ready, 1000, () => 0).map((d) => d.at);
  assertEquals(at, [10, 20, 10_010, 10_020, 10_030, 10_040, 10_050]);
});

Deno.test("Pacer.take delivers n bytes ready at once in n / rate, the way a link of that rate does", () => {
  for (const rate of [1, 99, 100, 10_000, 100_000, 12_345_678]) {
    const pacer = new Pacer(rate);
    const pieces = 50;
    const departures = drive(
      pacer,
      allAtOnce(pieces),
      pacer.burstBytes,
      () => 0,
    );
    const last = departures.at(-1)!.at;
    const expected = (pieces * pacer.burstBytes * 1000) / rate;
    assert_(
      Math.abs(last - expected) < 1e-6 * expected,
      `rate ${rate}: took ${last} ms, expected ${expected}`,
    );
  }
});

Deno.test("Pacer.take answers a caller woken early with the rest of the wait, not 0", () => {
  const pacer = new Pacer(100_000);
  assertEquals(pacer.take(1000, 0), 10);
  assertEquals(pacer.take(1000, 9.5), 0.5);
  assertEquals(pacer.take(1000, 10), 0);
  assertEquals(pacer.take(500, 10), 5);
});

Deno.test("Pacer.burstBytes is BURST_MS worth of bytes, at least 1", () => {
  assertEquals(BURST_MS, 10);
  assertEquals(new Pacer(100_000).burstBytes, 1000);
  assertEquals(new Pacer(150).burstBytes, 1);
  assertEquals(new Pacer(0.5).burstBytes, 1);
});

Deno.test("Pacer rejects a rate that is not > 0 and a piece outside [1, burstBytes]", () => {
  for (const rate of [0, -1, NaN, Infinity]) {
    assertThrows(() => new Pacer(rate), RangeError, "Invalid pacer rate");
  }
  const pacer = new Pacer(100_000);
  for (const bytes of [0, 1001, 1.5]) {
    assertThrows(
      () => pacer.take(bytes, 0),
      RangeError,
      `${bytes} bytes is not in [1, 1000]`,
    );
  }
});
