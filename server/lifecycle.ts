/**
 * The session lifecycle's rules, as pure functions over plain data: who may
 * open or resume a session, what record each step writes, and what a
 * refusal says. Nothing here touches the store, reads a clock or keeps a
 * map; `Judge` (`judge.ts`) gathers what they ask for (the record, what
 * this server knows, another server's lease), and `SessionManager`
 * (`sessions.ts`) carries out their verdicts.
 *
 * Each judgement takes the record as read, what this server knows about it
 * ({@link knownAbout}) and the store's time (`storeNow`), and returns a
 * verdict: a {@link Refusal} (wire code and sentence-case message), the
 * record to write (a {@link Claim}) with its follow-ups, or `need_lease`
 * when the answer depends on another server's lease: the caller reads it,
 * turns it into a deadline with {@link ownerDeadline}, and asks again with
 * `ownerDeadline` set.
 *
 * The rules:
 *
 * - **Races.** Every write is a compare-and-set on the epoch, and every
 *   attach and tombstone takes the next epoch, so of two writers exactly one
 *   wins, and a server that lost a session (fenced) can never write it
 *   again. A resume takes over a session attached elsewhere (a half-open
 *   connection); the previous owner learns it from a fence.
 * - **Time.** Every deadline is written and judged in the store's time,
 *   never this host's own, so servers whose clocks disagree agree on what
 *   has expired. Tombstones are refused by status, not by time.
 * - **Expired means expired.** A session whose TTL has run out is never
 *   resumed. This server judges by what it knows first: a detach or
 *   tombstone it could not write yet, with its real deadline, wins over the
 *   record. A record attached to another server is resumable while that
 *   server's lease runs, and expires TTL after its last renewal once the
 *   lease lapsed (it may have detached the session without being able to
 *   write it); the lease must not outlast the TTL for that to hold.
 * - **Record lifetime.** An attached record has no physical expiry
 *   (`retainUntil = 0`), however long it streams. A detached record is kept
 *   until its deadline plus the tombstone period, a tombstone for the
 *   tombstone period after it ended.
 *
 * @example
 * ```ts
 * const facts = { rec, token, nextOffset, known: knownAbout(rec, pending, detached), storeNow };
 * let v = judgeResume(rules, facts);
 * if (v.type === "need_lease") {
 *   const { lease, now } = await store.leaseOf(v.owner);
 *   v = judgeResume(rules, { ...facts, ownerDeadline: ownerDeadline(rules, lease, now ?? storeNow, false) });
 * }
 * if (v.type === "refuse") throw refusalError(v.refusal);
 * if (await store.replace(v.claim.expected, v.claim.rec)) {
 *   // attached at v.claim.rec.epoch; then fence v.notify?.owner
 * }
 * ```
 *
 * @module
 */

import { ErrorCode, ProtocolError } from "../protocol/errors.ts";
import { MAX_COUNT } from "../protocol/messages.ts";
import { type Seed, seedFromHex, seedToHex } from "../protocol/prng.ts";
import { bytesToHex, hexToBytes } from "../protocol/uuid.ts";
import type { Fence, Lease, SessionRecord } from "../store/types.ts";
import type { Pending } from "./write_back.ts";

/** The settings the rules read. */
export interface LifecycleRules {
  /** This server's id: the owner it writes into the records it attaches. */
  readonly serverId: string;
  /** How long a detached session stays resumable (ms). */
  readonly ttlMs: number;
  /** How long a tombstone (completed/expired) is kept (ms). */
  readonly tombstoneMs: number;
}

/** A refusal: the wire code and a sentence-case message. */
export interface Refusal {
  readonly code: ErrorCode;
  readonly message: string;
  /** What made a record unusable (a malformed record), if anything. */
  readonly cause?: unknown;
}

/** The {@link ProtocolError} a refusal is sent as. */
export function refusalError(r: Refusal): ProtocolError {
  return r.cause === undefined
    ? new ProtocolError(r.code, r.message)
    : new ProtocolError(r.code, r.message, { cause: r.cause });
}

/** How long ago `ms` was, for a message: `350ms`, `31s`. */
export function ago(ms: number): string {
  return ms < 1000
    ? `${Math.max(0, Math.round(ms))}ms`
    : `${Math.round(ms / 1000)}s`;
}

