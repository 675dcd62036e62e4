/**
 * `deno task sim`: the deterministic simulator from the command line.
 *
 * ```sh
 * deno task sim                       # the CI seed set
 * deno task sim --seed 42             # one seed (a replay)
 * deno task sim --seeds 500           # seeds 1..500
 * deno task sim --minutes 10          # random seeds for 10 minutes
 * ```
 *
 * A failing seed prints one line (seed, invariant, replay command) and
 * writes its trace, and a shrunk one, under `--trace-dir` (default
 * `sim-traces/`). Exit code 1 if any seed failed, 2 for a usage error.
 *
 * @module
 */

// deno-lint-ignore-file no-console

import { cpuUsage } from "node:process";
import { failureLine, shrink, traceText } from "./explore.ts";
import { CI_SEEDS } from "./seeds.ts";
import {
  defaultConfig,
  type FaultName,
  FAULTS,
  type SimConfig,
  simulate,
} from "./sim.ts";

const USAGE = `Usage: deno task sim [options]

Runs the seqstream system (servers, store, clients, network) in one process
on one simulated clock, with faults, and checks its invariants.

Options:
  --seed N         run this seed (or start --seeds here)        default: CI set
  --seeds N        run N seeds from --seed (default 1)
  --minutes M      run random seeds until M minutes have passed
  --clients N      clients per run                               default 60
  --servers N      servers per run                               default 3
  --fault-ms MS    faults from 0 to MS of simulated time         default 20000
  --faults LIST    comma-separated fault classes, or "none"      default: all
                   (${FAULTS.join(", ")})
  --trace-dir DIR  where traces of failing seeds go              default sim-traces
  --no-shrink      do not shrink failing seeds
  -h, --help       show this help`;

function usage(msg: string): never {
  console.error(`sim: ${msg}\n\n${USAGE}`);
  Deno.exit(2);
}

function int(name: string, v: string | undefined, lo: number): number {
  const n = Number(v);
  if (v === undefined || !Number.isInteger(n) || n < lo) {
    usage(`${name} needs a whole number >= ${lo}, got ${v ?? "nothing"}`);
  }
  return n;
}

interface Args {
  seeds: number[] | undefined;
  minutes: number | undefined;
  base: Omit<SimConfig, "seed">;
  traceDir: string;
  shrink: boolean;
}

function parse(argv: string[]): Args {
  const d = defaultConfig(0);
  const base: Omit<SimConfig, "seed"> = {
    servers: d.servers,
    clients: d.clients,
    faultMs: d.faultMs,
    faults: d.faults,
    faultEveryMs: d.faultEveryMs,
  };
  let seed: number | undefined,
    count: number | undefined,
    minutes: number | undefined;
  let traceDir = "sim-traces", doShrink = true;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = () => argv[++i];
    switch (a) {
      case "-h":
      case "--help":
        console.log(USAGE);
        Deno.exit(0);
        break;
      case "--seed":
        seed = int(a, next(), 0);
        break;
      case "--seeds":
        count = int(a, next(), 1);
        break;
      case "--minutes": {
        const v = Number(next());
        if (!(v > 0)) usage("--minutes needs a positive number");
        minutes = v;
        break;
      }
      case "--clients":
        base.clients = int(a, next(), 1);
        break;
      case "--servers":
        base.servers = int(a, next(), 1);
        break;
      case "--fault-ms":
        base.faultMs = int(a, next(), 0);
        break;
      case "--faults": {
        const v = next() ?? "";
        const names = v === "none" ? [] : v.split(",").filter((x) => x !== "");
        for (const n of names) {
          if (!(FAULTS as readonly string[]).includes(n)) {
            usage(`unknown fault class "${n}"; known: ${FAULTS.join(", ")}`);
          }
        }
        base.faults = new Set(names as FaultName[]);
        break;
      }
      case "--trace-dir":
        traceDir = next() ?? usage("--trace-dir needs a folder");
        break;
      case "--no-shrink":
        doShrink = false;
        break;
      default:
        usage(`unknown option ${a}`);
    }
  }
  let seeds: number[] | undefined;
  if (seed !== undefined || count !== undefined) {
    const from = seed ?? 1;
    seeds = Array.from({ length: count ?? 1 }, (_, i) => from + i);
  } else if (minutes === undefined) seeds = [...CI_SEEDS];
  return { seeds, minutes, base, traceDir, shrink: doShrink };
}

async function main(): Promise<number> {
  const args = parse(Deno.args);
  const started = performance.now();
  const cpu0 = cpuUsage();
  let runs = 0, failed = 0, sessions = 0, events = 0, orphaned = 0;
  const seeds = args.seeds;
  const deadline = args.minutes === undefined
    ? Infinity
    : started + args.minutes * 60_000;
  let random = (Date.now() % 1_000_000) * 1000;
  for (let i = 0;; i++) {
    let seed: number;
    if (seeds !== undefined) {
      if (i >= seeds.length) break;
      seed = seeds[i]!;
    } else {
      if (performance.now() >= deadline) break;
      seed = random++;
    }
    const r = await simulate({ ...args.base, seed });
    runs++;
    sessions += r.sessions;
    events += r.events;
    orphaned += r.orphaned;
    if (r.violations.length === 0) continue;
    failed++;
    console.log(failureLine(r));
    await Deno.mkdir(args.traceDir, { recursive: true });
    const file = `${args.traceDir}/seed-${seed}.txt`;
    await Deno.writeTextFile(file, traceText(r));
    console.log(`  trace: ${file}`);
    if (args.shrink) {
      const s = await shrink(r);
      if (s !== r) {
        const sf = `${args.traceDir}/seed-${seed}-shrunk.txt`;
        const inv = r.violations[0]!.invariant;
        await Deno.writeTextFile(sf, traceText(s, inv));
        console.log(`  shrunk: ${failureLine(s, inv)}`);
        console.log(`  shrunk trace: ${sf}`);
      }
    }
  }
  const cpu = cpuUsage(cpu0);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  const wallS = (performance.now() - started) / 1000;
  console.log(
    `sim: ${runs} seeds, ${failed} failed; ${sessions} sessions, ${events} events in ${
      wallS.toFixed(1)
    } s (${(sessions / cpuS).toFixed(0)} session lifecycles per CPU-second)` +
      (orphaned > 0
        ? `; ${orphaned} records orphaned by data loss (known gap)`
        : ""),
  );
  return failed > 0 ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main());
