/**
 * The header of a load report: when the run was, what ran it (seqstream,
 * Deno, V8 and TypeScript versions), on what host (cores, memory, OS), and
 * the full command line.
 *
 * @module
 */

import denoJson from "../deno.json" with { type: "json" };

/** Who, what and where of a run. */
export interface RunMeta {
  /** ISO 8601, UTC. */
  startedAt: string;
  endedAt: string;
  durationS: number;
  seqstream: string;
  deno: string;
  v8: string;
  typescript: string;
  host: {
    hostname: string | null;
    os: string;
    cores: number;
    /** Total memory (GiB, one decimal), null when the runtime may not read it. */
    memoryGiB: number | null;
    /** 1, 5 and 15 min load averages at the end, null when unknown. */
    loadavg: number[] | null;
  };
  /** The command as typed (shell-quoted). */
  command: string;
}

/** `deno task load …` with each argument quoted for a POSIX shell where needed. */
export function commandLine(args: readonly string[]): string {
  return ["deno", "task", "load", ...args].map((a) =>
    /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`
  ).join(" ");
}

function tryOr<T>(f: () => T, fallback: T): T {
  try {
    return f();
  } catch {
    return fallback;
  }
}

/** Reads the runtime and the host now; `startedAt` and `endedAt` are epoch ms. */
export function runMeta(
  startedAt: number,
  endedAt: number,
  command: string,
): RunMeta {
  const mem = tryOr(() => Deno.systemMemoryInfo().total, null);
  return {
    startedAt: new Date(startedAt).toISOString(),
    endedAt: new Date(endedAt).toISOString(),
    durationS: Math.round((endedAt - startedAt) / 100) / 10,
    seqstream: denoJson.version,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
    host: {
      hostname: tryOr(() => Deno.hostname(), null),
      os: `${Deno.build.os} ${
        tryOr(() => Deno.osRelease(), "")
      } ${Deno.build.arch}`
        .replace(/\s+/g, " "),
      cores: navigator.hardwareConcurrency,
      memoryGiB: mem === null ? null : Math.round((mem / 2 ** 30) * 10) / 10,
      loadavg: tryOr(
        () => Deno.loadavg().map((x) => Math.round(x * 100) / 100),
        null,
      ),
    },
    command,
  };
}
