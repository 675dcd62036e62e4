import { FakeClock } from "../common/fake_clock.ts";
import { ErrorCode, ProtocolError } from "../protocol/errors.ts";
import { FlakyStore } from "../store/_flaky.ts";
import type { SessionRecord, SessionStore } from "../store/types.ts";
import { assert_, assertEquals } from "../tests/_assert.ts";
import { Claims, CONFLICT_WAIT_MS } from "./claims.ts";
import { WriteBack } from "./write_back.ts";

const RULES = { serverId: "a", ttlMs: 1000, tombstoneMs: 5000 };

function rec(over: Partial<SessionRecord> = {}): SessionRecord {
  return {
    id: "s",
    seed: "0123456789abcdef",
    count: 10,
    token: "00".repeat(16),
    epoch: 1,
    owner: "a",
    status: "live",
    expiresAt: 0,
    retainUntil: 0,
    ...over,
  };
}

function setup() {
  const clock = new FakeClock(1_000_000, 0);
  const store = new FlakyStore({ clock });
  const ops: string[] = [];
  const op = <T>(name: string, fn: (s: SessionStore) => Promise<T>) => {
    ops.push(name);
    return fn(store);
  };
  const wb = new WriteBack({
    op,
    written: () => {},
    lost: () => {},
    notify: () => {},
    missing: () => {},
    held: () => undefined,
    heldIds: () => [],
    handshaking: () => false,
    closed: () => false,
  });
  const state = { live: true, closed: false };
  const claims = new Claims(RULES, clock, {
    op,
    writeBack: wb,
    live: () => state.live,
    storeKind: "flaky",
    storeNow: () => clock.now(),
    closed: () => state.closed,
  });
  return { clock, store, ops, wb, state, claims };
}

/** The wire code of the refusal, or the value. */
async function outcome<T>(p: Promise<T>): Promise<T | number> {
  try {
    return await p;
  } catch (e) {
    assert_(e instanceof ProtocolError, `not a ProtocolError: ${e}`);
    return e.code;
  }
}

Deno.test("Claims.write creates, or compare-and-sets over the epoch read, and says whether it was applied", async () => {
  const { store, claims, wb } = setup();
  await using _ = store;
  assertEquals(await claims.write({ op: "create", rec: rec() }), true);
  assertEquals(await claims.write({ op: "create", rec: rec() }), false);
  const next = rec({ epoch: 2 });
  assertEquals(
    await claims.write({ op: "replace", expected: 1, rec: next }),
    true,
  );
  assertEquals(
    await claims.write({ op: "replace", expected: 1, rec: next }),
    false,
  );
  assertEquals((await store.get("s"))?.epoch, 2);
  assertEquals(wb.size, 0);
});

Deno.test("Claims.write makes no write once the lease is not live", async () => {
  const { store, claims, ops, state } = setup();
  await using _ = store;
  state.live = false;
  assertEquals(
    await outcome(claims.write({ op: "create", rec: rec() })),
    ErrorCode.STORE_UNAVAILABLE,
  );
  assertEquals(ops, []);
});

// [the store's failure, whether the write was applied]
const unanswered: [string, boolean][] = [
  ["a timeout after the write was applied", true],
  ["an outage (never applied)", false],
];
for (const [how, applied] of unanswered) {
  Deno.test(`Claims.write that fails with ${how} keeps the undoing detach in the write-back, uncertain`, async () => {
    const { clock, store, claims, wb } = setup();
    await using _ = store;
    if (applied) store.applyThenFail = true;
    else store.down = true;
    const claim = { op: "create" as const, rec: rec() };
    const failed = await claims.write(claim).then(() => "", (e) => e.name);
    assertEquals(failed, "StoreUnavailableError"); // rethrown as it came
    const p = wb.get("s");
    assertEquals(p?.expected, 1);
    assertEquals(p?.uncertain, claim.rec);
    assertEquals([p?.rec.owner, p?.rec.expiresAt], ["", clock.now() + 1000]);
    // The flush undoes only a write that was applied.
    store.applyThenFail = false;
    store.down = false;
    assertEquals(await wb.flush(), true);
    const stored = await store.get("s");
    assertEquals(stored?.owner, applied ? "" : undefined);
  });
}

Deno.test("Claims.run counts the handshakes in flight for an id, failed ones too", async () => {
  const { store, claims } = setup();
  await using _ = store;
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const first = claims.run("s", () => gate);
  const second = claims.run("s", () => Promise.reject(new Error("x")));
  await second.catch(() => {});
  assertEquals([claims.handshaking("s"), claims.handshaking("t")], [
    true,
    false,
  ]);
  release();
  await first;
  assertEquals(claims.handshaking("s"), false);
});

/** Runs `p` while advancing the fake clock 1 ms at a time. */
async function drive<T>(clock: FakeClock, p: Promise<T>): Promise<T> {
  let done = false;
  const q = p.finally(() => done = true);
  for (let i = 0; i < 2 * CONFLICT_WAIT_MS && !done; i++) {
    await clock.advance(1);
  }
  return q;
}

Deno.test("Claims.afterConflict attaches the record once it is let go", async () => {
  const { clock, store, claims } = setup();
  await using _ = store;
  await store.create(rec({ owner: "b" }));
  const tried: number[] = [];
  const p = claims.afterConflict("s", (r) => {
    tried.push(r.epoch);
    return Promise.resolve("attached");
  });
  await clock.advance(25); // two reads: still held
  assertEquals(tried, []);
  await store.replace(
    1,
    rec({ epoch: 1, owner: "", expiresAt: clock.now() + 1000 }),
  );
  assertEquals(await drive(clock, p), "attached");
  assertEquals(tried, [1]);
});

// [the record while it waits, the outcome]
const rivals: [string, SessionRecord | null][] = [
  ["still held by another server", rec({ owner: "b" })],
  ["gone", null],
];
for (const [what, stored] of rivals) {
  Deno.test(`Claims.afterConflict refuses with session_in_use when the record is ${what}`, async () => {
    const { clock, store, claims } = setup();
    await using _ = store;
    if (stored !== null) await store.create(stored);
    const t0 = clock.monotonic();
    const p = claims.afterConflict("s", () => Promise.resolve("attached"));
    assertEquals(await drive(clock, outcome(p)), ErrorCode.SESSION_IN_USE);
    assert_(clock.monotonic() - t0 <= CONFLICT_WAIT_MS);
  });
}

Deno.test("Claims.afterConflict tries again when the attach lost once more", async () => {
  const { clock, store, claims } = setup();
  await using _ = store;
  await store.create(rec({ owner: "" }));
  let tries = 0;
  const p = claims.afterConflict(
    "s",
    () => Promise.resolve(++tries < 3 ? null : tries),
  );
  assertEquals(await drive(clock, p), 3);
});

Deno.test("Claims.afterConflict stops waiting once the session layer closes", async () => {
  const { clock, store, claims, ops, state } = setup();
  await using _ = store;
  await store.create(rec({ owner: "b" }));
  const t0 = clock.monotonic();
  const p = outcome(claims.afterConflict("s", () => Promise.resolve(1)));
  await clock.advance(10);
  state.closed = true;
  assertEquals(await drive(clock, p), ErrorCode.SESSION_IN_USE);
  // The read under way when it closed is the last one.
  assertEquals(ops, ["get", "get"]);
  assertEquals(clock.monotonic() - t0, 30);
});
