import { assertEquals } from "../tests/_assert.ts";
import { FakeClock } from "../common/fake_clock.ts";
import { storeContractTests } from "./_contract.ts";
import { MemoryStore } from "./memory.ts";

/** A MemoryStore on a clock that moves only when the test advances it. */
class ClockedStore extends MemoryStore {
  readonly clock: FakeClock;
  constructor() {
    const clock = new FakeClock(Date.now());
    super({ clock });
    this.clock = clock;
  }
}

storeContractTests("MemoryStore", () => Promise.resolve(new ClockedStore()), {
  sweep: (store) => (store as MemoryStore).sweep(),
  advance: (store, ms) => (store as ClockedStore).clock.advance(ms),
  noHintReason: "MemoryStore keeps no deletion hint; sweep() deletes",
});

Deno.test("MemoryStore sweeps on its clock's timer: a record past retainUntil goes at the next sweep, and close leaves no timer", async () => {
  const clock = new FakeClock(1_000_000, 0);
  const store = new MemoryStore({ clock, sweepIntervalMs: 100 });
  assertEquals(clock.pending, 1);
  const rec = {
    id: "a",
    seed: "0011223344556677",
    count: 10,
    token: "00112233445566778899aabbccddeeff",
    epoch: 1,
    owner: "",
    status: "live" as const,
    expiresAt: 1_000_050,
    retainUntil: 1_000_150,
  };
  assertEquals(await store.create(rec), true);
  await clock.advance(100); // sweep at 1_000_100: not yet
  assertEquals(store.size, 1);
  await clock.advance(100); // sweep at 1_000_200: gone
  assertEquals(store.size, 0);
  assertEquals(clock.pending, 1);
  await store.close();
  assertEquals(clock.pending, 0);
});
