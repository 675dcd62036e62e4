import { assertEquals, assertThrows } from "../tests/_assert.ts";
import { formatDuration, parseDuration } from "./duration.ts";

Deno.test("parseDuration reads 0 and numbers with a unit as milliseconds", () => {
  const cases: [string, number][] = [
    ["0", 0],
    ["250ms", 250],
    ["1s", 1000],
    ["1.5s", 1500],
    ["2m", 120_000],
    ["1h", 3_600_000],
    ["0ms", 0],
    [" 30s ", 30_000],
  ];
  for (const [text, ms] of cases) assertEquals(parseDuration(text), ms, text);
});

Deno.test("parseDuration rejects a bare number, a sign, words and the empty string with TypeError", () => {
  for (
    const bad of [
      "1",
      "-1s",
      "abc",
      "",
      "1 s",
      "1S",
      "s",
      ".5s",
      "1e3ms",
      "+1s",
      "1s2",
    ]
  ) {
    assertThrows(() => parseDuration(bad), TypeError, "Invalid duration");
  }
});

Deno.test("formatDuration writes what parseDuration reads back", () => {
  for (const ms of [0, 1, 250, 1000, 1500, 60_000, 90_000, 120_000]) {
    assertEquals(parseDuration(formatDuration(ms)), ms, String(ms));
  }
  assertEquals(formatDuration(120_000), "2m");
  assertEquals(formatDuration(1500), "1500ms");
});
