/**
 * `deno task load --report FILE.html` end to end: a small real run (one
 * server process, one load process, some clients cut by the fault proxy)
 * with thresholds, its report opened in headless Chromium. The header,
 * the thresholds (one set to fail, so the exit status is 99), the
 * percentile tables and every chart are there with data, and the page loads
 * nothing: no request but the file itself. A screenshot goes into the
 * test's temporary folder (and to `$SEQSTREAM_REPORT_PNG` when set).
 *
 * @module
 */

import { main } from "../load/main.ts";
import { assert_, assertEquals } from "./_assert.ts";
import { Browser, findChromium } from "./_chromium.ts";

const chromium = findChromium();
const why = "missing" in chromium ? ` (ignored: ${chromium.missing})` : "";

type Charts = {
  id: string;
  x: number[];
  series: Record<string, (number | null)[]>;
  note?: string;
}[];

Deno.test({
  name:
    `load --report: a self-contained HTML report with every chart drawn, the summary and the command${why}`,
  ignore: "missing" in chromium,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "seqstream-report-" });
    const file = `${tmp}/report.html`;
    const args = [
      "--clients",
      "16",
      "--ramp",
      "1s",
      "--count",
      "40",
      "--interval",
      "50ms",
      "--settle",
      "1s",
      "--fault-fraction",
      "0.5",
      "--fault-lifetime",
      "300ms..800ms",
      "--seed",
      "7",
      "--threshold",
      "tick_lag_p99<10s",
      "--threshold",
      "welcome_p95<5s",
      "--threshold",
      "resume_count>0",
      "--threshold",
      "failed_rate>50%", // fails on purpose: every client passes
      "--report",
      file,
    ];
    assertEquals(await main(args), 99, "a threshold failed: exit 99");
    const html = await Deno.readTextFile(file);
    assert_(!/\bsrc="http|href="http/.test(html), "nothing linked");
    await using browser = await Browser.launch(
      (chromium as { path: string }).path,
    );
    await browser.goto(`file://${file}`);
    await browser.until("window.reportCharts", "the charts");
    assertEquals(
      await browser.eval<string>(
        "document.getElementById('verdict').textContent",
      ),
      "PASS",
    );
    const command = await browser.eval<string>(
      "document.getElementById('command').textContent",
    );
    assertEquals(
      command,
      `deno task load ${
        args.map((a) => a.includes("<") || a.includes(">") ? `'${a}'` : a)
          .join(" ")
      }`,
    );
    const meta = await browser.eval<Record<string, string>>(
      "Object.fromEntries([...document.querySelectorAll('[data-meta]')].map(e => [e.dataset.meta, e.textContent]))",
    );
    assert_(
      /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/.test(meta.started!),
      meta.started,
    );
    assert_(/^\d+(\.\d)? s$/.test(meta.duration!), meta.duration);
    assert_(
      meta.runtime!.startsWith(`Deno ${Deno.version.deno}`),
      meta.runtime,
    );
    assert_(/\d+ cores, [\d.]+ GiB memory/.test(meta.host!), meta.host);
    assertEquals(meta.seqstream, "0.1.0");
    // Thresholds: three pass, the fourth fails, and the section says so.
    const rows = await browser.eval<string[][]>(
      "[...document.querySelectorAll('#thresholds tbody tr')].map(r => [r.className, ...[...r.cells].map(c => c.textContent)])",
    );
    assertEquals(rows.map((r) => [r[0], r[2]]), [
      ["pass", "tick_lag_p99<10s"],
      ["pass", "welcome_p95<5s"],
      ["pass", "resume_count>0"],
      ["fail", "failed_rate>50%"],
    ]);
    assertEquals(rows[3]![3], "0", "the failed rate shown");
    assert_(
      (await browser.eval<string>(
        "document.querySelector('#thresholds h2').textContent",
      )).includes("1 of 4 failed"),
    );
    // Percentiles: every latency with p50..max and a count.
    const pct = await browser.eval<Record<string, string[]>>(
      "Object.fromEntries([...document.querySelectorAll('#percentiles tbody tr')].map(r => [r.dataset.latency, [...r.cells].slice(1).map(c => c.textContent)]))",
    );
    assertEquals(Object.keys(pct), [
      "welcome",
      "firstNumber",
      "tickLag",
      "tickLagSteady",
      "resume",
    ]);
    for (const [k, cells] of Object.entries(pct)) {
      assertEquals(cells.length, 6, k);
      assert_(Number(cells[5]) > 0, `${k} has samples: ${cells}`);
      const [p50, p90, p95, p99, max] = cells.slice(0, 5).map(Number);
      assert_(
        p50! <= p90! && p90! <= p95! && p95! <= p99! && p99! <= max!,
        `${k} ordered: ${cells}`,
      );
    }
    const summary = await browser.eval<string>(
      "document.getElementById('summary').textContent",
    );
    assert_(/passed \/ failed\s*16 \/ 0/.test(summary), summary);
    assert_(/store ops per session\s*[\d.]+ \(/.test(summary), summary);
    assert_(/store ops per server\s*\d+ heartbeat ops/.test(summary), summary);
    const charts = await browser.eval<Charts>("window.reportCharts");
    assertEquals(charts.map((c) => c.id), [
      "live",
      "numbers",
      "lag",
      "cpu",
      "rss",
      "loadgen",
      "errors",
      "dist-welcome",
      "dist-firstNumber",
      "dist-tickLag",
      "dist-tickLagSteady",
      "dist-resume",
    ]);
    assertEquals(charts.filter((c) => c.note), [], "no chart without data");
    assertEquals(
      await browser.eval<number>(
        "document.querySelectorAll('.chart canvas').length",
      ),
      charts.length,
      "a canvas per chart",
    );
    const positive = (id: string, series: string) =>
      charts.find((c) => c.id === id)?.series[series]?.some((v) =>
        v !== null && v > 0
      );
    assert_(positive("live", "live sessions"), "live sessions charted");
    assert_(positive("numbers", "numbers/s"), "numbers/s charted");
    assert_(positive("rss", "server 1"), "server RSS charted");
    assert_(positive("cpu", "server 1"), "server CPU charted");
    assert_(positive("errors", "resumes"), "reconnects charted");
    for (const c of charts.filter((c) => c.id.startsWith("dist-"))) {
      assert_(positive(c.id, "samples"), `${c.id} has data`);
    }
    // The chart's peak is the summary's peak.
    const live = charts.find((c) => c.id === "live")!.series["live sessions"]!;
    assert_(
      new RegExp(`peak live sessions\\s*${Math.max(...live.map(Number))} `)
        .test(summary),
      summary,
    );
    assertEquals(browser.requests, [`file://${file}`], "only the file itself");
    assertEquals(browser.errors, [], "no page errors");
    await Deno.writeFile(`${tmp}/report.png`, await browser.screenshot());
    const png = Deno.env.get("SEQSTREAM_REPORT_PNG");
    if (png) await Deno.writeFile(png, await browser.screenshot());
  },
});
