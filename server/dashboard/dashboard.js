// The seqstream dashboard: polls /metrics (the Prometheus text, parsed here,
// so every figure shown is one /metrics gave), /info and /sessions on the
// server that served the page, and draws the history with uPlot. It talks to
// nothing else (the server's Content-Security-Policy forbids it anyway).
// deno-lint-ignore-file no-window
/* global uPlot */
"use strict";

const POLL_MS = 1000;
const SESSIONS_MS = 2000;
const INFO_MS = 5000;
/** Points kept per chart: 5 minutes at one a second. */
const HISTORY = 300;
const PAGE = 50;

/** Prometheus text → Map of "name{labels}" → value. */
function parseMetrics(text) {
  const out = new Map();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const sp = line.lastIndexOf(" ");
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

/** The samples of `name` with one label, as label value → number. */
function byLabel(m, name, label) {
  const out = new Map();
  const prefix = `${name}{${label}="`;
  for (const [k, v] of m) {
    if (k.startsWith(prefix) && !k.includes(",")) {
      out.set(k.slice(prefix.length, -2), v);
    }
  }
  return out;
}

/**
 * Buckets of histogram `name` (optionally only samples whose labels contain
 * `match`), summed over its series: Map upper bound → cumulative count.
 */
function buckets(m, name, match) {
  const out = new Map();
  const prefix = `${name}_bucket{`;
  for (const [k, v] of m) {
    if (!k.startsWith(prefix) || (match && !k.includes(match))) continue;
    const le = /le="([^"]+)"/.exec(k)[1];
    const b = le === "+Inf" ? Infinity : Number(le);
    out.set(b, (out.get(b) ?? 0) + v);
  }
  return out;
}

/** Quantile `q` of the observations between two bucket snapshots, interpolated like histogram_quantile. */
function quantile(q, now, before) {
  const bounds = [...now.keys()].sort((a, b) => a - b);
  const d = bounds.map((b) => (now.get(b) ?? 0) - (before?.get(b) ?? 0));
  const total = d.at(-1) ?? 0;
  if (!(total > 0)) return null;
  const rank = q * total;
  for (let i = 0; i < bounds.length; i++) {
    if (d[i] >= rank) {
      const lo = i === 0 ? 0 : bounds[i - 1];
      const hi = bounds[i] === Infinity ? lo : bounds[i];
      const below = i === 0 ? 0 : d[i - 1];
      const inBucket = d[i] - below;
      return lo + (hi - lo) * (inBucket > 0 ? (rank - below) / inBucket : 1);
    }
  }
  return null;
}

function sumOf(m, prefix) {
  let s = 0;
  for (const [k, v] of m) if (k.startsWith(prefix)) s += v;
  return s;
}

const COLORS = [
  "#1f77b4",
  "#d62728",
  "#2ca02c",
  "#ff7f0e",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#17becf",
  "#7f7f7f",
  "#bcbd22",
];

/** A chart whose series can change (refusal codes appear as they happen). */
class Chart {
  constructor(id, title, unit) {
    this.id = id;
    this.title = title;
    this.unit = unit;
    this.names = [];
    this.xs = [];
    this.ys = new Map();
    this.el = document.createElement("div");
    this.el.className = "chart";
    this.el.id = `chart-${id}`;
    document.getElementById("charts").append(this.el);
    this.plot = null;
  }

  /** Adds one point: `values` is name → number (or null). */
  push(t, values) {
    this.xs.push(t);
    for (const name of Object.keys(values)) {
      if (!this.ys.has(name)) {
        this.ys.set(name, this.xs.map(() => null));
      }
    }
    for (const [name, ys] of this.ys) {
      ys.push(values[name] ?? null);
      if (ys.length > HISTORY) ys.shift();
    }
    if (this.xs.length > HISTORY) this.xs.shift();
    this.#draw();
  }

  /** The data as drawn, for tests: series name → its values. */
  data() {
    return {
      x: this.xs.slice(),
      series: Object.fromEntries(
        [...this.ys].map(([k, v]) => [k, v.slice()]),
      ),
    };
  }

  #draw() {
    const names = [...this.ys.keys()];
    const data = [this.xs, ...names.map((n) => this.ys.get(n))];
    const width = Math.max(300, this.el.clientWidth - 10);
    if (this.plot && names.join() === this.names.join()) {
      this.plot.setData(data);
      return;
    }
    this.plot?.destroy();
    this.names = names;
    this.plot = new uPlot(
      {
        title: `${this.title} (${this.unit})`,
        width,
        height: 220,
        series: [
          {},
          ...names.map((n, i) => ({
            label: n,
            stroke: COLORS[i % COLORS.length],
            width: 1.5,
            spanGaps: true,
          })),
        ],
        axes: [{}, { size: 60 }],
        scales: { x: { time: true } },
      },
      data,
      this.el,
    );
  }
}

