// deno-lint-ignore-file no-console -- a benchmark script: figures go to stdout.
/**
 * `deno task bench:ab`: the server benchmark (`bench/server_cpu.ts`) run
 * against an earlier revision and against this tree, alternately, in one
 * run, so that a before/after ratio is measured on the same machine in the
 * same minutes (these machines are shared and noisy). Each side runs its own
 * copy of the benchmark, so each speaks its own protocol version.
 *
 * ```sh
 * deno task bench:ab [--baseline REV] [--rounds 3] [-- bench:server flags…]
 * deno task bench:ab --baseline 35b3d16 --rounds 3 -- --sessions 5000 --interval 1s --seconds 20 --ramp 5s
 * ```
 *
 * The baseline is checked out with `git worktree add --detach` into a
 * temporary folder and removed afterwards.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { ROOT, runToEnd } from "../internal/spawn.ts";
import { hostBusyS } from "../load/_proc.ts";

interface Figures {
  usPerNumber: number;
  /** The Deno driver's own CPU per number (absent in revisions before it was reported). */
  driverUsPerNumber?: number;
  usPerSessionOverhead: number;
  rssKiBPerSession: number;
  steadyCpuPct: number;
  numbersPerSecond: number;
}

const dash = Deno.args.indexOf("--");
const own = dash < 0 ? Deno.args : Deno.args.slice(0, dash);
const pass = dash < 0 ? [] : Deno.args.slice(dash + 1);
const { values } = parseArgs({
  args: own,
  options: {
    baseline: { type: "string", default: "35b3d16" },
    rounds: { type: "string", default: "3" },
  },
});
const rounds = Number(values.rounds);
const here = ROOT.pathname;

async function git(args: string[]): Promise<string> {
  const out = await runToEnd("git", ["-C", here, ...args]);
  if (out.code !== 0) {
    throw new Error(`git ${args.join(" ")} failed: ${out.stderr.trim()}`);
  }
  return out.stdout.trim();
}

/** Host-wide busy cores during each run (ours and everyone else's), per side. */
const hostCores: Record<"before" | "after", number[]> = {
  before: [],
  after: [],
};

async function bench(dir: string): Promise<Figures & { hostCores: number }> {
  const busy0 = await hostBusyS(), t0 = performance.now();
  const out = await runToEnd(Deno.execPath(), [
    "run",
    "-A",
    "bench/server_cpu.ts",
    "--json",
    ...pass,
  ], { cwd: dir });
  if (out.code !== 0) {
    throw new Error(`bench in ${dir} failed: ${out.stderr.trim()}`);
  }
  const cores = ((await hostBusyS()) - busy0) /
    ((performance.now() - t0) / 1000);
  const line = out.stdout.trim().split("\n").at(-1)!;
  return { ...(JSON.parse(line) as Figures), hostCores: +cores.toFixed(2) };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const rev = await git(["rev-parse", "--short", values.baseline]);
const head = await git(["rev-parse", "--short", "HEAD"]);
const tmp = await Deno.makeTempDir({ prefix: "seqstream-ab-" });
await git(["worktree", "add", "--detach", tmp, rev]);
try {
  const runs: Record<"before" | "after", Figures[]> = { before: [], after: [] };
  for (let i = 0; i < rounds; i++) {
    // Alternate the order too, so a drift in load favours neither side.
    const order = i % 2 === 0
      ? (["before", "after"] as const)
      : (["after", "before"] as const);
    for (const side of order) {
      const f = await bench(side === "before" ? tmp : here);
      runs[side].push(f);
      hostCores[side].push(f.hostCores);
      console.error(
        `round ${
          i + 1
        } ${side}: ${f.usPerNumber} µs/number, ${f.usPerSessionOverhead} µs/session, ${f.rssKiBPerSession} KiB/session; driver ${
          f.driverUsPerNumber ?? "?"
        } µs/number; host busy ${f.hostCores} of 2 cores`,
      );
    }
  }
  const keys = [
    "usPerNumber",
    "usPerSessionOverhead",
    "rssKiBPerSession",
    "steadyCpuPct",
    "numbersPerSecond",
  ] as const;
  const rows = keys.map((k) => {
    const b = median(runs.before.map((f) => f[k]));
    const a = median(runs.after.map((f) => f[k]));
    const spread = (xs: number[]) => `${Math.min(...xs)}–${Math.max(...xs)}`;
    return {
      figure: k,
      before: b,
      after: a,
      ratio: +(a / b).toFixed(2),
      "before range": spread(runs.before.map((f) => f[k])),
      "after range": spread(runs.after.map((f) => f[k])),
    };
  });
  console.log(
    `bench:server ${
      pass.join(" ")
    }: before ${rev}, after ${head} (+ working tree), median of ${rounds} alternating rounds`,
  );
  console.table(rows);
  const all = [...hostCores.before, ...hostCores.after];
  console.log(
    `host busy during the runs (ours included): ${Math.min(...all)}–${
      Math.max(...all)
    } cores (before ${hostCores.before.join(", ")}; after ${
      hostCores.after.join(", ")
    })`,
  );
} finally {
  await git(["worktree", "remove", "--force", tmp]);
}
