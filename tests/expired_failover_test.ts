/**
 * Expired stays expired across a failover: the expiry tombstone is written
 * unconfirmed (docs/durability.md), so a failover may lose it. What
 * survives is the confirmed detach, whose deadline is in store time, and a
 * later RESUME is judged by it: refused as expired, on any server, however
 * late. Deterministic: one {@link FakeClock}, a memory store that plays the
 * failover (`_lossy_store.ts`: it acknowledges the tombstone and never
 * applies it, as a primary that dies before its replica has it).
 *
 * @module
 */

import { FakeClock } from "../common/fake_clock.ts";
import { ErrorCode } from "../protocol/errors.ts";
import { MemoryStore } from "../store/memory.ts";
import { assertEquals } from "./_assert.ts";
import { codeOf, manager, tok, TTL } from "./_failover_manager.ts";
import { LossyStore } from "./_lossy_store.ts";

for (const crashed of [false, true]) {
  Deno.test(
    `SessionManager: an expiry tombstone lost in a failover leaves the session expired, ` +
      `judged by the surviving detach's deadline in store time (the server that expired it ${
        crashed ? "crashed since" : "still runs"
      })`,
    async () => {
      const clock = new FakeClock();
      const store = new LossyStore(
        new MemoryStore({ clock, sweepIntervalMs: 3_600_000 }),
      );
      await using _store = store;
      await using a = await manager(store, clock, "a");
      await using b = await manager(store, clock, "b");
      const s = crypto.randomUUID();
      await a.detach(await a.open(s, 10, tok(1)));
      const detached = await store.get(s);
      assertEquals([detached?.owner, detached?.status], ["", "live"]);
      const deadline = detached!.expiresAt;
      store.lose = "expired";
      await clock.advance(TTL);
      // a expired it, and the store acknowledged a tombstone it does not have.
      assertEquals([a.counters.sessionsExpired, store.lost, a.sessions], [
        1,
        1,
        0,
      ]);
      const survived = await store.get(s);
      assertEquals(
        [survived?.status, survived?.owner, survived?.expiresAt],
        ["live", "", deadline],
      );
      if (crashed) await a.close();
      for (const late of [0, 1, TTL * 5]) {
        await clock.advance(late);
        assertEquals(
          await codeOf(b.resume(s, tok(1), 0)),
          ErrorCode.SESSION_EXPIRED,
          `b, ${late} ms later`,
        );
        if (!crashed) {
          assertEquals(
            await codeOf(a.resume(s, tok(1), 0)),
            ErrorCode.SESSION_EXPIRED,
            `a, ${late} ms later`,
          );
        }
      }
      // Not resumable, and never re-attached: the record is still the detach.
      assertEquals((await store.get(s))?.owner, "");
      assertEquals(b.counters.resumes + a.counters.resumes, 0);
    },
  );
}

Deno.test("SessionManager: a session resumed just before its deadline is not refused because the failover lost nothing else", async () => {
  // The control: the same setup resumes fine one ms before the deadline, so
  // the refusal above comes from the deadline, not from the lossy store.
  const clock = new FakeClock();
  const store = new LossyStore(
    new MemoryStore({ clock, sweepIntervalMs: 3_600_000 }),
  );
  await using _store = store;
  await using a = await manager(store, clock, "a");
  await using b = await manager(store, clock, "b");
  const s = crypto.randomUUID();
  await a.detach(await a.open(s, 10, tok(1)));
  store.lose = "expired";
  await clock.advance(TTL - 1);
  assertEquals(await codeOf(b.resume(s, tok(1), 0)), "ok");
  assertEquals(store.lost, 0);
});
