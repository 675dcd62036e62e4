/**
 * One timer for every session: a binary min-heap of due times drained by a
 * single timer of the injected {@link Clock}, so 19,000 streams cost one
 * timer, not 19,000.
 *
 * @module
 */

import type { Clock, TimerId } from "../common/clock.ts";

/** Something the scheduler can run. `due` and `slot` belong to the scheduler. */
export interface Task {
  /** When the task is due, in the clock's monotonic milliseconds. */
  due: number;
  /** Position in the heap, or -1 when not scheduled. */
  slot: number;
  /**
   * Runs the task at monotonic time `now`. Returns the next due time, or
   * `null` to stop.
   */
  run(now: number): number | null;
}

/**
 * A min-heap scheduler on a {@link Clock}'s monotonic time. Tasks that are
 * due together run in one batch, so a tick costs one timer callback whatever
 * the number of sessions due.
 *
 * @example
 * ```ts
 * const scheduler = new Scheduler(systemClock);
 * scheduler.schedule(task, systemClock.monotonic() + 100);
 * ```
 */
export class Scheduler {
  readonly #clock: Clock;
  readonly #heap: Task[] = [];
  #timer: TimerId | undefined;
  #armedFor = Infinity;

  /** @param clock whose monotonic reading due times are in, and whose timer it arms */
  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Scheduled tasks. */
  get size(): number {
    return this.#heap.length;
  }

  /** Schedules (or reschedules) `task` at `due`. */
  schedule(task: Task, due: number): void {
    if (task.slot >= 0) this.cancel(task);
    task.due = due;
    task.slot = this.#heap.length;
    this.#heap.push(task);
    this.#up(task.slot);
    this.#arm();
  }

  /** Removes `task` if scheduled. */
  cancel(task: Task): void {
    const i = task.slot;
    if (i < 0) return;
    const last = this.#heap.pop()!;
    task.slot = -1;
    if (i < this.#heap.length) {
      this.#heap[i] = last;
      last.slot = i;
      this.#down(i);
      this.#up(last.slot);
    }
    if (this.#heap.length === 0) this.#disarm();
  }

  /** Cancels every task and the timer. */
  close(): void {
    for (const t of this.#heap) t.slot = -1;
    this.#heap.length = 0;
    this.#disarm();
  }

  #arm(): void {
    const head = this.#heap[0];
    if (!head || head.due >= this.#armedFor) return;
    this.#disarm();
    this.#armedFor = head.due;
    const delay = Math.max(0, head.due - this.#clock.monotonic());
    this.#timer = this.#clock.setTimeout(() => this.#tick(), delay);
  }

  #disarm(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedFor = Infinity;
  }

  #tick(): void {
    this.#timer = undefined;
    this.#armedFor = Infinity;
    const now = this.#clock.monotonic();
    // Timers fire up to ~1ms early or late; run everything due within 1ms,
    // but each task at most about once per tick so short intervals cannot
    // starve the event loop (I/O runs between ticks).
    let budget = this.#heap.length;
    while (
      budget-- > 0 && this.#heap.length > 0 && this.#heap[0]!.due <= now + 1
    ) {
      const task = this.#heap[0]!;
      const next = task.run(now);
      if (task.slot !== 0 || this.#heap[0] !== task) {
        // The task rescheduled or cancelled itself.
        continue;
      }
      if (next === null) this.cancel(task);
      else {
        task.due = next;
        this.#down(0);
      }
    }
    this.#arm();
  }

  #up(i: number): void {
    const h = this.#heap;
    const t = h[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = h[p]!;
      if (parent.due <= t.due) break;
      h[i] = parent;
      parent.slot = i;
      i = p;
    }
    h[i] = t;
    t.slot = i;
  }

  #down(i: number): void {
    const h = this.#heap;
    const n = h.length;
    const t = h[i]!;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && h[c + 1]!.due < h[c]!.due) c++;
      const child = h[c]!;
      if (child.due >= t.due) break;
      h[i] = child;
      child.slot = i;
      i = c;
    }
    h[i] = t;
    t.slot = i;
  }
}
