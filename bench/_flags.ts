// deno-lint-ignore-file no-console -- the entry points' one-line usage errors go to stderr.
/**
 * Command-line pieces the benches share: a usage error that prints one line
 * and exits 2 with no stack trace, and the parsers of the flags they have in
 * common (`--sessions 5000,10000`, a count of seconds, a duration, V8 flags).
 *
 * ```ts
 * await benchMain("bench:lateness", async () => {
 *   const steps = sessionList(values.sessions);
 *   return 0;
 * });
 * ```
 *
 * @module
 */

import { parseDuration } from "../cli/duration.ts";

/** A mistake in the command line: a message, exit status 2, no stack trace. */
export class UsageError extends Error {
  /** @param message what was wrong, naming the flag */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UsageError";
  }
}

/**
 * Parses a comma-separated list of session counts (`"5000,10000"`).
 *
 * @param max the most sessions one run may hold, and why (`{ n, why }`)
 * @throws {UsageError} for anything but whole numbers from 1 to `max.n`
 */
export function sessionList(
  text: string,
  max: { n: number; why?: string } = { n: Number.MAX_SAFE_INTEGER },
  flag = "--sessions",
): number[] {
  const list = text.split(",").map((s) => Number(s.trim()));
  for (const n of list) {
    if (!Number.isInteger(n) || n < 1 || n > max.n) {
      throw new UsageError(
        `${flag} takes a comma-separated list of 1..${max.n}${
          max.why ? ` (${max.why})` : ""
        }, got "${text}"`,
      );
    }
  }
  return list;
}

/**
 * Parses a number ≥ 0 (`min` 0) or > 0 (`min` "above 0").
 *
 * @throws {UsageError} when `text` is not such a number
 */
export function numberFlag(
  flag: string,
  text: string,
  min: 0 | "above 0" = "above 0",
): number {
  const n = Number(text);
  const ok = text.trim() !== "" && Number.isFinite(n) &&
    (min === 0 ? n >= 0 : n > 0);
  if (!ok) {
    throw new UsageError(
      `${flag} must be a number ${
        min === 0 ? "≥ 0" : "above 0"
      }, got "${text}"`,
    );
  }
  return n;
}

/**
 * Parses a duration (`60s`, `500ms`, a bare number of ms) into milliseconds.
 *
 * @throws {UsageError} when `text` is not a duration, or is 0 with `positive`
 */
export function durationFlag(
  flag: string,
  text: string,
  positive = false,
): number {
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch (err) {
    throw new UsageError(
      `${flag} must be a duration such as 60s or 500ms, got "${text}"`,
      { cause: err },
    );
  }
  if (positive && ms <= 0) {
    throw new UsageError(`${flag} must be above 0, got "${text}"`);
  }
  return ms;
}

/**
 * Splits V8 flags given as one string (`"--a=1 --b"` or `"--a=1,--b"`) into
 * a list, for `--v8-flags=` (which joins them with commas).
 */
export function v8FlagList(text: string): string[] {
  return text.split(/[\s,]+/).filter(Boolean);
}

/** Whether `err` is a mistake in the command line. */
function isUsage(err: unknown): err is Error {
  return err instanceof UsageError ||
    (err instanceof TypeError &&
      ((err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS") ??
        false));
}

/**
 * Runs `parse` (a bench's flag parsing, at the top of a script) and returns
 * what it returns; a mistake in the command line prints `name: message` on
 * stderr and exits 2.
 */
export function parseFlags<T>(name: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (!isUsage(err)) throw err;
    console.error(`${name}: ${err.message}`);
    Deno.exit(2);
  }
}

/**
 * Runs a bench's `main` and exits with its status; a {@link UsageError} (or
 * the `TypeError` that `node:util`'s `parseArgs` throws for an unknown flag)
 * prints `name: message` on stderr and exits 2.
 */
export async function benchMain(
  name: string,
  main: () => Promise<number>,
): Promise<never> {
  let code: number;
  try {
    code = await main();
  } catch (err) {
    if (isUsage(err)) {
      console.error(`${name}: ${err.message}`);
      code = 2;
    } else throw err;
  }
  Deno.exit(code);
}
