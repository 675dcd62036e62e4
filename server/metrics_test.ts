import { parseMetrics } from "../internal/metrics_scrape.ts";
import { runClient } from "../client/client.ts";
import { assert_, assertEquals } from "../tests/_assert.ts";
import { testServer } from "../tests/_fixtures.ts";
import {
  newCounters,
  newHistograms,
  observeIn,
  PromHistogram,
  renderPrometheus,
} from "./metrics.ts";

/**
 * Prometheus's own parser and linter: `promtool check metrics` (Debian's
 * `prometheus` package; `.ci/run` installs it). Exit 0 with no output means
 * the text parsed and broke no naming rule.
 */
const PROMTOOL = "/usr/bin/promtool";
const noPromtool = (() => {
  try {
    return Deno.statSync(PROMTOOL).isFile ? "" : " (ignored: no promtool)";
  } catch {
    return " (ignored: promtool is not installed; apt-get install prometheus)";
  }
})();

async function promtoolCheck(text: string): Promise<void> {
  const p = new Deno.Command(PROMTOOL, {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = p.stdin.getWriter();
  await w.write(new TextEncoder().encode(text));
  await w.close();
  const out = await p.output();
  const said = new TextDecoder().decode(out.stdout) +
    new TextDecoder().decode(out.stderr);
  assertEquals([out.code, said.trim()], [0, ""], text);
}

Deno.test("PromHistogram puts a value in the first bucket whose bound holds it, +Inf last", () => {
  const h = new PromHistogram([0.1, 1]);
  for (const v of [0.05, 0.1, 0.5, 1, 7]) h.observe(v);
  assertEquals([...h.counts], [2, 2, 1]);
  assertEquals([h.count, h.sum], [5, 8.65]);
});

Deno.test({
  name:
    `renderPrometheus: histograms and process figures pass promtool check metrics${noPromtool}`,
  ignore: noPromtool !== "",
  fn: async () => {
    const histograms = newHistograms();
    observeIn(histograms.welcome, "hello", 0.003);
    observeIn(histograms.welcome, "resume", 0.2);
    observeIn(histograms.storeOps, 'we"ird\\op', 20);
    histograms.resumeGap.observe(1.5);
    histograms.loopLag.observe(0.0001);
    const text = renderPrometheus({
      connections: 1,
      sessions: 2,
      unackedNumbers: 0,
      unackedPeak: 0,
      window: 10,
      counters: newCounters(),
      refusals: new Map([["bad_token", 3]]),
      storeOps: new Map([["get", 4]]),
      histograms,
      process: {
        cpuSeconds: 1.25,
        residentBytes: 1 << 20,
        startTimeSeconds: 1.7e9,
        openFds: 12,
        maxFds: 1024,
      },
    });
    await promtoolCheck(text);
    const m = parseMetrics(text);
    assertEquals(m.get("process_open_fds"), 12);
    assertEquals(
      m.get('seqstream_welcome_seconds_bucket{kind="hello",le="0.0025"}'),
      0,
    );
    assertEquals(
      m.get('seqstream_welcome_seconds_bucket{kind="hello",le="0.005"}'),
      1,
    );
    assertEquals(
      m.get('seqstream_welcome_seconds_bucket{kind="hello",le="10"}'),
      1,
      "cumulative",
    );
    assertEquals(m.get('seqstream_welcome_seconds_count{kind="resume"}'), 1);
    assert_(
      text.includes('op="we\\"ird\\\\op",le="10"} 0'),
      "escaped label; 20 s above 10",
    );
    assertEquals(m.get("seqstream_resume_gap_seconds_count"), 1);
  },
});

Deno.test({
  name:
    `/metrics of a live server passes promtool, with process_* figures and the histograms filled${noPromtool}`,
  ignore: noPromtool !== "",
  fn: async () => {
    await using server = await testServer();
    const r = await runClient({ port: server.addr.port, count: 20 });
    assertEquals(r.result, "PASS");
    const a = server.metricsAddr!;
    const text = await (await fetch(`http://${a.hostname}:${a.port}/metrics`))
      .text();
    await promtoolCheck(text);
    const m = parseMetrics(text);
    for (
      const name of [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
      ]
    ) {
      assert_((m.get(name) ?? 0) > 0, name);
    }
    assertEquals(m.get('seqstream_welcome_seconds_count{kind="hello"}'), 1);
    assertEquals(m.get('seqstream_store_op_seconds_count{op="create"}'), 1);
    assert_(m.has("seqstream_event_loop_lag_seconds_count"));
  },
});
