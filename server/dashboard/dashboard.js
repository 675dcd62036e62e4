// The seqstream dashboard. The charts draw the server's own history
// (GET /history: 15 minutes at one point a second, kept by the server, so a
// reload or a second operator starts with full charts), appended to every
// second with /history?since=…; the same answer carries the status line.
// The tiles show /metrics (the Prometheus text, parsed here, so every total
// shown is one /metrics gave). The table pages, filters and sorts
// /sessions on the server. It talks to nothing else (the server's
// Content-Security-Policy forbids it anyway).
// deno-lint-ignore-file no-window
/* global uPlot */
"use strict";

const POLL_MS = 1000;
const SESSIONS_MS = 2000;
const INFO_MS = 5000;
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

/** Seconds covered by the history, as "N min" for empty charts. */
function spanText(xs) {
  const s = xs.length > 1 ? xs[xs.length - 1] - xs[0] : 0;
  return `${Math.max(1, Math.ceil(s / 60))} min`;
}

function fmtValue(v, unit) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  const a = Math.abs(v);
  const s = Number.isInteger(v)
    ? String(v)
    : a >= 100
    ? v.toFixed(0)
    : a >= 10
    ? v.toFixed(1)
    : v.toFixed(2);
  return unit ? `${s} ${unit}` : s;
}

/**
 * A chart of history series. `spec.series` lists [series name, label,
 * style]; `spec.dynamic(history)` may list them instead (refusal codes
 * appear as they happen). Events charts say "none in the last N min" when
 * every value is 0 or missing.
 */
class Chart {
  constructor(spec) {
    this.spec = spec;
    this.names = "";
    this.el = document.createElement("div");
    this.el.className = "chart";
    this.el.id = `chart-${spec.id}`;
    const title = document.createElement("div");
    title.className = "title";
    title.textContent = `${spec.title} (${spec.unit})`;
    this.legend = document.createElement("div");
    this.legend.className = "legend";
    this.plotEl = document.createElement("div");
    this.plotEl.className = "plot";
    this.empty = document.createElement("div");
    this.empty.className = "empty";
    this.empty.hidden = true;
    this.plotEl.append(this.empty);
    this.el.append(title, this.legend, this.plotEl);
    document.getElementById("charts").append(this.el);
    this.plot = null;
    this.xs = [];
    this.cols = [];
    this.series = [];
  }

  update(h) {
    const list = this.spec.dynamic ? this.spec.dynamic(h) : this.spec.series;
    this.series = list;
    this.xs = h.t.map((t) => t / 1000);
    this.cols = list.map(([name]) => h.series[name] ?? []);
    const data = [this.xs, ...this.cols];
    const names = list.map(([n]) => n).join();
    if (!this.plot || names !== this.names) {
      this.plot?.destroy();
      this.names = names;
      this.plot = new uPlot(this.#opts(list), data, this.plotEl);
    } else {
      this.plot.setData(data);
    }
    const none = this.spec.events &&
      this.cols.every((c) => c.every((v) => v === null || v === 0));
    this.el.classList.toggle("is-empty", none);
    this.empty.hidden = !none;
    this.empty.textContent = none
      ? `none in the last ${spanText(this.xs)}`
      : "";
    this.#legend(null);
  }

  #opts(list) {
    return {
      width: Math.max(300, this.el.clientWidth - 10),
      height: 200,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      series: [
        {},
        ...list.map(([, label, style], i) => ({
          label,
          stroke: style?.stroke ?? COLORS[i % COLORS.length],
          width: style?.width ?? 1.5,
          dash: style?.dash,
          spanGaps: true,
          points: { show: false },
        })),
      ],
      axes: [{}, { size: 60 }],
      scales: {
        x: { time: true },
        // From 0, always: a rate of 0 sits on the floor, not mid-chart.
        y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] },
      },
      hooks: {
        setCursor: [(u) => this.#legend(u.cursor.idx ?? null)],
      },
    };
  }

  /** The legend: each series's latest value, or its value under the cursor. */
  #legend(idx) {
    const items = this.series.map(([name, label, style], i) => {
      const col = this.cols[i] ?? [];
      let v = null;
      if (idx !== null && idx !== undefined) v = col[idx] ?? null;
      else {
        for (let k = col.length - 1; k >= 0 && v === null; k--) v = col[k];
      }
      const item = document.createElement("span");
      item.className = "item";
      item.dataset.series = name;
      const sw = document.createElement("i");
      const color = style?.stroke ?? COLORS[i % COLORS.length];
      sw.style.borderTop = `${style?.width ?? 2}px ${
        style?.dash ? "dashed" : "solid"
      } ${color}`;
      const val = document.createElement("b");
      val.className = "latest";
      val.textContent = fmtValue(v, this.spec.short);
      item.append(sw, `${label} `, val);
      return item;
    });
    this.legend.replaceChildren(...items);
  }

  /** The data as drawn, for tests: series name → its values. */
  data() {
    return {
      x: this.xs.slice(),
      series: Object.fromEntries(
        this.series.map(([name], i) => [name, this.cols[i].slice()]),
      ),
      empty: !this.empty.hidden,
      legend: [...this.legend.querySelectorAll(".latest")].map((e) =>
        e.textContent
      ),
    };
  }
}

