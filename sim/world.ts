/**
 * The simulator's one time line: a queue of events on a fake clock, run one
 * instant at a time, with every promise callback the instant set off run
 * before time moves on. Each simulated process (a server, a client, the
 * store) is a {@link Node} with a {@link SimClock} of its own: it reads the
 * shared time through its skew, and its timers die with it.
 *
 * Determinism: nothing here reads real time or real randomness, and the
 * microtask queue runs empty between two instants (a microtask checkpoint,
 * or a macrotask that waits for it), so the same seed runs the same program
 * the same way.
 *
 * An unhandled rejection still ends the process, as Deno checks at the end
 * of each macrotask: with checkpoints a run is one macrotask, so a
 * rejection is judged unhandled at the end of the run, not of the instant.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import type { Clock, TimerId } from "../common/clock.ts";

/** More events than this at one instant is a livelock. */
const MAX_EVENTS_PER_INSTANT = 100_000;

/** Where the simulated wall clocks start (2027-01-15, ms since the epoch). */
export const SIM_EPOCH = 1_800_000_000_000;

interface Ev {
  t: number;
  seq: number;
  fn: () => void;
  node: Node | undefined;
  cancelled: boolean;
  /** A timer's table and id: it leaves the table when it runs. */
  timers?: Map<number, Ev>;
  id?: number;
}

/** A simulated process: alive or dead (killed), running or frozen (SIGSTOP). */
export class Node {
  /** Whether the process exists. A dead node's events are dropped. */
  alive = true;
  /** While frozen, its events wait for {@link World.thaw}. */
  frozen = false;
  /** Wall clock offset from the true time (ms). */
  skew = 0;
  /** Events held while frozen. */
  readonly held: Ev[] = [];
  /** Incarnation: a restarted process is a new node with the same name. */
  constructor(readonly name: string) {}
}

/**
 * The event queue and the simulated time (ms since the start of the run).
 */
export class World {
  #time = 0;
  #seq = 0;
  readonly #heap: Ev[] = [];
  /** Events run so far. */
  events = 0;
  /** A run that needs more events than this is stopped as a runaway. */
  maxEvents = 5_000_000;
  /** Thrown by an event or an unhandled rejection: the run is broken. */
  readonly crashes: string[] = [];
  /**
   * How {@link run} lets the promise callbacks of an instant run before the
   * next: a microtask checkpoint ({@link checkpoint}, the default where Deno
   * has one), or, when undefined, a macrotask per instant.
   */
  microtaskCheckpoint: (() => void) | undefined = checkpoint;

  /** Simulated ms since the start. */
  get time(): number {
    return this.#time;
  }

