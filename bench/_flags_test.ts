import { assertEquals, assertThrows } from "../tests/_assert.ts";
import {
  durationFlag,
  numberFlag,
  sessionList,
  UsageError,
  v8FlagList,
} from "./_flags.ts";

Deno.test("sessionList reads counts and refuses what is not a whole number within 1..max", () => {
  assertEquals(sessionList("5000, 10000,15000"), [5000, 10000, 15000]);
  assertThrows(
    () => sessionList("5000,20000", { n: 19000, why: "one process" }),
    UsageError,
    `--sessions takes a comma-separated list of 1..19000 (one process), got "5000,20000"`,
  );
  for (const bad of ["", "0", "1.5", "x", "5000,"]) {
    assertThrows(() => sessionList(bad), UsageError, "--sessions");
  }
});

Deno.test("numberFlag takes numbers above 0, or ≥ 0 when asked, and names the flag otherwise", () => {
  assertEquals([numberFlag("--rate", "1000"), numberFlag("--settle", "0", 0)], [
    1000,
    0,
  ]);
  for (const bad of ["0", "-1", "", "x", "Infinity"]) {
    assertThrows(() => numberFlag("--rate", bad), UsageError, "--rate");
  }
  assertThrows(() => numberFlag("--settle", "-1", 0), UsageError, "≥ 0");
});

Deno.test("durationFlag reads durations, refuses a bare number and, when positive, 0", () => {
  assertEquals([durationFlag("--steady", "60s"), durationFlag("--poll", "0")], [
    60_000,
    0,
  ]);
  assertThrows(() => durationFlag("--settle", "5"), UsageError, "--settle");
  assertThrows(
    () => durationFlag("--steady", "0", true),
    UsageError,
    "--steady must be above 0",
  );
});

Deno.test("v8FlagList splits on spaces and commas, dropping empties", () => {
  assertEquals(v8FlagList(" --a=1,--b  --c "), ["--a=1", "--b", "--c"]);
  assertEquals(v8FlagList(""), []);
});
