/**
 * The lifecycle rules as tables: one row per situation, with the verdict
 * it must get. No store, no clock: every row is plain data in store time.
 */

import { ErrorCode, ProtocolError } from "../protocol/errors.ts";
import { MAX_COUNT } from "../protocol/messages.ts";
import type { SessionRecord } from "../store/types.ts";
import { assert_, assertEquals } from "../tests/_assert.ts";
import {
  afterConflict,
  checkCount,
  detachRecord,
  freshRecord,
  isFenced,
  judgeExpiry,
  judgeHello,
  judgeMissing,
  judgeResume,
  type Known,
  knownAbout,
  localFenceEpoch,
  ownerDeadline,
  recordDeadline,
  refusalError,
  tombstone,
} from "./lifecycle.ts";

const rules = { serverId: "A", ttlMs: 30_000, tombstoneMs: 300_000 };
/** The store's time in every row. */
const NOW = 1_700_000_000_000;
const ID = "6f1c2a7e-8d3b-4c5a-9e0f-112233445566";
const TOKEN = new Uint8Array(16).fill(7);
const OTHER_TOKEN = new Uint8Array(16).fill(8);
const SEED = "0123456789abcdef";

/** A live record detached 5 s ago (25 s left), epoch 4, 100 numbers. */
function rec(over: Partial<SessionRecord> = {}): SessionRecord {
  return {
    id: ID,
    seed: SEED,
    count: 100,
    token: "07".repeat(16),
    epoch: 4,
    owner: "",
    status: "live",
    expiresAt: NOW + 25_000,
    retainUntil: NOW + 25_000 + rules.tombstoneMs,
    ...over,
  };
}

/** Attached to server B (another one), or to this one (A). */
const onB = { owner: "B", expiresAt: 0, retainUntil: 0 };
const here = { owner: "A", expiresAt: 0, retainUntil: 0 };
const completed = (at: number) =>
  ({ seed: "", status: "completed", expiresAt: at }) as const;
const expired = (at: number) =>
  ({ seed: "", status: "expired", expiresAt: at }) as const;

/** A verdict as one comparable word: a wire code's name, or the verdict type. */
function outcome(v: { type: string; refusal?: { code: number } }): string {
  if (v.type !== "refuse") return v.type;
  const code = v.refusal!.code;
  return Object.entries(ErrorCode).find(([, c]) => c === code)![0];
}

interface ResumeRow {
  name: string;
  rec: SessionRecord;
  token?: Uint8Array;
  nextOffset?: number;
  known?: Known;
  ownerDeadline?: number;
  want: string;
  message?: string;
  /** Whether the refusal asks for a best-effort expired tombstone. */
  tombstone?: boolean;
}

