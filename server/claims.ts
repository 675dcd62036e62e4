/**
 * How a handshake (an open, a resume) takes a session's record: its one
 * write, the undoing of that write when the store did not answer, the wait
 * for a rival attachment to let go, and which handshakes are in flight.
 *
 * - **The write** ({@link Claims.write}) is the {@link Claim} the lifecycle
 *   rules chose: a create, or a compare-and-set over the epoch read. The
 *   lease is checked again right before it: a handshake that waited (a slow
 *   store, a conflict) may have outlived the lease it started on (simulator
 *   seed 416395431).
 * - **Its undoing.** A store error may hide a write that was applied (a
 *   timeout after the fact): the record would then be attached here with no
 *   connection behind it, and nothing would ever detach, expire or collect
 *   it (this server's lease stays alive). So the detach a dropped
 *   connection would write is kept in the write-back, marked uncertain: its
 *   flush reads the record back and undoes only a write that was applied
 *   (simulator seed 7).
 * - **In flight.** The write-back leaves alone the undoing of a record that
 *   a handshake here may be writing again ({@link Claims.handshaking}).
 * - **A conflict** ({@link Claims.afterConflict}): a resume that lost its
 *   compare-and-set does not fight the winner, but watches the record for a
 *   moment and takes it if it is let go.
 *
 * @example
 * ```ts
 * const claims = new Claims(rules, clock, { op, writeBack, live, storeKind, storeNow, closed });
 * await claims.run(id, async () => {
 *   if (!(await claims.write({ op: "create", rec }))) throw refusalError(...);
 * });
 * ```
 *
 * @module
 */

import type { Clock } from "../common/clock.ts";
import type { SessionRecord, SessionStore } from "../store/types.ts";
import {
  afterConflict,
  type Claim,
  detachRecord,
  type LifecycleRules,
  refusalError,
  refusals,
} from "./lifecycle.ts";
import type { Notice, WriteBack } from "./write_back.ts";

/** How long a resume that lost a race waits for the winner to let go (ms). */
export const CONFLICT_WAIT_MS = 1000;

/** What {@link Claims} needs from the session layer. */
export interface ClaimsHost {
  /** Runs a store operation counted under `name`; rejects (a `ProtocolError`) when the store fails. */
  op<T>(name: string, fn: (store: SessionStore) => Promise<T>): Promise<T>;
  /** Keeps the undoing of an unanswered write. */
  readonly writeBack: Pick<WriteBack, "keep">;
  /** Whether this server's lease runs long enough for an attach to land. */
  live(): boolean;
  /** The store's kind, for the refusal. */
  readonly storeKind: string;
  /** The store's time, as this server sees it. */
  storeNow(): number;
  /** Whether the session layer is closing (a conflict stops waiting). */
  closed(): boolean;
}

/** A handshake's write, its undoing, the wait after a conflict, and the handshakes in flight. */
export class Claims {
  readonly #rules: LifecycleRules;
  readonly #clock: Clock;
  readonly #host: ClaimsHost;
  /** Handshakes in flight here, by session id. */
  readonly #running = new Map<string, number>();

  /**
   * @param rules the lifecycle settings (for the undoing detach)
   * @param clock times the wait after a conflict
   * @param host the session layer's side
   */
  constructor(rules: LifecycleRules, clock: Clock, host: ClaimsHost) {
    this.#rules = rules;
    this.#clock = clock;
    this.#host = host;
  }

  /** Runs a handshake for `id`, counted in {@link handshaking} while it runs. */
  async run<T>(id: string, fn: () => Promise<T>): Promise<T> {
    this.#running.set(id, (this.#running.get(id) ?? 0) + 1);
    try {
      return await fn();
    } finally {
      const n = this.#running.get(id)! - 1;
      if (n === 0) this.#running.delete(id);
      else this.#running.set(id, n);
    }
  }

  /** Whether a handshake for `id` is in flight here. */
  handshaking(id: string): boolean {
    return this.#running.has(id);
  }

  /**
   * Writes `claim`; resolves whether it was applied. On a store error its
   * undoing detach is kept in the write-back before the error is rethrown,
   * with `notice`, the takeover notice the write owes if it was applied
   * (the write-back sends it once it sees the record at its epoch).
   *
   * @throws {ProtocolError} `STORE_UNAVAILABLE`: the lease is not live (no
   * write made), or the store failed
   */
  async write(claim: Claim, notice?: Notice): Promise<boolean> {
    const h = this.#host;
    if (!h.live()) throw refusalError(refusals.noLease(h.storeKind));
    try {
      return await (claim.op === "create"
        ? h.op("create", (s) => s.create(claim.rec))
        : h.op("replace", (s) => s.replace(claim.expected, claim.rec)));
    } catch (err) {
      // Detach it as a dropped connection would, through the write-back,
      // which tells "applied" from "never applied" when it reads it back.
      const rec = claim.rec;
      h.writeBack.keep(
        rec.id,
        rec.epoch,
        detachRecord(this.#rules, rec, h.storeNow()),
        rec,
        notice,
      );
      throw err;
    }
  }

  /**
   * A resume lost its compare-and-set to another attachment. The winner is
   * often the same client's previous attempt, cut off while its server was
   * still working on it: that server detaches the session as soon as it
   * finds the socket gone. So read the record 10, 20, 40… ms apart (about
   * {@link CONFLICT_WAIT_MS} in all) and `attach` it once it is let go
   * ({@link afterConflict}); `attach` resolves `null` when it lost again.
   *
   * @throws {ProtocolError} `SESSION_IN_USE` when it was not let go in
   * time; what `attach` or a store call throws
   */
  async afterConflict<T>(
    id: string,
    attach: (rec: SessionRecord) => Promise<T | null>,
  ): Promise<T> {
    const clock = this.#clock;
    const started = clock.monotonic();
    for (
      let wait = 10;
      !this.#host.closed() &&
      clock.monotonic() + wait - started <= CONFLICT_WAIT_MS;
      wait *= 2
    ) {
      await new Promise((r) => clock.setTimeout(() => r(undefined), wait));
      const rec = await this.#host.op("get", (s) => s.get(id));
      const step = afterConflict(rec);
      if (step.type === "give_up") break;
      if (step.type === "wait") continue; // still held
      const att = await attach(step.rec);
      if (att !== null) return att;
    }
    throw refusalError(refusals.resumedConcurrently(id));
  }
}