/** Refusal series with any event in the history: one line per code seen. */
function refusalSeries(h) {
  const out = [];
  for (const [name, values] of Object.entries(h.series)) {
    const m = /^refused_(.+)_per_s$/.exec(name);
    if (m && values.some((v) => v > 0)) out.push([name, m[1]]);
  }
  return out.length ? out : [["refused_server_busy_per_s", "server_busy"]];
}

const CHART_SPECS = [
  {
    id: "sessions",
    title: "Sessions and connections",
    unit: "count",
    series: [
      // Equal most of the time: a wide pale dashed line under a thin solid one.
      ["sessions", "sessions", { stroke: "#7fb2e5", width: 4, dash: [8, 5] }],
      ["connections", "connections", { stroke: "#d62728", width: 1.5 }],
    ],
  },
  {
    id: "numbers",
    title: "Numbers sent",
    unit: "per second",
    series: [["numbers_per_s", "numbers/s"]],
  },
  {
    id: "events",
    title: "Session events",
    unit: "per second",
    events: true,
    series: [
      ["resumes_per_s", "resumes"],
      ["takeovers_per_s", "takeovers"],
      ["completions_per_s", "completions"],
      ["expiries_per_s", "expiries"],
    ],
  },
  {
    id: "handshake",
    title: "Handshake latency (HELLO/RESUME → WELCOME)",
    unit: "ms",
    short: "ms",
    events: true,
    series: [["welcome_p50_ms", "p50"], ["welcome_p99_ms", "p99"]],
  },
  {
    id: "unhealthy",
    title: "Client timeouts and slow consumers",
    unit: "per second",
    events: true,
    series: [
      ["client_timeouts_per_s", "client timeouts"],
      ["slow_consumers_per_s", "slow consumers"],
    ],
  },
  {
    id: "busy",
    title: "Busy refusals (connections turned away)",
    unit: "per second",
    events: true,
    series: [
      ["busy_per_s", "at --max-connections"],
      ["rate_limited_per_s", "at --max-handshakes-per-sec"],
    ],
  },
  {
    id: "refusals",
    title: "Handshake refusals by code",
    unit: "per second",
    events: true,
    dynamic: refusalSeries,
  },
  {
    id: "store",
    title: "Store operations",
    unit: "ms; errors per second",
    series: [
      ["store_p99_ms", "p99 ms"],
      ["store_mean_ms", "mean ms"],
      ["store_errors_per_s", "errors/s"],
    ],
  },
  {
    id: "loop",
    title: "Event-loop lag",
    unit: "ms",
    short: "ms",
    series: [["loop_p99_ms", "p99"], ["loop_mean_ms", "mean"]],
  },
];

const charts = Object.fromEntries(
  CHART_SPECS.map((s) => [s.id, new Chart(s)]),
);

/** The history the page holds: the server's, then what came since. */
const hist = { t: [], series: {}, capacity: 900, loaded: false };