const resumeRows: ResumeRow[] = [
  // The token, first of all.
  {
    name: "a wrong token",
    rec: rec(),
    token: OTHER_TOKEN,
    want: "BAD_TOKEN",
    message: `Cannot resume session "${ID}": the resume token does not match`,
  },
  {
    name: "a wrong token for a completed session (the token is judged first)",
    rec: rec(completed(NOW - 1000)),
    token: OTHER_TOKEN,
    want: "BAD_TOKEN",
  },
  {
    name: "a token that is a prefix of the stored one",
    rec: rec(),
    token: TOKEN.subarray(0, 8),
    want: "BAD_TOKEN",
  },
  {
    name: "a token that starts with the stored one and goes on",
    rec: rec(),
    token: new Uint8Array(32).fill(7),
    want: "BAD_TOKEN",
  },
  {
    name: "a stored token that is not hex",
    rec: rec({ token: "zz".repeat(16) }),
    want: "BAD_TOKEN",
  },
  // Tombstones, by status whatever any clock says.
  {
    name: "a completed tombstone",
    rec: rec(completed(NOW - 31_000)),
    want: "SESSION_COMPLETED",
    message: `Cannot resume session "${ID}": it was completed 31s ago`,
  },
  {
    name: "a completed tombstone dated in the future (a skewed clock)",
    rec: rec(completed(NOW + 60_000)),
    want: "SESSION_COMPLETED",
  },
  {
    name: "an expired tombstone",
    rec: rec(expired(NOW - 31_000)),
    want: "SESSION_EXPIRED",
    message: `Cannot resume session "${ID}": it expired 31s ago`,
  },
  {
    name: "an expired tombstone dated in the future (a skewed clock)",
    rec: rec(expired(NOW + 60_000)),
    want: "SESSION_EXPIRED",
  },
  {
    name: "an expired tombstone with an offset beyond the count",
    rec: rec(expired(NOW - 1)),
    nextOffset: 1000,
    want: "SESSION_EXPIRED",
  },
  // What this server knows wins over the record.
  {
    name: "a live record whose completion this server could not write yet",
    rec: rec(here),
    known: { status: "completed", deadline: NOW - 350 },
    want: "SESSION_COMPLETED",
    message: `Cannot resume session "${ID}": it was completed 350ms ago`,
  },
  {
    name: "a live record whose expiry this server could not write yet",
    rec: rec(),
    known: { status: "expired", deadline: NOW - 2000 },
    want: "SESSION_EXPIRED",
  },
  {
    name: "a record still attached here, detached here past its deadline",
    rec: rec(here),
    known: { status: "live", deadline: NOW - 1 },
    want: "SESSION_EXPIRED",
    tombstone: false,
  },
  {
    name: "a detached record within its deadline, past the one known here",
    rec: rec({ expiresAt: NOW + 25_000 }),
    known: { status: "live", deadline: NOW - 5 },
    want: "SESSION_EXPIRED",
    tombstone: false,
  },
  {
    name: "a detached record past its deadline, within the one known here",
    rec: rec({ expiresAt: NOW - 5 }),
    known: { status: "live", deadline: NOW + 1000 },
    want: "attach",
  },
  // The deadline: the record's, in store time.
  {
    name: "a detached record past its deadline",
    rec: rec({ expiresAt: NOW - 31_000 }),
    want: "SESSION_EXPIRED",
    message: `Cannot resume session "${ID}": it expired 31s ago`,
    tombstone: true,
  },
  {
    name: "a detached record at exactly its deadline",
    rec: rec({ expiresAt: NOW }),
    want: "SESSION_EXPIRED",
    tombstone: true,
  },
  {
    name: "a detached record 1 ms before its deadline",
    rec: rec({ expiresAt: NOW + 1 }),
    want: "attach",
  },
  {
    name:
      "a detached record past its deadline, with an offset beyond the count",
    rec: rec({ expiresAt: NOW - 1 }),
    nextOffset: 1000,
    want: "SESSION_EXPIRED",
  },
  // The deadline: the owner's lease, for a record attached elsewhere.
  {
    name: "a record attached to another server, its lease not read yet",
    rec: rec(onB),
    want: "need_lease",
  },
  {
    name: "a record attached to another server whose lease runs",
    rec: rec(onB),
    ownerDeadline: Infinity,
    want: "attach",
  },
  {
    name: "a record attached to another server whose lease lapsed a TTL ago",
    rec: rec(onB),
    ownerDeadline: NOW - 1,
    want: "SESSION_EXPIRED",
    tombstone: true,
  },
  {
    name: "a record attached to another server, with a tombstone known here",
    rec: rec(onB),
    known: { status: "expired", deadline: NOW - 1 },
    want: "SESSION_EXPIRED",
  },
  {
    name: "a record attached here, nothing else known (never expires)",
    rec: rec(here),
    want: "attach",
  },
  // The offset.
  {
    name: "an offset beyond the count",
    rec: rec(),
    nextOffset: 101,
    want: "INVALID_OFFSET",
    message: `Cannot resume session "${ID}" at offset 101: it has 100 numbers`,
  },
  {
    name: "an offset at the count (resumed to ack the end again)",
    rec: rec(),
    nextOffset: 100,
    want: "attach",
  },
  // A record no server of ours writes.
  {
    name: "a malformed seed",
    rec: rec({ seed: "not a seed" }),
    want: "STORE_UNAVAILABLE",
    message: `Cannot resume session "${ID}": its stored record is malformed`,
  },
  {
    name: "a count of 0",
    rec: rec({ count: 0 }),
    want: "STORE_UNAVAILABLE",
  },
  {
    name: "a count beyond the maximum",
    rec: rec({ count: MAX_COUNT + 1 }),
    want: "STORE_UNAVAILABLE",
  },
  {
    name: "a fractional count",
    rec: rec({ count: 1.5 }),
    nextOffset: 1,
    want: "STORE_UNAVAILABLE",
  },
  {
    name: "the maximum count",
    rec: rec({ count: MAX_COUNT }),
    want: "attach",
  },
];

