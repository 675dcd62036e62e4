/**
 * The load tool's flags: the derived count outlasts ramp plus window, and
 * `--kill` and `--client` are checked with one-line usage errors.
 *
 * @module
 */

import { parseFlags, UsageError } from "../cli/usage.ts";
import { assertEquals, assertThrows } from "../tests/_assert.ts";
import { defaultCount, FLAGS, parseConfig } from "./config.ts";

const cfg = (...args: string[]) => parseConfig(parseFlags(FLAGS, args));

Deno.test("load config: sessions outlast ramp plus window unless a count is given", () => {
  assertEquals(defaultCount(60_000, 60_000, 1000), 121);
  const c = cfg("--ramp", "30s", "--window", "60s");
  assertEquals([c.countMin, c.countMax], [91, 91]);
  // The last session starts at the end of the ramp and still streams when the window ends.
  assertEquals(c.countMax * c.intervalMs >= c.rampMs + c.windowMs, true);
  assertEquals(cfg("--count", "7").countMax, 7);
  assertEquals(
    [cfg("--count-min", "5").countMin, cfg("--count-min", "5").countMax],
    [5, 5],
  );
});

Deno.test("load config: --kill needs a survivor on the same port, and a valid INDEX@TIME", () => {
  const k = cfg("--servers", "2", "--store", "redis", "--kill", "1@45s");
  assertEquals([k.kill, k.ownRedis, k.hosts], [
    { index: 1, atMs: 45_000 },
    true,
    1,
  ]);
  assertThrows(() => cfg("--kill", "0@1s"), UsageError);
  assertThrows(
    () => cfg("--servers", "2", "--hosts", "2", "--kill", "0@1s"),
    UsageError,
  );
  assertThrows(() => cfg("--servers", "2", "--kill", "2@1s"), UsageError);
  assertThrows(() => cfg("--servers", "2", "--kill", "soon"), UsageError);
  assertThrows(() => cfg("--client", "fast"), UsageError);
});

Deno.test("load config: --threshold is repeatable, and a bad one is a usage error", () => {
  const c = cfg(
    "--threshold",
    "tick_lag_p99<100ms",
    "--threshold",
    "failed==0",
  );
  assertEquals(c.thresholds.map((t) => [t.metric, t.op, t.limit]), [
    ["tick_lag_p99", "<", 100],
    ["failed", "==", 0],
  ]);
  assertEquals(cfg().thresholds, []);
  assertThrows(() => cfg("--threshold", "nope<1"), UsageError);
});
