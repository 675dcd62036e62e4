/**
 * Command-line parsing shared by the entry points: `node:util` parseArgs
 * (JSR's @std/cli is unreachable here), with every mistake turned into a
 * {@link UsageError} that the entry point prints as one line and exit 64.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { isLogLevel, type LogLevel } from "../common/logger.ts";
import { checkMs, type MsRange } from "../common/defaults.ts";
import { parseDuration } from "./duration.ts";

/** Exit code for usage errors (BSD `EX_USAGE`). */
export const EXIT_USAGE = 64;

/** A mistake on the command line. */
export class UsageError extends Error {
  /**
   * @param message one line saying what is wrong and what is expected
   * @param options the underlying error, if any
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UsageError";
  }
}

/** One flag: its type, default and help line. */
export interface FlagSpec {
  type: "string" | "boolean";
  short?: string;
  default?: string | boolean;
  /** Shown in `--help`; for a string flag, the value's name comes first: `"N  numbers to ask for"`. */
  help: string;
  multiple?: boolean;
}

/** Parsed flags by name. */
export type Flags = Record<string, string | boolean | string[] | undefined>;

/** The parsed value of one flag of spec `F`. */
export type FlagValue<F extends FlagSpec> = F extends { multiple: true }
  ? string[] | undefined
  : F extends { type: "boolean" } ? boolean
  : F extends { default: string } ? string
  : string | undefined;

/**
 * Parsed flags of spec `S`, typed by each flag's spec when `S` is a literal
 * (`as const satisfies Record<string, FlagSpec>`), else {@link Flags}.
 */
export type FlagValues<S extends Record<string, FlagSpec>> = string extends
  keyof S ? Flags
  : { [K in keyof S]: FlagValue<S[K]> };

/**
 * Parses `args` against `spec`, rejecting unknown flags and positionals.
 *
 * @throws {UsageError} for any mistake
 */
export function parseFlags<S extends Record<string, FlagSpec>>(
  spec: S,
  args: string[],
): FlagValues<S> {
  const options: Record<
    string,
    { type: "string" | "boolean"; short?: string; multiple?: boolean }
  > = {};
  for (const [name, f] of Object.entries(spec)) {
    options[name] = {
      type: f.type,
      ...(f.short ? { short: f.short } : {}),
      ...(f.multiple ? { multiple: true } : {}),
    };
  }
  try {
    const { values, positionals } = parseArgs({
      args,
      options,
      strict: true,
      allowPositionals: true,
    });
    if (positionals.length > 0) {
      throw new UsageError(`Unexpected argument "${positionals[0]}"`);
    }
    const out: Flags = {};
    for (const [name, f] of Object.entries(spec)) {
      out[name] = (values as Flags)[name] ?? f.default;
    }
    return out as FlagValues<S>;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(
      (err as Error).message.split("\n")[0]!.replace(/\. To specify.*$/, ""),
    );
  }
}

/** Renders `--help` text: usage line, then every flag with its default. */
export function helpText(
  usage: string,
  spec: Record<string, FlagSpec>,
): string {
  const rows = Object.entries(spec).map(([name, f]) => {
    const [arg, ...rest] = f.type === "string"
      ? f.help.split("  ")
      : ["", f.help];
    const left = `  ${f.short ? `-${f.short}, ` : "    "}--${name}${
      arg ? ` ${arg}` : ""
    }`;
    const def = f.default === false
      ? (name === "help" ? "" : " (default: off)")
      : f.default !== undefined
      ? ` (default: ${f.default})`
      : "";
    return [left, rest.join("  ").trim() + def] as const;
  });
  const w = Math.max(...rows.map(([l]) => l.length)) + 2;
  return `${usage}\n\nOptions:\n${
    rows.map(([l, r]) => l.padEnd(w) + r).join("\n")
  }\n`;
}

/** Parses a whole number in `[min, max]` for flag `name`. */
export function intFlag(
  name: string,
  value: string,
  min: number,
  max: number,
): number {
  if (!/^\d+$/.test(value.trim())) {
    throw new UsageError(
      `--${name} must be a whole number from ${min} to ${max}, got "${value}"`,
    );
  }
  const n = Number(value);
  if (n < min || n > max) {
    throw new UsageError(`--${name} must be from ${min} to ${max}, got ${n}`);
  }
  return n;
}

/**
 * Parses duration flag `--name` (`250ms`, `1.5s`, `2m`, `0`) and checks it
 * against `range` (one of `DURATION_RANGES` in common/defaults.ts, or the
 * program's own).
 *
 * @throws {UsageError} one line naming the flag, when malformed or out of range
 * @example
 * ```ts
 * durationFlag("session-ttl", "30s", DURATION_RANGES.sessionTtl); // 30000
 * durationFlag("session-ttl", "1ms", DURATION_RANGES.sessionTtl);
 * // UsageError: --session-ttl must be from 100ms to 24h, got 1ms
 * ```
 */
export function durationFlag(
  name: string,
  value: string,
  range: MsRange,
): number {
  try {
    return checkMs(`--${name}`, parseDuration(value), range);
  } catch (err) {
    if (err instanceof RangeError) throw new UsageError(err.message);
    throw new UsageError(`--${name}: ${(err as Error).message}`);
  }
}

/**
 * The flags every entry point has: `--log-level` and `--help`. Spread them
 * into a spec; read the level with {@link logLevelFlag}.
 */
export const COMMON_FLAGS = {
  "log-level": {
    type: "string",
    default: "info",
    help: "LEVEL  debug | info | warn | error | silent (stderr)",
  },
  help: { type: "boolean", short: "h", default: false, help: "show this help" },
} as const satisfies Record<string, FlagSpec>;

/** Reads `--log-level`. @throws {UsageError} for anything but a level name */
export function logLevelFlag(value: string): LogLevel {
  if (!isLogLevel(value)) {
    throw new UsageError(
      `--log-level must be debug, info, warn, error or silent, got "${value}"`,
    );
  }
  return value;
}
