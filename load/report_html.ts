/**
 * `deno task load --report FILE.html`: the run as one self-contained HTML
 * file, in the order a reader asks: the header (when, how long, versions,
 * host, the exact command), the `--threshold` results, percentile tables
 * (p50, p90, p95, p99, max, count) with a distribution chart for each
 * latency, charts over time drawn from the sampler's per-second samples
 * (uPlot, the npm package pinned in `deno.json`, inlined), and the summary
 * table. It loads nothing from anywhere.
 *
 * To add a section: a function from the {@link LoadReport} to HTML, called
 * in {@link renderReportHtml}; to add a chart, an entry in
 * {@link reportCharts} or {@link distributionCharts}.
 *
 * Tick lag over time is the worst any client saw in each second (what the
 * load processes report each second), drawn with the run's p50 and p99 as
 * flat lines; per-second percentiles would need the load processes to send
 * them.
 *
 * @module
 */

import uplotJs from "uplot/dist/uPlot.iife.min.js" with { type: "text" };
import uplotCss from "uplot/dist/uPlot.min.css" with { type: "text" };
import {
  LATENCIES,
  type LatencyName,
  type LoadReport,
  tableRows,
  unknownServerFigures,
} from "./report.ts";
import type { Sample } from "./sampler.ts";

/** One chart: a title, a unit and named series over the samples' times. */
export interface ChartData {
  id: string;
  title: string;
  unit: string;
  x: number[];
  series: Record<string, (number | null)[]>;
  /** `time`: seconds of the run on x; `distribution`: latency bins (ms, log) on x. */
  kind?: "time" | "distribution";
  /** Said instead of a chart when there is no data, e.g. why a figure is unknown. */
  note?: string;
}

/** Per-second rate of a running total (null where either side is missing). */
function rate(
  samples: readonly Sample[],
  get: (s: Sample) => number | null | undefined,
): (number | null)[] {
  return samples.map((s, i) => {
    const p = samples[i - 1];
    if (p === undefined) return null;
    const a = get(p), b = get(s), dt = s.t - p.t;
    return a == null || b == null || dt <= 0
      ? null
      : Math.round((Math.max(0, b - a) / dt) * 10) / 10;
  });
}

/** The report's charts, computed from the samples. */
export function reportCharts(
  report: LoadReport,
  samples: readonly Sample[],
): ChartData[] {
  const x = samples.map((s) => s.t);
  const fromMetrics = report.serverFigures === "metrics";
  const servers = fromMetrics
    ? report.config.targets.length && (samples[0]?.metricsCpuS.length ?? 0)
    : report.servers.length;
  const perServer = (f: (s: Sample, i: number) => number | null) =>
    Object.fromEntries(
      Array.from(
        { length: servers },
        (_, i) => [`server ${i + 1}`, samples.map((s) => f(s, i))],
      ),
    );
  const cpuOf = (s: Sample, i: number) =>
    fromMetrics ? s.metricsCpuS[i] ?? null : s.serverCpuS[i] ?? null;
  const unknown = unknownServerFigures(report) ?? undefined;
  const codes = [
    ...new Set(samples.flatMap((s) => Object.keys(s.serverRefusals ?? {}))),
  ];
  return [
    {
      id: "live",
      title: "Live sessions",
      unit: "count",
      x,
      series: {
        "live sessions": samples.map((s) => s.live),
        "connected": samples.map((s) => s.connected),
        "server connections": samples.map((s) => s.serverConnections),
      },
    },
    {
      id: "numbers",
      title: "Numbers sent",
      unit: "per second",
      x,
      series: { "numbers/s": rate(samples, (s) => s.serverNumbersSent) },
    },
    {
      id: "lag",
      title: "Tick lag",
      unit: "ms",
      x,
      series: {
        "p50 (per second)": samples.map((s) => s.tickLagP50Ms),
        "p99 (per second)": samples.map((s) => s.tickLagP99Ms),
        "max (per second)": samples.map((s) => s.tickLagMs),
      },
    },
    {
      id: "cpu",
      title: "Server CPU",
      unit: "% of a core",
      x,
      series: perServer((s, i) => {
        const j = samples.indexOf(s), p = samples[j - 1];
        if (p === undefined || s.t <= p.t) return null;
        const a = cpuOf(p, i), b = cpuOf(s, i);
        if (a === null || b === null) return null;
        return Math.round((1000 * (b - a)) / (s.t - p.t)) / 10;
      }),
      ...(unknown ? { note: unknown } : {}),
    },
    {
      id: "rss",
      title: "Server RSS",
      unit: "MiB",
      x,
      series: perServer((s, i) =>
        fromMetrics ? s.metricsRssMiB[i] ?? null : s.serverRssMiB?.[i] ?? null
      ),
      ...(unknown ? { note: unknown } : {}),
    },
    {
      id: "loadgen",
      title: "Load generator CPU",
      unit: "% of a core, all processes",
      x,
      series: {
        "load generators": rate(samples, (s) => s.workerCpuS).map((v) =>
          v === null ? null : Math.round(v * 1000) / 10
        ),
      },
    },
    {
      id: "errors",
      title: "Reconnects and refusals by code",
      unit: "per second, as the servers count them",
      x,
      series: {
        "resumes": rate(samples, (s) => s.serverResumes),
        ...Object.fromEntries(
          codes.map((c) => [
            c,
            rate(samples, (s) => s.serverRefusals?.[c] ?? 0),
          ]),
        ),
      },
    },
  ];
}

