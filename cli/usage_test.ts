import { assert_, assertEquals, assertThrows } from "../tests/_assert.ts";
import { DURATION_RANGES } from "../common/defaults.ts";
import {
  durationFlag,
  type FlagSpec,
  helpText,
  intFlag,
  parseFlags,
  UsageError,
} from "./usage.ts";

const SPEC: Record<string, FlagSpec> = {
  port: {
    type: "string",
    short: "p",
    default: "8080",
    help: "PORT  server port",
  },
  count: { type: "string", help: "N  numbers (default: random)" },
  json: { type: "boolean", default: false, help: "print JSON" },
  help: { type: "boolean", short: "h", default: false, help: "show this help" },
};

Deno.test("parseFlags fills defaults and reads long and short flags", () => {
  assertEquals(parseFlags(SPEC, []), {
    port: "8080",
    count: undefined,
    json: false,
    help: false,
  });
  assertEquals(parseFlags(SPEC, ["-p", "1", "--count=5", "--json"]), {
    port: "1",
    count: "5",
    json: true,
    help: false,
  });
});

Deno.test("parseFlags turns unknown flags, missing values and positionals into one-line UsageErrors", () => {
  for (const args of [["--nope"], ["--port"], ["extra"], ["--json=yes"]]) {
    const err = assertThrows(() => parseFlags(SPEC, args), UsageError);
    assert_(!err.message.includes("\n"), JSON.stringify(err.message));
    assert_(err.message.length > 0);
  }
  assertThrows(() => parseFlags(SPEC, ["--nope"]), UsageError, "--nope");
  assertThrows(
    () => parseFlags(SPEC, ["extra"]),
    UsageError,
    `Unexpected argument "extra"`,
  );
});

Deno.test("helpText lists every flag with its default, booleans as off, and no default for --help", () => {
  const text = helpText("Usage: x [options]", SPEC);
  const rows = text.split("\n").filter((l) => /^\s+(-\w, )?--/.test(l));
  assertEquals(rows.length, Object.keys(SPEC).length);
  assert_(
    rows[0]!.includes("-p, --port PORT") &&
      rows[0]!.endsWith("server port (default: 8080)"),
    rows[0],
  );
  assert_(rows[1]!.endsWith("numbers (default: random)"), rows[1]);
  assert_(rows[2]!.endsWith("print JSON (default: off)"), rows[2]);
  assert_(rows[3]!.endsWith("show this help"), rows[3]);
});

Deno.test("intFlag accepts whole numbers in range and names the flag otherwise", () => {
  assertEquals(intFlag("count", "65535", 1, 65535), 65535);
  assertThrows(
    () => intFlag("count", "0", 1, 65535),
    UsageError,
    "--count must be from 1 to 65535, got 0",
  );
  assertThrows(
    () => intFlag("count", "abc", 1, 65535),
    UsageError,
    `--count must be a whole number from 1 to 65535, got "abc"`,
  );
  assertThrows(
    () => intFlag("count", "1.5", 1, 65535),
    UsageError,
    "whole number",
  );
  assertThrows(
    () => intFlag("count", "-1", 1, 65535),
    UsageError,
    "whole number",
  );
});

Deno.test("durationFlag reads a duration inside its range and names the flag otherwise, in one line", () => {
  assertEquals(
    durationFlag("interval", "250ms", DURATION_RANGES.interval),
    250,
  );
  assertEquals(durationFlag("interval", "0", DURATION_RANGES.interval), 0);
  assertEquals(
    durationFlag("session-ttl", "24h", DURATION_RANGES.sessionTtl),
    86_400_000,
  );
  const cases: [string, string][] = [
    ["5x", `--session-ttl: Invalid duration "5x"`],
    ["1", `--session-ttl: Invalid duration "1"`],
    ["50ms", "--session-ttl must be from 100ms to 24h, got 50ms"],
    ["25h", "--session-ttl must be from 100ms to 24h, got 25h"],
    ["0", "--session-ttl must be from 100ms to 24h, got 0"],
  ];
  for (const [value, message] of cases) {
    const err = assertThrows(
      () => durationFlag("session-ttl", value, DURATION_RANGES.sessionTtl),
      UsageError,
    );
    assert_(err.message.startsWith(message), `${value}: ${err.message}`);
    assert_(!err.message.includes("\n"), err.message);
  }
  assertThrows(
    () => durationFlag("lease", "1.5ms", DURATION_RANGES.lease),
    UsageError,
    "--lease must be from 60ms to 10m",
  );
});

Deno.test("parseFlags types the values of a literal spec", () => {
  const spec = {
    port: { type: "string", default: "8080", help: "PORT  port" },
    id: { type: "string", help: "ID  id" },
    json: { type: "boolean", default: false, help: "json" },
    target: { type: "string", multiple: true, help: "T  target" },
  } as const satisfies Record<string, FlagSpec>;
  const f = parseFlags(spec, ["--target", "a", "--target", "b"]);
  const port: string = f.port;
  const id: string | undefined = f.id;
  const json: boolean = f.json;
  const target: string[] | undefined = f.target;
  assertEquals([port, id, json, target], ["8080", undefined, false, [
    "a",
    "b",
  ]]);
});