/** The refusals the lifecycle sends, with their messages. */
export const refusals = {
  /** A hello asked for a count outside 1..{@link MAX_COUNT}. */
  invalidCount: (count: number): Refusal => ({
    code: ErrorCode.INVALID_COUNT,
    message: `Count must be between 1 and ${MAX_COUNT}, got ${count}`,
  }),
  /** A hello named an id whose session is still live or resumable. */
  inUse: (id: string): Refusal => ({
    code: ErrorCode.SESSION_IN_USE,
    message:
      `Session "${id}" is still live or resumable; resume it or use another id`,
  }),
  /** A hello lost its create or replace to another connection's. */
  createdConcurrently: (id: string): Refusal => ({
    code: ErrorCode.SESSION_IN_USE,
    message: `Session "${id}" was created concurrently by another connection`,
  }),
  /** A resume lost to another attachment, which did not let go in time. */
  resumedConcurrently: (id: string): Refusal => ({
    code: ErrorCode.SESSION_IN_USE,
    message:
      `Cannot resume session "${id}": another connection resumed it at the same moment`,
  }),
  badToken: (id: string): Refusal => ({
    code: ErrorCode.BAD_TOKEN,
    message: `Cannot resume session "${id}": the resume token does not match`,
  }),
  /** `agoMs`: how long ago it completed (store time). */
  completed: (id: string, agoMs: number): Refusal => ({
    code: ErrorCode.SESSION_COMPLETED,
    message: `Cannot resume session "${id}": it was completed ${
      ago(agoMs)
    } ago`,
  }),
  /** `agoMs`: how long ago it expired (store time). */
  expired: (id: string, agoMs: number): Refusal => ({
    code: ErrorCode.SESSION_EXPIRED,
    message: `Cannot resume session "${id}": it expired ${ago(agoMs)} ago`,
  }),
  invalidOffset: (id: string, offset: number, count: number): Refusal => ({
    code: ErrorCode.INVALID_OFFSET,
    message:
      `Cannot resume session "${id}" at offset ${offset}: it has ${count} numbers`,
  }),
  /** A record no server of ours writes: a retriable store failure. */
  malformed: (id: string, cause: unknown): Refusal => ({
    code: ErrorCode.STORE_UNAVAILABLE,
    message: `Cannot resume session "${id}": its stored record is malformed`,
    cause,
  }),
  unknown: (id: string): Refusal => ({
    code: ErrorCode.UNKNOWN_SESSION,
    message:
      `Cannot resume session "${id}": this server's store has no such session`,
  }),
  /** The store lost the record of a session this server holds. */
  recordLost: (id: string, storeKind: string): Refusal => ({
    code: ErrorCode.STORE_UNAVAILABLE,
    message:
      `Cannot resume session "${id}" yet: the session store (${storeKind}) lost its record ` +
      `and this server is writing it back; retry shortly`,
  }),
  /** The store lost data recently; the servers are writing theirs back. */
  storeLostData: (id: string, storeKind: string): Refusal => ({
    code: ErrorCode.STORE_UNAVAILABLE,
    message:
      `Cannot resume session "${id}" yet: the session store (${storeKind}) lost data ` +
      `and the servers are writing their sessions back; retry shortly`,
  }),
  /** This server's lease is not running in the store: nothing may attach. */
  noLease: (storeKind: string): Refusal => ({
    code: ErrorCode.STORE_UNAVAILABLE,
    message:
      `Session store (${storeKind}) is unavailable: cannot renew this server's lease`,
  }),
  /** A takeover notice for this attachment went by before it registered. */
  takenOverWhileAttaching: (id: string): Refusal => ({
    code: ErrorCode.TAKEN_OVER,
    message:
      `Session "${id}" was resumed by another connection while this one attached`,
  }),
  /** Shutting down; with an id: an attachment made meanwhile, detached again. */
  shuttingDown: (id?: string): Refusal => ({
    code: ErrorCode.SHUTTING_DOWN,
    message: id === undefined
      ? "The server is shutting down"
      : `The server is shutting down; session "${id}" stays resumable`,
  }),
} as const;

