/**
 * `deno task load --target` against servers the tool did not start: with
 * `--metrics`, the server CPU and RSS come from the target's `process_*`
 * figures; without, the report says plainly that they are unknown; and
 * against a dead target the tool stops once nothing is left to wait for,
 * naming what was left.
 *
 * @module
 */

import { parseFlags } from "../cli/usage.ts";
import { FLAGS, parseConfig } from "../load/config.ts";
import { run } from "../load/main.ts";
import { table } from "../load/report.ts";
import { reportCharts } from "../load/report_html.ts";
import { assert_, assertEquals } from "./_assert.ts";
import { testServer } from "./_fixtures.ts";

const small = [
  "--clients",
  "4",
  "--ramp",
  "200ms",
  "--count",
  "60",
  "--interval",
  "20ms",
  "--settle",
  "2s",
  "--seed",
  "5",
];

Deno.test("load --target --metrics: server CPU and RSS from the target's /metrics", async () => {
  await using server = await testServer({ intervalMs: 20 });
  const m = server.metricsAddr!;
  const cfg = parseConfig(parseFlags(FLAGS, [
    "--target",
    `127.0.0.1:${server.addr.port}`,
    "--metrics",
    `127.0.0.1:${m.port}`,
    ...small,
    // Long enough for two samples of /metrics a second apart: a run that
    // fits between two had a CPU delta of 0 (seen once in CI).
    "--count",
    "150",
  ]));
  const r = await run({ ...cfg, timeline: true }, new AbortController().signal);
  assertEquals([r.verdict, r.serverFigures], ["PASS", "metrics"]);
  assert_(
    (r.cpuPerNumber.run.serverUs ?? 0) > 0,
    `server µs per number: ${r.cpuPerNumber.run.serverUs}`,
  );
  assert_((r.serverMax?.peakRssMiB ?? 0) > 0, "peak RSS from /metrics");
  const text = table(r);
  assert_(!text.includes("null"), text);
  assert_(/CPU per number\s+servers [\d.]+ µs/.test(text), text);
  const charts = reportCharts(r, r.timeline ?? []);
  for (const id of ["cpu", "rss"]) {
    const c = charts.find((c) => c.id === id)!;
    assertEquals(c.note, undefined, id);
    assert_(
      Object.values(c.series).some((s) => s.some((v) => v !== null && v > 0)),
      `${id} charted: ${JSON.stringify(c.series)}`,
    );
  }
});

Deno.test("load --target without --metrics: server CPU and RSS said to be unknown, not 0 or null", async () => {
  await using server = await testServer({ intervalMs: 20 });
  const cfg = parseConfig(parseFlags(FLAGS, [
    "--target",
    `127.0.0.1:${server.addr.port}`,
    ...small,
  ]));
  const r = await run({ ...cfg, timeline: true }, new AbortController().signal);
  assertEquals([r.verdict, r.serverFigures], ["PASS", "unknown"]);
  assertEquals(r.cpuPerNumber.run.serverUs, null);
  const text = table(r);
  assert_(!text.includes("null") && !text.includes("0 µs,"), text);
  assert_(text.includes("server CPU unknown (see below)"), text);
  assert_(
    /server CPU and RSS\s+unknown: servers not started by this run; give --metrics/
      .test(text),
    text,
  );
  const cpu = reportCharts(r, r.timeline ?? []).find((c) => c.id === "cpu")!;
  assert_(cpu.note?.startsWith("unknown"), cpu.note);
});

Deno.test("load against a dead target stops once every client has failed and says what was left", async () => {
  const dead = () => {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (l.addr as Deno.NetAddr).port;
    l.close();
    return port;
  };
  const target = dead(), metrics = dead();
  const cfg = parseConfig(parseFlags(FLAGS, [
    "--target",
    `127.0.0.1:${target}`,
    "--metrics",
    `127.0.0.1:${metrics}`,
    "--clients",
    "3",
    "--ramp",
    "0s",
    "--count",
    "5",
    "--interval",
    "100ms",
    "--handshake-timeout",
    "500ms",
  ]));
  // Without --settle, a failed run waits the session TTL (30 s) plus 5 s for zero state.
  assertEquals(cfg.settleMs, undefined);
  const r = await run(cfg, new AbortController().signal);
  assertEquals([r.verdict, r.clients.failed, r.zeroState], ["FAIL", 3, false]);
  assertEquals(r.settleEnded, "unreachable");
  assertEquals(r.zeroLeft, `127.0.0.1:${metrics} did not answer /metrics`);
  assert_(
    r.meta.durationS < 30,
    `stopped without waiting out the settle: ${r.meta.durationS} s`,
  );
  assert_(
    table(r).includes(
      `NO: 127.0.0.1:${metrics} did not answer /metrics (stopped waiting: a server no longer answers)`,
    ),
    table(r),
  );
});