for (const row of resumeRows) {
  Deno.test(`judgeResume: ${row.name} → ${row.want}`, () => {
    const v = judgeResume(rules, {
      rec: row.rec,
      token: row.token ?? TOKEN,
      nextOffset: row.nextOffset ?? 0,
      known: row.known,
      storeNow: NOW,
      ownerDeadline: row.ownerDeadline,
    });
    assertEquals(outcome(v), row.want);
    if (row.message !== undefined) {
      assert_(v.type === "refuse");
      assertEquals(v.refusal.message, row.message);
    }
    if (row.tombstone !== undefined) {
      assert_(v.type === "refuse");
      assertEquals(v.tombstone !== undefined, row.tombstone);
    }
  });
}

Deno.test("judgeResume attaches at the next epoch, here, with no expiry", () => {
  const v = judgeResume(rules, {
    rec: rec({ expiresAt: NOW + 20_000 }),
    token: TOKEN,
    nextOffset: 3,
    known: undefined,
    storeNow: NOW,
  });
  assert_(v.type === "attach");
  assertEquals(v.claim, {
    op: "replace",
    expected: 4,
    rec: rec({ epoch: 5, owner: "A", expiresAt: 0, retainUntil: 0 }),
  });
  assertEquals(v.seed, { hi: 0x01234567, lo: 0x89abcdef });
  // Detached at its deadline minus the TTL: 10 s ago.
  assertEquals(v.resumedAfterMs, 10_000);
  assertEquals(v.notify, undefined);
});

Deno.test("judgeResume times a resume from the detach known here, over the record", () => {
  const v = judgeResume(rules, {
    rec: rec(here),
    token: TOKEN,
    nextOffset: 0,
    known: { status: "live", deadline: NOW + 29_000 },
    storeNow: NOW,
  });
  assert_(v.type === "attach");
  assertEquals(v.resumedAfterMs, 1000);
  assertEquals(v.notify, undefined, "attached here: nobody else to tell");
});

Deno.test("judgeResume of a session attached elsewhere fences its owner at the new epoch", () => {
  const facts = {
    rec: rec(onB),
    token: TOKEN,
    nextOffset: 0,
    known: undefined,
    storeNow: NOW,
  };
  assertEquals(judgeResume(rules, facts), { type: "need_lease", owner: "B" });
  const v = judgeResume(rules, { ...facts, ownerDeadline: Infinity });
  assert_(v.type === "attach");
  assertEquals(v.notify, { owner: "B", fence: { id: ID, epoch: 5 } });
  assertEquals(v.resumedAfterMs, undefined, "it was not detached");
});

Deno.test("judgeResume records an expiry nobody wrote as a tombstone at its deadline", () => {
  const v = judgeResume(rules, {
    rec: rec(onB),
    token: TOKEN,
    nextOffset: 0,
    known: undefined,
    storeNow: NOW,
    ownerDeadline: NOW - 4000,
  });
  assert_(v.type === "refuse");
  assertEquals(
    v.refusal.message,
    `Cannot resume session "${ID}": it expired 4s ago`,
  );
  assertEquals(v.tombstone, {
    expected: 4,
    rec: tombstone(rules, rec(onB), "expired", NOW - 4000, NOW),
  });
});

interface HelloRow {
  name: string;
  existing: SessionRecord | null;
  count?: number;
  token?: Uint8Array;
  known?: Known;
  ownerDeadline?: number;
  want: string;
  message?: string;
}

