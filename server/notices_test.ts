import { FakeClock } from "../common/fake_clock.ts";
import { silentLogger } from "../common/logger.ts";
import { FlakyStore } from "../store/_flaky.ts";
import { assertEquals } from "../tests/_assert.ts";
import { TakeoverNotices } from "./notices.ts";

function notices(store: FlakyStore) {
  const ops: string[] = [];
  let closed = false;
  const n = new TakeoverNotices({
    op: (name, fn) => {
      ops.push(name);
      return fn(store);
    },
    closed: () => closed,
    log: silentLogger,
  });
  return { n, ops, close: () => closed = true };
}

Deno.test("TakeoverNotices.send writes the fence to the previous owner", async () => {
  await using store = new FlakyStore({ clock: new FakeClock() });
  const { n, ops } = notices(store);
  await n.send("b", { id: "s", epoch: 3 });
  assertEquals(ops, ["fence"]);
  assertEquals(n.unsent, 0);
  assertEquals(await store.drainFences("b"), [{ id: "s", epoch: 3 }]);
});

Deno.test("TakeoverNotices: a notice whose write failed is written by retry() once the store is back", async () => {
  await using store = new FlakyStore({ clock: new FakeClock() });
  const { n } = notices(store);
  store.down = true;
  await n.send("b", { id: "s", epoch: 3 }); // never rejects
  assertEquals(n.unsent, 1);
  await n.retry(); // still down: kept
  assertEquals(n.unsent, 1);
  store.down = false;
  await n.retry();
  assertEquals(n.unsent, 0);
  assertEquals(await store.drainFences("b"), [{ id: "s", epoch: 3 }]);
});

Deno.test("TakeoverNotices keeps only the newest unsent notice per owner and session", async () => {
  await using store = new FlakyStore({ clock: new FakeClock() });
  const { n } = notices(store);
  store.down = true;
  await n.send("b", { id: "s", epoch: 5 });
  await n.send("b", { id: "s", epoch: 3 }); // older: does not replace
  await n.send("c", { id: "s", epoch: 4 });
  await n.send("b", { id: "t", epoch: 2 });
  assertEquals(n.unsent, 3);
  store.down = false;
  await n.retry();
  assertEquals(await store.drainFences("b"), [
    { id: "s", epoch: 5 },
    { id: "t", epoch: 2 },
  ]);
  assertEquals(await store.drainFences("c"), [{ id: "s", epoch: 4 }]);
});

Deno.test("TakeoverNotices.retry writes nothing once the session layer is closing", async () => {
  await using store = new FlakyStore({ clock: new FakeClock() });
  const { n, ops, close } = notices(store);
  store.down = true;
  await n.send("b", { id: "s", epoch: 3 });
  store.down = false;
  close();
  ops.length = 0;
  await n.retry();
  assertEquals(ops, []);
  assertEquals(n.unsent, 1);
});
