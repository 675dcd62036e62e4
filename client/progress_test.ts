import { FakeClock } from "../common/fake_clock.ts";
import { LineLogger } from "../common/logger.ts";
import { assert_, assertEquals } from "../tests/_assert.ts";
import {
  formatEta,
  formatPercent,
  formatProgressLine,
  formatRate,
  ProgressReporter,
  type ProgressView,
} from "./progress.ts";

const view = (v: Partial<ProgressView> = {}): ProgressView => ({
  received: 50,
  total: 200,
  ratePerSec: 10,
  reconnects: 1,
  state: "streaming",
  ...v,
});

Deno.test("formatProgressLine shows bar, received/total, percent, rate, ETA, reconnects and state", () => {
  assertEquals(
    formatProgressLine(view(), 100),
    "[███████░░░░░░░░░░░░░░░░░░░░░░░] 50/200  25.0%  10/s  ETA 15s  1 reconnect  streaming",
  );
  assertEquals(
    formatProgressLine(
      view({
        received: 0,
        ratePerSec: null,
        reconnects: 0,
        state: "connecting",
      }),
      100,
    ),
    "[░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░] 0/200  0.0%  -/s  ETA --  0 reconnects  connecting",
  );
  assertEquals(
    formatProgressLine(
      view({ received: 200, state: "done", reconnects: 3 }),
      100,
    ),
    "[██████████████████████████████] 200/200  100.0%  10/s  ETA 0s  3 reconnects  done",
  );
});

Deno.test("formatProgressLine narrows the bar, then drops it, and never reaches the last column", () => {
  const text = "50/200  25.0%  10/s  ETA 15s  1 reconnect  streaming";
  const narrow = formatProgressLine(view(), text.length + 10);
  assertEquals(
    narrow,
    `[█░░░░░] ${text}`,
    "room for a 6-wide bar: 10 columns less 4 for brackets, space and the last column",
  );
  assertEquals(formatProgressLine(view(), text.length + 5), text);
  assertEquals(formatProgressLine(view(), 20), text.slice(0, 19));
  for (let cols = 1; cols < 120; cols++) {
    assert_(
      formatProgressLine(view(), cols).length < Math.max(cols, 1),
      `width ${cols}`,
    );
  }
});

Deno.test("formatPercent rounds down so only a complete run shows 100.0", () => {
  assertEquals(formatPercent(65534, 65535), "99.9");
  assertEquals(formatPercent(65535, 65535), "100.0");
  assertEquals(formatPercent(1, 3), "33.3");
  assertEquals(formatPercent(0, 0), "0.0");
});

Deno.test("formatRate and formatEta read like a person would write them", () => {
  assertEquals([
    formatRate(null),
    formatRate(4.25),
    formatRate(950.4),
    formatRate(12_345),
  ], ["-", "4.3", "950", "12.3k"]);
  assertEquals(
    [
      formatEta(null),
      formatEta(0),
      formatEta(44_100),
      formatEta(185_000),
      formatEta(4_020_000),
      formatEta(-1),
    ],
    ["--", "0s", "45s", "3m05s", "1h07m", "--"],
  );
});

Deno.test("ProgressReporter tracks numbers, resumes and states, and measures the rate over its window", async () => {
  const clock = new FakeClock();
  const out: string[] = [];
  const p = new ProgressReporter({
    total: 1000,
    mode: "bar",
    log: new LineLogger({ level: "silent" }),
    write: (s) => out.push(s),
    columns: () => 120,
    clock,
    redrawMs: 60_000, // no tick within the test: stop() draws the line
  });
  try {
    assertEquals(p.view(), {
      received: 0,
      total: 1000,
      ratePerSec: null,
      reconnects: 0,
      state: "connecting",
    });
    p.onEvent({ type: "connecting", attempt: 0 });
    p.onEvent({
      type: "streaming",
      nextOffset: 0,
      count: 1000,
      resumed: false,
    });
    for (let i = 0; i < 100; i++) p.onNumber(i);
    p.onEvent({ type: "disconnected", error: "reset", retryInMs: 10 });
    assertEquals(p.view().state, "resuming");
    p.onEvent({ type: "connecting", attempt: 1 });
    assertEquals(
      p.view().state,
      "resuming",
      "a reconnect is a resume, not a fresh connect",
    );
    p.onEvent({
      type: "streaming",
      nextOffset: 100,
      count: 1000,
      resumed: true,
    });
    assertEquals([p.view().received, p.view().reconnects, p.view().state], [
      100,
      1,
      "streaming",
    ]);
    await clock.advance(2000);
    p.onNumber(299);
    p.stop();
    assertEquals(p.view().ratePerSec, 150, "300 numbers in 2s");
    assertEquals(out.length, 2, "stop draws the last line and ends it");
    assert_(out[0]!.startsWith("\r\x1b[K["), JSON.stringify(out[0]));
    assert_(
      out[0]!.includes(
        "300/1000  30.0%  150/s  ETA 5s  1 reconnect  streaming",
      ),
      out[0],
    );
    assertEquals(out[1], "\n");
  } finally {
    p.stop();
  }
});

