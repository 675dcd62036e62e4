// deno-lint-ignore-file no-console -- a benchmark script: figures go to stdout.
/**
 * The simulator's throughput, before and after, in one process: two trees'
 * `sim/sim.ts` loaded side by side, the seeds run in chunks, alternating
 * which tree goes first, so both see the same load on a shared, noisy
 * machine. Prints session lifecycles per CPU-second for each and their
 * ratio, and fails if a seed's trace hash differs between the trees (a
 * performance change must not change what is simulated).
 *
 * ```sh
 * git worktree add --detach /tmp/simbase main
 * deno run -A bench/sim_ab.ts /tmp/simbase . [--seeds 200] [--chunk 10]
 * ```
 *
 * @module
 */

import { cpuUsage } from "node:process";
import { parseArgs } from "node:util";
import { pathToFileURL } from "node:url";
import { resolve } from "node:path";

interface SimModule {
  simulate(c: unknown): Promise<{ sessions: number; hash: string }>;
  defaultConfig(seed: number): unknown;
}

const { values, positionals } = parseArgs({
  args: Deno.args,
  options: {
    seeds: { type: "string", default: "200" },
    chunk: { type: "string", default: "10" },
  },
  allowPositionals: true,
});
if (positionals.length !== 2) {
  console.error("usage: deno run -A bench/sim_ab.ts BEFORE_DIR AFTER_DIR");
  Deno.exit(2);
}
const load = (dir: string): Promise<SimModule> =>
  import(pathToFileURL(resolve(dir, "sim/sim.ts")).href);
const sides = [
  { name: "before", sim: await load(positionals[0]!), cpu: 0, sessions: 0 },
  { name: "after", sim: await load(positionals[1]!), cpu: 0, sessions: 0 },
];
const seeds = Number(values.seeds), chunk = Number(values.chunk);
const hashes = new Map<number, string>();
let differ = 0;
for (let from = 1, k = 0; from <= seeds; from += chunk, k++) {
  for (const side of k % 2 === 0 ? sides : [...sides].reverse()) {
    const c0 = cpuUsage();
    for (let s = from; s < Math.min(from + chunk, seeds + 1); s++) {
      const r = await side.sim.simulate(side.sim.defaultConfig(s));
      side.sessions += r.sessions;
      const h = hashes.get(s);
      if (h === undefined) hashes.set(s, r.hash);
      else if (h !== r.hash) {
        differ++;
        console.log(`seed ${s}: trace hash ${h} vs ${r.hash}`);
      }
    }
    const c = cpuUsage(c0);
    side.cpu += (c.user + c.system) / 1e6;
  }
}
const rate = (s: typeof sides[number]) => s.sessions / s.cpu;
for (const s of sides) {
  console.log(
    `${s.name}: ${s.sessions} sessions in ${s.cpu.toFixed(2)} CPU-s, ${
      rate(s).toFixed(0)
    } session lifecycles per CPU-second`,
  );
}
console.log(
  `ratio ${
    (rate(sides[1]!) / rate(sides[0]!)).toFixed(2)
  }; ${differ} seeds with another trace hash`,
);
Deno.exit(differ > 0 ? 1 : 0);