/** Whether the stored token (hex) is `token`, in constant time. */
export function sameToken(stored: string, token: Uint8Array): boolean {
  let x: Uint8Array;
  try {
    x = hexToBytes(stored);
  } catch {
    return false;
  }
  if (x.length !== token.length) return false;
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i]! ^ token[i]!;
  return diff === 0;
}

/** A compare-and-set: write `rec` if the stored record's epoch is still `expected`. */
export interface Replace {
  readonly expected: number;
  readonly rec: SessionRecord;
}

/**
 * A handshake's write, which attaches the session here: create the record
 * if absent, or compare-and-set it over the epoch read.
 */
export type Claim =
  | { readonly op: "create"; readonly rec: SessionRecord }
  | ({ readonly op: "replace" } & Replace);

/** What this server knows about a session that the store may not. */
export interface Known {
  readonly status: SessionRecord["status"];
  /** Resume deadline (store time) for a live one; when it ended for a tombstone. */
  readonly deadline: number;
}

/**
 * What this server knows about `rec` beyond the store, at `rec`'s epoch: a
 * write it could not make yet (a tombstone; a detach with its real
 * deadline) first, then the deadline of its own detach. A pending write
 * that attaches says nothing.
 *
 * @param pending the write-back's unconfirmed write for the session
 * @param detached the entry of the session in this server's expiry queue
 */
export function knownAbout(
  rec: SessionRecord,
  pending: Pending | undefined,
  detached: { deadline: number; value: SessionRecord } | undefined,
): Known | undefined {
  if (pending !== undefined && pending.expected === rec.epoch) {
    if (pending.rec.status !== "live") {
      return { status: pending.rec.status, deadline: pending.rec.expiresAt };
    }
    if (pending.rec.owner === "") {
      return { status: "live", deadline: pending.rec.expiresAt };
    }
  }
  if (detached !== undefined && detached.value.epoch === rec.epoch) {
    return { status: "live", deadline: detached.deadline };
  }
  return undefined;
}

/**
 * When a live record stops being resumable (store time), by the record
 * alone: its detach deadline; never for one attached here; `undefined` for
 * one attached elsewhere, whose owner's lease decides ({@link ownerDeadline}).
 */
export function recordDeadline(
  rules: LifecycleRules,
  rec: SessionRecord,
): number | undefined {
  if (rec.owner === "") return rec.expiresAt;
  if (rec.owner === rules.serverId) return Infinity;
  return undefined;
}

/**
 * When a session attached to another server stops being resumable (store
 * time), by that server's lease: never while the lease runs; TTL after its
 * last renewal once it lapsed. An owner with no lease died long ago (its
 * lease was collected): expired now, unless the store lost data recently.
 *
 * @param lease the owner's lease as read, or `null`
 * @param storeNow the store's time at the read
 * @param storeLostData whether the store lost data recently (read only when `lease` is `null`)
 */
export function ownerDeadline(
  rules: LifecycleRules,
  lease: Lease | null,
  storeNow: number,
  storeLostData: boolean,
): number {
  if (lease === null) return storeLostData ? Infinity : storeNow;
  return lease.until > storeNow ? Infinity : lease.renewedAt + rules.ttlMs;
}

/** The deadline of a live record: what this server knows, the record, or the owner's lease. */
function liveDeadline(
  rules: LifecycleRules,
  rec: SessionRecord,
  known: Known | undefined,
  fromOwner: number | undefined,
): number | undefined {
  return known?.deadline ?? recordDeadline(rules, rec) ?? fromOwner;
}

/** Asks the caller for the deadline that `owner`'s lease implies ({@link ownerDeadline}). */
export interface NeedLease {
  readonly type: "need_lease";
  readonly owner: string;
}

/** A refusal verdict. */
export interface Refuse {
  readonly type: "refuse";
  readonly refusal: Refusal;
}

/** The refusal of a count outside 1..{@link MAX_COUNT}, if it is. */
export function checkCount(count: number): Refusal | undefined {
  return Number.isInteger(count) && count >= 1 && count <= MAX_COUNT
    ? undefined
    : refusals.invalidCount(count);
}