const helloRows: HelloRow[] = [
  {
    name: "an id whose record vanished after the create failed",
    existing: null,
    want: "SESSION_IN_USE",
    message: `Session "${ID}" was created concurrently by another connection`,
  },
  {
    name: "the same hello again for a resumable session (its welcome lost)",
    existing: rec(),
    want: "reattach",
  },
  {
    name: "the same hello again for a session attached here",
    existing: rec(here),
    want: "reattach",
  },
  {
    name: "another token for a resumable session",
    existing: rec(),
    token: OTHER_TOKEN,
    want: "SESSION_IN_USE",
    message:
      `Session "${ID}" is still live or resumable; resume it or use another id`,
  },
  {
    name: "another count for a resumable session",
    existing: rec(),
    count: 99,
    want: "SESSION_IN_USE",
  },
  {
    name: "a session detached past its deadline",
    existing: rec({ expiresAt: NOW - 1 }),
    token: OTHER_TOKEN,
    want: "reuse",
  },
  {
    name: "a session detached at exactly its deadline",
    existing: rec({ expiresAt: NOW }),
    want: "reuse",
  },
  {
    name: "a completed session",
    existing: rec(completed(NOW - 1000)),
    token: OTHER_TOKEN,
    want: "reuse",
  },
  {
    name: "an expired session",
    existing: rec(expired(NOW - 1000)),
    want: "reuse",
  },
  {
    name: "an expired tombstone dated in the future (a skewed clock)",
    existing: rec(expired(NOW + 60_000)),
    want: "reuse",
  },
  {
    name: "a live record whose tombstone this server could not write yet",
    existing: rec(here),
    known: { status: "completed", deadline: NOW - 1 },
    want: "reuse",
  },
  {
    name:
      "a live record whose tombstone known here is dated ahead (a clock that went back)",
    existing: rec(here),
    known: { status: "expired", deadline: NOW + 1000 },
    want: "reuse",
  },
  {
    name: "a live record detached here past its deadline, not written yet",
    existing: rec(here),
    known: { status: "live", deadline: NOW - 1 },
    want: "reuse",
  },
  {
    name: "a detached record past its deadline, within the one known here",
    existing: rec({ expiresAt: NOW - 1 }),
    known: { status: "live", deadline: NOW + 1 },
    token: OTHER_TOKEN,
    want: "SESSION_IN_USE",
  },
  {
    name: "a session attached to another server, its lease not read yet",
    existing: rec(onB),
    want: "need_lease",
  },
  {
    name: "a session attached to another server whose lease runs",
    existing: rec(onB),
    token: OTHER_TOKEN,
    ownerDeadline: Infinity,
    want: "SESSION_IN_USE",
  },
  {
    name: "a session attached to another server whose lease lapsed a TTL ago",
    existing: rec(onB),
    token: OTHER_TOKEN,
    ownerDeadline: NOW - 1,
    want: "reuse",
  },
];

for (const row of helloRows) {
  Deno.test(`judgeHello: ${row.name} → ${row.want}`, () => {
    const fresh = freshRecord(rules, {
      id: ID,
      seed: { hi: 1, lo: 2 },
      count: row.count ?? 100,
      token: row.token ?? TOKEN,
    });
    const v = judgeHello(rules, {
      fresh,
      token: row.token ?? TOKEN,
      existing: row.existing,
      known: row.known,
      storeNow: NOW,
      ownerDeadline: row.ownerDeadline,
    });
    assertEquals(outcome(v), row.want);
    if (row.message !== undefined) {
      assert_(v.type === "refuse");
      assertEquals(v.refusal.message, row.message);
    }
    if (v.type === "reuse") {
      // A new session over the old one's epoch, so whoever held it is fenced out.
      assertEquals(v.claim, {
        op: "replace",
        expected: row.existing!.epoch,
        rec: { ...fresh, epoch: row.existing!.epoch + 1 },
      });
    }
    if (v.type === "reattach") assertEquals(v.rec, row.existing);
  });
}

Deno.test("freshRecord is attached here at epoch 1, with no expiry", () => {
  assertEquals(
    freshRecord(rules, {
      id: ID,
      seed: { hi: 0x01234567, lo: 0x89abcdef },
      count: 5,
      token: TOKEN,
    }),
    rec({
      count: 5,
      epoch: 1,
      owner: "A",
      expiresAt: 0,
      retainUntil: 0,
    }),
  );
});

const countRows: [number, string][] = [
  [0, "INVALID_COUNT"],
  [-1, "INVALID_COUNT"],
  [1, "ok"],
  [MAX_COUNT, "ok"],
  [MAX_COUNT + 1, "INVALID_COUNT"],
  [2.5, "INVALID_COUNT"],
  [NaN, "INVALID_COUNT"],
];

for (const [count, want] of countRows) {
  Deno.test(`checkCount: ${count} → ${want}`, () => {
    const r = checkCount(count);
    assertEquals(
      r === undefined ? "ok" : outcome({ type: "refuse", refusal: r }),
      want,
    );
    if (r !== undefined) {
      assertEquals(
        r.message,
        `Count must be between 1 and ${MAX_COUNT}, got ${count}`,
      );
    }
  });
}

