import { parseDuration as sharedParseDuration } from "../cli/duration.ts";
import { assert_, assertEquals, assertThrows } from "../tests/_assert.ts";
import {
  HELP,
  parseDuration,
  parseProxyArgs,
  PROXY_RANGES,
  RATE_RANGE,
  UsageError,
} from "./_args.ts";
import { main } from "../proxy.ts";

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

Deno.test("parseProxyArgs reads the bloat, pushback and freeze flags", () => {
  assertEquals(options(["--bloat", "4000"]).bloat, { bytesPerSecond: 4000 });
  assertEquals(options(["--pushback", "2000"]).pushback, {
    bytesPerSecond: 2000,
  });
  const periodic = parseProxyArgs([
    ...up,
    "--freeze-every",
    "10s",
    "--freeze-for",
    "2s",
  ]);
  assertEquals(periodic.help, false);
  if (periodic.help) return;
  assertEquals(periodic.options.freeze, { everyMs: 10_000, forMs: 2000 });
  assertEquals(periodic.signalFreezeMs, undefined);
  const alone = parseProxyArgs([...up, "--freeze-for", "1.5s"]);
  if (alone.help) throw new Error("unexpected help");
  assertEquals([alone.options.freeze, alone.signalFreezeMs], [undefined, 1500]);
  assertThrows(
    () => options(["--freeze-every", "1s"]),
    UsageError,
    "--freeze-every needs --freeze-for",
  );
  assertThrows(
    () => options(["--bloat", "10", "--bandwidth", "10"]),
    UsageError,
    "--bandwidth and --bloat exclude each other",
  );
});

Deno.test("parseProxyArgs refuses every duration and rate flag outside its range, on one line", () => {
  const cases: Array<[string, string, string]> = [
    ["--latency", "61m", "must be from 0 to 1h"],
    ["--jitter", "2h", "must be from 0 to 1h"],
    ["--slicer-delay", "2m", "must be from 0 to 1m"],
    ["--lifetime", "1s-25h", "must be from 0 to 24h"],
    ["--blackhole-every", "0", "must be from 1ms to 24h"],
    ["--blackhole-for", "25h", "must be from 0 to 24h"],
    ["--freeze-every", "0", "must be from 1ms to 24h"],
    ["--freeze-for", "25h", "must be from 0 to 24h"],
    ["--bandwidth", "0", "must be from 1 to 1000000000 bytes per second"],
    ["--bloat", "1000000001", "must be from 1 to 1000000000"],
    ["--pushback", "0", "must be from 1 to 1000000000"],
  ];
  const partner: Record<string, string[]> = {
    "--blackhole-every": ["--blackhole-for", "1s"],
    "--blackhole-for": ["--blackhole-every", "1s"],
    "--freeze-every": ["--freeze-for", "1s"],
    "--slicer-delay": ["--slicer", "1-7"],
  };
  for (const [flag, value, message] of cases) {
    const err = assertThrows(
      () => options([flag, value, ...(partner[flag] ?? [])]),
      UsageError,
      `Invalid ${flag} "${value}": ${message}`,
    );
    assert_(!err.message.includes("\n"), err.message);
  }
  // The limits themselves are accepted.
  const o = options([
    "--latency",
    "1h",
    "--lifetime",
    "0-24h",
    "--bloat",
    String(RATE_RANGE.max),
  ]);
  assertEquals(o.latency?.ms, PROXY_RANGES.latency.max);
  assertEquals(o.lifetime?.maxMs, PROXY_RANGES.lifetime.max);
});

Deno.test("proxy --help lists the new flags with their ranges", () => {
  for (
    const needle of [
      "--bloat BYTES",
      "--pushback BYTES",
      "--freeze-every DURATION",
      "--freeze-for DURATION",
      "1..1000000000",
      "0..1h",
      "SIGUSR2",
    ]
  ) {
    assert_(HELP.includes(needle), `--help lacks ${needle}`);
  }
});

Deno.test("proxy main exits 64 on a flag out of range", async () => {
  assertEquals(await main([...up, "--freeze-for", "25h"]), 64);
  assertEquals(await main([...up, "--pushback", "0"]), 64);
});