  /** Runs `fn` at simulated time `t` (not before now), as `node` if given. */
  at(t: number, fn: () => void, node?: Node): Ev {
    const ev: Ev = {
      t: Math.max(t, this.#time),
      seq: this.#seq++,
      fn,
      node,
      cancelled: false,
    };
    this.#push(ev);
    return ev;
  }

  /** Runs `fn` `ms` from now. */
  after(ms: number, fn: () => void, node?: Node): Ev {
    return this.at(this.#time + Math.max(0, ms), fn, node);
  }

  /** Freezes a node: its events wait until {@link thaw}. */
  freeze(node: Node): void {
    node.frozen = true;
  }

  /** Thaws a node: what fell due while frozen runs now, in order. */
  thaw(node: Node): void {
    node.frozen = false;
    for (const ev of node.held.splice(0)) {
      ev.t = this.#time;
      ev.seq = this.#seq++;
      this.#push(ev);
    }
  }

  /** Whether anything is queued. */
  get idle(): boolean {
    return this.#heap.length === 0;
  }

  /**
   * Runs events until simulated time `until`, or `stop()` says so (checked
   * after each instant). Resolves the time reached.
   *
   * Between two instants every promise callback the first set off runs: a
   * V8 microtask checkpoint where Deno offers one ({@link checkpoint}), the
   * whole run then being one macrotask; otherwise one macrotask per instant.
   * Both run the same callbacks in the same order.
   */
  run(until: number, stop?: () => boolean): Promise<number> {
    const run = this.microtaskCheckpoint;
    if (run === undefined) return this.#runDraining(until, stop);
    return new Promise((resolve, reject) =>
      setImmediate(() => {
        if (!checkpointRuns(run)) {
          // Called where a checkpoint is a no-op (inside a microtask).
          this.#runDraining(until, stop).then(resolve, reject);
          return;
        }
        try {
          resolve(this.#runCheckpointing(until, stop, run));
        } catch (err) {
          reject(err);
        }
      })
    );
  }

  #runCheckpointing(
    until: number,
    stop: (() => boolean) | undefined,
    runMicrotasks: () => void,
  ): number {
    while (this.#heap.length > 0) {
      const t = this.#heap[0]!.t;
      if (t > until) break;
      if (!this.#instant(t)) return this.#time;
      runMicrotasks();
      if (this.#runaway(t) || stop?.()) return this.#time;
    }
    return this.#reach(until);
  }

  async #runDraining(
    until: number,
    stop: (() => boolean) | undefined,
  ): Promise<number> {
    while (this.#heap.length > 0) {
      const t = this.#heap[0]!.t;
      if (t > until) break;
      if (!this.#instant(t)) return this.#time;
      await drain();
      if (this.#runaway(t) || stop?.()) return this.#time;
    }
    return this.#reach(until);
  }

  #reach(until: number): number {
    if (until !== Infinity && this.#time < until) this.#time = until;
    return this.#time;
  }

  /** Runs every event of instant `t`; false on a livelock (the run stops). */
  #instant(t: number): boolean {
    this.#time = t;
    let here = 0;
    while (this.#heap.length > 0 && this.#heap[0]!.t === t) {
      if (++here > MAX_EVENTS_PER_INSTANT) {
        // Something re-arms itself without letting time move: a livelock.
        const who = this.#heap[0]!.node?.name ?? "the world";
        this.crashes.push(
          `livelock: more than ${MAX_EVENTS_PER_INSTANT} events at ${t} ms (the next one ${who}'s: ${
            this.#heap[0]!.fn.toString().slice(
              0,
              300,
            )
          })`,
        );
        this.#heap.length = 0;
        return false;
      }
      const ev = this.#pop();
      if (ev.cancelled) continue;
      const node = ev.node;
      if (node !== undefined) {
        if (!node.alive) continue;
        if (node.frozen) {
          node.held.push(ev);
          continue;
        }
      }
      this.events++;
      ev.timers?.delete(ev.id!);
      try {
        ev.fn();
      } catch (err) {
        this.crashes.push(
          `event at ${t} ms threw: ${
            err instanceof Error ? err.stack ?? err.message : String(err)
          }`,
        );
      }
    }
    return true;
  }

  /** Stops a run past {@link maxEvents}. */
  #runaway(t: number): boolean {
    if (this.events <= this.maxEvents) return false;
    this.crashes.push(`runaway: more than ${this.maxEvents} events by ${t} ms`);
    this.#heap.length = 0;
    return true;
  }

  #push(ev: Ev): void {
    const h = this.#heap;
    let i = h.length;
    h.push(ev);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(ev, h[p]!)) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = ev;
  }

  #pop(): Ev {
    const h = this.#heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      let i = 0;
      for (;;) {
        let c = 2 * i + 1;
        if (c >= h.length) break;
        if (c + 1 < h.length && before(h[c + 1]!, h[c]!)) c++;
        if (!before(h[c]!, last)) break;
        h[i] = h[c]!;
        i = c;
      }
      h[i] = last;
    }
    return top;
  }
}

function before(a: Ev, b: Ev): boolean {
  return a.t < b.t || (a.t === b.t && a.seq < b.seq);
}

/**
 * Runs every queued microtask, and those they queue, before it returns (a
 * V8 microtask checkpoint), from Deno's core binding. Not a public API:
 * where it is missing, {@link World.run} drains with a macrotask per
 * instant instead, which costs about 2 µs and an event loop turn each (a
 * run's largest single cost, BENCHMARKS.md "Simulator throughput").
 */
export const checkpoint: (() => void) | undefined = (() => {
  const internal = (Deno as unknown as { internal?: symbol }).internal;
  const core = internal === undefined ? undefined : (Deno as unknown as Record<
    symbol,
    { core?: { runMicrotasks?: unknown } } | undefined
  >)[internal]?.core;
  const run = core?.runMicrotasks;
  return typeof run === "function" ? () => run.call(core) : undefined;
})();

/**
 * Whether `runMicrotasks` runs what is queued, here: inside a microtask a
 * checkpoint does nothing.
 */
export function checkpointRuns(runMicrotasks: () => void): boolean {
  let ran = false;
  queueMicrotask(() => (ran = true));
  runMicrotasks();
  return ran;
}

/** Lets every queued promise callback (and those they queue) run. */
function drain(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

/**
 * A node's view of time: the shared time line read through the node's
 * skew for the wall clock, and unskewed for the monotonic one; its timers
 * are events of the node, so they die with it and wait while it is frozen.
 */
export class SimClock implements Clock {
  readonly #ids = new Map<number, Ev>();
  #next = 1;

  /** @param world the time line; @param node whose clock this is */
  constructor(readonly world: World, readonly node: Node) {}

  /** Wall time: the true time plus this node's skew. */
  now(): number {
    return SIM_EPOCH + this.world.time + this.node.skew;
  }

  /** Monotonic time: the true time, whatever the wall clock does. */
  monotonic(): number {
    return this.world.time;
  }

  setTimeout(fn: () => void, ms: number): TimerId {
    const id = this.#next++;
    const ev = this.world.after(Math.max(0, ms), fn, this.node);
    ev.timers = this.#ids;
    ev.id = id;
    this.#ids.set(id, ev);
    return id;
  }

  clearTimeout(id: TimerId | undefined): void {
    if (typeof id !== "number") return;
    const ev = this.#ids.get(id);
    if (ev === undefined) return;
    ev.cancelled = true;
    this.#ids.delete(id);
  }

  /** Timers armed and not yet fired or cleared. */
  get pending(): number {
    return this.#ids.size;
  }
}