Deno.test("ProgressReporter.writeLine keeps the bar below log lines", () => {
  const out: string[] = [];
  const p = new ProgressReporter({
    total: 10,
    mode: "bar",
    log: new LineLogger({ level: "silent" }),
    write: (s) => out.push(s),
    columns: () => 80,
    redrawMs: 60_000,
  });
  p.writeLine("before any bar");
  p.stop();
  p.writeLine("after the bar");
  assertEquals(out[0], "before any bar\n");
  assertEquals(out.at(-1), "after the bar\n");
});

Deno.test("ProgressReporter in log mode writes one info line per period with the progress fields", async () => {
  const lines: string[] = [];
  const clock = new FakeClock();
  const p = new ProgressReporter({
    clock,
    total: 10,
    mode: "log",
    log: new LineLogger({
      level: "info",
      format: "json",
      write: (l) => lines.push(l),
    }),
    logEveryMs: 20,
  });
  try {
    p.onEvent({ type: "streaming", nextOffset: 0, count: 10, resumed: false });
    p.onNumber(4);
    await clock.advance(19);
    assertEquals(lines.length, 0);
    await clock.advance(1);
    assertEquals(lines.length, 1);
    await clock.advance(20);
    assertEquals(lines.length, 2);
  } finally {
    p.stop();
  }
  assertEquals(clock.pending, 0);
  const first = JSON.parse(lines[0]!);
  assertEquals(
    [
      first.msg,
      first.received,
      first.count,
      first.percent,
      first.state,
      first.reconnects,
    ],
    ["progress", 5, 10, 50, "streaming", 0],
  );
});

Deno.test("ProgressReporter in off mode writes nothing and starts no timer", () => {
  const out: string[] = [];
  const clock = new FakeClock();
  const p = new ProgressReporter({
    clock,
    total: 10,
    mode: "off",
    log: new LineLogger({ level: "debug", write: (l) => out.push(l) }),
    write: (s) => out.push(s),
  });
  assertEquals(clock.pending, 0);
  p.onNumber(3);
  p.stop();
  assertEquals(out, []);
});

Deno.test("ProgressReporter stays connecting through failed attempts before the first welcome", () => {
  const p = new ProgressReporter({
    total: 10,
    mode: "off",
    log: new LineLogger({ level: "silent" }),
  });
  for (let attempt = 0; attempt < 3; attempt++) {
    p.onEvent({ type: "connecting", attempt });
    assertEquals(p.view().state, "connecting");
    p.onEvent({
      type: "disconnected",
      error: "Cannot connect to 127.0.0.1:1: connection refused",
      retryInMs: 100,
    });
    assertEquals(p.view().state, "connecting", `after attempt ${attempt}`);
  }
  p.onEvent({ type: "streaming", nextOffset: 0, count: 10, resumed: false });
  p.onEvent({ type: "disconnected", error: "reset", retryInMs: 100 });
  assertEquals(p.view().state, "resuming");
  p.stop();
});

Deno.test("ProgressReporter.show sets a summed view, and above() prints with the bar cleared and redrawn", () => {
  const out: string[] = [];
  const p = new ProgressReporter({
    total: 600,
    mode: "bar",
    log: new LineLogger({ level: "silent" }),
    write: (s) => out.push(s),
    columns: () => 120,
    redrawMs: 60_000, // no timer tick during the test
  });
  try {
    p.show({ received: 300, reconnects: 4, state: "streaming" });
    assertEquals([p.view().received, p.view().reconnects, p.view().state], [
      300,
      4,
      "streaming",
    ]);
    const printed: string[] = [];
    p.above(() => printed.push("nothing drawn yet"));
    assertEquals([printed.length, out.length], [1, 0]);
    p.stop(); // draws the last state
    const bar = out.find((s) => s.includes("300/600"));
    assert_(bar?.includes("4 reconnects  streaming"), JSON.stringify(out));
  } finally {
    p.stop();
  }
});
