/**
 * Asks the lifecycle rules (`lifecycle.ts`) about a handshake with the facts
 * they need, until they give a verdict: what this server knows about the
 * record beyond the store ({@link knownAbout}: a write it still owes, its
 * own detach), the store's time, and, only when a rule asks for it, another
 * server's lease (`need_lease`: one `lease_get`, and a check whether the
 * store lost data when that server has no lease) or whether the store lost
 * data (`check_loss`). The rules stay pure; this is the one place that
 * gathers their inputs, so the session manager only carries out verdicts.
 *
 * @example
 * ```ts
 * const judge = new Judge({ rules, storeKind, writeBack, detached, lease, holdsHere });
 * const v = await judge.resume(rec, token, nextOffset); // never need_lease
 * if (v.type === "refuse") throw refusalError(v.refusal);
 * ```
 *
 * @module
 */

import type { LeaseRead, SessionRecord } from "../store/types.ts";
import {
  type HelloVerdict,
  judgeHello,
  judgeMissing,
  judgeResume,
  type Known,
  knownAbout,
  type LifecycleRules,
  type MissingVerdict,
  type NeedLease,
  ownerDeadline,
  type ResumeVerdict,
} from "./lifecycle.ts";
import type { WriteBack } from "./write_back.ts";

/** What the {@link Judge} reads. */
export interface JudgeHost {
  readonly rules: LifecycleRules;
  /** The store's kind, for refusals. */
  readonly storeKind: string;
  /** The writes this server still owes ({@link WriteBack.owed}). */
  readonly writeBack: Pick<WriteBack, "owed">;
  /** The sessions detached here, by id. */
  readonly detached: {
    get(id: string): { deadline: number; value: SessionRecord } | undefined;
  };
  /** Leases and the store's clock (a `LeaseKeeper`). */
  readonly lease: {
    now(): number;
    leaseOf(owner: string, op: string): Promise<LeaseRead>;
    storeLostData(): Promise<boolean>;
  };
  /** Whether this server holds `id`: attached, detached here, or a write pending. */
  holdsHere(id: string): boolean;
}

/** Judges handshakes by the lifecycle rules, reading what they ask for. */
export class Judge {
  readonly #h: JudgeHost;

  /** @param host where the facts come from */
  constructor(host: JudgeHost) {
    this.#h = host;
  }

  /** What this server knows about `rec` beyond the store ({@link knownAbout}). */
  known(rec: SessionRecord): Known | undefined {
    const h = this.#h;
    return knownAbout(
      rec,
      h.writeBack.owed(rec.id, rec),
      h.detached.get(rec.id),
    );
  }

  /**
   * A hello whose create found the id taken ({@link judgeHello}): `existing`
   * as read after the create failed.
   *
   * @throws {ProtocolError} `STORE_UNAVAILABLE` when a lease read fails
   */
  async hello(
    fresh: SessionRecord,
    token: Uint8Array,
    existing: SessionRecord | null,
  ): Promise<Exclude<HelloVerdict, NeedLease>> {
    const { rules, lease } = this.#h;
    const facts = {
      fresh,
      token,
      existing,
      known: existing === null ? undefined : this.known(existing),
      storeNow: lease.now(),
    };
    const v = judgeHello(rules, facts);
    if (v.type !== "need_lease") return v;
    const deadline = await this.ownerDeadline(v.owner);
    return judgeHello(rules, {
      ...facts,
      ownerDeadline: deadline,
      storeNow: lease.now(),
    });
  }

  /**
   * A resume of `rec` as read ({@link judgeResume}).
   *
   * @throws {ProtocolError} `STORE_UNAVAILABLE` when a lease read fails
   */
  async resume(
    rec: SessionRecord,
    token: Uint8Array,
    nextOffset: number,
  ): Promise<Exclude<ResumeVerdict, NeedLease>> {
    const { rules, lease } = this.#h;
    const facts = {
      rec,
      token,
      nextOffset,
      known: this.known(rec),
      storeNow: lease.now(),
    };
    const v = judgeResume(rules, facts);
    if (v.type !== "need_lease") return v;
    return judgeResume(rules, {
      ...facts,
      ownerDeadline: await this.ownerDeadline(v.owner),
    });
  }

  /**
   * A resume of `id`, which the store has no record of ({@link judgeMissing}).
   *
   * @throws {ProtocolError} `STORE_UNAVAILABLE` when the lease read fails
   */
  async missing(
    id: string,
  ): Promise<Exclude<MissingVerdict, { type: "check_loss" }>> {
    const h = this.#h;
    const facts = { id, storeKind: h.storeKind, heldHere: h.holdsHere(id) };
    const v = judgeMissing(facts);
    if (v.type !== "check_loss") return v;
    return judgeMissing({
      ...facts,
      storeLostData: await h.lease.storeLostData(),
    });
  }

  /**
   * The deadline `owner`'s lease implies for a session attached to it
   * ({@link ownerDeadline}): one `lease_get`, and when it has no lease, a
   * check whether the store lost data.
   *
   * @throws {ProtocolError} `STORE_UNAVAILABLE` when a read fails
   */
  async ownerDeadline(owner: string): Promise<number> {
    const { rules, lease } = this.#h;
    const read = await lease.leaseOf(owner, "lease_get");
    const storeNow = read.now ?? lease.now();
    const lost = read.lease === null && await lease.storeLostData();
    return ownerDeadline(rules, read.lease, storeNow, lost);
  }
}
