import { assertEquals } from "../tests/_assert.ts";
import { type CheckBounds, Checker, refusalAllowed } from "./checker.ts";

function checker(bounds: Partial<CheckBounds> = {}) {
  let t = 0;
  const c = new Checker(() => t, {
    ttlMs: 5000,
    fenceMs: 1000,
    slackMs: 3000,
    storeSlackMs: 900,
    ...bounds,
  });
  return { c, at: (ms: number) => (t = ms) };
}
const names = (c: Checker) => c.violations.map((v) => v.invariant);

Deno.test("Checker one-streamer: an older connection may send within the fencing bound, not after", () => {
  const { c, at } = checker();
  const old = c.opened("s"), young = c.opened("s");
  at(0);
  c.numberSent(old);
  at(100);
  c.numberSent(young); // the takeover
  at(1100);
  c.numberSent(old); // within 1000 ms of it
  assertEquals(names(c), []);
  at(1101);
  c.numberSent(old);
  assertEquals(names(c), ["one-streamer"]);
});

Deno.test("Checker one-streamer: a store outage within the bound counts it again from the outage's end", () => {
  // Seed 160799425: the old server's heartbeats could not drain the notice
  // while the store was out.
  const { c, at } = checker({ fenceAfterOutageMs: 1500 });
  const old = c.opened("s"), young = c.opened("s");
  c.numberSent(old);
  at(100);
  c.numberSent(young); // the takeover: bound 1100 without outages
  c.storeOutage(600, 2000);
  c.storeOutage(1900, 3000); // began within the extended bound: chains
  c.storeOutage(5000, 6000); // began after it ran out: no effect
  at(4500);
  c.numberSent(old); // 3000 + 1500
  assertEquals(names(c), []);
  at(4501);
  c.numberSent(old);
  assertEquals(names(c), ["one-streamer"]);
  assertEquals(
    c.violations[0]!.detail,
    "connection 1 sent a number 4401 ms after a newer connection of its session started streaming (bound 4400 ms)",
  );
});

Deno.test("Checker one-streamer: an outage that ended before the takeover changes nothing", () => {
  const { c, at } = checker();
  const old = c.opened("s"), young = c.opened("s");
  c.storeOutage(0, 100);
  at(200);
  c.numberSent(old);
  c.numberSent(young);
  at(1201);
  c.numberSent(old);
  assertEquals(names(c), ["one-streamer"]);
});

Deno.test("Checker ttl: a RESUME welcomed more than TTL + slack after the last close fails; a HELLO starts anew", () => {
  const { c, at } = checker();
  const first = c.opened("s");
  c.welcomed(first);
  at(1000);
  c.closed(first);
  at(1000 + 8000);
  const hello = c.opened("s");
  c.welcomed(hello); // a new session under the same id: allowed
  assertEquals(names(c), []);
  c.closed(hello);
  at(9000 + 8001);
  const resume = c.opened("s");
  resume.resume = true;
  c.welcomed(resume);
  assertEquals(names(c), ["ttl"]);
});

Deno.test("Checker ttl in store time: an attach past the deadline counts only when a RESUME's WELCOME follows", () => {
  const { c } = checker();
  const rec = {
    id: "s",
    seed: "",
    count: 1,
    token: "",
    epoch: 1,
    owner: "",
    status: "live" as const,
    expiresAt: 10_000,
    retainUntil: 0,
  };
  c.storeWrite(rec, { ...rec, owner: "a", epoch: 2 }, 10_901);
  const hello = c.opened("s");
  c.welcomed(hello);
  assertEquals(names(c), []);
  c.storeWrite(rec, { ...rec, owner: "a", epoch: 2 }, 10_901);
  const resume = c.opened("s");
  resume.resume = true;
  c.welcomed(resume);
  assertEquals(names(c), ["ttl"]);
  c.storeWrite(rec, { ...rec, status: "completed", epoch: 2 }, 10_899);
  assertEquals(names(c), ["ttl"], "within the store slack");
  c.storeWrite(rec, { ...rec, status: "completed", epoch: 2 }, 10_901);
  assertEquals(names(c), ["ttl", "ttl"]);
});

Deno.test("Checker exactly-once: a second DONE fails", () => {
  const { c } = checker();
  c.done("s");
  assertEquals(names(c), []);
  c.done("s");
  assertEquals(names(c), ["exactly-once"]);
});

const bounds = { faultMs: 20_000, ttlMs: 3000, leaseMs: 3000, intervalMs: 250 };
const refusal = {
  code: "session_expired",
  message: 'Cannot resume session "s": it expired 17s ago',
  endedAt: 0,
  count: 117,
  welcomed: true,
  damaged: false,
  ownerLapsed: false,
  longestAbsence: 0,
  unattachedFor: 0,
  slowLinkUntil: 0,
  misordered: false,
};

Deno.test("refusalAllowed: a damaged session may end in a refusal once its own stream is over, not later (simulator seeds 591850131, 591850134)", () => {
  // Faults end at 20 s; 117 numbers at 250 ms: its stream may run to 49.25 s.
  const limit = 20_000 + 117 * 250 + 3000 + 2 * 3000 + 10_000;
  const at = (endedAt: number, damaged: boolean) =>
    refusalAllowed({ ...refusal, endedAt, damaged }, bounds);
  assertEquals(
    [at(39_157, true), at(limit, true), at(limit + 1, true), at(39_157, false)],
    [true, true, false, false],
  );
});

Deno.test("refusalAllowed: session_expired needs the session away for a TTL (less a third of a lease), or its owner presumed dead", () => {
  const at = (f: Partial<typeof refusal>) =>
    refusalAllowed({ ...refusal, endedAt: 60_000, ...f }, bounds);
  assertEquals(
    [
      at({}),
      at({ unattachedFor: 1899 }),
      at({ unattachedFor: 1900 }),
      at({ longestAbsence: 2000 }),
      at({ ownerLapsed: true }),
      at({ code: "taken_over", ownerLapsed: true }),
    ],
    [false, false, true, true, true, false],
  );
});

