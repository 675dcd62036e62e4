import { assertEquals, assertThrows } from "../tests/_assert.ts";
import { UsageError } from "../cli/usage.ts";
import {
  checkThresholds,
  METRICS,
  parseThreshold,
  thresholdLine,
} from "./thresholds.ts";

Deno.test("parseThreshold reads METRIC OP VALUE with the metric's units", () => {
  const cases: [string, string, string, number][] = [
    ["tick_lag_p99<100ms", "tick_lag_p99", "<", 100],
    ["welcome_p95 <= 0.25s", "welcome_p95", "<=", 250],
    ["resume_max<2s", "resume_max", "<", 2000],
    ["failed==0", "failed", "==", 0],
    ["failed_rate<1%", "failed_rate", "<", 0.01],
    ["failed_rate<0.5", "failed_rate", "<", 0.5],
    ["server_rss_mib<1GiB", "server_rss_mib", "<", 1024],
    ["server_cpu_pct<80%", "server_cpu_pct", "<", 80],
    ["reconnects!=3", "reconnects", "!=", 3],
    ["first_number_count>=10", "first_number_count", ">=", 10],
  ];
  for (const [expr, metric, op, limit] of cases) {
    const t = parseThreshold(expr);
    assertEquals([t.metric, t.op, t.limit], [metric, op, limit], expr);
  }
});

Deno.test("parseThreshold: a clear usage error for bad syntax, names and units", () => {
  const bad: [string, RegExp][] = [
    ["tick_lag_p99", /METRIC OP VALUE/],
    ["lag_p99<100ms", /unknown metric "lag_p99"/],
    ["failed<3ms", /failed takes no unit, got "ms"/],
    ["tick_lag_p99<100MiB", /takes ms, s, us, µs or no unit/],
    ["tick_lag_p99<-1ms", /METRIC OP VALUE/],
  ];
  for (const [expr, msg] of bad) {
    const e = assertThrows(() => parseThreshold(expr), UsageError);
    assertEquals(msg.test(e.message), true, e.message);
  }
});

Deno.test("checkThresholds: pass, fail, and an unknown figure fails", () => {
  const ts = ["tick_lag_p99<100ms", "failed==0", "server_rss_mib<512"].map(
    parseThreshold,
  );
  const r = checkThresholds(ts, {
    tick_lag_p99: 12.5,
    failed: 1,
    server_rss_mib: null,
  });
  assertEquals(r.map((x) => [x.pass, x.value]), [
    [true, 12.5],
    [false, 1],
    [false, null],
  ]);
  assertEquals(thresholdLine(r[0]!), "✓ pass  tick_lag_p99<100ms  (12.5 ms)");
  assertEquals(thresholdLine(r[2]!), "✗ FAIL  server_rss_mib<512  (unknown)");
});

Deno.test("METRICS: every latency has p50, p90, p95, p99, max and count", () => {
  for (
    const l of [
      "welcome",
      "first_number",
      "tick_lag",
      "tick_lag_steady",
      "resume",
    ]
  ) {
    for (const s of ["p50", "p90", "p95", "p99", "max", "count"]) {
      assertEquals(METRICS[`${l}_${s}`] !== undefined, true, `${l}_${s}`);
    }
  }
});
