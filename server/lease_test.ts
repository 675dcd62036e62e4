import { FakeClock } from "../common/fake_clock.ts";
import { silentLogger } from "../common/logger.ts";
import { FlakyStore } from "../store/_flaky.ts";
import type { Fence, SessionStore } from "../store/types.ts";
import { assert_, assertEquals } from "../tests/_assert.ts";
import { type LeaseHost, LeaseKeeper } from "./lease.ts";

function keeper(store: SessionStore, clock: FakeClock, leaseMs = 300) {
  const ops: string[] = [];
  const fences: Fence[] = [];
  const state = { flushed: true, lost: 0, failing: new Set<string>() };
  const host: LeaseHost = {
    op: (name, fn) => {
      ops.push(name);
      return state.failing.has(name)
        ? Promise.reject(new Error(`${name} failed`))
        : fn(store);
    },
    flush: () => Promise.resolve(state.flushed),
    lostData: () => state.lost++,
    fenced: (f) => fences.push(f),
  };
  const k = new LeaseKeeper(host, {
    serverId: "a",
    leaseMs,
    collectGraceMs: 1000,
    clock,
    log: silentLogger,
  });
  return { k, ops, fences, state };
}

Deno.test("LeaseKeeper beats every leaseMs / 3: check, drain, renew, collect", async () => {
  const clock = new FakeClock(0);
  await using store = new FlakyStore({ clock });
  const { k, ops } = keeper(store, clock);
  await k.start();
  assertEquals(ops, ["lease_check", "fence_drain", "lease_renew", "collect"]);
  const table: [number, number][] = [[99, 1], [1, 2], [100, 3], [700, 10]];
  for (const [advance, renewals] of table) {
    await clock.advance(advance);
    assertEquals(
      ops.filter((o) => o === "lease_renew").length,
      renewals,
      `after +${advance}`,
    );
  }
  assertEquals((await store.leaseOf("a")).lease?.until, clock.now() + 300);
  await k.close();
});

Deno.test("LeaseKeeper does not renew while the host has writes pending", async () => {
  const clock = new FakeClock(0);
  await using store = new FlakyStore({ clock });
  const { k, state } = keeper(store, clock);
  await k.start();
  const first = (await store.leaseOf("a")).lease!;
  state.flushed = false;
  await clock.advance(1000);
  assertEquals((await store.leaseOf("a")).lease, first, "renewed anyway");
  state.flushed = true;
  await clock.advance(100);
  assert_((await store.leaseOf("a")).lease!.renewedAt > first.renewedAt);
  await k.close();
});

Deno.test("LeaseKeeper delivers fences and detects a store that lost its data", async () => {
  const clock = new FakeClock(0);
  await using store = new FlakyStore({ clock });
  const { k, fences, state } = keeper(store, clock);
  await k.start();
  await store.fence("a", { id: "s1", epoch: 4 });
  await clock.advance(100);
  assertEquals(fences, [{ id: "s1", epoch: 4 }]);
  store.wipe();
  assertEquals(await k.storeLostData(), true);
  await clock.advance(100);
  assertEquals(state.lost >= 1, true);
  await k.close();
});

Deno.test("LeaseKeeper.now follows the store's clock, not the local one", async () => {
  const local = new FakeClock(1_000_000);
  const storeClock = new FakeClock(5_000_000);
  await using store = new FlakyStore({ clock: storeClock });
  const { k } = keeper(store, local);
  await k.start();
  assertEquals(k.now(), 5_000_000);
  await local.advance(50);
  await storeClock.advance(50);
  assertEquals(k.now(), 5_000_050);
  await k.close();
});

Deno.test("LeaseKeeper.now ignores a step of the local wall clock between two store reads (simulator seed 591850739)", async () => {
  const local = new FakeClock(1_000_000);
  const storeClock = new FakeClock(5_000_000);
  await using store = new FlakyStore({ clock: storeClock });
  const { k, state } = keeper(store, local);
  await k.start();
  // No read for a while (the store is down), and meanwhile NTP steps this
  // host's wall clock: the store's time as seen from here must not jump.
  state.failing = new Set(["lease_check"]);
  for (const step of [1_900, -2_500]) {
    local.set(local.now() + step);
    await local.advance(100);
    await storeClock.advance(100);
    assertEquals(k.now(), storeClock.now(), `after a step of ${step} ms`);
  }
  await k.close();
});