/** The record a hello creates: epoch 1, attached here. */
export function freshRecord(
  rules: LifecycleRules,
  s: { id: string; seed: Seed; count: number; token: Uint8Array },
): SessionRecord {
  return {
    id: s.id,
    seed: seedToHex(s.seed),
    count: s.count,
    token: bytesToHex(s.token),
    epoch: 1,
    owner: rules.serverId,
    status: "live",
    expiresAt: 0,
    retainUntil: 0,
  };
}

/** What a hello whose create failed found, for {@link judgeHello}. */
export interface HelloFacts {
  /** The record it tried to create ({@link freshRecord}). */
  readonly fresh: SessionRecord;
  /** The hello's token. */
  readonly token: Uint8Array;
  /** The record read after the create failed, or `null` (gone meanwhile). */
  readonly existing: SessionRecord | null;
  /** {@link knownAbout} `existing`. */
  readonly known: Known | undefined;
  /** The store's time. */
  readonly storeNow: number;
  /** The deadline from the owner's lease, once asked for. */
  readonly ownerDeadline?: number | undefined;
}

/**
 * A hello for an id that is taken: refuse; `reattach` (the same hello
 * again, its welcome lost: resume it at offset 0); or `reuse` the id of a
 * session that is over (a tombstone, or past its deadline) with `claim`.
 */
export type HelloVerdict =
  | Refuse
  | NeedLease
  | { readonly type: "reattach"; readonly rec: SessionRecord }
  | { readonly type: "reuse"; readonly claim: Claim };

/**
 * Judges a hello whose create found the id taken. Given `ownerDeadline`, it
 * never answers `need_lease`.
 */
export function judgeHello(
  rules: LifecycleRules,
  f: HelloFacts & { readonly ownerDeadline: number },
): Exclude<HelloVerdict, NeedLease>;
export function judgeHello(rules: LifecycleRules, f: HelloFacts): HelloVerdict;
export function judgeHello(
  rules: LifecycleRules,
  f: HelloFacts,
): HelloVerdict {
  const { fresh, existing, known } = f;
  if (existing === null) {
    return { type: "refuse", refusal: refusals.createdConcurrently(fresh.id) };
  }
  if (
    existing.status === "live" &&
    (known === undefined || known.status === "live")
  ) {
    const deadline = liveDeadline(rules, existing, known, f.ownerDeadline);
    if (deadline === undefined) {
      return { type: "need_lease", owner: existing.owner };
    }
    if (deadline > f.storeNow) {
      if (
        existing.count === fresh.count && sameToken(existing.token, f.token)
      ) {
        return { type: "reattach", rec: existing };
      }
      return { type: "refuse", refusal: refusals.inUse(fresh.id) };
    }
  }
  return {
    type: "reuse",
    claim: {
      op: "replace",
      expected: existing.epoch,
      rec: { ...fresh, epoch: existing.epoch + 1 },
    },
  };
}

/** What a resume found, for {@link judgeResume}. */
export interface ResumeFacts {
  /** The record as read. */
  readonly rec: SessionRecord;
  /** The resume's token. */
  readonly token: Uint8Array;
  /** The offset the client asks for. */
  readonly nextOffset: number;
  /** {@link knownAbout} `rec`. */
  readonly known: Known | undefined;
  /** The store's time. */
  readonly storeNow: number;
  /** The deadline from the owner's lease, once asked for. */
  readonly ownerDeadline?: number | undefined;
}

/**
 * Attach the session here with `claim`; then, if `notify` is set, tell
 * its previous owner with a fence. `resumedAfterMs`: how long (store time)
 * it had been detached, if it was.
 */
export interface Attach {
  readonly type: "attach";
  readonly claim: Claim & { readonly op: "replace" };
  readonly seed: Seed;
  readonly resumedAfterMs: number | undefined;
  readonly notify:
    | { readonly owner: string; readonly fence: Fence }
    | undefined;
}

/**
 * A refused resume; `tombstone`: a best-effort write that records an expiry
 * nobody wrote yet (the deadline the servers judge by decides anyway).
 */
export interface RefuseResume extends Refuse {
  readonly tombstone?: Replace | undefined;
}

/** What to do about a resume. */
export type ResumeVerdict = RefuseResume | NeedLease | Attach;

/**
 * Judges a resume of `rec`, in this order: the token; a tombstone (by
 * status, whatever any clock says); the deadline (what this server knows,
 * else the record, else the owner's lease); the offset; a malformed record.
 * Given `ownerDeadline`, it never answers `need_lease`.
 */
