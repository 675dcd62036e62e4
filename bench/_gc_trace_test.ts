import { assertEquals } from "../tests/_assert.ts";
import { parseGcLine, summarizeGc } from "./_gc_trace.ts";

// Lines as Deno 2.9.6 (V8 15.0) prints them with --v8-flags=--trace-gc.
const SCAVENGE =
  "[27925:0x561874a5c000]       47 ms: Scavenge 3.4 (4.4) -> 3.0 (5.2) MB, pooled: 0.0 MB, 3.27 / 0.00 ms (average mu = 1.000, current mu = 1.000) allocation failure; ";
const MARK_COMPACT =
  "[27935:0x55c62efdd000]       28 ms: Mark-Compact 2.3 (2.8) -> 2.2 (2.8) MB, pooled: 0.0 MB, 3.87 / 0.00 ms (average mu = 0.837, current mu = 0.837) testing; GC in old space requested";
const REDUCE =
  "[1:0x1]  9000 ms: Mark-Compact (reduce) 120.5 (130.0) -> 100.1 (128.0) MB, 41.50 / 0.10 ms  (average mu = 0.9, current mu = 0.8) memory reducer; GC in old space requested";
const MINOR =
  "[1:0x1]  9100 ms: Minor Mark-Sweep 20.0 (24.0) -> 18.0 (24.0) MB, pooled: 0.0 MB, 1.50 / 0.00 ms (average mu = 1.000) allocation failure;";

Deno.test("parseGcLine reads the collector and its pause from each kind of line", () => {
  assertEquals(parseGcLine(SCAVENGE), {
    kind: "young",
    name: "Scavenge",
    pauseMs: 3.27,
  });
  assertEquals(parseGcLine(MARK_COMPACT), {
    kind: "full",
    name: "Mark-Compact",
    pauseMs: 3.87,
  });
  assertEquals(parseGcLine(REDUCE), {
    kind: "full",
    name: "Mark-Compact (reduce)",
    pauseMs: 41.5,
  });
  assertEquals(parseGcLine(MINOR)?.kind, "young");
  assertEquals(parseGcLine("server listening on 127.0.0.1:9000"), undefined);
});

Deno.test("summarizeGc counts and sums young and full pauses, ignoring other lines", () => {
  assertEquals(
    summarizeGc([SCAVENGE, "noise", MARK_COMPACT, SCAVENGE, REDUCE]),
    {
      young: 2,
      youngPauseMs: 6.54,
      full: 2,
      fullPauseMs: 45.37,
      maxPauseMs: 41.5,
    },
  );
});
