/**
 * What `bench:scale` runs: its flags, the V8 flags each side's server is
 * launched with, the order of the runs and an estimate of their wall time.
 * Pure: no process, file or clock (the deno.json text is passed in).
 *
 * Each side's server gets the V8 flags its own tree's `deno task server`
 * applies (`--v8-flags=…` in deno.json's `tasks.server`), so it runs as users
 * launch it: today `--max-semi-space-size=4` for this tree, none for v1
 * (`35b3d16`). `--server-v8-flags` replaces this tree's flags,
 * `--baseline-v8-flags` the baseline's, and `--variants` measures this tree
 * once per named set of flags, in the same run.
 *
 * ```ts
 * const s = scaleSettings(["--baseline", "35b3d16", "--variants", "semi4=--max-semi-space-size=4,semi8=--max-semi-space-size=8"]);
 * v8FlagsOfTask(denoJsonText); // ["--max-semi-space-size=4"]
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  durationFlag,
  numberFlag,
  sessionList,
  UsageError,
  v8FlagList,
} from "./_flags.ts";

/** The driver's file limit: one socket per session in one process. */
export const MAX_SESSIONS = 19_000;

/** A named set of V8 flags for this tree's server. */
export interface Variant {
  name: string;
  v8Flags: string[];
}

/** The parsed flags of `bench:scale`. */
export interface ScaleSettings {
  baseline: string | undefined;
  /** V8 flags for the baseline's server, replacing its deno.json's. */
  baselineV8Flags: string[] | undefined;
  sessions: number[];
  steady: string;
  settle: string;
  rate: number;
  interval: string;
  rounds: number;
  poll: string;
  traceGc: boolean;
  /**
   * This tree's servers: one per variant, each with its flags and where
   * they came from; `undefined` flags: deno.json's `tasks.server` ones.
   */
  variants: Array<
    { name: string; v8Flags: string[] | undefined; from: FlagSource }
  >;
  json: boolean;
  markdown: boolean;
  /** Print the plan and its estimated wall time, run nothing. */
  plan: boolean;
}

/** Where a side's V8 flags came from, for the report. */
export type FlagSource =
  | "deno.json task server"
  | "--server-v8-flags"
  | "--baseline-v8-flags"
  | "--variants";

/** A tree to measure and how its server is launched. */
export interface Side {
  /** `before` (the baseline), `after`, or a variant's name. */
  name: string;
  /** Whether the targets apply to it (`false`: the baseline). */
  measured: boolean;
  rev: string;
  dir: string;
  protocol: number;
  /** V8 flags as users launch it (without the bench's `--trace-gc`). */
  v8Flags: string[];
  v8FlagsFrom: FlagSource;
}

const NAME = /^[A-Za-z][\w.-]*$/;

/**
 * Parses `--variants name=flags,name=flags`: a variant's flags run to the
 * next `name=`, so `a=--x=1,--y=2,b=` is `a` with two flags and `b` with
 * none (V8's defaults).
 *
 * @throws {UsageError} for a piece without a name, a bad or repeated name
 */
export function parseVariants(text: string): Variant[] {
  const out: Variant[] = [];
  for (const piece of text.split(",").map((p) => p.trim()).filter(Boolean)) {
    const eq = piece.indexOf("=");
    const head = eq < 0 ? piece : piece.slice(0, eq);
    if (!head.startsWith("-")) {
      if (eq < 0 || !NAME.test(head)) {
        throw new UsageError(
          `--variants takes name=V8-flags pairs (names: a letter, then letters, digits, "_", "-" or "."), got "${piece}"`,
        );
      }
      if (out.some((v) => v.name === head)) {
        throw new UsageError(`--variants names "${head}" twice`);
      }
      out.push({ name: head, v8Flags: v8FlagList(piece.slice(eq + 1)) });
    } else {
      const last = out.at(-1);
      if (!last) {
        throw new UsageError(
          `--variants must start with a name (name=V8-flags), got "${text}"`,
        );
      }
      last.v8Flags.push(...v8FlagList(piece));
    }
  }
  if (out.length === 0) {
    throw new UsageError(`--variants names no variant, got "${text}"`);
  }
  return out;
}

/**
 * The V8 flags a deno.json's `tasks.server` passes (`--v8-flags=a,b`, once
 * or more), or `[]` when it passes none or there is no such task.
 */
export function v8FlagsOfTask(denoJson: string): string[] {
  const task = /"server"\s*:\s*"((?:[^"\\]|\\.)*)"/.exec(denoJson)?.[1];
  if (task === undefined) return [];
  const flags: string[] = [];
  for (const m of task.matchAll(/(?:^|\s)--v8-flags=(\S+)/g)) {
    flags.push(...v8FlagList(m[1]!));
  }
  return flags;
}

/**
 * Parses `bench:scale`'s command line.
 *
 * @throws {UsageError} for a value out of range, or flags that exclude each other
 * @throws {TypeError} (from `parseArgs`) for an unknown flag
 */