const missingRows: {
  name: string;
  heldHere: boolean;
  storeLostData?: boolean;
  want: string;
  dataLost?: boolean;
}[] = [
  {
    name: "a session this server holds (the store lost its record)",
    heldHere: true,
    want: "STORE_UNAVAILABLE",
    dataLost: true,
  },
  {
    name: "a session held elsewhere or nowhere, loss not checked yet",
    heldHere: false,
    want: "check_loss",
  },
  {
    name: "a session held elsewhere while the store recovers from a loss",
    heldHere: false,
    storeLostData: true,
    want: "STORE_UNAVAILABLE",
    dataLost: false,
  },
  {
    name: "a session nobody has",
    heldHere: false,
    storeLostData: false,
    want: "UNKNOWN_SESSION",
    dataLost: false,
  },
];

for (const row of missingRows) {
  Deno.test(`judgeMissing: ${row.name} → ${row.want}`, () => {
    const v = judgeMissing({
      id: ID,
      storeKind: "redis",
      heldHere: row.heldHere,
      storeLostData: row.storeLostData,
    });
    assertEquals(outcome(v), row.want);
    if (row.dataLost !== undefined) {
      assert_(v.type === "refuse");
      assertEquals(v.dataLost, row.dataLost);
    }
  });
}

Deno.test("judgeMissing's messages name the session and the store", () => {
  const msg = (heldHere: boolean, storeLostData: boolean) => {
    const v = judgeMissing({
      id: ID,
      storeKind: "kv",
      heldHere,
      storeLostData,
    });
    return v.refusal.message;
  };
  assertEquals(
    msg(true, false),
    `Cannot resume session "${ID}" yet: the session store (kv) lost its record and this server is writing it back; retry shortly`,
  );
  assertEquals(
    msg(false, true),
    `Cannot resume session "${ID}" yet: the session store (kv) lost data and the servers are writing their sessions back; retry shortly`,
  );
  assertEquals(
    msg(false, false),
    `Cannot resume session "${ID}": this server's store has no such session`,
  );
});

Deno.test("knownAbout: a write not made yet, then this server's own detach, at the record's epoch only", () => {
  const r = rec(here);
  const detached = { deadline: NOW + 9, value: rec(here) };
  const pending = (over: Partial<SessionRecord>, expected = 4) => ({
    expected,
    rec: rec({ epoch: 5, ...over }),
  });
  const cases: [string, Known | undefined, Known | undefined][] = [
    ["nothing held", knownAbout(r, undefined, undefined), undefined],
    ["the detach queued here", knownAbout(r, undefined, detached), {
      status: "live",
      deadline: NOW + 9,
    }],
    [
      "a detach queued at another epoch",
      knownAbout(r, undefined, { ...detached, value: rec({ epoch: 3 }) }),
      undefined,
    ],
    [
      "a pending tombstone wins over the queued detach",
      knownAbout(r, pending(expired(NOW - 7)), detached),
      { status: "expired", deadline: NOW - 7 },
    ],
    [
      "a pending detach wins over the queued detach",
      knownAbout(r, pending({ expiresAt: NOW + 3 }), detached),
      { status: "live", deadline: NOW + 3 },
    ],
    [
      "a pending write at another epoch says nothing",
      knownAbout(r, pending(completed(NOW), 3), detached),
      { status: "live", deadline: NOW + 9 },
    ],
    [
      "a pending attach says nothing",
      knownAbout(r, pending(onB), undefined),
      undefined,
    ],
  ];
  for (const [what, got, want] of cases) assertEquals(got, want, what);
});

Deno.test("recordDeadline and ownerDeadline: the record, else the owner's lease", () => {
  assertEquals(recordDeadline(rules, rec({ expiresAt: NOW + 5 })), NOW + 5);
  assertEquals(recordDeadline(rules, rec(here)), Infinity);
  assertEquals(recordDeadline(rules, rec(onB)), undefined);
  const lease = (renewedAt: number, until: number) => ({ renewedAt, until });
  assertEquals(
    ownerDeadline(rules, lease(NOW - 100, NOW + 1), NOW, false),
    Infinity,
  );
  assertEquals(
    ownerDeadline(rules, lease(NOW - 100, NOW), NOW, false),
    NOW - 100 + rules.ttlMs,
    "a lease that ends now has lapsed",
  );
  assertEquals(
    ownerDeadline(rules, null, NOW, false),
    NOW,
    "collected: long dead",
  );
  assertEquals(
    ownerDeadline(rules, null, NOW, true),
    Infinity,
    "the store lost it",
  );
});

