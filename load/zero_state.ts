/**
 * Settle phase: waits for every server to be back at no connections and no
 * sessions, and stops waiting once nothing is left to wait for: every
 * server at zero, a server that no longer answers `/metrics` (it cannot
 * reach zero by waiting), the settle time spent, or an interrupt. What was
 * left is reported server by server.
 *
 * @module
 */

import { type HostPort, scrape } from "../internal/metrics_scrape.ts";

/** What one server still held when the settle phase ended short of zero. */
export interface LeftOver {
  /** `/metrics` address. */
  server: string;
  /** Did not answer `/metrics` at the end. */
  unreachable: boolean;
  connections: number | null;
  sessions: number | null;
}

/** Why the settle phase stopped. */
export type SettleEnd =
  | "zero"
  | "unreachable"
  | "settle time spent"
  | "interrupted"
  | "not checked";

/** The last scrape of each server, and whether all were at zero. */
export interface ZeroState {
  /** `null` when there was nothing to scrape. */
  zeroState: boolean | null;
  finalScrapes: (Map<string, number> | null)[];
  /** The servers not at zero at the end (empty at zero). */
  left?: LeftOver[];
  ended?: SettleEnd;
}

const POLL_MS = 250;
/** Polls in a row a server must fail to answer before it counts as gone (~1 s). */
export const UNREACHABLE_POLLS = 4;

/** Whether a scrape shows no connections and no sessions. */
export function isZero(m: Map<string, number> | null): boolean {
  return m !== null && m.get("seqstream_connections") === 0 &&
    m.get("seqstream_sessions") === 0;
}

/** The servers of `scrapes` not at zero. */
export function leftOver(
  metrics: readonly HostPort[],
  scrapes: readonly (Map<string, number> | null)[],
): LeftOver[] {
  const out: LeftOver[] = [];
  metrics.forEach((at, i) => {
    const m = scrapes[i] ?? null;
    if (isZero(m)) return;
    out.push({
      server: `${at.hostname}:${at.port}`,
      unreachable: m === null,
      connections: m?.get("seqstream_connections") ?? null,
      sessions: m?.get("seqstream_sessions") ?? null,
    });
  });
  return out;
}

/** `127.0.0.1:9090 did not answer /metrics; 127.0.0.1:9091 held 2 connections and 5 sessions`. */
export function describeLeft(left: readonly LeftOver[]): string {
  return left.map((l) =>
    l.unreachable
      ? `${l.server} did not answer /metrics`
      : `${l.server} held ${l.connections ?? "?"} connections and ${
        l.sessions ?? "?"
      } sessions`
  ).join("; ");
}

/**
 * Scrapes `metrics` until every server is at zero, a server stops
 * answering ({@link UNREACHABLE_POLLS} in a row), `settleMs` passes, or
 * `stop` aborts.
 */
export async function awaitZeroState(
  metrics: readonly HostPort[],
  settleMs: number,
  stop: AbortSignal,
): Promise<ZeroState> {
  if (metrics.length === 0) {
    return {
      zeroState: null,
      finalScrapes: [],
      left: [],
      ended: "not checked",
    };
  }
  const settleBy = Date.now() + settleMs;
  const silent = metrics.map(() => 0);
  while (true) {
    const finalScrapes = await Promise.all(metrics.map((m) => scrape(m)));
    finalScrapes.forEach((s, i) => silent[i] = s === null ? silent[i]! + 1 : 0);
    const zeroState = finalScrapes.every(isZero);
    const ended: SettleEnd | undefined = zeroState
      ? "zero"
      : silent.some((n) => n >= UNREACHABLE_POLLS)
      ? "unreachable"
      : stop.aborted
      ? "interrupted"
      : Date.now() > settleBy
      ? "settle time spent"
      : undefined;
    if (ended !== undefined) {
      return {
        zeroState,
        finalScrapes,
        left: leftOver(metrics, finalScrapes),
        ended,
      };
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
