import { FakeClock } from "../common/fake_clock.ts";
import { FlakyStore } from "../store/_flaky.ts";
import type { Fence, SessionRecord } from "../store/types.ts";
import { assertEquals } from "../tests/_assert.ts";
import { WriteBack } from "./write_back.ts";
import { sessionRecord, writeBackHost } from "./_test_fixtures.ts";

const rec = sessionRecord;

function writeBack(store: FlakyStore) {
  const written: SessionRecord[] = [];
  const lost: Fence[] = [];
  const missing: string[] = [];
  const wb = new WriteBack(writeBackHost(store, {
    written: (r) => written.push(r),
    lost: (f) => lost.push(f),
    missing: (id) => missing.push(id),
  }));
  return { wb, written, lost, missing };
}

const clock = new FakeClock(0);
const tomb = rec({ epoch: 3, owner: "", status: "expired", expiresAt: 5 });

// [what the store holds when the flush runs, expected outcome]
const table: [string, SessionRecord | null, "written" | "lost" | "missing"][] =
  [
    ["the record the write expects", rec(), "written"],
    ["the write itself (timed out but applied)", tomb, "written"],
    ["a newer attach elsewhere", rec({ epoch: 3, owner: "b" }), "lost"],
    // Lost by the store: the host resyncs, and the write stays pending.
    ["nothing (the store lost it)", null, "missing"],
  ];

for (const [holds, stored, outcome] of table) {
  Deno.test(`WriteBack.flush of a pending tombstone over ${holds} → ${outcome}`, async () => {
    await using store = new FlakyStore({ clock });
    if (stored) await store.create(stored);
    const { wb, written, lost, missing } = writeBack(store);
    wb.keep("s", 2, tomb);
    assertEquals(await wb.flush(), outcome !== "missing");
    assertEquals(wb.size, outcome === "missing" ? 1 : 0);
    assertEquals(
      [written, lost, missing],
      {
        written: [[tomb], [], []],
        lost: [[], [{ id: "s", epoch: 3 }], []],
        missing: [[], [], ["s"]],
      }[outcome],
    );
  });
}

Deno.test("WriteBack.flush stops at a store failure and keeps the write", async () => {
  await using store = new FlakyStore({ clock });
  await store.create(rec());
  const { wb } = writeBack(store);
  store.down = true;
  assertEquals(await wb.write(2, tomb), undefined);
  assertEquals([wb.size, await wb.flush()], [1, false]);
  store.down = false;
  assertEquals([await wb.flush(), wb.size], [true, 0]);
});

Deno.test("WriteBack.keep never replaces a pending write for a later epoch", async () => {
  await using store = new FlakyStore();
  const { wb } = writeBack(store);
  wb.keep("s", 3, rec({ epoch: 3 }));
  wb.keep("s", 2, rec());
  assertEquals(wb.get("s")?.expected, 3);
  wb.fenced({ id: "s", epoch: 4 });
  assertEquals(wb.get("s"), undefined);
});

Deno.test("WriteBack.flush judges nothing of a write that was replaced or forgotten while the store answered", async () => {
  for (const stored of [rec({ epoch: 3, owner: "b" }), null]) {
    await using store = new FlakyStore({ clock });
    if (stored) await store.create(stored);
    const { wb, written, lost, missing } = writeBack(store);
    wb.keep("s", 2, tomb);
    const release = Promise.withResolvers<void>();
    store.hold = release.promise;
    const flushing = wb.flush();
    wb.delete("s"); // a new attachment of "s" on this server (#forget)
    store.hold = undefined;
    release.resolve();
    assertEquals(await flushing, true);
    assertEquals(
      [written, lost, missing],
      [[], [], []],
      `over ${stored?.owner}`,
    );
  }
});