Deno.test("detachRecord: resumable for the TTL from now, kept a tombstone period after", () => {
  assertEquals(
    detachRecord(rules, rec(here), NOW),
    rec({
      owner: "",
      expiresAt: NOW + rules.ttlMs,
      retainUntil: NOW + rules.ttlMs + rules.tombstoneMs,
    }),
  );
});

Deno.test("tombstone: the next epoch, no seed, kept from the later of its end and now", () => {
  const t = tombstone(rules, rec(here), "completed", NOW, NOW);
  assertEquals(t, {
    ...rec(completed(NOW)),
    epoch: 5,
    retainUntil: NOW + rules.tombstoneMs,
  });
  // An expiry written late is still kept a whole tombstone period from now.
  assertEquals(
    tombstone(rules, rec(), "expired", NOW - 60_000, NOW).retainUntil,
    NOW + rules.tombstoneMs,
  );
  assertEquals(
    tombstone(rules, rec(), "expired", NOW + 10, NOW).retainUntil,
    NOW + 10 + rules.tombstoneMs,
  );
});

Deno.test("judgeExpiry: write the tombstone, or keep it in place of a detach not written, or nothing", () => {
  const entry = { deadline: NOW - 3, value: rec() };
  const tomb = tombstone(rules, rec(), "expired", NOW - 3, NOW);
  assertEquals(judgeExpiry(rules, entry, undefined, NOW), {
    type: "write",
    expected: 4,
    rec: tomb,
  });
  assertEquals(
    judgeExpiry(rules, entry, { expected: 4, rec: rec() }, NOW),
    { type: "keep", expected: 4, rec: tomb },
  );
  assertEquals(
    judgeExpiry(rules, entry, { expected: 5, rec: rec({ epoch: 6 }) }, NOW),
    { type: "none" },
  );
});

Deno.test("afterConflict: give up when gone, wait while attached, try once let go", () => {
  assertEquals(afterConflict(null), { type: "give_up" });
  assertEquals(afterConflict(rec(onB)), { type: "wait" });
  assertEquals(afterConflict(rec(here)), { type: "wait" });
  assertEquals(afterConflict(rec()), { type: "try", rec: rec() });
  const tomb = rec(completed(NOW));
  assertEquals(afterConflict(tomb), { type: "try", rec: tomb });
});

Deno.test("isFenced: a notice ends only what is held below its epoch", () => {
  assertEquals(isFenced({ id: ID, epoch: 5 }, 4), true);
  assertEquals(isFenced({ id: ID, epoch: 5 }, 5), false);
  assertEquals(isFenced({ id: ID, epoch: 5 }, 6), false);
});

// [by, epoch claimed, epoch the local connection holds, fenced at]
const localFenceRows: ["hello" | "resume", number, number, number][] = [
  ["resume", 5, 4, 5], // the usual takeover here: the new epoch
  ["resume", 5, 6, 5], // the new epoch, even below a stale local one
  ["hello", 1, 4, 5], // a fresh record at epoch 1: above the local one
  ["hello", 7, 4, 7], // an id reused over a newer record: the new epoch
];
for (const [by, claimed, local, want] of localFenceRows) {
  Deno.test(`localFenceEpoch: a ${by} claiming epoch ${claimed} fences a local connection at ${local} at ${want}`, () => {
    assertEquals(localFenceEpoch(by, claimed, local), want);
    assert_(isFenced({ id: ID, epoch: want }, local) || by === "resume");
  });
}

Deno.test("refusalError keeps the code, the message and the cause", () => {
  const v = judgeResume(rules, {
    rec: rec({ seed: "x" }),
    token: TOKEN,
    nextOffset: 0,
    known: undefined,
    storeNow: NOW,
  });
  assert_(v.type === "refuse");
  const e = refusalError(v.refusal);
  assert_(e instanceof ProtocolError);
  assertEquals(e.code, ErrorCode.STORE_UNAVAILABLE);
  assertEquals(e.message, v.refusal.message);
  assert_(e.cause instanceof TypeError, String(e.cause));
});
