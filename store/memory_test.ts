import { storeContractTests } from "./_contract.ts";
import { MemoryStore } from "./memory.ts";

storeContractTests("MemoryStore", () => Promise.resolve(new MemoryStore()), {
  sweep: (store) => (store as MemoryStore).sweep(),
  noHintReason: "MemoryStore keeps no deletion hint; sweep() deletes",
});
