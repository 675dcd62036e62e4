/**
 * The standard `process_*` figures of this process, and the event-loop lag
 * probe. CPU comes from `process.cpuUsage()` and resident memory from
 * `Deno.memoryUsage()` (no permission needed); open and maximum file
 * descriptors from Linux `/proc/self` when it can be read (absent otherwise,
 * e.g. under `deno task demo`, which grants no read permission).
 *
 * @module
 */

import type { Clock, TimerId } from "../common/clock.ts";
import process from "node:process";
import type { ProcessFigures, PromHistogram } from "./metrics.ts";

/** When this process started (s since the epoch). */
const START_S = performance.timeOrigin / 1000;

/**
 * Whether `/proc/self` may be read without asking: an interactive `deno run`
 * would otherwise stop and prompt for the permission on the first scrape.
 */
function mayReadProc(): boolean {
  try {
    return Deno.permissions.querySync({ name: "read", path: "/proc/self" })
      .state === "granted";
  } catch {
    return false;
  }
}

async function countFds(): Promise<number | undefined> {
  if (!mayReadProc()) return undefined;
  try {
    let n = 0;
    for await (const _ of Deno.readDir("/proc/self/fd")) n++;
    return n;
  } catch {
    return undefined;
  }
}

async function maxFds(): Promise<number | undefined> {
  if (!mayReadProc()) return undefined;
  try {
    const limits = await Deno.readTextFile("/proc/self/limits");
    const m = /^Max open files\s+(\d+)/m.exec(limits);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Reads this process's figures now; O(open descriptors) on Linux. */
export async function readProcessFigures(): Promise<ProcessFigures> {
  const cpu = process.cpuUsage();
  const [openFds, max] = await Promise.all([countFds(), maxFds()]);
  return {
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    residentBytes: Deno.memoryUsage().rss,
    startTimeSeconds: START_S,
    openFds,
    maxFds: max,
  };
}

/** How often the lag probe fires (ms). */
export const LOOP_PROBE_MS = 100;

/**
 * Measures event-loop lag: a timer every {@link LOOP_PROBE_MS} records how
 * late it fired (s, on the clock's monotonic time) into `into`. One timer
 * per server, re-armed each time, unref'd so it never keeps a process alive.
 */
export class LoopLagProbe implements Disposable {
  readonly #clock: Clock;
  readonly #into: PromHistogram;
  #timer: TimerId | undefined;

  /**
   * @param into the histogram to record into
   * @param clock whose monotonic time and timer it uses
   */
  constructor(into: PromHistogram, clock: Clock) {
    this.#into = into;
    this.#clock = clock;
    this.#arm();
  }

  #arm(): void {
    const expected = this.#clock.monotonic() + LOOP_PROBE_MS;
    this.#timer = this.#clock.setTimeout(
      () => {
        if (this.#timer === undefined) return; // disposed
        const now = this.#clock.monotonic();
        this.#into.observe(Math.max(0, now - expected) / 1000);
        this.#arm();
      },
      LOOP_PROBE_MS,
      { unref: true },
    );
  }

  /** Stops the probe. */
  [Symbol.dispose](): void {
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