/** One distribution chart per latency: samples per log-spaced bin. */
export function distributionCharts(report: LoadReport): ChartData[] {
  return (Object.keys(LATENCIES) as LatencyName[]).map((k) => {
    const d = report.latency[k].distribution;
    return {
      id: `dist-${k}`,
      title: `Distribution: ${LATENCIES[k]}`,
      unit: "samples per bin; ms, log scale",
      kind: "distribution",
      x: d.le.map((v) => Math.max(0.001, v)),
      series: { samples: d.count },
      ...(d.count.length === 0
        ? {
          note: k === "resume"
            ? "none: no session was cut and resumed in this run"
            : "none measured",
        }
        : {}),
    };
  });
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** JSON safe inside a `<script>` element. */
function scriptJson(v: unknown): string {
  return JSON.stringify(v).replace(/</g, "\\u003c");
}

const PAGE_JS = `
"use strict";
const data = JSON.parse(document.getElementById("data").textContent);
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
window.reportCharts = data.charts.concat(data.distributions);
function draw(c, into) {
  const el = document.createElement("div");
  el.className = "chart";
  el.id = "chart-" + c.id;
  into.append(el);
  const names = Object.keys(c.series);
  if (c.note) {
    el.innerHTML = "<div class=title></div><div class=note></div>";
    el.querySelector(".title").textContent = c.title + " (" + c.unit + ")";
    el.querySelector(".note").textContent = c.note;
    return;
  }
  const dist = c.kind === "distribution";
  new uPlot({
    title: c.title + " (" + c.unit + ")",
    width: dist ? 440 : 560,
    height: dist ? 200 : 240,
    scales: {
      x: dist ? { time: false, distr: 3 } : { time: false },
      y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] },
    },
    axes: [{ label: dist ? "ms (upper edge of the bin)" : "seconds since the ramp began" }, { size: 60 }],
    series: [{ label: dist ? "ms" : "t (s)" }, ...names.map((n, i) => ({
      label: n,
      stroke: COLORS[i % COLORS.length],
      fill: dist ? "rgba(31,119,180,0.25)" : undefined,
      width: 1.5,
      spanGaps: true,
      paths: dist ? uPlot.paths.stepped({ align: 1 }) : undefined,
      dash: n.startsWith("run ") ? [6, 4] : undefined,
    }))],
  }, [c.x, ...names.map((n) => c.series[n])], el);
}
for (const c of data.distributions) draw(c, document.getElementById("distributions"));
for (const c of data.charts) draw(c, document.getElementById("charts"));
`;

/** The header: when, how long, versions, host, command. */
function headerHtml(r: LoadReport): string {
  const m = r.meta, h = m.host;
  const rows: [string, string][] = [
    ["started", m.startedAt.replace("T", " ").replace(/\.\d+Z$/, " UTC")],
    ["duration", `${m.durationS} s`],
    ["seqstream", m.seqstream],
    [
      "runtime",
      `Deno ${m.deno} (V8 ${m.v8}, TypeScript ${m.typescript})`,
    ],
    [
      "host",
      `${h.hostname ?? "?"}: ${h.cores} cores, ${
        h.memoryGiB ?? "?"
      } GiB memory, ${h.os}${
        h.loadavg ? `, load average ${h.loadavg.join(" ")} at the end` : ""
      }`,
    ],
  ];
  return `<dl id="meta">${
    rows.map(([k, v]) =>
      `<div><dt>${escapeHtml(k)}</dt><dd data-meta="${k}">${
        escapeHtml(v)
      }</dd></div>`
    ).join("")
  }</dl>`;
}

/** `--threshold` results as a pass/fail table (or how to set one). */
function thresholdsHtml(r: LoadReport): string {
  if (r.thresholds.length === 0) {
    return `<section id="thresholds"><h2>Thresholds</h2><p class="none">None set. Add criteria with <code>--threshold 'tick_lag_p99&lt;100ms'</code> (repeatable; metric names in docs/load.md).</p></section>`;
  }
  const rows = r.thresholds.map((t) =>
    `<tr class="${t.pass ? "pass" : "fail"}"><td>${
      t.pass ? "✓ pass" : "✗ FAIL"
    }</td><td><code>${escapeHtml(t.expr)}</code></td><td>${
      t.value === null ? "unknown" : escapeHtml(
        `${Math.round(t.value * 100) / 100}${t.unit ? " " + t.unit : ""}`,
      )
    }</td></tr>`
  ).join("\n");
  const failed = r.thresholds.filter((t) => !t.pass).length;
  return `<section id="thresholds"><h2>Thresholds: <span class="${
    failed ? "FAIL" : "PASS"
  }">${
    failed ? `${failed} of ${r.thresholds.length} failed` : "all passed"
  }</span></h2>
<table><thead><tr><th></th><th>threshold</th><th>value</th></tr></thead><tbody>
${rows}
</tbody></table></section>`;
}

/** p50, p90, p95, p99, max and count of each latency. */
function percentilesHtml(r: LoadReport): string {
  const cols = ["p50", "p90", "p95", "p99", "max"] as const;
  const rows = (Object.keys(LATENCIES) as LatencyName[]).map((k) => {
    const l = r.latency[k];
    return `<tr data-latency="${k}"><th>${escapeHtml(LATENCIES[k])}</th>${
      cols.map((c) => `<td>${l.count > 0 ? l[c] : "—"}</td>`).join("")
    }<td>${l.count}</td></tr>`;
  }).join("\n");
  return `<table id="percentiles"><thead><tr><th>ms</th>${
    cols.map((c) => `<th>${c}</th>`).join("")
  }<th>count</th></tr></thead><tbody>
${rows}
</tbody></table>`;
}

/**
 * The report as one HTML file. `command` is the exact command line of the
 * run, shown as is.
 */
export function renderReportHtml(
  report: LoadReport,
  samples: readonly Sample[],
  command: string,
): string {
  const charts = reportCharts(report, samples);
  const distributions = distributionCharts(report);
  const rows = tableRows(report).map(([k, v]) =>
    `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`
  ).join("\n");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>seqstream load report: ${escapeHtml(report.verdict)}</title>
<style>${uplotCss}
body { font: 14px/1.4 system-ui, sans-serif; margin: 1em 2em; color: #222; }
pre { background: #f4f4f4; padding: 0.6em; white-space: pre-wrap; }
#charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(570px, 1fr)); gap: 1em; }
#distributions { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr)); gap: 1em; margin-bottom: 1.5em; }
.chart { border: 1px solid #ddd; border-radius: 4px; padding: 0.3em; }
.chart .title { font-weight: 600; text-align: center; }
.chart .note { color: #777; font-style: italic; padding: 3em 1em; text-align: center; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { text-align: left; padding: 0.2em 0.8em; border-bottom: 1px solid #eee; vertical-align: top; }
#percentiles td { text-align: right; font-variant-numeric: tabular-nums; }
#meta { display: flex; flex-wrap: wrap; gap: 0.2em 1.5em; margin: 0 0 0.6em; }
#meta div { display: flex; gap: 0.4em; } #meta dt { color: #777; } #meta dd { margin: 0; font-weight: 600; }
#thresholds tr.pass td:first-child { color: #080; font-weight: 600; }
#thresholds tr.fail td:first-child { color: #b00; font-weight: 600; }
#thresholds tr.fail { background: #fde4e4; }
.PASS { color: #080; } .FAIL { color: #b00; }
</style>
</head>
<body>
<h1>seqstream load report: <span class="${report.verdict}" id="verdict">${report.verdict}</span></h1>
${headerHtml(report)}
<pre id="command">${escapeHtml(command)}</pre>
${thresholdsHtml(report)}
<h2>Latencies</h2>
${percentilesHtml(report)}
<div id="distributions"></div>
<h2>Over time</h2>
<div id="charts"></div>
<h2>Summary</h2>
<table id="summary">
${rows}
</table>
<script type="application/json" id="data">${
    scriptJson({ charts, distributions, report })
  }</script>
<script>${uplotJs}</script>
<script>${PAGE_JS}</script>
</body>
</html>
`;
}
