import { assertEquals, assertRejects } from "../tests/_assert.ts";
import { StoreUnavailableError } from "../store/types.ts";
import { SimStore, type StoreFaults } from "./store.ts";
import { Node, World } from "./world.ts";

const FENCE = { id: "s1", epoch: 2 };

/** A store with `faults`, the notice of `FENCE` written to "a", and a server node. */
async function withNotice(faults: Partial<StoreFaults>) {
  const world = new World();
  const store = new SimStore(world, new Node("store"), {
    latencyMs: [1, 1],
    timeoutMs: 100,
    pLostBefore: 0,
    pLostAfter: 0,
    replicaLagMs: 0,
  }, () => 0.5);
  const server = store.view(new Node("a"));
  const written = server.fence("a", FENCE);
  await world.run(10);
  await written;
  Object.assign(store.faults, faults);
  const damaged: string[] = [];
  store.onDamage = (id, what) => damaged.push(`${id} ${what}`);
  return { world, store, server, damaged };
}

Deno.test("SimStore: a drain whose answer was lost took the notice: it is logged as lost, not damage to the record", async () => {
  const { world, store, server, damaged } = await withNotice({
    pLostAfter: 1,
  });
  const drained = assertRejects(
    () => server.drainFences("a"),
    StoreUnavailableError,
  );
  await world.run(1000);
  await drained;
  assertEquals([...store.log.lostNotices], ["s1"]);
  assertEquals(damaged, ["s1 drain answer lost, notice @2 gone"]);
  assertEquals(store.log.damaged.size, 0);
  // Nothing is left for the next beat to drain.
  store.faults.pLostAfter = 0;
  const again = server.drainFences("a");
  await world.run(2000);
  assertEquals(await again, []);
});

Deno.test("SimStore: a drain answered, or lost before it was applied, loses no notice", async () => {
  const { world, store, server } = await withNotice({ pLostBefore: 1 });
  const lost = assertRejects(
    () => server.drainFences("a"),
    StoreUnavailableError,
  );
  await world.run(1000);
  await lost;
  store.faults.pLostBefore = 0;
  const drained = server.drainFences("a");
  await world.run(2000);
  assertEquals(await drained, [FENCE]);
  assertEquals(store.log.lostNotices.size, 0);
});
