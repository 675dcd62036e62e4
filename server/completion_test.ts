import type { SessionRecord, SessionStore } from "../store/types.ts";
import { assertEquals } from "../tests/_assert.ts";
import { recordCompletion } from "./completion.ts";
import { fakeStore, NOW, RULES, sessionRecord } from "./_test_fixtures.ts";

const attached = sessionRecord;

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
    await using store = fakeStore().store;
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
  await using store = fakeStore().store;
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