function appendHistory(h) {
  hist.capacity = h.capacity;
  for (const name of Object.keys(h.series)) {
    if (!hist.series[name]) hist.series[name] = hist.t.map(() => null);
  }
  hist.t.push(...h.t);
  for (const [name, values] of Object.entries(hist.series)) {
    values.push(...(h.series[name] ?? h.t.map(() => null)));
  }
  const extra = hist.t.length - hist.capacity;
  if (extra > 0) {
    hist.t.splice(0, extra);
    for (const v of Object.values(hist.series)) v.splice(0, extra);
  }
}

const LEVEL_TEXT = { ok: "OK", warn: "WARNING", crit: "CRITICAL" };

function renderHealth(status) {
  const el = document.getElementById("health");
  el.dataset.level = status.level;
  document.getElementById("health-level").textContent =
    LEVEL_TEXT[status.level];
  document.getElementById("health-text").textContent =
    status.findings.length === 0
      ? "no store errors, refusals, slow consumers, client timeouts, event-loop lag or capacity alerts in the last minutes"
      : status.findings.map((f) => f.message).join(" · ");
  const byTile = new Map();
  for (const f of status.findings) {
    if (!byTile.has(f.tile)) byTile.set(f.tile, f);
  }
  for (const tile of document.querySelectorAll(".tile")) {
    const f = byTile.get(tile.dataset.tile);
    tile.dataset.level = f ? f.level : "ok";
    tile.title = f ? f.message : tile.dataset.help ?? "";
  }
  window.dashboard.health = status;
}

let historyBusy = false;

async function pollHistory() {
  if (historyBusy) return; // one request at a time, or points would repeat
  historyBusy = true;
  try {
    const since = hist.t.length ? hist.t[hist.t.length - 1] : "";
    const res = await fetch(`/history?since=${since}`, { cache: "no-store" });
    const h = await res.json();
    appendHistory(h);
    hist.loaded = true;
    for (const c of Object.values(charts)) c.update(hist);
    renderHealth(h.status);
    window.dashboard.historyPolls++;
  } catch {
    /* shown by the metrics poll */
  } finally {
    historyBusy = false;
  }
}

/** Latest non-missing value of a history series. */
function latest(name) {
  const v = hist.series[name] ?? [];
  for (let i = v.length - 1; i >= 0; i--) if (v[i] !== null) return v[i];
  return undefined;
}

const FDS_NOTE =
  "fd counts need read access to /proc/self: run the server with --allow-all (or --allow-read) under Deno";

/** [key, label, read(metrics) → value, format]. */
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
    "refusals",
    "handshake refusals",
    (m) => sumOf(m, "seqstream_handshake_failures_total{"),
  ],
  ["seqstream_connections_rejected_busy_total", "busy refusals"],
  ["seqstream_slow_consumers_dropped_total", "slow consumers"],
  ["seqstream_client_timeouts_total", "client timeouts"],
  ["store_p99_ms", "store p99 (ms)", () => latest("store_p99_ms"), fmtValue],
  [
    "welcome_p99_ms",
    "handshake p99 (ms)",
    () => latest("welcome_p99_ms"),
    fmtValue,
  ],
  ["loop_p99_ms", "loop lag p99 (ms)", () => latest("loop_p99_ms"), fmtValue],
  [
    "process_resident_memory_bytes",
    "RSS (MiB)",
    undefined,
    (v) => (v / 2 ** 20).toFixed(1),
  ],
  ["process_cpu_seconds_total", "CPU seconds", undefined, (v) => v.toFixed(2)],
  ["process_open_fds", "open fds"],
];

function renderTiles(m) {
  const el = document.getElementById("tiles");
  if (el.childElementCount === 0) {
    for (const [key, label] of TILES) {
      const t = document.createElement("div");
      t.className = "tile";
      t.dataset.tile = key;
      t.innerHTML = `<div class="v" data-metric="${key}"></div>` +
        `<div class="k"></div><div class="note"></div>`;
      t.querySelector(".k").textContent = label;
      el.append(t);
    }
  }
  for (const [key, , read, fmt] of TILES) {
    const v = read ? read(m) : m.get(key);
    const cell = el.querySelector(`[data-metric="${key}"]`);
    cell.dataset.value = v === undefined ? "" : String(v);
    cell.textContent = v === undefined ? "n/a" : fmt ? fmt(v) : String(v);
    if (key === "process_open_fds") {
      const note = cell.parentElement.querySelector(".note");
      const max = m.get("process_max_fds");
      note.textContent = v === undefined
        ? "needs --allow-all under Deno"
        : max
        ? `of ${max}`
        : "";
      const tile = cell.parentElement;
      if (v === undefined) tile.dataset.help = FDS_NOTE;
      else delete tile.dataset.help;
      if (tile.dataset.level !== "warn" && tile.dataset.level !== "crit") {
        tile.title = tile.dataset.help ?? "";
      }
    }
  }
}

