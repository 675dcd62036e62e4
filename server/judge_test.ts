import { ErrorCode, errorName } from "../protocol/errors.ts";
import type { Lease, SessionRecord } from "../store/types.ts";
import { assertEquals } from "../tests/_assert.ts";
import { Judge } from "./judge.ts";
import type { Pending } from "./write_back.ts";
import { NOW, RULES, sessionRecord } from "./_test_fixtures.ts";

const TOKEN = new Uint8Array(16);

/** Session "s" at epoch 2, attached to another server, "b". */
const rec = (over: Partial<SessionRecord> = {}) =>
  sessionRecord({ owner: "b", ...over });

interface World {
  /** The owner's lease as the store has it (`undefined`: no owner read expected). */
  lease?: Lease | null;
  /** Whether the store lost data recently. */
  lost?: boolean;
  /** A write this server still owes for the session. */
  owed?: Pending;
  /** This server's own detach of the session. */
  detached?: { deadline: number; value: SessionRecord };
  /** This server holds the session. */
  held?: boolean;
}

function judge(w: World) {
  const reads: string[] = [];
  const j = new Judge({
    rules: RULES,
    storeKind: "memory",
    writeBack: { owed: () => w.owed },
    detached: { get: () => w.detached },
    lease: {
      now: () => NOW,
      leaseOf: (owner, op) => {
        reads.push(`${op} ${owner}`);
        return Promise.resolve({ lease: w.lease ?? null, now: NOW });
      },
      storeLostData: () => {
        reads.push("lost?");
        return Promise.resolve(w.lost ?? false);
      },
    },
    holdsHere: () => w.held ?? false,
  });
  return { j, reads };
}

/** A verdict's name: its type, or the refusal's wire name. */
const said = (v: string | number) => typeof v === "number" ? errorName(v) : v;

const running: Lease = { renewedAt: NOW - 100, until: NOW + 900 };
const lapsed = (renewedAgo: number): Lease => ({
  renewedAt: NOW - renewedAgo,
  until: NOW - renewedAgo + 300,
});

// [case, record read, world, verdict (refusal code or type), store reads]
const resumes: [string, SessionRecord, World, string | number, string[]][] = [
  [
    "attached to a server whose lease runs",
    rec(),
    { lease: running },
    "attach",
    ["lease_get b"],
  ],
  [
    "attached to a server whose lease lapsed within the TTL",
    rec(),
    { lease: lapsed(900) },
    "attach",
    ["lease_get b"],
  ],
  [
    "attached to a server whose lease lapsed past the TTL",
    rec(),
    { lease: lapsed(1000) },
    ErrorCode.SESSION_EXPIRED,
    ["lease_get b"],
  ],
  [
    "attached to a server with no lease",
    rec(),
    { lease: null },
    ErrorCode.SESSION_EXPIRED,
    ["lease_get b", "lost?"],
  ],
  [
    "attached to a server with no lease, the store having lost data",
    rec(),
    { lease: null, lost: true },
    "attach",
    ["lease_get b", "lost?"],
  ],
  [
    "detached, before its deadline",
    rec({ owner: "", expiresAt: NOW + 1 }),
    {},
    "attach",
    [],
  ],
  ["attached here", rec({ owner: "a" }), {}, "attach", []],
  [
    "attached elsewhere, but detached here past its deadline (known)",
    rec(),
    { detached: { deadline: NOW, value: rec() } },
    ErrorCode.SESSION_EXPIRED,
    [],
  ],
  [
    "attached elsewhere, a tombstone owed here",
    rec(),
    {
      owed: {
        expected: 2,
        rec: rec({
          epoch: 3,
          owner: "",
          status: "completed",
          expiresAt: NOW - 5,
        }),
      },
    },
    ErrorCode.SESSION_COMPLETED,
    [],
  ],
  [
    "with another token",
    rec({ token: "01".repeat(16) }),
    {},
    ErrorCode.BAD_TOKEN,
    [],
  ],
];
for (const [what, stored, world, want, wantReads] of resumes) {
  Deno.test(`Judge.resume of a session ${what} → ${said(want)}`, async () => {
    const { j, reads } = judge(world);
    const v = await j.resume(stored, TOKEN, 0);
    assertEquals(v.type === "refuse" ? v.refusal.code : v.type, want);
    assertEquals(reads, wantReads);
  });
}

const fresh = rec({ epoch: 1, owner: "a" });
// [case, record read after the create failed, world, verdict, store reads]
const hellos: [
  string,
  SessionRecord | null,
  World,
  string | number,
  string[],
][] = [
  ["gone meanwhile", null, {}, ErrorCode.SESSION_IN_USE, []],
  [
    "live on a server whose lease runs, same hello",
    rec(),
    { lease: running },
    "reattach",
    ["lease_get b"],
  ],
  [
    "live on a server whose lease runs, another count",
    rec({ count: 11 }),
    { lease: running },
    ErrorCode.SESSION_IN_USE,
    ["lease_get b"],
  ],
  ["attached to a dead server", rec(), { lease: null }, "reuse", [
    "lease_get b",
    "lost?",
  ]],
  ["a tombstone", rec({ owner: "", status: "completed" }), {}, "reuse", []],
];
for (const [what, existing, world, want, wantReads] of hellos) {
  Deno.test(`Judge.hello for an id whose record is ${what} → ${said(want)}`, async () => {
    const { j, reads } = judge(world);
    const v = await j.hello(fresh, TOKEN, existing);
    assertEquals(v.type === "refuse" ? v.refusal.code : v.type, want);
    assertEquals(reads, wantReads);
  });
}

// [case, world, refusal, data lost, store reads]
const missing: [string, World, number, boolean, string[]][] = [
  ["held here", { held: true }, ErrorCode.STORE_UNAVAILABLE, true, []],
  [
    "not held, the store lost data",
    { lost: true },
    ErrorCode.STORE_UNAVAILABLE,
    false,
    ["lost?"],
  ],
  ["not held, nothing lost", {}, ErrorCode.UNKNOWN_SESSION, false, ["lost?"]],
];
for (const [what, world, want, dataLost, wantReads] of missing) {
  Deno.test(`Judge.missing of a session ${what} → ${said(want)}${dataLost ? ", data lost" : ""}`, async () => {
    const { j, reads } = judge(world);
    const v = await j.missing("s");
    assertEquals([v.refusal.code, v.dataLost], [want, dataLost]);
    assertEquals(reads, wantReads);
  });
}
