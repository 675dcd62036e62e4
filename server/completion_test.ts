import { FakeClock } from "../common/fake_clock.ts";
import { FlakyStore } from "../store/_flaky.ts";
import type { SessionRecord, SessionStore } from "../store/types.ts";
import { assertEquals } from "../tests/_assert.ts";
import { recordCompletion } from "./completion.ts";

const RULES = { serverId: "a", ttlMs: 1000, tombstoneMs: 5000 };
const NOW = 1_000_000;

function attached(over: Partial<SessionRecord> = {}): SessionRecord {
  return {
    id: "s",
    seed: "0123456789abcdef",
    count: 10,
    token: "00".repeat(16),
    epoch: 2,
    owner: "a",
    status: "live",
    expiresAt: 0,
    retainUntil: 0,
    ...over,
  };
}

// [what the store holds, ok, lostRecord, store calls, what it holds after]
const rows: [
  string,
  SessionRecord | null,
  boolean,
  boolean,
  string[],
  Partial<SessionRecord> | null,
][] = [
  ["the record attached here", attached(), true, false, ["replace"], {
    epoch: 3,
    status: "completed",
    seed: "",
    expiresAt: NOW,
    retainUntil: NOW + 5000,
  }],
  [
    "a newer attachment elsewhere",
    attached({ epoch: 3, owner: "b" }),
    false,
    false,
    ["replace", "get"],
    { epoch: 3, owner: "b", status: "live" },
  ],
  ["nothing (the store lost it)", null, true, true, [
    "replace",
    "get",
    "create",
  ], { epoch: 3, status: "completed" }],
];
for (const [holds, stored, ok, lostRecord, calls, after] of rows) {
  Deno.test(`recordCompletion over ${holds} → ok ${ok}, lost record ${lostRecord}`, async () => {
    await using store = new FlakyStore({ clock: new FakeClock(NOW, 0) });
    if (stored !== null) await store.create(stored);
    const made: string[] = [];
    const op = <T>(name: string, fn: (s: SessionStore) => Promise<T>) => {
      made.push(name);
      return fn(store);
    };
    assertEquals(await recordCompletion(RULES, op, attached(), NOW), {
      ok,
      lostRecord,
    });
    assertEquals(made, calls);
    const rec = await store.get("s");
    const picked = rec === null || after === null ? rec : Object.fromEntries(
      Object.keys(after).map((k) => [k, rec[k as keyof SessionRecord]]),
    );
    assertEquals(picked, after);
  });
}

Deno.test("recordCompletion rejects when the store fails, and writes nothing", async () => {
  await using store = new FlakyStore({ clock: new FakeClock(NOW, 0) });
  await store.create(attached());
  store.down = true;
  const op = <T>(_: string, fn: (s: SessionStore) => Promise<T>) => fn(store);
  const failed = await recordCompletion(RULES, op, attached(), NOW).then(
    () => "",
    (e) => e.name,
  );
  assertEquals(failed, "StoreUnavailableError");
  store.down = false;
  assertEquals((await store.get("s"))?.status, "live");
});
