import { assertEquals, assertThrows } from "../tests/_assert.ts";
import { UsageError } from "./_flags.ts";
import {
  launchV8Flags,
  parseVariants,
  planSeconds,
  runOrder,
  runSeconds,
  scaleSettings,
  type Side,
  v8FlagsOfTask,
  variantFlags,
} from "./_scale_plan.ts";

Deno.test("parseVariants reads name=flags pairs; a variant's flags run to the next name", () => {
  assertEquals(
    parseVariants(
      "semi4=--max-semi-space-size=4,semi8=--max-semi-space-size=8",
    ),
    [
      { name: "semi4", v8Flags: ["--max-semi-space-size=4"] },
      { name: "semi8", v8Flags: ["--max-semi-space-size=8"] },
    ],
  );
  assertEquals(parseVariants("a=--x=1,--y=2, b=,c=--z --w"), [
    { name: "a", v8Flags: ["--x=1", "--y=2"] },
    { name: "b", v8Flags: [] },
    { name: "c", v8Flags: ["--z", "--w"] },
  ]);
});

// [text, what the message says]
const badVariants: [string, string][] = [
  ["=--x", "name=V8-flags pairs"],
  ["semi4", "name=V8-flags pairs"],
  ["4k=--x", "name=V8-flags pairs"],
  ["--x=1,a=--y", "must start with a name"],
  ["a=--x,a=--y", 'names "a" twice'],
  [",", "names no variant"],
];
for (const [text, says] of badVariants) {
  Deno.test(`parseVariants refuses "${text}"`, () => {
    assertThrows(() => parseVariants(text), UsageError, says);
  });
}

// [deno.json text, the V8 flags of its server task]
const tasks: [string, string, string[]][] = [
  [
    "today's task",
    `{"tasks": {"server": "deno run --v8-flags=--max-semi-space-size=4 --allow-net server.ts"}}`,
    ["--max-semi-space-size=4"],
  ],
  [
    "v1's task (35b3d16)",
    `{"tasks": {"server": "deno run --allow-net --allow-env --allow-read --allow-write server.ts"}}`,
    [],
  ],
  [
    "two --v8-flags, one with two flags",
    `{"tasks": {"server": "deno run --v8-flags=--a=1,--b --v8-flags=--c server.ts"}}`,
    ["--a=1", "--b", "--c"],
  ],
  [
    "compile:server before server (only the server task counts)",
    `{"tasks": {"compile:server": "deno compile --v8-flags=--x=9 server.ts", "server": "deno run server.ts"}}`,
    [],
  ],
  ["no server task", `{"tasks": {"client": "deno run client.ts"}}`, []],
];
for (const [what, text, flags] of tasks) {
  Deno.test(`v8FlagsOfTask reads ${what}`, () => {
    assertEquals(v8FlagsOfTask(text), flags);
  });
}

Deno.test("scaleSettings: by default one measured side, 'after', with the flags of deno.json's server task", () => {
  const s = scaleSettings([]);
  assertEquals(s.variants, [
    { name: "after", v8Flags: undefined, from: "deno.json task server" },
  ]);
  assertEquals([s.sessions, s.steady, s.rounds, s.traceGc], [
    [5000, 10000],
    "60s",
    1,
    true,
  ]);
  assertEquals(variantFlags(s.variants[0]!, ["--max-semi-space-size=4"]), {
    v8Flags: ["--max-semi-space-size=4"],
    v8FlagsFrom: "deno.json task server",
  });
});

Deno.test("scaleSettings: --server-v8-flags replaces the task's flags; --variants names several sides", () => {
  const one = scaleSettings(["--server-v8-flags=--max-semi-space-size=1"]);
  assertEquals(one.variants, [
    {
      name: "after",
      v8Flags: ["--max-semi-space-size=1"],
      from: "--server-v8-flags",
    },
  ]);
  assertEquals(variantFlags(one.variants[0]!, ["--max-semi-space-size=4"]), {
    v8Flags: ["--max-semi-space-size=1"],
    v8FlagsFrom: "--server-v8-flags",
  });
  const two = scaleSettings([
    "--baseline",
    "35b3d16",
    "--baseline-v8-flags=--max-semi-space-size=2",
    "--variants",
    "semi4=--max-semi-space-size=4,v8=",
    "--sessions",
    "5000,10000,15000",
    "--markdown",
  ]);
  assertEquals(two.variants.map((v) => [v.name, v.v8Flags, v.from]), [
    ["semi4", ["--max-semi-space-size=4"], "--variants"],
    ["v8", [], "--variants"],
  ]);
  assertEquals(two.baselineV8Flags, ["--max-semi-space-size=2"]);
  assertEquals([two.sessions, two.markdown], [[5000, 10000, 15000], true]);
});

// [args, what the message says]
const badArgs: [string[], string][] = [
  [["--sessions", "20000"], "1..19000"],
  [["--sessions", "5000,abc"], "1..19000"],
  [["--rounds", "0"], "--rounds"],
  [["--rate=-1"], "--rate"],
  [["--steady", "0"], "--steady must be above 0"],
  [["--settle", "5"], "--settle must be a duration"],
  [["--variants", "a=", "--server-v8-flags=--x"], "exclude each other"],
  [["--json", "--markdown"], "exclude each other"],
  [["--baseline-v8-flags=--x"], "needs --baseline"],
  [["--variants", "before=--x"], "names the baseline"],
];
for (const [args, says] of badArgs) {
  Deno.test(`scaleSettings refuses ${args.join(" ")}`, () => {
    assertThrows(() => scaleSettings(args), UsageError, says);
  });
}

Deno.test("launchV8Flags puts --trace-gc before the side's flags when the GC trace is on", () => {
  const side: Side = {
    name: "after",
    measured: true,
    rev: "abc",
    dir: "/x",
    protocol: 2,
    v8Flags: ["--max-semi-space-size=4"],
    v8FlagsFrom: "deno.json task server",
  };
  assertEquals(launchV8Flags(side, true), [
    "--trace-gc",
    "--max-semi-space-size=4",
  ]);
  assertEquals(launchV8Flags(side, false), ["--max-semi-space-size=4"]);
});

Deno.test("runOrder: per round and session count every side, reversed every other step", () => {
  const order = runOrder({ rounds: 2, sessions: [5000, 10000] }, ["b", "a"])
    .map((r) => `${r.round}:${r.sessions}:${r.side}`);
  assertEquals(order, [
    "1:5000:a",
    "1:5000:b",
    "1:10000:b",
    "1:10000:a",
    "2:5000:b",
    "2:5000:a",
    "2:10000:a",
    "2:10000:b",
  ]);
});

Deno.test("runSeconds: overhead, ramp, and the driver's count (1.5 × ramp + settle + steady + 10 s + one interval)", () => {
  const s = { rate: 1000, settle: "5s", steady: "30s", interval: "1s" };
  // 5 + 10 + (15 + 5 + 30 + 10 + 1)
  assertEquals(runSeconds(s, 10_000), 76);
  // three counts, two sides, two rounds
  assertEquals(
    planSeconds({ ...s, rounds: 2, sessions: [5000, 10000, 15000] }, 2),
    4 * (runSeconds(s, 5000) + runSeconds(s, 10000) + runSeconds(s, 15000)),
  );
});
