import { assert_, assertEquals } from "../tests/_assert.ts";
import type { DriverSummary } from "./_driver.ts";
import type { ScaleSettings, Side } from "./_scale_plan.ts";
import {
  cpuTable,
  driverTable,
  gcTable,
  judge,
  latenessTable,
  markdownReport,
  markdownTable,
  median,
  medianRange,
  memoryTable,
  type RunFigures,
  slopes,
  type Table,
  tableObjects,
  targetTables,
} from "./_scale_report.ts";

const BEFORE: Side = {
  name: "before",
  measured: false,
  rev: "35b3d16",
  dir: "/b",
  protocol: 1,
  v8Flags: [],
  v8FlagsFrom: "deno.json task server",
};
const AFTER: Side = {
  name: "after",
  measured: true,
  rev: "abc1234",
  dir: "/a",
  protocol: 2,
  v8Flags: ["--max-semi-space-size=4"],
  v8FlagsFrom: "deno.json task server",
};

function run(over: Partial<RunFigures>): RunFigures {
  const sessions = over.sessions ?? 5000;
  const kib = over.rssKiBPerSession ?? 10;
  return {
    side: "after",
    rev: "abc1234",
    sessions,
    round: 1,
    ok: true,
    serverUsPerNumber: 20,
    driverUsPerNumber: 5,
    rssKiBPerSession: kib,
    rssGrowthKiB: kib * sessions,
    latenessP50Ms: 1,
    latenessP99Ms: 3,
    latenessP999Ms: 10,
    latenessMaxMs: 15,
    deliveredPct: 100,
    passed: sessions,
    acksPerNumber: 0.25,
    serverCpuPct: 20,
    gc: { young: 4, youngPauseMs: 8, full: 1, fullPauseMs: 12, maxPauseMs: 9 },
    hostCores: 0.5,
    driver: {} as DriverSummary,
    ...over,
  };
}

/** A row of `t` as an object, found by its first cells. */
function row(t: Table, ...first: Array<string | number>) {
  const r = tableObjects(t).find((o) =>
    first.every((c, i) => o[t.columns[i]!] === c)
  );
  assert_(r, `no row ${first.join(" / ")} in "${t.title}"`);
  return r;
}

Deno.test("median and medianRange over rounds", () => {
  assertEquals([median([3, 1, 2]), median([4, 1, 3, 2])], [2, 2.5]);
  assert_(Number.isNaN(median([])));
  assertEquals(
    [medianRange([]), medianRange([1.234]), medianRange([3, 1, 2])],
    ["-", "1.23", "2 (1–3)"],
  );
});

// [figures, max, measured, verdict, rounds within]
const verdicts: [number[], number, boolean, string, string][] = [
  [[4, 6, 5], 5, true, "met", "2 of 3"],
  [[4, 6, 7], 5, true, "missed", "1 of 3"],
  [[3, 8], 5, true, "missed", "1 of 2"],
  [[NaN], 5, true, "missed", "0 of 1"],
  [[99], 5, false, "reference", "0 of 1"],
  [[], 5, true, "not run", "-"],
];
for (const [xs, max, measured, verdict, within] of verdicts) {
  Deno.test(`judge [${xs}] against ≤ ${max}${measured ? "" : " (baseline)"} → ${verdict}`, () => {
    const j = judge(xs, max, measured);
    assertEquals([j.verdict, j.within], [verdict, within]);
  });
}

Deno.test("slopes: RSS growth between consecutive counts per side and round", () => {
  const runs = [
    run({ sessions: 5000, rssGrowthKiB: 50_000 }),
    run({ sessions: 10000, rssGrowthKiB: 85_000 }),
    run({ sessions: 15000, rssGrowthKiB: 120_000 }),
    run({ sessions: 5000, round: 2, rssGrowthKiB: 50_000 }),
  ];
  assertEquals(
    slopes(runs, [15000, 5000, 10000]).map((
      s,
    ) => [s.round, s.from, s.to, s.kibPerSession]),
    [[1, 5000, 10000, 7], [1, 10000, 15000, 7]],
  );
});

Deno.test("memoryTable judges 5,000 (≤ 16), 10,000 (≤ 14) and the slope (≤ 12) for the measured side; the baseline is a reference", () => {
  const runs = [
    run({ sessions: 5000, rssKiBPerSession: 11.2, rssGrowthKiB: 56_000 }),
    run({ sessions: 10000, rssKiBPerSession: 14.5, rssGrowthKiB: 145_000 }),
    run({ sessions: 15000, rssKiBPerSession: 11, rssGrowthKiB: 165_000 }),
    run({ side: "before", sessions: 5000, rssKiBPerSession: 21.9 }),
  ];
  const t = memoryTable(runs, [BEFORE, AFTER]);
  assertEquals(
    [
      row(t, "after (abc1234)", "RSS per session at 5,000").verdict,
      row(t, "after (abc1234)", "RSS per session at 10,000").verdict,
      row(t, "after (abc1234)", "RSS per session at 15,000").verdict,
      row(t, "after (abc1234)", "slope 5,000 → 10,000 (one more session)")
        .KiB,
      row(t, "after (abc1234)", "slope 5,000 → 10,000 (one more session)")
        .verdict,
      row(t, "before (35b3d16)", "RSS per session at 5,000").verdict,
      row(t, "before (35b3d16)", "RSS per session at 10,000").verdict,
    ],
    ["met", "missed", "-", "17.8", "missed", "reference", "not run"],
  );
});

