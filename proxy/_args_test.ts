import { parseDuration as sharedParseDuration } from "../cli/duration.ts";
import { assert_, assertEquals, assertThrows } from "../tests/_assert.ts";
import { parseDuration, parseProxyArgs, UsageError } from "./_args.ts";

const up = ["--upstream", "127.0.0.1:8080"];

function options(args: string[]) {
  const c = parseProxyArgs([...up, ...args]);
  if (c.help) throw new Error("unexpected help");
  return c.options;
}

Deno.test("parseDuration in the proxy reads what the shared cli/duration.ts reads", () => {
  for (const s of ["0", "250ms", "2s", "1.5s", "1m", "1h", " 3s "]) {
    assertEquals(parseDuration(s), sharedParseDuration(s), s);
  }
  for (const s of ["5x", "1", "-1s", "", "ms", "1.s"]) {
    assertThrows(() => parseDuration(s), RangeError);
    assertThrows(() => sharedParseDuration(s), TypeError);
  }
});

Deno.test("parseProxyArgs reads duration flags through the shared parser, including hours", () => {
  const o = options([
    "--lifetime",
    "200ms-2s",
    "--latency",
    "1h",
    "--jitter",
    "0",
    "--slicer",
    "1-7",
    "--slicer-delay",
    "1.5s",
    "--blackhole-every",
    "1m",
    "--blackhole-for",
    "250ms",
  ]);
  assertEquals(o.lifetime, { minMs: 200, maxMs: 2000 });
  assertEquals(o.latency, { ms: 3_600_000, jitterMs: 0 });
  assertEquals(o.slicer, { minBytes: 1, maxBytes: 7, delayMs: 1500 });
  assertEquals(o.blackhole, { everyMs: 60_000, forMs: 250 });
});

Deno.test("parseProxyArgs names the flag and the value of a bad duration once, on one line", () => {
  const err = assertThrows(() => options(["--latency", "5x"]), UsageError);
  assertEquals(
    err.message,
    `Invalid --latency "5x": use a number with a unit, like 250ms, 1s or 2m (or 0)`,
  );
  assert_(!err.message.includes("\n"));
  assertThrows(
    () => options(["--lifetime", "2s-1s"]),
    UsageError,
    "MIN is more than MAX",
  );
  assertThrows(
    () => options(["--lifetime", "1-2s"]),
    UsageError,
    `Invalid --lifetime "1-2s"`,
  );
});

Deno.test("parseProxyArgs still requires --upstream and reports unknown flags", () => {
  assertThrows(() => parseProxyArgs([]), UsageError, "Missing --upstream");
  assertThrows(() => parseProxyArgs([...up, "--nope"]), UsageError, "--nope");
  assertEquals(parseProxyArgs(["--help"]), { help: true });
});
