/**
 * `deno task load --report FILE.html`: the run as one self-contained HTML
 * file: charts over time drawn from the sampler's per-second samples
 * (uPlot, the npm package pinned in `deno.json`, inlined), the summary
 * table and the exact command. It loads nothing from anywhere.
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
import { type LoadReport, table } from "./report.ts";
import type { Sample } from "./sampler.ts";

/** One chart: a title, a unit and named series over the samples' times. */
export interface ChartData {
  id: string;
  title: string;
  unit: string;
  x: number[];
  series: Record<string, (number | null)[]>;
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
  const servers = report.servers.length;
  const perServer = (f: (s: Sample, i: number) => number | null) =>
    Object.fromEntries(
      Array.from(
        { length: servers },
        (_, i) => [`server ${i + 1}`, samples.map((s) => f(s, i))],
      ),
    );
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
        return Math.round(
          (1000 * ((s.serverCpuS[i] ?? 0) - (p.serverCpuS[i] ?? 0))) /
            (s.t - p.t),
        ) / 10;
      }),
    },
    {
      id: "rss",
      title: "Server RSS",
      unit: "MiB",
      x,
      series: perServer((s, i) => s.serverRssMiB?.[i] ?? null),
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
window.reportCharts = data.charts;
for (const c of data.charts) {
  const el = document.createElement("div");
  el.className = "chart";
  el.id = "chart-" + c.id;
  document.getElementById("charts").append(el);
  const names = Object.keys(c.series);
  new uPlot({
    title: c.title + " (" + c.unit + ")",
    width: 600,
    height: 240,
    scales: { x: { time: false } },
    axes: [{ label: "seconds since the ramp began" }, { size: 60 }],
    series: [{ label: "t (s)" }, ...names.map((n, i) => ({
      label: n,
      stroke: COLORS[i % COLORS.length],
      width: 1.5,
      spanGaps: true,
      dash: n.startsWith("run ") ? [6, 4] : undefined,
    }))],
  }, [c.x, ...names.map((n) => c.series[n])], el);
}
`;

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
  const rows = table(report).split("\n").map((line) => {
    const m = /^(\S.*?)\s{2,}(.*)$/.exec(line);
    const [k, v] = m ? [m[1]!, m[2]!] : [line, ""];
    return `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`;
  }).join("\n");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>seqstream load report: ${escapeHtml(report.verdict)}</title>
<style>${uplotCss}
body { font: 14px/1.4 system-ui, sans-serif; margin: 1em 2em; color: #222; }
pre { background: #f4f4f4; padding: 0.6em; white-space: pre-wrap; }
#charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(620px, 1fr)); gap: 1em; }
.chart { border: 1px solid #ddd; border-radius: 4px; padding: 0.3em; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { text-align: left; padding: 0.2em 0.8em; border-bottom: 1px solid #eee; vertical-align: top; }
.PASS { color: #080; } .FAIL { color: #b00; }
</style>
</head>
<body>
<h1>seqstream load report: <span class="${report.verdict}" id="verdict">${report.verdict}</span></h1>
<pre id="command">${escapeHtml(command)}</pre>
<table id="summary">
${rows}
</table>
<div id="charts"></div>
<script type="application/json" id="data">${
    scriptJson({ charts, report })
  }</script>
<script>${uplotJs}</script>
<script>${PAGE_JS}</script>
</body>
</html>
`;
}
