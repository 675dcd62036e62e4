/**
 * `deno task load --report FILE.html` end to end: a small real run (one
 * server process, one load process, some clients cut by the fault proxy),
 * its report opened in headless Chromium. Every chart is drawn with data,
 * the summary table and command are there, and the page loads nothing: no
 * request but the file itself. A screenshot goes into the test's temporary
 * folder.
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
      "--report",
      file,
    ];
    assertEquals(await main(args), 0, "the run passes");
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
    assertEquals(command, `deno task load ${args.join(" ")}`);
    const summary = await browser.eval<string>(
      "document.getElementById('summary').textContent",
    );
    assert_(/passed \/ failed\s*16 \/ 0/.test(summary), summary);
    const charts = await browser.eval<Charts>("window.reportCharts");
    assertEquals(charts.map((c) => c.id), [
      "live",
      "numbers",
      "lag",
      "cpu",
      "rss",
      "loadgen",
      "errors",
    ]);
    assertEquals(
      await browser.eval<number>(
        "document.querySelectorAll('#charts .chart canvas').length",
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
