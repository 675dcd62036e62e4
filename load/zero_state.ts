/**
 * Settle phase: waits for every server to be back at no connections and no
 * sessions.
 *
 * @module
 */

import { type HostPort, scrape } from "../internal/metrics_scrape.ts";

/** The last scrape of each server, and whether all were at zero. */
export interface ZeroState {
  /** `null` when there was nothing to scrape. */
  zeroState: boolean | null;
  finalScrapes: (Map<string, number> | null)[];
}

const POLL_MS = 250;

/** Whether a scrape shows no connections and no sessions. */
export function isZero(m: Map<string, number> | null): boolean {
  return m !== null && m.get("seqstream_connections") === 0 &&
    m.get("seqstream_sessions") === 0;
}

/** Scrapes `metrics` until every server is at zero, `settleMs` passes, or `stop` aborts. */
export async function awaitZeroState(
  metrics: readonly HostPort[],
  settleMs: number,
  stop: AbortSignal,
): Promise<ZeroState> {
  if (metrics.length === 0) return { zeroState: null, finalScrapes: [] };
  const settleBy = Date.now() + settleMs;
  while (true) {
    const finalScrapes = await Promise.all(metrics.map((m) => scrape(m)));
    const zeroState = finalScrapes.every(isZero);
    if (zeroState || Date.now() > settleBy || stop.aborted) {
      return { zeroState, finalScrapes };
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
