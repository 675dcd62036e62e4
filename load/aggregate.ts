/**
 * Aggregate phase: the workers' result lines merged into one set of client
 * totals and latency histograms.
 *
 * @module
 */

import { Histogram } from "./histogram.ts";
import {
  type ClientTally,
  type Ledger,
  newLedger,
  type WorkerResult,
} from "./worker.ts";

/** Every client's outcome, summed over the workers. */
export interface ClientTotals extends ClientTally {
  passed: number;
  numbers: number;
  lag: Histogram;
  lagSteady: Histogram;
  welcome: Histogram;
  firstNumber: Histogram;
  /** Connection lost to the first number after the resume. */
  resume: Histogram;
  /** The load generators' event-loop delay. */
  loop: Histogram;
  /** Sessions cut after the kill, their resume times from it, and those binned (see worker.ts). */
  lostAfterKill: number;
  cutReasons: Record<string, number>;
  resumeAfterKill: Histogram;
  waveBins: number[];
}

/** Merges `results`; clients of the run (`clients`) missing from them count as `worker_lost`. */
export function aggregate(
  results: readonly WorkerResult[],
  clients: number,
): ClientTotals {
  const t: ClientTotals = {
    passed: 0,
    mismatches: 0,
    reconnects: 0,
    faulty: 0,
    cuts: 0,
    ledger: newLedger(),
    numbers: 0,
    errors: {},
    errorSamples: [],
    lag: new Histogram(),
    lagSteady: new Histogram(),
    welcome: new Histogram(),
    firstNumber: new Histogram(),
    resume: new Histogram(),
    loop: new Histogram(),
    lostAfterKill: 0,
    cutReasons: {},
    resumeAfterKill: new Histogram(),
    waveBins: [],
  };
  let reported = 0;
  for (const r of results) {
    t.lag.merge(r.lag);
    t.lagSteady.merge(r.lagSteady);
    t.welcome.merge(r.welcome);
    t.firstNumber.merge(r.firstNumber);
    t.resume.merge(r.resume);
    t.loop.merge(r.loop);
    t.resumeAfterKill.merge(r.resumeAfterKill);
    t.lostAfterKill += r.lostAfterKill;
    for (const [k, v] of Object.entries(r.cutReasons)) {
      t.cutReasons[k] = (t.cutReasons[k] ?? 0) + v;
    }
    r.waveBins.forEach((n, i) => t.waveBins[i] = (t.waveBins[i] ?? 0) + n);
    for (const [k, v] of Object.entries(r.errors)) {
      t.errors[k] = (t.errors[k] ?? 0) + v;
    }
    t.errorSamples.push(...r.errorSamples);
    t.passed += r.passed;
    t.mismatches += r.mismatches;
    t.reconnects += r.reconnects;
    t.faulty += r.faulty;
    t.cuts += r.cuts;
    addLedger(t.ledger, r.ledger);
    t.numbers += r.numbers;
    reported += r.clients;
  }
  if (clients > reported) t.errors["worker_lost"] = clients - reported;
  return t;
}

/** Adds `b` into `a` (a worker from before the ledger counts as all zeros). */
export function addLedger(a: Ledger, b: Ledger | undefined): void {
  if (b === undefined) return;
  for (const k of Object.keys(a) as (keyof Ledger)[]) a[k] += b[k];
}

/**
 * The ledger as one report line: `promised N: lost L, expired E, late R,
 * wrong W`, what the load tool prints beside its other counts.
 */
export function ledgerLine(l: Ledger): string {
  return `promised ${l.welcomed}: lost ${l.lost}, expired ${l.expired}, resumed late ${l.late}, wrong ${l.wrong}`;
}
