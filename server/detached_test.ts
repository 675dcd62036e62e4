import { FakeClock } from "../common/fake_clock.ts";
import { FlakyStore } from "../store/_flaky.ts";
import type { SessionRecord } from "../store/types.ts";
import { assertEquals } from "../tests/_assert.ts";
import { DetachedSessions } from "./detached.ts";
import { WriteBack } from "./write_back.ts";

const RULES = { serverId: "a", ttlMs: 1000, tombstoneMs: 5000 };

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

async function setup(stored: SessionRecord | null = attached()) {
  const clock = new FakeClock(1_000_000, 0);
  const store = new FlakyStore({ clock });
  if (stored !== null) await store.create(stored);
  const wb = new WriteBack({
    op: (_name, fn) => fn(store),
    written: () => {},
    lost: () => {},
    notify: () => {},
    missing: () => {},
    held: () => undefined,
    heldIds: () => [],
    handshaking: () => false,
    closed: () => false,
  });
  const expired: string[] = [];
  const inflight: Promise<void>[] = [];
  const d = new DetachedSessions(RULES, clock, {
    writeBack: wb,
    storeNow: () => clock.now(),
    expired: (id) => expired.push(id),
    track: (p) => void inflight.push(p),
  });
  const advance = async (ms: number) => {
    await clock.advance(ms);
    await Promise.all(inflight);
  };
  return { clock, store, wb, d, expired, advance };
}

Deno.test("DetachedSessions.detach queues the session TTL from now and writes the detach", async () => {
  const { clock, store, wb, d } = await setup();
  await using _ = store;
  const t0 = clock.now();
  await d.detach(attached());
  assertEquals(d.get("s")?.deadline, t0 + 1000);
  assertEquals(wb.size, 0);
  const rec = await store.get("s");
  assertEquals([rec?.owner, rec?.expiresAt, rec?.retainUntil], [
    "",
    t0 + 1000,
    t0 + 6000,
  ]);
  d.close();
});

// [store at the detach, queued still when it fails, kept for the heartbeat]
const failures: [string, SessionRecord | null, boolean, boolean][] = [
  ["down", attached(), true, true],
  [
    "moved on (resumed elsewhere)",
    attached({ epoch: 3, owner: "b" }),
    true,
    true,
  ],
  [
    "moved on, and the session forgotten meanwhile",
    attached({ epoch: 3, owner: "b" }),
    false,
    false,
  ],
  ["missing (lost by the store)", null, true, true],
];
for (const [what, stored, stillQueued, kept] of failures) {
  Deno.test(`DetachedSessions.detach over a store ${what} → ${kept ? "kept" : "not kept"} in the write-back`, async () => {
    const { store, wb, d } = await setup(stored);
    await using _ = store;
    store.down = what === "down";
    let release!: () => void;
    store.hold = new Promise((r) => release = r);
    const p = d.detach(attached());
    assertEquals(d.get("s") !== undefined, true); // queued before the write
    if (!stillQueued) d.delete("s");
    release();
    await p;
    assertEquals(wb.get("s")?.expected, kept ? 2 : undefined);
    d.close();
  });
}

Deno.test("DetachedSessions expires a session at its deadline with a tombstone, not before", async () => {
  const { clock, store, d, expired, advance } = await setup();
  await using _ = store;
  const t0 = clock.now();
  await d.detach(attached());
  await advance(999);
  assertEquals([expired, d.size], [[], 1]);
  await advance(1);
  assertEquals([expired, d.size], [["s"], 0]);
  const rec = await store.get("s");
  assertEquals([rec?.status, rec?.epoch, rec?.expiresAt], [
    "expired",
    3,
    t0 + 1000,
  ]);
  d.close();
});

Deno.test("DetachedSessions: a session whose detach never reached the store has its tombstone kept for the heartbeat", async () => {
  const { store, wb, d, expired, advance } = await setup();
  await using _ = store;
  store.down = true;
  await d.detach(attached());
  await advance(1000);
  assertEquals(expired, []);
  const p = wb.get("s");
  assertEquals([p?.expected, p?.rec.status, p?.rec.epoch], [2, "expired", 3]);
  assertEquals((await store.inner.get("s"))?.owner, "a"); // nothing written
  d.close();
});

Deno.test("DetachedSessions: an expiry tombstone that loses to a resume elsewhere is not counted", async () => {
  const { store, d, expired, advance } = await setup();
  await using _ = store;
  await d.detach(attached());
  const detachedRec = (await store.get("s"))!;
  await store.replace(2, { ...detachedRec, epoch: 3, owner: "b" });
  await advance(1000);
  assertEquals(expired, []);
  assertEquals((await store.get("s"))?.owner, "b");
  d.close();
});

Deno.test("DetachedSessions.fenced forgets only a session detached below the fence's epoch", async () => {
  const { store, d } = await setup();
  await using _ = store;
  store.down = true;
  await d.detach(attached({ epoch: 4 }));
  d.fenced({ id: "s", epoch: 4 });
  assertEquals(d.size, 1);
  d.fenced({ id: "s", epoch: 5 });
  assertEquals(d.size, 0);
  d.close();
});

Deno.test("DetachedSessions.views pages the sessions with the time each stays resumable", async () => {
  const { clock, store, d } = await setup(null);
  await using _ = store;
  store.down = true;
  for (const id of ["a", "b", "c"]) {
    await d.detach(attached({ id }));
    await clock.advance(100);
  }
  assertEquals([...d.views(1, 5)], [
    { id: "b", count: 10, epoch: 2, expiresInMs: 800 },
    { id: "c", count: 10, epoch: 2, expiresInMs: 900 },
  ]);
  assertEquals([...d.views(0, 1)].map((v) => v.id), ["a"]);
  await clock.advance(2000); // due, its tombstone kept: no longer listed
  assertEquals([...d.views(0, 5)], []);
  d.close();
});
