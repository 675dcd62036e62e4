/**
 * The simulated session store: the real {@link MemoryStore} as the primary,
 * an asynchronous replica of it, and the faults of a networked store between
 * them and the servers: latency, outages, commands that time out before or
 * after they were applied, a failover that loses the replica's lag (a lost
 * tail), a record rolled back to an older version, a record deleted under a
 * live session.
 *
 * Each server sees the store through its own {@link SessionStore} view, whose
 * answers are events of that server's node: a killed server never hears
 * back, but what it sent may still be applied.
 *
 * @module
 */

import { MemoryStore } from "../store/memory.ts";
import {
  type Fence,
  type Lease,
  type LeaseRead,
  type SessionRecord,
  type SessionStore,
  StoreUnavailableError,
} from "../store/types.ts";
import { type Node, SimClock, type World } from "./world.ts";

/** The store's fault rates and shape. */
export interface StoreFaults {
  /** One-way latency range (ms). */
  latencyMs: [number, number];
  /** How long a caller waits before it calls a command timed out (ms). */
  timeoutMs: number;
  /** Chance that a command is lost before it is applied (then times out). */
  pLostBefore: number;
  /** Chance that a command is applied and its answer lost (then times out). */
  pLostAfter: number;
  /** Replication lag of the replica (ms); what a failover loses. */
  replicaLagMs: number;
}

/** What happened to the store, for the checker. */
export interface StoreLog {
  /** Ids whose record a fault destroyed or changed (data loss): refusals are allowed. */
  readonly damaged: Set<string>;
  /**
   * Ids whose takeover notice a fault destroyed: a drain that the store
   * applied (taking the notice) and whose answer was lost, so the old owner
   * never sees it and its connection stops only by itself.
   */
  readonly lostNotices: Set<string>;
  /** Failovers so far. */
  failovers: number;
}

type Op = keyof Pick<
  SessionStore,
  | "get"
  | "create"
  | "replace"
  | "renewLease"
  | "leaseOf"
  | "collect"
  | "fence"
  | "drainFences"
>;

const MUTATING: ReadonlySet<Op> = new Set([
  "create",
  "replace",
  "renewLease",
  "collect",
  "fence",
  "drainFences",
]);

/** Told of every applied write: the record before and after. */
export type WriteTap = (
  before: SessionRecord | null,
  after: SessionRecord | null,
  storeNow: number,
  by: string,
) => void;

/** The store service shared by every server. */
export class SimStore {
  primary: MemoryStore;
  replica: MemoryStore;
  readonly clock: SimClock;
  readonly log: StoreLog = {
    damaged: new Set(),
    lostNotices: new Set(),
    failovers: 0,
  };
  /** Until when (sim ms) every command fails. */
  outageUntil = -1;
  /** Told of record writes applied to the primary. */
  tap: WriteTap | undefined;
  /** Told of the lease the primary holds for a server after a renewal or a failover. */
  onLease:
    | ((owner: string, lease: Lease | null, storeNow: number) => void)
    | undefined;
  /** Every server that renewed a lease. */
  readonly #owners = new Set<string>();
  /** Told of each record a fault damaged. */
  onDamage: ((id: string, what: string) => void) | undefined;
  #generation = 0;
  /** The previous version of each record, for rollbacks. */
  readonly #previous = new Map<string, SessionRecord>();

  /**
   * @param world the time line
   * @param node the store's process
   * @param faults rates and shape
   * @param random the run's random source
   */
  constructor(
    readonly world: World,
    readonly node: Node,
    readonly faults: StoreFaults,
    readonly random: () => number,
  ) {
    this.clock = new SimClock(world, node);
    this.primary = this.#fresh();
    this.replica = this.#fresh();
  }

