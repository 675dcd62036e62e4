/**
 * The client's progress report on stderr: a one-line bar redrawn at most ten
 * times a second when stderr is a terminal, otherwise one log line at most
 * every ten seconds.
 *
 * Why not an npm progress-bar package (cli-progress, progress): they draw
 * through Node's `process.stderr` stream and own their redraw timer, while
 * here the line must share stderr with our {@link Logger} (a log line has to
 * clear the bar and redraw it), show our own fields (reconnects, state), and
 * the non-terminal mode is a log line, not a bar. What remains is one pure
 * formatting function (tested on its own) and one timer: less code than the
 * glue, and no dependency in the compiled client.
 *
 * Cost per number: one integer store ({@link ProgressReporter.onNumber}); all
 * formatting happens on the timer tick.
 *
 * @module
 */

import { type Clock, systemClock, type TimerId } from "../common/clock.ts";
import type { Logger } from "../common/logger.ts";
import type { ClientEvent } from "./types.ts";

/** What the client is doing, as the progress line names it. */
export type ProgressState = "connecting" | "streaming" | "resuming" | "done";

/** Everything one progress line shows. */
export interface ProgressView {
  /** Numbers the session has received so far (including before a resume). */
  received: number;
  /** Numbers in the session. */
  total: number;
  /** Recent numbers per second, or null before it can be measured. */
  ratePerSec: number | null;
  /** Reconnections so far. */
  reconnects: number;
  state: ProgressState;
}

/** Percent done with one decimal, rounded down so 100.0 means done: `"42.1"`. */
export function formatPercent(received: number, total: number): string {
  if (total <= 0) return "0.0";
  return (Math.floor((received * 1000) / total) / 10).toFixed(1);
}

/** A rate for humans: `"-"`, `"4.2"`, `"950"`, `"12.3k"`. */
export function formatRate(perSec: number | null): string {
  if (perSec === null || !Number.isFinite(perSec)) return "-";
  if (perSec < 10) return perSec.toFixed(1);
  if (perSec < 10_000) return String(Math.round(perSec));
  return `${(perSec / 1000).toFixed(1)}k`;
}

/** Time left for humans: `"--"` when unknown, `"45s"`, `"3m05s"`, `"1h07m"`. */
export function formatEta(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms) || ms < 0) return "--";
  const s = Math.ceil(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) {
    return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  }
  const m = Math.ceil(s / 60);
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

/** Milliseconds left at the current rate, or null when there is no rate. */
export function etaMs(v: ProgressView): number | null {
  const left = v.total - v.received;
  if (left <= 0) return 0;
  if (v.ratePerSec === null || v.ratePerSec <= 0) return null;
  return (left / v.ratePerSec) * 1000;
}

const BAR_MAX = 30;
const BAR_MIN = 5;

/**
 * Formats the one-line bar for a terminal `columns` wide (the line is kept
 * shorter than that so the cursor never wraps). Pure.
 *
 * @example
 * ```ts
 * formatProgressLine({ received: 50, total: 200, ratePerSec: 10, reconnects: 1, state: "streaming" }, 100);
 * // "[███████░░░░░░░░░░░░░░░░░░░░░░░] 50/200  25.0%  10/s  ETA 15s  1 reconnect  streaming"
 * ```
 */
export function formatProgressLine(v: ProgressView, columns: number): string {
  const text =
    `${v.received}/${v.total}  ${formatPercent(v.received, v.total)}%  ` +
    `${formatRate(v.ratePerSec)}/s  ETA ${formatEta(etaMs(v))}  ` +
    `${v.reconnects} reconnect${v.reconnects === 1 ? "" : "s"}  ${v.state}`;
  const room = columns - 1 - text.length - 3;
  if (room < BAR_MIN) return text.slice(0, Math.max(0, columns - 1));
  const width = Math.min(BAR_MAX, room);
  const filled = v.total > 0
    ? Math.min(width, Math.floor((v.received * width) / v.total))
    : 0;
  return `[${"█".repeat(filled)}${"░".repeat(width - filled)}] ${text}`;
}

