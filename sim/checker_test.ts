import { assertEquals } from "../tests/_assert.ts";
import { Checker } from "./checker.ts";

function checker() {
  let t = 0;
  const c = new Checker(() => t, {
    ttlMs: 5000,
    fenceMs: 1000,
    slackMs: 3000,
    storeSlackMs: 900,
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
