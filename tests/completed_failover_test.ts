/**
 * A completion tombstone lost in a failover (docs/durability.md). Without
 * confirmation the store acknowledges the tombstone, the server sends DONE,
 * and what survives the failover is the record still attached to that
 * server: the client's re-ack (its DONE was lost) is welcomed and completed
 * a second time, and still is long past the TTL. With confirmation
 * (`store/redis.ts` confirms completion tombstones) the same lost write is
 * rejected as unconfirmed, no DONE is sent, and the client's re-ack is the
 * session's only completion. Deterministic: one {@link FakeClock}, a memory
 * store that plays the failover (`_lossy_store.ts`).
 *
 * @module
 */

import { FakeClock } from "../common/fake_clock.ts";
import { ErrorCode } from "../protocol/errors.ts";
import { MemoryStore } from "../store/memory.ts";
import { assertEquals } from "./_assert.ts";
import { codeOf, manager, tok, TTL } from "./_failover_manager.ts";
import { LossyStore } from "./_lossy_store.ts";

const COUNT = 10;

async function setup() {
  const clock = new FakeClock();
  const store = new LossyStore(
    new MemoryStore({ clock, sweepIntervalMs: 3_600_000 }),
  );
  const a = await manager(store, clock, "a");
  const b = await manager(store, clock, "b");
  const s = crypto.randomUUID();
  const att = await a.open(s, COUNT, tok(1));
  // The failover that follows loses the completion tombstone.
  store.lose = "completed";
  return { clock, store, a, b, s, att };
}

Deno.test("SessionManager without confirmation: a completion tombstone lost in a failover lets the session complete twice, and be resumed past its TTL", async () => {
  const { clock, store, a, b, s, att } = await setup();
  await using _store = store;
  await using _a = a;
  await using _b = b;
  // ACK(count): the store acknowledged the tombstone, so a sends DONE.
  assertEquals(await a.complete(att), true);
  assertEquals([a.counters.sessionsCompleted, store.lost], [1, 1]);
  // What survived is the record attached to a, which is alive: nothing
  // expires it, and its token holder can take it, however late.
  const survived = await store.get(s);
  assertEquals([survived?.status, survived?.owner], ["live", "a"]);
  await clock.advance(TTL * 5);
  store.lose = undefined;
  // The client's re-ack (if it lost the first DONE): welcomed, past the
  // TTL, and completed again.
  const again = await b.resume(s, tok(1), COUNT);
  assertEquals(await b.complete(again), true);
  assertEquals(a.counters.sessionsCompleted + b.counters.sessionsCompleted, 2);
});

Deno.test("SessionManager with confirmation: a completion tombstone the replicas did not confirm sends no DONE; the client's re-ack completes the session once", async () => {
  const { store, a, b, s, att } = await setup();
  await using _store = store;
  await using _a = a;
  await using _b = b;
  store.confirmed = true;
  // ACK(count): the tombstone is not confirmed, so no DONE: the client is
  // told store_unavailable, and its connection ends (a detaches it).
  assertEquals(await codeOf(a.complete(att)), ErrorCode.STORE_UNAVAILABLE);
  assertEquals(
    [a.counters.sessionsCompleted, a.counters.storeUnconfirmed, store.lost],
    [0, 1, 1],
  );
  await a.detach(att);
  const survived = await store.get(s);
  assertEquals([survived?.status, survived?.owner], ["live", ""]);
  // The failover is over: the client resumes at the end and acks again.
  store.lose = undefined;
  const again = await b.resume(s, tok(1), COUNT);
  assertEquals(await b.complete(again), true);
  assertEquals(a.counters.sessionsCompleted + b.counters.sessionsCompleted, 1);
  assertEquals((await store.get(s))?.status, "completed");
  // A later re-ack is told the truth, on either server.
  for (const m of [a, b]) {
    assertEquals(
      await codeOf(m.resume(s, tok(1), COUNT)),
      ErrorCode.SESSION_COMPLETED,
    );
  }
});