Deno.test("Checker.presumedDead: the owner's lease lapsed for a TTL at some point between the attach and the tombstone, and the attach was made on a running lease (simulator seeds 591851269, 591850050)", () => {
  const { c } = checker(); // TTL 5000
  const renew = (at: number) =>
    c.leaseHeld("a", { renewedAt: at, until: at + 3000 }, at);
  for (const at of [0, 1000, 2000, 9000]) renew(at);
  // Lapsed for a TTL from 7000 (renewed at 2000) until it renewed at 9000:
  // a judge that read the lease then and wrote after 9000 was honest.
  assertEquals(
    [
      c.presumedDead("a", 1500, 6999),
      c.presumedDead("a", 1500, 7000),
      c.presumedDead("a", 1500, 9500),
      c.presumedDead("a", undefined, 9500),
    ],
    [false, true, true, true],
  );
  // Attached at 6000, on a lease that ended at 5000: never covered by it.
  assertEquals(c.presumedDead("a", 6000, 9500), false);
  // A failover brought back an older lease (renewed at 0) at 9100.
  c.leaseHeld("a", { renewedAt: 0, until: 3000 }, 9100);
  assertEquals(
    c.presumedDead("a", 8000, 9100),
    false,
    "attached on a lapsed lease",
  );
  assertEquals(c.presumedDead("a", 9050, 9200), true);
  // An owner the store holds no lease for (never renewed, or collected).
  assertEquals(c.presumedDead("b", 100, 200), true);
  c.leaseHeld("c", { renewedAt: 0, until: 3000 }, 0);
  c.leaseHeld("c", null, 1000);
  assertEquals(c.presumedDead("c", 500, 1000), true);
});

Deno.test("Checker.leaseLost: a lease a failover took, not one never written", () => {
  const { c } = checker();
  assertEquals(c.leaseLost("a"), false, "never renewed");
  c.leaseHeld("a", { renewedAt: 0, until: 3000 }, 0);
  assertEquals(c.leaseLost("a"), false, "held");
  c.leaseHeld("a", null, 100); // a failover before the renewal replicated
  assertEquals(c.leaseLost("a"), true);
  c.leaseHeld("a", { renewedAt: 200, until: 3200 }, 200);
  assertEquals(c.leaseLost("a"), false, "written again");
});

Deno.test("refusalAllowed: the client's own give-up within a TTL of the faults' end, or of the end of a slow link made while they ran (simulator seeds 416395916, 416396034)", () => {
  const gaveUp = (endedAt: number, slowLinkUntil: number) =>
    refusalAllowed({
      ...refusal,
      message: "No stream progress for 3962ms, longer than the session TTL",
      endedAt,
      slowLinkUntil,
    }, bounds);
  assertEquals(
    [
      gaveUp(23_000, 0),
      gaveUp(23_001, 0),
      gaveUp(26_036, 26_570),
      gaveUp(26_036, Infinity),
      gaveUp(29_571, 26_570),
    ],
    [true, false, true, true, false],
  );
});

Deno.test("Checker numbers: a number accepted beyond count or out of order fails; a restarted run is judged from its saved offset", () => {
  const { c } = checker();
  c.runStarts("s", 0);
  for (let o = 0; o < 3; o++) c.accepted("s", o, 7, 7, 3);
  assertEquals(names(c), []);
  c.accepted("s", 3, 7, 7, 3); // a NUMBER at offset count after FINAL
  assertEquals(
    c.violations.at(-1)?.detail,
    "accepted a number at offset 3, beyond the session's count 3",
  );
  c.runStarts("t", 5); // restarted from a state saved at 5
  c.accepted("t", 5, 7, 7, 10);
  c.accepted("t", 7, 7, 7, 10); // offset 6 skipped
  c.accepted("t", 8, 7, 7, 10);
  c.accepted("t", 8, 7, 7, 10); // repeated
  assertEquals(names(c), ["numbers", "numbers", "numbers"]);
  assertEquals(c.violations.slice(1).map((v) => v.detail), [
    "accepted offset 7 where offset 6 was due",
    "accepted offset 8 where offset 9 was due",
  ]);
});

Deno.test("Checker numbers: a value a byzantine server changed may be accepted and taints the run; any other wrong value fails", () => {
  const { c } = checker();
  c.runStarts("s", 0);
  c.corrupted("s", "value", 1);
  c.accepted("s", 0, 7, 7, 5);
  c.accepted("s", 1, 8, 7, 5); // the changed one: the client cannot tell
  assertEquals([names(c), c.taintedAt("s"), c.misordered("s")], [[], 1, false]);
  c.accepted("s", 2, 8, 7, 5);
  assertEquals(names(c), ["numbers"], "a wrong value the fault did not make");
  c.runStarts("s", 2); // restarted from a state that holds offset 1
  assertEquals(c.taintedAt("s"), 1);
  c.runStarts("s", 0); // from one saved before it: offset 1 comes again
  assertEquals(c.taintedAt("s"), undefined);
  c.corrupted("s", "after-final", 5);
  assertEquals(c.misordered("s"), true);
});

Deno.test("refusalAllowed: protocol_violation only once a byzantine server sent the client a frame out of order or beyond count", () => {
  const at = (misordered: boolean, code = "protocol_violation") =>
    refusalAllowed({ ...refusal, code, endedAt: 60_000, misordered }, bounds);
  assertEquals([at(true), at(false), at(true, "bad_token")], [
    true,
    false,
    false,
  ]);
});