Deno.test("latenessTable: met only when the medians of p99 (≤ 5) and p99.9 (≤ 20) both are, at 10,000 and 15,000", () => {
  const runs = [
    run({ sessions: 10000, latenessP99Ms: 4.7, latenessP999Ms: 15.7 }),
    run({ sessions: 10000, round: 2, latenessP99Ms: 2.9, latenessP999Ms: 5 }),
    run({ sessions: 15000, latenessP99Ms: 3.3, latenessP999Ms: 119 }),
    run({ sessions: 5000, latenessP99Ms: 50 }),
  ];
  const t = latenessTable(runs, [AFTER]);
  const r10 = row(t, "after (abc1234)", "10,000");
  const r15 = row(t, "after (abc1234)", "15,000");
  const r5 = row(t, "after (abc1234)", "5,000");
  assertEquals(
    [r10["p99 (≤ 5)"], r10["rounds within"], r10.verdict],
    ["3.8 (2.9–4.7)", "2 of 2", "met"],
  );
  assertEquals([r15["rounds within"], r15.verdict], ["0 of 1", "missed"]);
  assertEquals([r5["p99 (≤ 5)"], r5.verdict], ["50", "-"]);
});

Deno.test("cpuTable pairs each measured side with the baseline by round and N (≤ 1.25)", () => {
  const runs = [
    run({ side: "before", serverUsPerNumber: 20 }),
    run({ serverUsPerNumber: 24 }),
    run({ side: "before", round: 2, serverUsPerNumber: 30 }),
    run({ round: 2, serverUsPerNumber: 45 }),
    run({ side: "semi8", serverUsPerNumber: 22 }),
  ];
  const semi8: Side = { ...AFTER, name: "semi8" };
  const t = cpuTable(runs, [BEFORE, AFTER, semi8], [5000]);
  const a = row(t, "after (abc1234)", "5,000");
  assertEquals(
    [a["ratio (≤ 1.25)"], a["rounds within"], a.verdict],
    ["1.35 (1.2–1.5)", "1 of 2", "missed"],
  );
  assertEquals(row(t, "semi8 (abc1234)", "5,000").verdict, "met");
  assertEquals(t.rows.length, 2); // the baseline has no row of its own
  const alone = cpuTable(runs, [AFTER], [5000]);
  assertEquals(row(alone, "after (abc1234)", "5,000").verdict, "not run");
});

Deno.test("driverTable judges the driver's CPU per number against half the server's; gcTable reports without a verdict", () => {
  const runs = [
    run({ driverUsPerNumber: 6, serverUsPerNumber: 20 }),
    run({ side: "before", driverUsPerNumber: 12, serverUsPerNumber: 20 }),
  ];
  const d = driverTable(runs, [BEFORE, AFTER], [5000]);
  assertEquals(row(d, "after (abc1234)", "5,000").verdict, "met");
  assertEquals(row(d, "before (35b3d16)", "5,000").verdict, "missed");
  const g = gcTable(runs, [AFTER], [5000]);
  const r = row(g, "after (abc1234)", "5,000");
  assertEquals([r["young GCs"], r["full ms"], r.verdict], ["4", "12", "-"]);
});

Deno.test("markdownTable renders a heading, the note and a pipe table, escaping pipes", () => {
  assertEquals(
    markdownTable({
      title: "T",
      note: "n",
      columns: ["a", "b|c"],
      rows: [[1, "x|y"]],
    }),
    "#### T\n\nn\n\n| a | b\\|c |\n| --- | --- |\n| 1 | x\\|y |",
  );
});

Deno.test("markdownReport says each side's V8 flags and where they came from, then every target table and every run", () => {
  const s: ScaleSettings = {
    baseline: "35b3d16",
    baselineV8Flags: undefined,
    sessions: [5000],
    steady: "30s",
    settle: "5s",
    rate: 1000,
    interval: "1s",
    rounds: 1,
    poll: "2ms",
    traceGc: true,
    variants: [{
      name: "after",
      v8Flags: undefined,
      from: "deno.json task server",
    }],
    json: false,
    markdown: true,
    plan: false,
  };
  const runs = [run({}), run({ side: "before" })];
  const md = markdownReport(runs, s, [BEFORE, AFTER], {
    command: "deno task bench:scale --baseline 35b3d16",
    goVersion: "go1.19",
    denoVersion: "2.9.6",
    startedAt: "2026-12-02T14:50:00Z",
    wallMinutes: 3,
  });
  for (
    const want of [
      "- before: 35b3d16, protocol 1, baseline; V8 flags none (V8 defaults) (deno.json task server), plus --trace-gc",
      "- after: abc1234, protocol 2, measured; V8 flags --max-semi-space-size=4 (deno.json task server), plus --trace-gc",
      "`deno task bench:scale --baseline 35b3d16`",
      ...targetTables(runs, [BEFORE, AFTER], s).map((t) => `#### ${t.title}`),
      "#### Every run",
    ]
  ) {
    assert_(md.includes(want), `missing: ${want}`);
  }
});
