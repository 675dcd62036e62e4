/**
 * V8's `--trace-gc` lines (one per collection, on the process's stdout),
 * parsed and summed: how many young-generation and full collections ran and
 * how long their pauses were, as V8 reports them.
 *
 * ```ts
 * const gc = summarizeGc(lines.filter((l) => l.at >= from && l.at < to));
 * ```
 *
 * @module
 */

/** One collection from a `--trace-gc` line. */
export interface GcEvent {
  /** `"young"`: Scavenge, Minor Mark-Sweep/Compact; `"full"`: Mark-Compact, Mark-Sweep. */
  kind: "young" | "full";
  /** The collector's name as V8 prints it (`Scavenge`, `Mark-Compact (reduce)`…). */
  name: string;
  /** Main-thread pause (ms): the first of the two times V8 prints. */
  pauseMs: number;
}

// [PID:0xADDR]   1234 ms: Scavenge 3.4 (4.4) -> 3.0 (5.2) MB, pooled: 0.0 MB, 3.27 / 0.00 ms (…
const LINE =
  /\d+ ms: ([A-Za-z][A-Za-z -]*?(?: \([a-z ]+\))?) [\d.]+ \([\d.]+\) -> [\d.]+ \([\d.]+\) MB, (?:pooled: [\d.]+ MB, )?([\d.]+) \/ [\d.]+ ms/;

/** Parses one `--trace-gc` line; `undefined` for any other line. */
export function parseGcLine(line: string): GcEvent | undefined {
  const m = LINE.exec(line);
  if (!m) return undefined;
  const name = m[1]!;
  return {
    kind: /^(Scavenge|Minor)/.test(name) ? "young" : "full",
    name,
    pauseMs: Number(m[2]),
  };
}

/** Counts and pause totals of young and full collections. */
export interface GcSummary {
  young: number;
  youngPauseMs: number;
  full: number;
  fullPauseMs: number;
  /** The longest single pause of either kind (ms). */
  maxPauseMs: number;
}

/** Sums the collections among `lines` (other lines are ignored). */
export function summarizeGc(lines: Iterable<string>): GcSummary {
  const s: GcSummary = {
    young: 0,
    youngPauseMs: 0,
    full: 0,
    fullPauseMs: 0,
    maxPauseMs: 0,
  };
  for (const l of lines) {
    const e = parseGcLine(l);
    if (!e) continue;
    if (e.kind === "young") {
      s.young++;
      s.youngPauseMs += e.pauseMs;
    } else {
      s.full++;
      s.fullPauseMs += e.pauseMs;
    }
    s.maxPauseMs = Math.max(s.maxPauseMs, e.pauseMs);
  }
  s.youngPauseMs = +s.youngPauseMs.toFixed(2);
  s.fullPauseMs = +s.fullPauseMs.toFixed(2);
  return s;
}
