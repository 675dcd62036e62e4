/**
 * The live dashboard in a real browser: a server with sessions cut and
 * resumed by the fault proxy, its page opened in headless Chromium. The
 * charts draw data, the table lists the live sessions, the figures shown
 * are the ones `/metrics` serves, and the page asks nothing of any other
 * host. A screenshot goes into the test's temporary folder (and to
 * `$SEQSTREAM_DASHBOARD_PNG` when set, which is how `docs/dashboard.png`
 * is made).
 *
 * @module
 */

import { runClient } from "../client/client.ts";
import { startProxy } from "../proxy/fault_proxy.ts";
import { assert_, assertEquals } from "./_assert.ts";
import { Browser, findChromium } from "./_chromium.ts";
import { eventually, scrape, testServer } from "./_fixtures.ts";

const chromium = findChromium();
const why = "missing" in chromium ? ` (ignored: ${chromium.missing})` : "";

type Charts = Record<
  string,
  { x: number[]; series: Record<string, (number | null)[]> }
>;

Deno.test({
  name:
    `dashboard: live charts, sessions table and figures agree with /metrics, no request off the server${why}`,
  ignore: "missing" in chromium,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "seqstream-dashboard-" });
    await using server = await testServer({ intervalMs: 20, ttlMs: 3000 });
    await using proxy = await startProxy({
      upstreams: [server.addr],
      lifetime: { minMs: 300, maxMs: 900 },
      resetProbability: 0.3,
    });
    const base = `http://127.0.0.1:${server.metricsAddr!.port}`;
    const clients = 6, count = 200; // about 4 s each at 20 ms
    const runs = Promise.all(
      Array.from({ length: clients }, () =>
        runClient({
          port: proxy.port,
          count,
          backoff: () => 30 + Math.random() * 50,
        })),
    );
    await using browser = await Browser.launch(
      (chromium as { path: string }).path,
    );
    await browser.goto(`${base}/`);
    // While the sessions stream: the table lists them and the charts fill.
    await browser.until(
      "window.dashboard.sessions && window.dashboard.sessions.sessions.some(s => s.state === 'streaming')",
      "a streaming session in the table",
    );
    const rows = await browser.eval<number>(
      "document.querySelectorAll('#sessions tbody tr').length",
    );
    assert_(rows > 0, "the table shows rows");
    const shownId = await browser.eval<string>(
      "document.querySelector('#sessions tbody td.id').textContent",
    );
    assert_(/^[0-9a-f]{8}…$/.test(shownId), `shortened id: ${shownId}`);
    await browser.until(
      "window.dashboard.polls >= 4",
      "four polls of /metrics",
    );
    await Deno.writeFile(
      `${tmp}/dashboard-live.png`,
      await browser.screenshot(),
    );
    const png = Deno.env.get("SEQSTREAM_DASHBOARD_PNG");
    if (png) await Deno.writeFile(png, await browser.screenshot());

    const results = await runs;
    assertEquals(
      results.map((r) => r.result),
      Array(clients).fill("PASS"),
      JSON.stringify(results.map((r) => r.error)),
    );
    const after = await scrape(server);
    assert_(
      (after.get("seqstream_resumes_total") ?? 0) > 0,
      "the fault proxy made the sessions resume",
    );
    // Settled: every seqstream_* figure is final, so the page must show /metrics exactly.
    await eventually(
      async () =>
        (await browser.eval<number>(
            "window.dashboard.last?.seqstream_sessions_completed_total ?? -1",
          )) === clients &&
        (await browser.eval<number>(
            "window.dashboard.last?.seqstream_connections ?? -1",
          )) === 0,
      "the page to show the completed sessions",
      10_000,
    );
    const metrics = await scrape(server);
    const tiles = await browser.eval<Record<string, string>>(
      `Object.fromEntries([...document.querySelectorAll('[data-metric]')].map(e => [e.dataset.metric, e.dataset.value]))`,
    );
    let compared = 0;
    for (const [name, shown] of Object.entries(tiles)) {
      if (!name.startsWith("seqstream_")) continue;
      assertEquals(Number(shown), metrics.get(name), name);
      compared++;
    }
    assert_(compared >= 8, `compared ${compared} figures`);
    for (const name of ["process_resident_memory_bytes", "process_open_fds"]) {
      assert_(Number(tiles[name]) > 0, `${name} shown: ${tiles[name]}`);
    }

    // Charts: a canvas each, and data drawn.
    const charts = await browser.eval<Charts>("window.dashboard.charts()");
    const canvases = await browser.eval<number>(
      "document.querySelectorAll('#charts .chart canvas').length",
    );
    assertEquals(canvases, 6, "six charts drawn");
    const some = (chart: string, series: string) =>
      (charts[chart]?.series[series] ?? []).some((v) => v !== null && v > 0);
    assert_(some("sessions", "sessions"), "sessions charted");
    assert_(some("numbers", "numbers/s"), "numbers/s charted");
    assert_(some("events", "resumes"), "resumes/s charted");
    assert_(some("events", "completions"), "completions/s charted");
    assert_(
      (charts.store?.series["mean ms"] ?? []).some((v) => v !== null),
      "store latency charted",
    );
    assert_(
      (charts.loop?.series["p99 ms"] ?? []).some((v) => v !== null),
      "event-loop lag charted",
    );
    // The page's largest numbers/s cannot exceed what /metrics allows.
    const info = await browser.eval<
      { version: string; store: { kind: string } }
    >(
      "window.dashboard.info",
    );
    assertEquals(info.store.kind, "memory");

    // Nothing but the server: every request went to the metrics port.
    assert_(browser.requests.length >= 5, browser.requests.join(" "));
    for (const url of browser.requests) {
      assert_(url.startsWith(`${base}/`), `request off the server: ${url}`);
    }
    assertEquals(browser.errors, [], "no page errors");
    await Deno.writeFile(
      `${tmp}/dashboard-done.png`,
      await browser.screenshot(),
    );
  },
});

