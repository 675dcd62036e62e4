import type { Fence, SessionRecord } from "../store/types.ts";
import { assertEquals } from "../tests/_assert.ts";
import { Attachments } from "./attachments.ts";

function record(epoch: number, over: Partial<SessionRecord> = {}) {
  const rec: SessionRecord = {
    id: "s",
    seed: "0123456789abcdef",
    count: 10,
    token: "00".repeat(16),
    epoch,
    owner: "a",
    status: "live",
    expiresAt: 0,
    retainUntil: 0,
    ...over,
  };
  return rec;
}

/** Attachments over in-memory stand-ins for the detached sessions and the write-back. */
function setup() {
  const detached = new Map<string, SessionRecord>();
  const pending = new Map<string, SessionRecord>();
  const fences: string[] = [];
  const closed: [string, number][] = [];
  const counters = { sessionsTakenOver: 0 };
  const a = new Attachments({
    detached: {
      detach: (rec) => {
        detached.set(rec.id, rec);
        return Promise.resolve();
      },
      delete: (id) => void detached.delete(id),
      fenced: (f) => void fences.push(`detached ${f.id}@${f.epoch}`),
      get: (id) => {
        const value = detached.get(id);
        return value && { id, deadline: 0, value };
      },
      ids: () => detached.keys(),
    },
    writeBack: {
      adopted: (id) => void pending.delete(id),
      fenced: (f) => void fences.push(`write-back ${f.id}@${f.epoch}`),
      get: (id) => {
        const rec = pending.get(id);
        return rec && { expected: rec.epoch - 1, rec };
      },
    },
    counters,
    onFenced: (id, epoch) => void closed.push([id, epoch]),
  });
  return { a, detached, pending, fences, closed, counters };
}

Deno.test("Attachments.adopt attaches the record and drops what this server held of the session", () => {
  const { a, detached, pending, closed, counters } = setup();
  detached.set("s", record(2));
  pending.set("s", record(2));
  const rec = record(3);
  a.adopt(rec, "resume");
  assertEquals(a.size, 1);
  assertEquals(a.record({ id: "s", epoch: 3 }), rec);
  assertEquals(a.holds({ id: "s", epoch: 3 }), true);
  assertEquals(a.holds({ id: "s", epoch: 2 }), false);
  assertEquals(a.current(rec), true);
  assertEquals([detached.size, pending.size], [0, 0]);
  assertEquals(closed, []); // no connection here held it
  assertEquals(counters.sessionsTakenOver, 0);
});

Deno.test("Attachments.adopt closes a connection here that still held the session: at the new epoch for a resume, above the old one for a hello", () => {
  const { a, closed, counters } = setup();
  a.adopt(record(4), "resume");
  a.adopt(record(5), "resume"); // taken over on this very server
  assertEquals(closed, [["s", 5]]);
  assertEquals(a.holds({ id: "s", epoch: 4 }), false);
  // The id used anew while a connection here held its old session at 5:
  // a new record starts at epoch 1, which would not fence epoch 5.
  a.adopt(record(1), "hello");
  assertEquals(closed, [["s", 5], ["s", 6]]);
  assertEquals(a.holds({ id: "s", epoch: 1 }), true);
  assertEquals(counters.sessionsTakenOver, 2);
});

Deno.test("Attachments.detach moves the record to the detached sessions, only for the attachment that holds it", async () => {
  const { a, detached } = setup();
  const rec = record(3);
  a.adopt(rec, "resume");
  await a.detach({ id: "s", epoch: 2 }); // a stale connection's late detach
  assertEquals([a.size, detached.size], [1, 0]);
  await a.detach({ id: "s", epoch: 3 });
  assertEquals([a.size, detached.get("s")], [0, rec]);
  await a.detach({ id: "s", epoch: 3 }); // twice: nothing more
  assertEquals(detached.size, 1);
});

Deno.test("Attachments.release and forget drop only the current holder, with no detach", () => {
  const { a, detached } = setup();
  const old = record(3);
  a.adopt(old, "resume");
  a.release({ id: "s", epoch: 2 });
  assertEquals(a.size, 1);
  a.release({ id: "s", epoch: 3 });
  assertEquals([a.size, detached.size], [0, 0]);
  // A completion that settles after the session was attached anew here
  // leaves the new attachment alone.
  const next = record(4);
  a.adopt(next, "resume");
  a.forget(old);
  assertEquals(a.holds({ id: "s", epoch: 4 }), true);
  a.forget(next);
  assertEquals(a.size, 0);
});

Deno.test("Attachments.fenced closes an attachment below the notice's epoch, not one at it, and hands the notice on", () => {
  const { a, fences, closed, counters } = setup();
  a.adopt(record(3), "resume");
  const at: Fence = { id: "s", epoch: 3 };
  a.fenced(at); // this server's own takeover, drained late
  assertEquals(a.holds({ id: "s", epoch: 3 }), true);
  a.fenced({ id: "s", epoch: 4 });
  assertEquals(a.holds({ id: "s", epoch: 3 }), false);
  assertEquals(closed, [["s", 4]]);
  assertEquals(counters.sessionsTakenOver, 1);
  assertEquals(fences, [
    "detached s@3",
    "write-back s@3",
    "detached s@4",
    "write-back s@4",
  ]);
});

Deno.test("Attachments.held prefers the detached record; holdsHere counts a pending write too", () => {
  const { a, detached, pending } = setup();
  assertEquals([a.held("s"), a.holdsHere("s")], [undefined, false]);
  pending.set("s", record(2));
  assertEquals([a.held("s"), a.holdsHere("s")], [undefined, true]);
  const att = record(3);
  a.adopt(att, "resume");
  assertEquals(a.held("s"), att);
  const gone = record(4, { owner: "", expiresAt: 1000 }); // detached
  detached.set("s", gone);
  assertEquals(a.held("s"), gone);
  detached.set("t", record(1, { id: "t" }));
  assertEquals(a.heldIds().sort(), ["s", "s", "t"]);
});
