// deno-lint-ignore-file no-console -- a CLI: the summary goes to stdout.
/**
 * Summarises a V8 `.cpuprofile` (from `deno run --cpu-prof`): self time by
 * function and by category (program, GC, idle), so a profile can be quoted in
 * BENCHMARKS.md without a browser.
 *
 * ```sh
 * deno run --allow-read bench/cpuprof_top.ts PROFILE.cpuprofile [--top 25]
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: Node[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Self time per `function (file:line)`, in ms, largest first, and the total sampled time. */
export function selfTimes(
  p: Profile,
): { total: number; rows: [string, number][] } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = (p.timeDeltas[i + 1] ?? 0) / 1000;
    const n = byId.get(p.samples[i]!)!;
    const f = n.callFrame;
    const file = f.url.replace(/^.*\/(main|ext)\//, "$1/").replace(
      /^file:\/\/\/work\/main\//,
      "",
    );
    const key = `${f.functionName || "(anonymous)"} ${
      file ? `(${file}:${f.lineNumber + 1})` : ""
    }`.trim();
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  }
  return { total, rows: [...self].sort((a, b) => b[1] - a[1]) };
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: { top: { type: "string", default: "25" } },
    allowPositionals: true,
  });
  for (const path of positionals) {
    const { total, rows } = selfTimes(
      JSON.parse(await Deno.readTextFile(path)),
    );
    const idle = rows.find(([k]) => k.startsWith("(idle)"))?.[1] ?? 0;
    console.log(
      `${path}: ${total.toFixed(0)} ms sampled, ${
        (total - idle).toFixed(0)
      } ms busy`,
    );
    for (const [k, ms] of rows.slice(0, Number(values.top))) {
      const share = k.startsWith("(idle)")
        ? ""
        : ` ${((100 * ms) / (total - idle)).toFixed(1).padStart(5)}% of busy`;
      console.log(`${ms.toFixed(1).padStart(9)} ms${share}  ${k}`);
    }
  }
}