  #fresh(): MemoryStore {
    return new MemoryStore({ clock: this.clock });
  }

  /** The store as the server on `node` sees it. */
  view(node: Node): SessionStore {
    const call = <T>(op: Op, args: unknown[]): Promise<T> =>
      this.#call<T>(node, op, args);
    return {
      kind: "memory",
      get: (id: string) => call<SessionRecord | null>("get", [id]),
      create: (rec: SessionRecord) => call<boolean>("create", [rec]),
      replace: (e: number, rec: SessionRecord) =>
        call<boolean>("replace", [e, rec]),
      renewLease: (o: string, ms: number, hint: number) =>
        call<Lease>("renewLease", [o, ms, hint]),
      leaseOf: (o: string) => call<LeaseRead>("leaseOf", [o]),
      collect: (g: number, l: number) => call<number>("collect", [g, l]),
      fence: (o: string, f: Fence) => call<void>("fence", [o, f]),
      drainFences: (o: string) => call<Fence[]>("drainFences", [o]),
      close: () => Promise.resolve(),
      [Symbol.asyncDispose]: () => Promise.resolve(),
    };
  }

  #latency(): number {
    // Indexed, not destructured: no array iterator per store command.
    const range = this.faults.latencyMs, lo = range[0];
    return lo + this.random() * (range[1] - lo);
  }

  #call<T>(node: Node, op: Op, args: unknown[]): Promise<T> {
    const world = this.world, f = this.faults;
    const t0 = world.time;
    return new Promise<T>((resolve, reject) => {
      const timeout = () =>
        world.at(t0 + f.timeoutMs, () =>
          reject(
            new StoreUnavailableError(
              `sim store: ${op} timed out after ${f.timeoutMs}ms`,
            ),
          ), node);
      const r = this.random();
      if (world.time < this.outageUntil || r < f.pLostBefore) {
        timeout();
        return;
      }
      const lostAfter = r < f.pLostBefore + f.pLostAfter;
      world.after(this.#latency(), () => {
        if (world.time < this.outageUntil) {
          timeout();
          return;
        }
        void this.#apply(op, args, node.name).then((v) => {
          if (lostAfter) {
            if (op === "drainFences") this.#noticesLost(v as Fence[]);
            timeout();
          } else world.after(this.#latency(), () => resolve(v as T), node);
        });
      }, this.node);
    });
  }

  /** A drain took `fences` and its answer was lost: nobody will see them. */
  #noticesLost(fences: Fence[]): void {
    for (const f of fences) {
      this.log.lostNotices.add(f.id);
      this.onDamage?.(f.id, `drain answer lost, notice @${f.epoch} gone`);
    }
  }

  /** Runs `op` on the primary now, replicates it, and returns its result. */
  #apply(op: Op, args: unknown[], by: string): Promise<unknown> {
    const p = this.primary;
    let before: SessionRecord | null = null;
    const rec = op === "create"
      ? args[0] as SessionRecord
      : op === "replace"
      ? args[1] as SessionRecord
      : undefined;
    if (rec !== undefined) before = this.#peek(rec.id);
    // MemoryStore applies a command before it returns its promise.
    // deno-lint-ignore no-explicit-any
    const result: Promise<unknown> = (p[op] as any).apply(p, args);
    if (rec !== undefined) {
      const after = this.#peek(rec.id);
      if (after !== before) {
        if (before !== null) this.#previous.set(rec.id, before);
        this.tap?.(before, after, this.clock.now(), by);
      }
    }
    if (op === "renewLease") {
      const owner = args[0] as string;
      this.#owners.add(owner);
      this.onLease?.(owner, p.peekLease(owner), this.clock.now());
    }
    if (MUTATING.has(op)) {
      const gen = this.#generation;
      this.world.after(this.faults.replicaLagMs, () => {
        if (gen !== this.#generation) return; // lost in a failover
        // deno-lint-ignore no-explicit-any
        void (this.replica[op] as any).apply(this.replica, args);
      }, this.node);
    }
    return result;
  }

  /** The primary's record for `id`, read synchronously. */
  #peek(id: string): SessionRecord | null {
    return this.primary.peek(id);
  }

  /** Every command fails for `ms` from now. */
  outage(ms: number): void {
    this.outageUntil = Math.max(this.outageUntil, this.world.time + ms);
  }

  /**
   * An asynchronous failover: the replica becomes the primary, and every
   * write it had not received yet is lost. Records those writes touched are
   * marked damaged.
   */
  failover(): void {
    this.#generation++;
    this.log.failovers++;
    const lost = new Set<string>();
    const rep = new Map<string, SessionRecord>();
    for (const r of this.replica.records()) rep.set(r.id, r);
    for (const r of this.primary.records()) {
      if (rep.get(r.id) !== r) lost.add(r.id);
    }
    for (const id of rep.keys()) {
      if (!lost.has(id) && this.#peek(id) === null) lost.add(id);
    }
    for (const id of lost) {
      this.log.damaged.add(id);
      this.onDamage?.(id, "failover lost its last writes");
    }
    void this.primary.close();
    this.primary = this.replica;
    this.replica = this.primary.copyInto(this.#fresh());
    for (const o of this.#owners) {
      this.onLease?.(o, this.primary.peekLease(o), this.clock.now());
    }
  }

  /** Rolls the record of `id` back to its previous version, if any. */
  rollback(id: string): boolean {
    const prev = this.#previous.get(id);
    if (prev === undefined || this.#peek(id) === null) return false;
    this.log.damaged.add(id);
    this.#write(id, prev);
    return true;
  }

  /** Deletes the record of `id` (an operator's `DEL`). */
  remove(id: string): boolean {
    if (this.#peek(id) === null) return false;
    this.log.damaged.add(id);
    this.#write(id, null);
    return true;
  }

  #write(id: string, rec: SessionRecord | null): void {
    const before = this.#peek(id);
    for (const s of [this.primary, this.replica]) {
      s.delete(id);
      if (rec !== null) void s.create(rec);
    }
    this.tap?.(before, rec, this.clock.now(), "fault");
  }

  /** Closes both stores. */
  async close(): Promise<void> {
    await this.primary.close();
    await this.replica.close();
  }
}