export function scaleSettings(args: string[]): ScaleSettings {
  const { values } = parseArgs({
    args,
    options: {
      baseline: { type: "string" },
      "baseline-v8-flags": { type: "string" },
      sessions: { type: "string", default: "5000,10000" },
      steady: { type: "string", default: "60s" },
      settle: { type: "string", default: "5s" },
      rate: { type: "string", default: "1000" },
      interval: { type: "string", default: "1s" },
      rounds: { type: "string", default: "1" },
      poll: { type: "string", default: "2ms" },
      "no-trace-gc": { type: "boolean", default: false },
      "server-v8-flags": { type: "string" },
      variants: { type: "string" },
      json: { type: "boolean", default: false },
      markdown: { type: "boolean", default: false },
      plan: { type: "boolean", default: false },
    },
  });
  const sessions = sessionList(values.sessions, {
    n: MAX_SESSIONS,
    why: "one driver process may hold 20,000 sockets",
  });
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) {
    throw new UsageError(
      `--rounds must be a whole number ≥ 1, got "${values.rounds}"`,
    );
  }
  const rate = numberFlag("--rate", values.rate);
  durationFlag("--steady", values.steady, true);
  durationFlag("--settle", values.settle);
  durationFlag("--interval", values.interval, true);
  durationFlag("--poll", values.poll);
  if (
    values.variants !== undefined && values["server-v8-flags"] !== undefined
  ) {
    throw new UsageError(
      "--server-v8-flags and --variants exclude each other (a variant names its own flags)",
    );
  }
  if (values.json && values.markdown) {
    throw new UsageError("--json and --markdown exclude each other");
  }
  if (values["baseline-v8-flags"] !== undefined && !values.baseline) {
    throw new UsageError("--baseline-v8-flags needs --baseline");
  }
  const variants: ScaleSettings["variants"] = values.variants !== undefined
    ? parseVariants(values.variants).map((v) => ({ ...v, from: "--variants" }))
    : values["server-v8-flags"] !== undefined
    ? [{
      name: "after",
      v8Flags: v8FlagList(values["server-v8-flags"]),
      from: "--server-v8-flags",
    }]
    : [{ name: "after", v8Flags: undefined, from: "deno.json task server" }];
  if (variants.some((v) => v.name === "before")) {
    throw new UsageError(`--variants: "before" names the baseline`);
  }
  return {
    baseline: values.baseline,
    baselineV8Flags: values["baseline-v8-flags"] === undefined
      ? undefined
      : v8FlagList(values["baseline-v8-flags"]),
    sessions,
    steady: values.steady,
    settle: values.settle,
    rate,
    interval: values.interval,
    rounds,
    poll: values.poll,
    traceGc: !values["no-trace-gc"],
    variants,
    json: values.json,
    markdown: values.markdown,
    plan: values.plan,
  };
}

/** The V8 flags this tree's variant runs with, and where they came from. */
export function variantFlags(
  v: ScaleSettings["variants"][number],
  taskFlags: string[],
): { v8Flags: string[]; v8FlagsFrom: FlagSource } {
  return { v8Flags: v.v8Flags ?? taskFlags, v8FlagsFrom: v.from };
}

/** The V8 flags one run's server gets: the side's, after `--trace-gc` when on. */
export function launchV8Flags(side: Side, traceGc: boolean): string[] {
  return [...(traceGc ? ["--trace-gc"] : []), ...side.v8Flags];
}

/** One run of the plan. */
export interface PlannedRun {
  round: number;
  sessions: number;
  side: string;
}

/**
 * The runs in order: per round, per session count, every side, the order of
 * the sides reversed every other step so a drift in load favours none.
 */
export function runOrder(
  s: Pick<ScaleSettings, "rounds" | "sessions">,
  sides: readonly string[],
): PlannedRun[] {
  const out: PlannedRun[] = [];
  for (let round = 1; round <= s.rounds; round++) {
    for (const [i, n] of s.sessions.entries()) {
      const order = (round + i) % 2 ? [...sides].reverse() : sides;
      for (const side of order) out.push({ round, sessions: n, side });
    }
  }
  return out;
}

/**
 * Seconds a run takes besides the driver's own time: starting the server
 * (measured: 1–3 s), its idle second, stopping it, building nothing.
 */
export const RUN_OVERHEAD_S = 5;

/**
 * Estimated wall time of one run (s): the overhead, the ramp (`N / rate`),
 * and the driver's sessions, which stream for 1.5 × ramp + settle + steady
 * + 10 s plus one interval (the driver's default count) after opening.
 */
export function runSeconds(
  s: Pick<ScaleSettings, "rate" | "settle" | "steady" | "interval">,
  sessions: number,
): number {
  const ramp = sessions / s.rate;
  const streamMs = 1.5 * ramp * 1000 + durationFlag("--settle", s.settle) +
    durationFlag("--steady", s.steady) + 10_000 +
    durationFlag("--interval", s.interval);
  return RUN_OVERHEAD_S + ramp + streamMs / 1000;
}

/** Estimated wall time of the whole plan (s). */
export function planSeconds(
  s: Pick<
    ScaleSettings,
    "rate" | "settle" | "steady" | "interval" | "rounds" | "sessions"
  >,
  sides: number,
): number {
  return s.sessions.reduce((t, n) => t + runSeconds(s, n), 0) * sides *
    s.rounds;
}