Deno.test("dashboard JSON: /sessions pages and never shows a token, /info names the server, the page forbids other origins", async () => {
  await using server = await testServer({ intervalMs: 50 });
  const base = `http://127.0.0.1:${server.metricsAddr!.port}`;
  const tokens = new Set<string>();
  const ac = new AbortController();
  const runs = Array.from({ length: 3 }, () =>
    runClient({
      port: server.addr.port,
      count: 1000,
      signal: ac.signal,
      onCheckpoint: (s) => void tokens.add(s.token),
      checkpointEvery: 1,
    }));
  try {
    await eventually(
      () => server.metrics().connections === 3,
      "three sessions",
    );
    await eventually(
      async () => {
        const p = await (await fetch(`${base}/sessions`)).json();
        return p.sessions.length === 3;
      },
      "three attached sessions",
    );
    const text = await (await fetch(`${base}/sessions?limit=2&skip=1`)).text();
    const page = JSON.parse(text);
    assertEquals([page.attached, page.skip, page.limit], [3, 1, 2]);
    assertEquals(page.sessions.length, 2);
    assertEquals(tokens.size, 3, "each client's token seen");
    const all = await (await fetch(`${base}/sessions`)).text();
    for (const t of tokens) assert_(!all.includes(t), "no token in /sessions");
    const capped = await (await fetch(`${base}/sessions?limit=100000`)).json();
    assertEquals(capped.limit, 500);
    const info = await (await fetch(`${base}/info`)).json();
    assertEquals([info.name, info.intervalMs, info.store.health], [
      "seqstream",
      50,
      "ok",
    ]);
    const res = await fetch(`${base}/`);
    assert_(
      res.headers.get("content-security-policy")!.includes(
        "connect-src 'self'",
      ),
    );
    assert_((await res.text()).includes("/assets/uPlot.iife.min.js"));
    const missing = await fetch(`${base}/nope`);
    await missing.body?.cancel();
    assertEquals(missing.status, 404);
  } finally {
    ac.abort();
    await Promise.all(runs);
  }
});