export function judgeResume(
  rules: LifecycleRules,
  f: ResumeFacts & { readonly ownerDeadline: number },
): Exclude<ResumeVerdict, NeedLease>;
export function judgeResume(
  rules: LifecycleRules,
  f: ResumeFacts,
): ResumeVerdict;
export function judgeResume(
  rules: LifecycleRules,
  f: ResumeFacts,
): ResumeVerdict {
  const { rec, known, storeNow } = f;
  const id = rec.id;
  const refuse = (refusal: Refusal): RefuseResume => ({
    type: "refuse",
    refusal,
  });
  if (!sameToken(rec.token, f.token)) return refuse(refusals.badToken(id));
  const status = rec.status === "live" && known !== undefined
    ? known.status
    : rec.status;
  if (status === "completed") {
    return refuse(
      refusals.completed(id, storeNow - (known?.deadline ?? rec.expiresAt)),
    );
  }
  if (status === "expired") {
    return refuse(
      refusals.expired(id, storeNow - (known?.deadline ?? rec.expiresAt)),
    );
  }
  const deadline = liveDeadline(rules, rec, known, f.ownerDeadline);
  if (deadline === undefined) return { type: "need_lease", owner: rec.owner };
  if (deadline <= storeNow) {
    return {
      type: "refuse",
      refusal: refusals.expired(id, storeNow - deadline),
      tombstone: known === undefined
        ? {
          expected: rec.epoch,
          rec: tombstone(rules, rec, "expired", deadline, storeNow),
        }
        : undefined,
    };
  }
  if (f.nextOffset > rec.count) {
    return refuse(refusals.invalidOffset(id, f.nextOffset, rec.count));
  }
  let seed: Seed;
  try {
    seed = seedFromHex(rec.seed);
    if (
      !Number.isInteger(rec.count) || rec.count < 1 || rec.count > MAX_COUNT
    ) {
      throw new RangeError(`count ${rec.count}`);
    }
  } catch (cause) {
    return refuse(refusals.malformed(id, cause));
  }
  const next: SessionRecord = {
    ...rec,
    epoch: rec.epoch + 1,
    owner: rules.serverId,
    expiresAt: 0,
    retainUntil: 0,
  };
  // Detached (here, by what this server knows, or anywhere, by the record): since when.
  const detachedAt = known?.status === "live"
    ? known.deadline - rules.ttlMs
    : rec.owner === ""
    ? rec.expiresAt - rules.ttlMs
    : undefined;
  return {
    type: "attach",
    claim: { op: "replace", expected: rec.epoch, rec: next },
    seed,
    resumedAfterMs: detachedAt === undefined
      ? undefined
      : storeNow - detachedAt,
    // The record says another server holds it, whatever this one still
    // lists: tell that server, or its connection streams on.
    notify: rec.owner !== "" && rec.owner !== rules.serverId
      ? { owner: rec.owner, fence: { id, epoch: next.epoch } }
      : undefined,
  };
}

/** What a resume of an id the store has no record of found, for {@link judgeMissing}. */
export interface MissingFacts {
  readonly id: string;
  /** The store's kind, for the message. */
  readonly storeKind: string;
  /** Whether this server holds the session (attached, detached or a write pending). */
  readonly heldHere: boolean;
  /** Whether the store lost data recently, once asked for. */
  readonly storeLostData?: boolean | undefined;
}

/**
 * A resume of an id with no record. `dataLost`: this server holds it, so
 * the store lost it, and the caller writes its sessions back.
 * `check_loss`: ask whether the store lost data, and judge again.
 */
export type MissingVerdict =
  | (Refuse & { readonly dataLost: boolean })
  | { readonly type: "check_loss" };

/**
 * Judges a resume of an id the store has no record of. Given
 * `storeLostData`, it never answers `check_loss`.
 */