const charts = {
  sessions: new Chart("sessions", "Sessions and connections", "count"),
  numbers: new Chart("numbers", "Numbers sent", "per second"),
  events: new Chart("events", "Session events", "per second"),
  refusals: new Chart("refusals", "Refusals by code", "per second"),
  store: new Chart("store", "Store operations", "ms; errors per second"),
  loop: new Chart("loop", "Event-loop lag", "ms"),
};

const TILES = [
  ["seqstream_sessions", "sessions"],
  ["seqstream_connections", "connections"],
  ["seqstream_sessions_started_total", "started"],
  ["seqstream_sessions_completed_total", "completed"],
  ["seqstream_resumes_total", "resumes"],
  ["seqstream_sessions_taken_over_total", "taken over"],
  ["seqstream_sessions_expired_total", "expired"],
  ["seqstream_numbers_sent_total", "numbers sent"],
  ["seqstream_store_errors_total", "store errors"],
  [
    "process_resident_memory_bytes",
    "RSS (MiB)",
    (v) => (v / 2 ** 20).toFixed(1),
  ],
  ["process_cpu_seconds_total", "CPU seconds", (v) => v.toFixed(2)],
  ["process_open_fds", "open fds"],
];

function renderTiles(m) {
  const el = document.getElementById("tiles");
  if (el.childElementCount === 0) {
    for (const [name, label] of TILES) {
      const t = document.createElement("div");
      t.className = "tile";
      t.innerHTML =
        `<div class="v" data-metric="${name}"></div><div class="k"></div>`;
      t.querySelector(".k").textContent = label;
      el.append(t);
    }
  }
  for (const [name, , fmt] of TILES) {
    const v = m.get(name);
    const cell = el.querySelector(`[data-metric="${name}"]`);
    cell.dataset.value = v === undefined ? "" : String(v);
    cell.textContent = v === undefined ? "n/a" : fmt ? fmt(v) : String(v);
  }
}

let prev = null;

function sample(m, t) {
  const dt = prev ? t - prev.t : 0;
  const rate = (name) =>
    prev && dt > 0 && m.has(name)
      ? Math.max(0, (m.get(name) - (prev.m.get(name) ?? 0)) / dt)
      : null;
  charts.sessions.push(t, {
    sessions: m.get("seqstream_sessions") ?? null,
    connections: m.get("seqstream_connections") ?? null,
  });
  charts.numbers.push(t, {
    "numbers/s": rate("seqstream_numbers_sent_total"),
  });
  charts.events.push(t, {
    resumes: rate("seqstream_resumes_total"),
    takeovers: rate("seqstream_sessions_taken_over_total"),
    completions: rate("seqstream_sessions_completed_total"),
    expiries: rate("seqstream_sessions_expired_total"),
  });
  const refusals = {};
  for (
    const code of byLabel(m, "seqstream_handshake_failures_total", "code")
      .keys()
  ) {
    refusals[code] = rate(`seqstream_handshake_failures_total{code="${code}"}`);
  }
  charts.refusals.push(t, refusals);
  const storeNow = buckets(m, "seqstream_store_op_seconds");
  const storeBefore = prev && buckets(prev.m, "seqstream_store_op_seconds");
  const ms = (x) => (x === null ? null : x * 1000);
  const storeCount = sumOf(m, "seqstream_store_op_seconds_count") -
    (prev ? sumOf(prev.m, "seqstream_store_op_seconds_count") : 0);
  const storeSum = sumOf(m, "seqstream_store_op_seconds_sum") -
    (prev ? sumOf(prev.m, "seqstream_store_op_seconds_sum") : 0);
  charts.store.push(t, {
    "p99 ms": prev ? ms(quantile(0.99, storeNow, storeBefore)) : null,
    "mean ms": prev && storeCount > 0 ? (1000 * storeSum) / storeCount : null,
    "errors/s": rate("seqstream_store_errors_total"),
  });
  const loopNow = buckets(m, "seqstream_event_loop_lag_seconds");
  const loopBefore = prev &&
    buckets(prev.m, "seqstream_event_loop_lag_seconds");
  const loopCount = (m.get("seqstream_event_loop_lag_seconds_count") ?? 0) -
    (prev?.m.get("seqstream_event_loop_lag_seconds_count") ?? 0);
  const loopSum = (m.get("seqstream_event_loop_lag_seconds_sum") ?? 0) -
    (prev?.m.get("seqstream_event_loop_lag_seconds_sum") ?? 0);
  charts.loop.push(t, {
    "p99 ms": prev ? ms(quantile(0.99, loopNow, loopBefore)) : null,
    "mean ms": prev && loopCount > 0 ? (1000 * loopSum) / loopCount : null,
  });
  prev = { m, t };
}

