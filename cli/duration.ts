/**
 * Durations as users type them: `1s`, `250ms`, `1.5s`, `2m`, `0`.
 *
 * @module
 */

const UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Parses a duration into milliseconds. A bare number is milliseconds only when
 * it is `0`; anything else needs a unit, so `--interval 1` is not silently 1ms.
 *
 * @throws {TypeError} with a one-line message for anything else
 * @example
 * ```ts
 * parseDuration("250ms"); // 250
 * parseDuration("1.5s"); // 1500
 * ```
 */
export function parseDuration(text: string): number {
  const s = text.trim();
  if (s === "0") return 0;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(s);
  if (!m) {
    throw new TypeError(
      `Invalid duration "${text}": use a number with a unit, like 250ms, 1s or 2m (or 0)`,
    );
  }
  return Math.round(Number(m[1]) * UNITS[m[2]!]!);
}

/** Formats milliseconds the way {@link parseDuration} reads them. */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0";
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
