import { Histogram } from "./histogram.ts";
import { assert_, assertEquals } from "../tests/_assert.ts";

function assertNear(
  actual: number,
  expected: number,
  rel: number,
  what: string,
): void {
  if (Math.abs(actual - expected) > Math.abs(expected) * rel + 1e-3) {
    throw new Error(`${what}: expected ≈${expected}, got ${actual}`);
  }
}

Deno.test("Histogram percentiles stay within 1.6% across the range", () => {
  const h = new Histogram();
  const values: number[] = [];
  for (let i = 0; i < 10_000; i++) {
    const v = Math.exp(Math.random() * Math.log(600_000)) / 1000; // 1 µs .. 10 min
    values.push(v);
    h.record(v);
  }
  values.sort((a, b) => a - b);
  for (const p of [1, 50, 90, 99, 99.9]) {
    const exact = values[Math.ceil((p / 100) * values.length) - 1]!;
    assertNear(h.percentile(p), exact, 0.016, `p${p}`);
  }
  if (h.percentile(100) !== values.at(-1)) {
    throw new Error("p100 must be the exact maximum");
  }
});

Deno.test("Histogram merges a serialised histogram and counts negatives as zero", () => {
  const a = new Histogram();
  const b = new Histogram();
  a.record(-5);
  a.record(0.05);
  for (let i = 1; i <= 100; i++) b.record(i);
  const merged = Histogram.from(JSON.parse(JSON.stringify(a.toJSON())));
  merged.merge(b);
  if (merged.count !== 102) throw new Error(`count ${merged.count}`);
  if (merged.percentile(0.5) !== 0) {
    throw new Error(`p0.5 ${merged.percentile(0.5)}`);
  }
  assertNear(merged.percentile(50), 49, 0.016, "p50");
  if (merged.max !== 100) throw new Error(`max ${merged.max}`);
});

Deno.test("Histogram of nothing reports zeros", () => {
  const h = new Histogram();
  if (h.percentile(99) !== 0 || h.max !== 0 || h.count !== 0) {
    throw new Error("not empty");
  }
});

Deno.test("Histogram.since gives the values recorded after a clone, for per-second percentiles", () => {
  const h = new Histogram();
  for (let i = 0; i < 100; i++) h.record(1000); // an earlier, slow second
  const before = h.clone();
  for (let i = 1; i <= 100; i++) h.record(i); // this second: 1..100 ms
  const second = h.since(before);
  assertEquals(second.count, 100);
  const p50 = second.percentile(50), p99 = second.percentile(99);
  assert_(p50 >= 49 && p50 <= 52, `p50 ${p50}`);
  assert_(p99 >= 98 && p99 <= 101, `p99 ${p99}`);
  assertEquals(h.percentile(50) >= 99, true, "the whole run is still there");
  assertEquals(h.since(h.clone()).count, 0);
});

Deno.test("Histogram.distribution: log-spaced bins from the smallest value to the largest, every sample counted", () => {
  const h = new Histogram();
  assertEquals(h.distribution(), { le: [], count: [] });
  for (let i = 1; i <= 1000; i++) h.record(i / 10); // 0.1 .. 100 ms
  const d = h.distribution(10);
  assertEquals(d.le.length, 10);
  assertEquals(d.count.reduce((a, b) => a + b, 0), 1000);
  assertEquals(d.le.at(-1), 100);
  for (let i = 1; i < d.le.length; i++) {
    assertEquals(d.le[i]! > d.le[i - 1]!, true, "ascending edges");
  }
  // Log-spaced: uniform values crowd the upper bins.
  assertEquals(d.count.at(-1)! > d.count[0]!, true);
  const one = new Histogram();
  one.record(5);
  one.record(5);
  assertEquals(one.distribution(), { le: [5], count: [2] });
});