const status = document.getElementById("status");

async function pollMetrics() {
  try {
    const res = await fetch("/metrics", { cache: "no-store" });
    const text = await res.text();
    const m = parseMetrics(text);
    renderTiles(m);
    sample(m, Date.now() / 1000);
    window.dashboard.last = Object.fromEntries(m);
    window.dashboard.polls++;
    status.textContent = `updated ${new Date().toLocaleTimeString()}`;
    status.classList.remove("bad");
  } catch (err) {
    status.textContent = `cannot reach the server: ${err}`;
    status.classList.add("bad");
  }
}

function fmtMs(ms) {
  if (ms === null) return "";
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.floor(s % 60)} s`;
  return `${(s / 3600).toFixed(1)} h`;
}

async function pollInfo() {
  try {
    const info = await (await fetch("/info", { cache: "no-store" })).json();
    document.getElementById("version").textContent = `v${info.version}`;
    const items = [
      ["server", info.serverId],
      ["interval", `${info.intervalMs} ms`],
      ["TTL", fmtMs(info.ttlMs)],
      ["window", info.window],
      ["store", info.store.kind],
      ["store health", info.store.health],
      ["TLS", info.tls ? "on" : "off"],
      ["uptime", fmtMs(info.uptimeS * 1000)],
    ];
    const dl = document.getElementById("info");
    dl.replaceChildren(
      ...items.map(([k, v]) => {
        const d = document.createElement("div");
        const dt = document.createElement("dt");
        const dd = document.createElement("dd");
        dt.textContent = k;
        dd.textContent = String(v);
        if (k === "store health" && v !== "ok") dd.className = "bad";
        dd.dataset.info = k;
        d.append(dt, dd);
        return d;
      }),
    );
    window.dashboard.info = info;
  } catch { /* shown by the metrics poll */ }
}

let skip = 0;

async function pollSessions() {
  try {
    const res = await fetch(`/sessions?skip=${skip}&limit=${PAGE}`, {
      cache: "no-store",
    });
    const page = await res.json();
    const total = page.attached + page.awaiting;
    if (skip > 0 && skip >= total) {
      skip = Math.max(0, total - PAGE);
    }
    document.getElementById("sessions-summary").textContent =
      `${page.attached} attached, ${page.awaiting} awaiting resume`;
    document.getElementById("page").textContent = total === 0
      ? "none"
      : `${skip + 1}–${skip + page.sessions.length} of ${total}`;
    document.getElementById("prev").disabled = skip === 0;
    document.getElementById("next").disabled = skip + PAGE >= total;
    const body = document.querySelector("#sessions tbody");
    body.replaceChildren(
      ...page.sessions.map((s) => {
        const tr = document.createElement("tr");
        const cells = [
          s.id.slice(0, 8) + "…",
          s.state,
          s.acked === null ? `— / ${s.count}` : `${s.acked} / ${s.count}`,
          s.sent ?? "—",
          s.reconnects,
          s.remote ?? "—",
          fmtMs(s.attachedForMs),
          fmtMs(s.expiresInMs),
        ];
        for (const c of cells) {
          const td = document.createElement("td");
          td.textContent = String(c);
          tr.append(td);
        }
        tr.firstChild.className = "id";
        tr.firstChild.title = s.id;
        tr.dataset.state = s.state;
        return tr;
      }),
    );
    window.dashboard.sessions = page;
  } catch { /* shown by the metrics poll */ }
}

document.getElementById("prev").onclick = () => {
  skip = Math.max(0, skip - PAGE);
  pollSessions();
};
document.getElementById("next").onclick = () => {
  skip += PAGE;
  pollSessions();
};

window.dashboard = {
  polls: 0,
  last: null,
  info: null,
  sessions: null,
  charts: () =>
    Object.fromEntries(
      Object.entries(charts).map(([k, c]) => [k, c.data()]),
    ),
};

function every(ms, fn) {
  fn();
  setInterval(fn, ms);
}
every(POLL_MS, pollMetrics);
every(SESSIONS_MS, pollSessions);
every(INFO_MS, pollInfo);