/** Options for {@link ProgressReporter}. */
export interface ProgressOptions {
  /** Numbers in the session. */
  total: number;
  /** Numbers already received before this run (resuming from a state file). Default 0. */
  received?: number;
  /** `bar` on a terminal, `log` lines otherwise, `off` for `--quiet`. */
  mode: "bar" | "log" | "off";
  /** Where `log` mode writes (at info level). */
  log: Logger;
  /** Raw stderr writes for `bar` mode. Default: synchronous writes to stderr. */
  write?: (text: string) => void;
  /** Terminal width. Default `Deno.consoleSize().columns`, or 80. */
  columns?: () => number;
  /**
   * Clock: the rate is measured on its monotonic reading, and its timer
   * redraws. Default {@link systemClock}.
   */
  clock?: Clock;
  /** Bar redraw period (ms). Default 100 (10 per second). */
  redrawMs?: number;
  /** Log line period (ms). Default 10000. */
  logEveryMs?: number;
  /** Window the bar's rate is measured over (ms). Default 5000. */
  rateWindowMs?: number;
}

const enc = new TextEncoder();
const CLEAR = "\r\x1b[K";

function stderrWrite(text: string): void {
  try {
    const b = enc.encode(text);
    for (let i = 0; i < b.length;) i += Deno.stderr.writeSync(b.subarray(i));
  } catch {
    // stderr closed: nowhere to draw.
  }
}

function terminalColumns(): number {
  try {
    return Deno.consoleSize().columns || 80;
  } catch {
    return 80;
  }
}

/**
 * Tracks a client run and reports it. Feed it with {@link onEvent} and
 * {@link onNumber} (from `connect()`'s callbacks), and {@link stop} it at the end.
 *
 * @example
 * ```ts
 * const progress = new ProgressReporter({ total: 1000, mode: "bar", log });
 * const r = await runClient({ port, count: 1000, onEvent: (e) => progress.onEvent(e), onNumber: (o) => progress.onNumber(o) });
 * progress.stop();
 * ```
 */
export class ProgressReporter {
  readonly #o: ProgressOptions;
  readonly #clock: Clock;
  readonly #write: (text: string) => void;
  readonly #times: Float64Array;
  readonly #counts: Float64Array;
  #samples = 0;
  #received: number;
  #reconnects = 0;
  #state: ProgressState = "connecting";
  #streamedOnce = false;
  #drawn = "";
  #timer: TimerId | undefined;
  #tickEvery = 0;

  /** @param opts total, mode, sinks and timings */
  constructor(opts: ProgressOptions) {
    this.#o = opts;
    this.#clock = opts.clock ?? systemClock;
    this.#write = opts.write ?? stderrWrite;
    this.#received = opts.received ?? 0;
    const tick = this.#tickMs();
    // Samples for the rate: one per tick over the window (bar), or the last two ticks (log).
    const slots = opts.mode === "bar"
      ? Math.ceil((opts.rateWindowMs ?? 5000) / tick) + 1
      : 2;
    this.#times = new Float64Array(slots);
    this.#counts = new Float64Array(slots);
    this.#sample();
    if (opts.mode !== "off") {
      this.#tickEvery = tick;
      this.#arm();
    }
  }

  /** Arms the next tick: one unref'd timer, re-armed after each tick. */
  #arm(): void {
    this.#timer = this.#clock.setTimeout(
      () => {
        if (this.#timer === undefined) return; // stopped
        this.#tick();
        if (this.#timer !== undefined) this.#arm();
      },
      this.#tickEvery,
      { unref: true },
    );
  }

