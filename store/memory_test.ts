import { storeContractTests } from "./_contract.ts";
import { MemoryStore } from "./memory.ts";

/** A MemoryStore on a clock that moves only when the test advances it. */
class ClockedStore extends MemoryStore {
  readonly clock: { t: number };
  constructor() {
    const clock = { t: Date.now() };
    super({ now: () => clock.t });
    this.clock = clock;
  }
}

storeContractTests("MemoryStore", () => Promise.resolve(new ClockedStore()), {
  sweep: (store) => (store as MemoryStore).sweep(),
  advance: (store, ms) => {
    (store as ClockedStore).clock.t += ms;
  },
  noHintReason: "MemoryStore keeps no deletion hint; sweep() deletes",
});
