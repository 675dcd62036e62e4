/**
 * Running seeds: one, a range, or as many as fit in a time budget; and, for
 * a seed that breaks an invariant, the one-line repro, its traces and a
 * shrunk configuration (fewer clients, servers and fault classes) that
 * still breaks the same invariant.
 *
 * @module
 */

import {
  type FaultName,
  FAULTS,
  type SimConfig,
  type SimResult,
  simulate,
} from "./sim.ts";

/** The command that replays `c`. */
export function replayCommand(c: SimConfig): string {
  const all = FAULTS.every((f) => c.faults.has(f));
  return `deno task sim --seed ${c.seed} --clients ${c.clients} --servers ${c.servers} --fault-ms ${c.faultMs}` +
    (all ? "" : ` --faults ${[...c.faults].join(",") || "none"}`);
}

/** One line for a failed run: seed, invariant, settings and the replay command. */
export function failureLine(r: SimResult, invariant?: string): string {
  const v = r.violations.find((x) => x.invariant === invariant) ??
    r.violations[0]!;
  return `FAIL seed=${r.config.seed} invariant=${v.invariant}` +
    (v.session ? ` session=${v.session}` : "") +
    ` (${r.violations.length} violation${
      r.violations.length === 1 ? "" : "s"
    }): ${v.detail} | replay: ${replayCommand(r.config)}`;
}

/** The trace of a failed run: run lines, then the broken session's lines. */
export function traceText(r: SimResult, invariant?: string): string {
  const out: string[] = [
    `# ${failureLine(r, invariant)}`,
    `# faults injected: ${
      [...r.injected].map(([k, n]) => `${k}=${n}`).join(" ")
    }`,
  ];
  for (const v of r.violations) {
    out.push(
      `# violation ${v.invariant} at ${v.time} ms${
        v.session ? ` session ${v.session}` : ""
      }: ${v.detail}`,
    );
  }
  out.push("", "## run", ...r.trace.global);
  const seen = new Set<string>();
  for (const v of r.violations) {
    if (v.session === undefined || seen.has(v.session)) continue;
    seen.add(v.session);
    out.push("", `## session ${v.session}`, ...r.trace.of(v.session));
  }
  return out.join("\n") + "\n";
}

/**
 * Smaller configurations that still break `invariant`: halves the clients,
 * then drops servers, then fault classes one at a time, keeping each step
 * that still fails. Bounded by `budget` runs.
 */
export async function shrink(
  failed: SimResult,
  budget = 24,
): Promise<SimResult> {
  const invariant = failed.violations[0]!.invariant;
  let best = failed;
  let runs = 0;
  const tryConfig = async (c: SimConfig): Promise<boolean> => {
    if (runs++ >= budget) return false;
    const r = await simulate(c);
    if (r.violations.some((v) => v.invariant === invariant)) {
      best = r;
      return true;
    }
    return false;
  };
  while (best.config.clients > 1) {
    const c = {
      ...best.config,
      clients: Math.max(1, Math.floor(best.config.clients / 2)),
    };
    if (!(await tryConfig(c))) break;
  }
  while (best.config.servers > 1) {
    if (
      !(await tryConfig({ ...best.config, servers: best.config.servers - 1 }))
    ) break;
  }
  for (const f of FAULTS) {
    if (!best.config.faults.has(f)) continue;
    const faults = new Set<FaultName>(best.config.faults);
    faults.delete(f);
    await tryConfig({ ...best.config, faults });
  }
  return best;
}