  #tickMs(): number {
    return this.#o.mode === "bar"
      ? this.#o.redrawMs ?? 100
      : this.#o.logEveryMs ?? 10_000;
  }

  /** A status change from the client. */
  onEvent(e: ClientEvent): void {
    switch (e.type) {
      case "connecting":
        this.#state = this.#streamedOnce ? "resuming" : "connecting";
        break;
      case "streaming":
        if (e.resumed) this.#reconnects++;
        this.#streamedOnce = true;
        this.#received = e.nextOffset;
        this.#state = "streaming";
        break;
      case "disconnected":
        // A run that never got a welcome is still connecting: there is
        // nothing to resume yet (the README promises `connecting`).
        this.#state = this.#streamedOnce ? "resuming" : "connecting";
        break;
      case "done":
        this.#state = "done";
        break;
    }
  }

  /**
   * Sets the whole view at once, for a caller that sums several sessions
   * itself (the demo) instead of feeding one session's events.
   */
  show(
    v: { received: number; reconnects: number; state: ProgressState },
  ): void {
    this.#received = v.received;
    this.#reconnects = v.reconnects;
    this.#state = v.state;
  }

  /**
   * Runs `print` (which writes whole lines elsewhere, e.g. a result on
   * stdout, which shares the terminal) with the bar cleared, then draws the
   * bar again below what it printed.
   */
  above(print: () => void): void {
    if (this.#o.mode !== "bar" || this.#drawn === "") return print();
    this.#write(CLEAR);
    print();
    this.#write(this.#drawn);
  }

  /** A number arrived at `offset`. No allocation, no output. */
  onNumber(offset: number): void {
    this.#received = offset + 1;
  }

  /** The current view (what the next line will show). */
  view(): ProgressView {
    return {
      received: this.#received,
      total: this.#o.total,
      ratePerSec: this.#rate(),
      reconnects: this.#reconnects,
      state: this.#state,
    };
  }

  /**
   * Writes a whole line (a log line) to stderr without tearing the bar: the
   * bar is cleared, the line written, and the bar drawn again. Use it as the
   * client Logger's `write`.
   */
  writeLine(line: string): void {
    if (this.#o.mode === "bar" && this.#drawn !== "") {
      this.#write(`${CLEAR}${line}\n${this.#drawn}`);
    } else {
      this.#write(`${line}\n`);
    }
  }

  /** Stops the timer; in `bar` mode draws the last state and ends the line. Idempotent. */
  stop(): void {
    if (this.#timer === undefined) return;
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#o.mode === "bar") {
      this.#sample();
      this.#draw();
      this.#write("\n");
      this.#drawn = "";
    }
  }

  #sample(): void {
    const i = this.#samples % this.#times.length;
    this.#times[i] = this.#clock.monotonic();
    this.#counts[i] = this.#received;
    this.#samples++;
  }

  /** Numbers per second between the oldest and newest samples in the ring. */
  #rate(): number | null {
    if (this.#samples < 2) return null;
    const n = this.#times.length;
    const newest = (this.#samples - 1) % n;
    const oldest = this.#samples >= n ? this.#samples % n : 0;
    const dt = this.#times[newest]! - this.#times[oldest]!;
    if (dt <= 0) return null;
    return Math.max(
      0,
      ((this.#counts[newest]! - this.#counts[oldest]!) * 1000) / dt,
    );
  }

  #tick(): void {
    this.#sample();
    if (this.#o.mode === "bar") {
      this.#draw();
      return;
    }
    const v = this.view();
    this.#o.log.info("progress", {
      received: v.received,
      count: v.total,
      percent: Number(formatPercent(v.received, v.total)),
      rate: v.ratePerSec === null
        ? undefined
        : Math.round(v.ratePerSec * 10) / 10,
      eta: formatEta(etaMs(v)),
      reconnects: v.reconnects,
      state: v.state,
    });
  }

  #draw(): void {
    const line = formatProgressLine(
      this.view(),
      (this.#o.columns ?? terminalColumns)(),
    );
    if (line === this.#drawn) return;
    this.#drawn = line;
    this.#write(CLEAR + line);
  }
}
