/**
 * The seeds CI runs, and every seed that ever found a bug, kept as a
 * regression case with the configuration it failed under and what it found.
 *
 * @module
 */

import {
  defaultConfig,
  type FaultName,
  FAULTS,
  type SimConfig,
} from "./sim.ts";

/** The fixed seed set of `deno task sim` and of `sim/sim_test.ts`. */
export const CI_SEEDS: readonly number[] = Array.from(
  { length: 40 },
  (_, i) => i + 1,
);

/** A seed that found a bug. */
export interface Regression {
  readonly seed: number;
  readonly clients: number;
  readonly servers: number;
  readonly faultMs?: number;
  /** Fault classes on; all when absent. */
  readonly faults?: readonly FaultName[];
  /** What it found, and the commit that fixed it. */
  readonly found: string;
}

/** Every seed that ever found a bug. */
export const REGRESSIONS: readonly Regression[] = [];

/** The configuration a regression case runs. */
export function regressionConfig(r: Regression): SimConfig {
  const d = defaultConfig(r.seed);
  return {
    ...d,
    clients: r.clients,
    servers: r.servers,
    faultMs: r.faultMs ?? d.faultMs,
    faults: new Set(r.faults ?? FAULTS),
  };
}
