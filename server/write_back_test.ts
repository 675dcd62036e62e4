import { FakeClock } from "../common/fake_clock.ts";
import { FlakyStore } from "../store/_flaky.ts";
import type { Fence, SessionRecord } from "../store/types.ts";
import { assertEquals } from "../tests/_assert.ts";
import { type Notice, WriteBack } from "./write_back.ts";
import { sessionRecord, writeBackHost } from "./_test_fixtures.ts";

const rec = sessionRecord;

function writeBack(store: FlakyStore) {
  const written: SessionRecord[] = [];
  const lost: Fence[] = [];
  const missing: string[] = [];
  const notified: Notice[] = [];
  const wb = new WriteBack(writeBackHost(store, {
    written: (r) => written.push(r),
    lost: (f) => lost.push(f),
    notify: (n) => notified.push(n),
    missing: (id) => missing.push(id),
  }));
  return { wb, written, lost, missing, notified };
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
    wb.adopted("s", 3); // a new attachment of "s" on this server (#forget)
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

// An unanswered resume here took "s" over from server "b" (epoch 2 → 3):
// the record it wrote, its undoing, and the notice "b" is owed if it landed.
const claimed = rec({ epoch: 3, owner: "a" });
const undo = rec({ epoch: 3, owner: "", expiresAt: 10 });
const toB: Notice = { owner: "b", fence: { id: "s", epoch: 3 } };

Deno.test("WriteBack.flush sends the notice an unanswered takeover write owes once it finds the write applied, and drops it when not (simulator seed 367710922)", async () => {
  for (const [stored, applied] of [[claimed, true], [rec(), false]] as const) {
    await using store = new FlakyStore({ clock });
    await store.create(stored);
    const { wb, written, notified } = writeBack(store);
    wb.keep("s", 3, undo, claimed, toB);
    assertEquals([wb.owedNotices, notified], [1, []]);
    assertEquals(await wb.flush(), true);
    assertEquals(
      [notified, written, wb.owedNotices],
      applied ? [[toB], [undo], 0] : [[], [], 0],
    );
  }
});

Deno.test("WriteBack.adopted and fenced send the notices owed up to the epoch the session reached", async () => {
  await using store = new FlakyStore({ clock });
  const { wb, notified } = writeBack(store);
  wb.keep("s", 3, undo, claimed, toB);
  wb.keep("s", 3, undo, claimed, toB); // the same write again: one notice
  wb.adopted("s", 2); // below its epoch: not yet
  assertEquals([wb.owedNotices, notified], [0, []]);
  wb.keep("s", 3, undo, claimed, toB);
  // The next resume here found the record as its own and attached it at 4:
  // the old owner "b" was never told otherwise.
  wb.adopted("s", 4);
  assertEquals([wb.owedNotices, wb.size, notified], [0, 0, [toB]]);
  notified.length = 0;
  wb.keep("s", 3, undo, claimed, toB);
  wb.fenced({ id: "s", epoch: 5 }); // taken over from here: it had landed
  assertEquals([wb.owedNotices, wb.size, notified], [0, 0, [toB]]);
});

Deno.test("WriteBack resync, once done, flushes the undoing of an unanswered handshake write it leaves alone (simulator seed 859261497)", async () => {
  // Applied: the undoing detaches it. Never applied: it is dropped.
  for (const [stored, after] of [[claimed, undo], [rec(), rec()]] as const) {
    await using store = new FlakyStore({ clock });
    await store.create(stored);
    const { wb } = writeBack(store);
    wb.keep("s", 3, undo, claimed);
    wb.startResync();
    await wb.running;
    // Left pending, the heartbeat would not renew its lease while the next
    // beat's resync ran, and each beat starts one until it renews.
    assertEquals([wb.resyncing, wb.size], [false, 0]);
    assertEquals(await store.get("s"), after);
  }
});