Deno.test("LeaseKeeper.live: the lease last written runs for another third of a lease, in store time", async () => {
  const clock = new FakeClock(0);
  await using store = new FlakyStore({ clock });
  const { k, state } = keeper(store, clock);
  assertEquals(k.live, false, "before the first renewal");
  await k.start();
  assertEquals(k.live, true);
  state.failing = new Set(["lease_renew"]);
  await clock.advance(200);
  assertEquals(k.live, true, "a third of the lease still to run");
  await clock.advance(1);
  assertEquals(
    k.live,
    false,
    "less than a third to run: a write may land after it",
  );
  state.failing = new Set();
  await clock.advance(100);
  assertEquals(k.live, true, "renewed again");
  await k.close();
});

Deno.test("LeaseKeeper.storeLostData: a renewal that completes while the read of the lease is on its way is no loss", async () => {
  class SlowRead extends FlakyStore {
    holdNext: Promise<void> | undefined;
    override async leaseOf(owner: string) {
      const read = await super.leaseOf(owner);
      const hold = this.holdNext;
      this.holdNext = undefined;
      if (hold) await hold;
      return read;
    }
  }
  const clock = new FakeClock(0);
  await using store = new SlowRead({ clock });
  const { k, state } = keeper(store, clock);
  await k.start();
  let release!: () => void;
  store.holdNext = new Promise((r) => release = r);
  const judged = k.storeLostData(); // reads the lease as renewed at 0
  await clock.advance(100); // the heartbeat renews meanwhile
  release();
  assertEquals([await judged, state.lost], [false, 0]);
  // A lease that really went back is still a loss.
  store.wipe();
  assertEquals(await k.storeLostData(), true);
  await k.close();
});

Deno.test("LeaseKeeper drains fences while writes are pending or the renewal fails, not when the store does not answer", async () => {
  const clock = new FakeClock(0);
  await using store = new FlakyStore({ clock });
  const { k, ops, fences, state } = keeper(store, clock);
  await k.start();
  state.flushed = false;
  ops.length = 0;
  await store.fence("a", { id: "s1", epoch: 2 });
  await clock.advance(100);
  assertEquals(
    fences,
    [{ id: "s1", epoch: 2 }],
    "fence not drained while writes pending",
  );
  assertEquals(ops.includes("lease_renew"), false);
  assertEquals(ops.includes("collect"), false, "collected without a lease");
  state.flushed = true;
  state.failing = new Set(["lease_renew"]);
  fences.length = 0;
  await store.fence("a", { id: "s2", epoch: 3 });
  await clock.advance(100);
  assertEquals(
    fences,
    [{ id: "s2", epoch: 3 }],
    "not drained, renewal failing",
  );
  assertEquals(ops.includes("collect"), false, "collected without a lease");
  // A store that does not answer the lease check: the beat ends there, so an
  // outage costs one timeout per beat, not one per step.
  state.failing = new Set(["lease_check"]);
  fences.length = 0;
  ops.length = 0;
  await store.fence("a", { id: "s3", epoch: 4 });
  await clock.advance(100);
  assertEquals([ops, fences], [["lease_check"], []]);
  state.failing = new Set();
  await clock.advance(100);
  assertEquals(fences, [{ id: "s3", epoch: 4 }]);
  await k.close();
});

Deno.test("LeaseKeeper renews the lease when only the fence drain fails, and drains next beat", async () => {
  const clock = new FakeClock(0);
  await using store = new FlakyStore({ clock });
  const { k, fences, state } = keeper(store, clock);
  await k.start();
  const first = (await store.leaseOf("a")).lease!;
  await store.fence("a", { id: "s4", epoch: 5 });
  state.failing = new Set(["fence_drain"]);
  await clock.advance(100);
  assert_((await store.leaseOf("a")).lease!.renewedAt > first.renewedAt);
  assertEquals(fences, []);
  state.failing = new Set();
  await clock.advance(100);
  assertEquals(fences, [{ id: "s4", epoch: 5 }]);
  await k.close();
});

Deno.test("LeaseKeeper: back after longer than the collect grace, it writes its sessions back (its records may have been collected); sooner, it does not", async () => {
  for (const [awayMs, lost] of [[900, false], [1500, true]] as const) {
    const clock = new FakeClock(0);
    await using store = new FlakyStore({ clock });
    const { k, state } = keeper(store, clock);
    await k.start();
    const before = (await store.leaseOf("a")).lease!;
    state.failing.add("lease_check"); // cut off from the store
    await clock.advance(awayMs);
    assertEquals((await store.leaseOf("a")).lease, before, `${awayMs} ms`);
    assertEquals(state.lost, 0, `${awayMs} ms: away`);
    state.failing.clear();
    await clock.advance(100);
    assertEquals(state.lost > 0, lost, `${awayMs} ms: back`);
    await k.close();
  }
});
