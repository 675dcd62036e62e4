import { assert, assertEquals } from "../tests/_assert.ts";
import { failureLine, replayCommand, traceText } from "./explore.ts";
import { defaultConfig, FAULTS, type SimResult } from "./sim.ts";
import { Trace } from "./trace.ts";

function failed(): SimResult {
  const trace = new Trace(() => 1500);
  trace.add(undefined, "settings {}");
  trace.add("s-1", "client starts");
  return {
    config: { ...defaultConfig(42), faults: new Set(["cut", "failover"]) },
    violations: [
      { invariant: "ttl", session: "s-1", time: 1500, detail: "welcomed late" },
      { invariant: "liveness", session: "s-2", time: 9000, detail: "stuck" },
    ],
    hash: "0",
    sessions: 2,
    passed: 0,
    events: 10,
    simulatedMs: 9000,
    trace,
    injected: new Map([["cut", 3]]),
    orphaned: 0,
    caught: { refused: 0, failed: 0 },
  };
}

Deno.test("failureLine: one line with the seed, the invariant, the session and the replay command", () => {
  const line = failureLine(failed());
  assert(!line.includes("\n"));
  assert(
    line.startsWith(
      "FAIL seed=42 invariant=ttl session=s-1 (2 violations): welcomed late",
    ),
    line,
  );
  assert(
    line.endsWith(
      "replay: deno task sim --seed 42 --clients 60 --servers 3 --fault-ms 20000 --faults cut,failover",
    ),
    line,
  );
  assert(
    failureLine(failed(), "liveness").includes(
      "invariant=liveness session=s-2",
    ),
  );
});

Deno.test("replayCommand: names the fault classes only when some are off", () => {
  assertEquals(
    replayCommand({ ...defaultConfig(7), faults: new Set(FAULTS) }),
    "deno task sim --seed 7 --clients 60 --servers 3 --fault-ms 20000",
  );
});

Deno.test("traceText: the failure line, the run's lines and the broken sessions' lines", () => {
  const text = traceText(failed());
  assert(text.startsWith("# FAIL seed=42"));
  assert(text.includes("## run\n1500.000 settings {}"));
  assert(text.includes("## session s-1\n1500.000 client starts"));
});