const status = document.getElementById("status");

async function pollMetrics() {
  try {
    const res = await fetch("/metrics", { cache: "no-store" });
    const m = parseMetrics(await res.text());
    renderTiles(m);
    if (window.dashboard.health) renderHealth(window.dashboard.health);
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
      ["max connections", info.maxConnections],
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

const view = { skip: 0, sort: "", desc: false };

function sessionsUrl() {
  const q = new URLSearchParams({ skip: view.skip, limit: PAGE });
  const id = document.getElementById("f-id").value.trim();
  const state = document.getElementById("f-state").value;
  const remote = document.getElementById("f-remote").value.trim();
  if (id) q.set("id", id);
  if (state) q.set("state", state);
  if (remote) q.set("remote", remote);
  if (view.sort) {
    q.set("sort", view.sort);
    q.set("order", view.desc ? "desc" : "asc");
  }
  return `/sessions?${q}`;
}

async function pollSessions() {
  try {
    const page = await (await fetch(sessionsUrl(), { cache: "no-store" }))
      .json();
    const total = page.matched ?? page.attached + page.awaiting;
    if (view.skip > 0 && view.skip >= total) {
      view.skip = Math.max(0, total - PAGE);
    }
    document.getElementById("sessions-summary").textContent =
      `${page.attached} attached, ${page.awaiting} awaiting resume`;
    document.getElementById("matched").textContent = page.matched === undefined
      ? ""
      : `${page.matched} match${
        page.truncated ? ` among the first ${page.scanned}` : ""
      }`;
    document.getElementById("page").textContent = total === 0
      ? "none"
      : `${view.skip + 1}–${view.skip + page.sessions.length} of ${total}`;
    document.getElementById("prev").disabled = view.skip === 0;
    document.getElementById("next").disabled = view.skip + PAGE >= total;
    for (const th of document.querySelectorAll("#sessions th")) {
      th.dataset.order = th.dataset.sort === view.sort
        ? (view.desc ? "desc" : "asc")
        : "";
    }
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
        tr.dataset.id = s.id;
        return tr;
      }),
    );
    window.dashboard.sessions = page;
  } catch { /* shown by the metrics poll */ }
}

document.getElementById("prev").onclick = () => {
  view.skip = Math.max(0, view.skip - PAGE);
  pollSessions();
};
document.getElementById("next").onclick = () => {
  view.skip += PAGE;
  pollSessions();
};
for (const th of document.querySelectorAll("#sessions th")) {
  th.onclick = () => {
    if (view.sort === th.dataset.sort) view.desc = !view.desc;
    else {
      view.sort = th.dataset.sort;
      view.desc = false;
    }
    view.skip = 0;
    pollSessions();
  };
}
const filters = document.getElementById("filters");
filters.oninput = () => {
  view.skip = 0;
  pollSessions();
};
filters.onsubmit = (e) => e.preventDefault();

window.dashboard = {
  polls: 0,
  historyPolls: 0,
  last: null,
  info: null,
  sessions: null,
  health: null,
  /** The lowest value of a chart's y-axis, for tests. */
  yMin: (id) => charts[id].plot.scales.y.min,
  charts: () =>
    Object.fromEntries(
      Object.entries(charts).map(([k, c]) => [k, c.data()]),
    ),
};

function every(ms, fn) {
  fn();
  setInterval(fn, ms);
}
every(POLL_MS, pollHistory);
every(POLL_MS, pollMetrics);
every(SESSIONS_MS, pollSessions);
every(INFO_MS, pollInfo);
