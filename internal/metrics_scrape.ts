/**
 * Reads a server's Prometheus `/metrics` page into numbers by sample name
 * (labelled samples keep their labels in the name): for tests, the load tool
 * and the benchmarks.
 *
 * @module
 */

/** A TCP destination. */
export interface HostPort {
  hostname: string;
  port: number;
}

const SAMPLE = /^([a-z_]+(?:\{[^}]*\})?) (\d+(?:\.\d+)?(?:e[+-]?\d+)?)$/;

/** The samples of a `/metrics` text by their full name. */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = SAMPLE.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** Scrapes `http://hostname:port/metrics`, or `null` when it cannot be read within `timeoutMs`. */
export async function scrape(
  at: HostPort,
  timeoutMs = 2000,
): Promise<Map<string, number> | null> {
  try {
    const res = await fetch(`http://${at.hostname}:${at.port}/metrics`, {
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!res.ok) {
      await res.body?.cancel();
      return null;
    }
    return parseMetrics(await res.text());
  } catch {
    return null;
  }
}
