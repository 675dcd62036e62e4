/**
 * The compiled load driver (`bench/driver/`, Go): finding the Go toolchain,
 * building the driver offline into a folder, running it, and the JSON summary
 * it prints. Shared by `bench/scale.ts` and `tests/driver_test.ts`.
 *
 * ```ts
 * const exe = await buildDriver(await Deno.makeTempDir());
 * const { summary } = await runDriver(exe, ["-addr", "127.0.0.1:9000", "-sessions", "20", "-count", "10", "-steady", "0"]);
 * ```
 *
 * @module
 */

import { ROOT, runToEnd } from "../internal/spawn.ts";

/** The driver's source folder. */
export const DRIVER_SOURCE: URL = new URL("bench/driver/", ROOT);

/** Thrown when the Go toolchain (`go`, Debian package `golang-go`) is not on the PATH. */
export class GoMissingError extends Error {
  /** @param options the spawn error as `cause` */
  constructor(options?: ErrorOptions) {
    super(
      "The Go toolchain is not installed (no `go` on the PATH): the load driver in bench/driver needs it (Debian: apt-get install golang-go)",
      options,
    );
    this.name = "GoMissingError";
  }
}

/** `go version`'s answer, or `undefined` when there is no `go` on the PATH. */
export async function goVersion(): Promise<string | undefined> {
  try {
    const out = await runToEnd("go", ["version"]);
    return out.code === 0 ? out.stdout.trim() : undefined;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/**
 * Builds the driver into `outDir` and returns the executable's path. Offline:
 * the module has no dependencies, and `GOPROXY=off` makes sure none is fetched.
 *
 * @throws {GoMissingError} without a Go toolchain
 * @throws {Error} when the build fails, with the compiler's output
 */
export async function buildDriver(outDir: string): Promise<string> {
  if (await goVersion() === undefined) throw new GoMissingError();
  const exe = `${outDir}/seqstream-driver`;
  const out = await runToEnd("go", ["build", "-o", exe, "."], {
    cwd: DRIVER_SOURCE,
    env: { GOFLAGS: "-mod=mod", GOPROXY: "off", CGO_ENABLED: "0" },
  });
  if (out.code !== 0) {
    throw new Error(
      `go build in bench/driver failed:\n${out.stderr.trim()}`,
    );
  }
  return exe;
}

/** Lateness quantiles (ms) in the driver's summary. */
export interface DriverLateness {
  p50: number;
  p99: number;
  p999: number;
  max: number;
  n: number;
}

/** The server figures of a steady window (`-server-pid`). */
export interface DriverServerFigures {
  cpuS: number;
  cpuPct: number;
  usPerNumber: number;
  rssKiBIdle: number;
  rssKiBSteadyEnd: number;
  hwmKiB: number;
  rssKiBPerSession: number;
}

/** The steady window's figures (`-steady` > 0). */
export interface DriverSteady {
  seconds: number;
  fromUnixMs: number;
  toUnixMs: number;
  numbers: number;
  numbersPerSecond: number;
  acksPerNumber: number;
  keepAlivesPerNumber: number;
  latenessMs: DriverLateness;
  driverCpuS: number;
  driverUsPerNumber: number;
  server?: DriverServerFigures;
}

/** The JSON object the driver prints (bench/driver/README.md). */
export interface DriverSummary {
  ok: boolean;
  protocol: number;
  sessions: number;
  count: number;
  intervalMs: number;
  window: number;
  ackIntervalMs: number;
  welcomeMismatch: boolean;
  rampS: number;
  welcomed: number;
  outcomes: Record<
    | "pass"
    | "badChecksum"
    | "refused"
    | "violation"
    | "connectFailed"
    | "lost"
    | "timedOut",
    number
  >;
  errorCodes: Record<string, number>;
  firstErrors: Record<string, string>;
  checksumsVerified: number;
  numbersExpected: number;
  numbersDelivered: number;
  deliveredPct: number;
  steady?: DriverSteady;
  latenessAllMs: DriverLateness;
  driverCpuS: number;
  driverMaxRssKiB: number;
  gomaxprocs: number;
  pollMs: number;
  kernelStampedReads: number;
  unstampedReads: number;
  elapsedS: number;
}

/** How a driver run ended. */
export interface DriverRun {
  /** 0: every session passed; 1: one did not; 2: bad flags. */
  code: number;
  /** The summary, unless the driver printed none (bad flags). */
  summary: DriverSummary | undefined;
  /** Its progress lines and errors. */
  stderr: string;
}

/** Runs the driver `exe` with `args` to its end. */
export async function runDriver(
  exe: string,
  args: readonly string[],
): Promise<DriverRun> {
  const out = await runToEnd(exe, args);
  const last = out.stdout.trim().split("\n").at(-1) ?? "";
  let summary: DriverSummary | undefined;
  try {
    summary = last.startsWith("{") ? JSON.parse(last) : undefined;
  } catch {
    summary = undefined;
  }
  return { code: out.code, summary, stderr: out.stderr };
}