export function judgeMissing(
  f: MissingFacts & { readonly storeLostData: boolean },
): Exclude<MissingVerdict, { type: "check_loss" }>;
export function judgeMissing(f: MissingFacts): MissingVerdict;
export function judgeMissing(f: MissingFacts): MissingVerdict {
  if (f.heldHere) {
    // A failover that lost a short tail of writes, perhaps on a shard the
    // lease is not on.
    return {
      type: "refuse",
      refusal: refusals.recordLost(f.id, f.storeKind),
      dataLost: true,
    };
  }
  if (f.storeLostData === undefined) return { type: "check_loss" };
  return {
    type: "refuse",
    refusal: f.storeLostData
      ? refusals.storeLostData(f.id, f.storeKind)
      : refusals.unknown(f.id),
    dataLost: false,
  };
}

/**
 * After a resume lost its compare-and-set, what the record read next means:
 * `give_up` (gone), `wait` (still attached somewhere) or `try` to attach it
 * (let go: detached, or a tombstone that {@link judgeResume} refuses).
 */
export function afterConflict(
  rec: SessionRecord | null,
):
  | { readonly type: "give_up" }
  | { readonly type: "wait" }
  | { readonly type: "try"; readonly rec: SessionRecord } {
  if (rec === null) return { type: "give_up" };
  if (rec.status === "live" && rec.owner !== "") return { type: "wait" };
  return { type: "try", rec };
}

/**
 * The record a detach writes over `rec` (attached here): resumable for the
 * TTL from `storeNow`, kept for the tombstone period after that. Its
 * `expiresAt` is the deadline.
 */
export function detachRecord(
  rules: LifecycleRules,
  rec: SessionRecord,
  storeNow: number,
): SessionRecord {
  const deadline = storeNow + rules.ttlMs;
  return {
    ...rec,
    owner: "",
    expiresAt: deadline,
    retainUntil: deadline + rules.tombstoneMs,
  };
}

/**
 * A tombstone for `rec`, ended at `at` (store time). It takes the next
 * epoch, so that whoever still holds `rec.epoch` (a fenced server, a stale
 * detach) can no longer write; it is kept for the tombstone period after
 * `at` or `storeNow`, whichever is later.
 */
export function tombstone(
  rules: LifecycleRules,
  rec: SessionRecord,
  status: "completed" | "expired",
  at: number,
  storeNow: number,
): SessionRecord {
  return {
    id: rec.id,
    seed: "",
    count: rec.count,
    token: rec.token,
    epoch: rec.epoch + 1,
    owner: "",
    status,
    expiresAt: at,
    retainUntil: Math.max(at, storeNow) + rules.tombstoneMs,
  };
}

/**
 * A session detached here reached its deadline: `write` its tombstone;
 * `keep` it pending instead (its detach never reached the store, so the
 * heartbeat writes the tombstone in its place); or do nothing (`none`: a
 * pending write at another epoch, i.e. it moved on).
 *
 * @param entry the expiry queue's entry: the detached record and its deadline
 * @param pending the write-back's unconfirmed write for the session
 */
export function judgeExpiry(
  rules: LifecycleRules,
  entry: { deadline: number; value: SessionRecord },
  pending: Pending | undefined,
  storeNow: number,
): ({ readonly type: "write" | "keep" } & Replace) | {
  readonly type: "none";
} {
  const expected = entry.value.epoch;
  const rec = tombstone(
    rules,
    entry.value,
    "expired",
    entry.deadline,
    storeNow,
  );
  if (pending === undefined) return { type: "write", expected, rec };
  return pending.expected === expected
    ? { type: "keep", expected, rec }
    : { type: "none" };
}

/**
 * The epoch at which a connection here that still held a session is fenced
 * when a handshake here attaches the session anew at `claimed`:
 *
 * - `resume`: taken over from a connection on this very server (or one that
 *   had already lost the session elsewhere, its notice not drained yet): at
 *   the new epoch.
 * - `hello`: the id is used anew while a connection here still held its old
 *   session (expired elsewhere while this server was cut off, or lost by
 *   the store): above whatever that connection holds, or it streams on
 *   (review of issue 17).
 */
export function localFenceEpoch(
  by: "hello" | "resume",
  claimed: number,
  local: number,
): number {
  return by === "hello" ? Math.max(claimed, local + 1) : claimed;
}

/** Whether a takeover notice ends what this server holds at `epoch`. */
export function isFenced(fence: Fence, epoch: number): boolean {
  return epoch < fence.epoch;
}
