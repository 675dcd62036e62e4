import { FakeClock } from "../common/fake_clock.ts";
import { silentLogger } from "../common/logger.ts";
import { ErrorCode, ProtocolError } from "../protocol/errors.ts";
import { FlakyStore } from "../store/_flaky.ts";
import {
  type SessionStore,
  StoreUnavailableError,
  StoreUnconfirmedError,
} from "../store/types.ts";
import { assert_, assertEquals, assertRejects } from "../tests/_assert.ts";
import { newCounters } from "./metrics.ts";
import { StoreCalls } from "./store_calls.ts";

function calls(store: SessionStore, clock = new FakeClock()) {
  const counters = newCounters();
  const seen: [string, number][] = [];
  const errors: string[] = [];
  const c = new StoreCalls(store, {
    counters,
    clock,
    log: { ...silentLogger, error: (msg) => errors.push(msg) },
    observe: (op, ms) => seen.push([op, ms]),
  });
  return { c, counters, seen, errors };
}

Deno.test("StoreCalls.op counts every call by label, failed ones included, and times each", async () => {
  const clock = new FakeClock();
  await using store = new FlakyStore({ clock });
  const { c, seen } = calls(store, clock);
  await c.op("get", (s) => s.get("a"));
  await c.op("get", (s) => s.get("b"));
  store.down = true;
  await c.op("lease_check", (s) => s.leaseOf("x")).catch(() => {});
  assertEquals([...c.counts], [["get", 2], ["lease_check", 1]]);
  assertEquals(seen.map(([op]) => op), ["get", "get", "lease_check"]);
});

// [what the store throws, how the message tells it, storeErrors, storeUnconfirmed]
const failures: [string, Error, string, number, number][] = [
  [
    "unavailable",
    new StoreUnavailableError("Store is down"),
    "Store is down",
    1,
    0,
  ],
  ["unconfirmed", new StoreUnconfirmedError("Timed out"), "Timed out", 1, 1],
  ["anything else", new TypeError("boom"), "TypeError: boom", 1, 0],
];
for (const [what, err, told, errorsN, unconfirmedN] of failures) {
  Deno.test(`StoreCalls.op turns a store failure (${what}) into store_unavailable and counts it`, async () => {
    await using store = new FlakyStore();
    const { c, counters } = calls(store);
    const e = await assertRejects(
      () => c.op("get", () => Promise.reject(err)),
      ProtocolError,
      `Session store (flaky) is unavailable: ${told}`,
    );
    assertEquals(e.code, ErrorCode.STORE_UNAVAILABLE);
    assertEquals(e.cause, err);
    assertEquals(counters.storeErrors, errorsN);
    assertEquals(counters.storeUnconfirmed, unconfirmedN);
  });
}

Deno.test("StoreCalls.call passes refusals through and turns anything else into a logged store_unavailable", async () => {
  await using store = new FlakyStore();
  const { c, errors } = calls(store);
  const refusal = new ProtocolError(ErrorCode.BAD_TOKEN, "no");
  assertEquals(
    await c.call(() => Promise.reject(refusal)).catch((e) => e),
    refusal,
  );
  assertEquals(errors, []);
  const e = await assertRejects(
    () => c.call(() => Promise.reject(new RangeError("bug"))),
    ProtocolError,
    "Session store call failed: RangeError: bug",
  );
  assertEquals(e.code, ErrorCode.STORE_UNAVAILABLE);
  assertEquals(errors, ["session call failed"]);
});

Deno.test("StoreCalls.drain waits for every call in flight, including one started while it waits", async () => {
  await using store = new FlakyStore();
  const { c } = calls(store);
  const order: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  void c.track(gate.then(() => {
    order.push("first");
    void c.track(Promise.resolve().then(() => order.push("second")));
  }));
  const drained = c.drain().then(() => order.push("drained"));
  await Promise.resolve();
  assertEquals(order, []);
  release();
  await drained;
  assertEquals(order, ["first", "second", "drained"]);
});

Deno.test("StoreCalls.drain resolves at once with nothing in flight", async () => {
  await using store = new FlakyStore();
  const { c } = calls(store);
  await c.op("get", (s) => s.get("a"));
  let done = false;
  await c.drain().then(() => done = true);
  assert_(done);
});
