import { assert, assertEquals, assertNotEquals } from "../tests/_assert.ts";
import { failureLine } from "./explore.ts";
import {
  CI_SEEDS,
  OPEN_FINDINGS,
  regressionConfig,
  REGRESSIONS,
} from "./seeds.ts";
import { CORRUPTIONS } from "./byzantine.ts";
import { defaultConfig, simulate } from "./sim.ts";

Deno.test("simulate: one seed gives the same trace twice, another seed another", async () => {
  const a = await simulate(defaultConfig(7));
  const b = await simulate(defaultConfig(7));
  const c = await simulate(defaultConfig(8));
  assert(a.trace.lines > 1000, `a run worth hashing (${a.trace.lines} lines)`);
  assertEquals(a.hash, b.hash);
  assertEquals(a.events, b.events);
  assertNotEquals(a.hash, c.hash);
});

Deno.test("simulate: the CI seed set keeps every invariant under every fault class", async () => {
  const failures: string[] = [];
  let sessions = 0, passed = 0;
  for (const seed of CI_SEEDS) {
    const r = await simulate(defaultConfig(seed));
    sessions += r.sessions;
    passed += r.passed;
    if (r.violations.length > 0) failures.push(failureLine(r));
  }
  assertEquals(failures, [], failures.join("\n"));
  // The faults must not be so gentle that nothing happens, nor so harsh that nothing passes.
  assert(passed > sessions * 0.5, `${passed} of ${sessions} passed`);
});

Deno.test("simulate byzantine: every kind of lie reaches clients, which refuse it or end in FAIL, never PASS (seeds 1..20)", async () => {
  const injected = new Map<string, number>();
  let refused = 0, failed = 0;
  const failures: string[] = [];
  for (let seed = 1; seed <= 20; seed++) {
    const r = await simulate(defaultConfig(seed));
    for (const [k, n] of r.injected) {
      if (k.startsWith("byzantine:")) {
        injected.set(k, (injected.get(k) ?? 0) + n);
      }
    }
    refused += r.caught.refused;
    failed += r.caught.failed;
    if (r.violations.length > 0) failures.push(failureLine(r));
  }
  assertEquals(failures, [], failures.join("\n"));
  assertEquals(
    CORRUPTIONS.map((k) => (injected.get(`byzantine:${k}`) ?? 0) > 0),
    CORRUPTIONS.map(() => true),
    `injected: ${JSON.stringify([...injected])}`,
  );
  // Refused as protocol violations (out of order, after FINAL), and changed
  // values caught by the checksums: the checker saw them end that way.
  assert(refused > 0 && failed > 0, `refused ${refused}, failed ${failed}`);
});

Deno.test("simulate: every seed that ever found a bug passes now", async () => {
  for (const r of REGRESSIONS) {
    const res = await simulate(regressionConfig(r));
    assertEquals(
      res.violations.length,
      0,
      `${r.found}\n${res.violations.length ? failureLine(res) : ""}`,
    );
  }
});

Deno.test({
  name:
    `simulate: ${OPEN_FINDINGS.length} seeds from a longer search, not fixed yet (ignored: each names its race, some no longer fail by event order alone; issue 17 goes on with them)`,
  ignore: true,
  async fn() {
    for (const r of OPEN_FINDINGS) {
      const res = await simulate(regressionConfig(r));
      assertEquals(
        res.violations.length,
        0,
        `${r.found}\n${res.violations.length ? failureLine(res) : ""}`,
      );
    }
  },
});
