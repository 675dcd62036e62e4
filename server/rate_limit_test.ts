import { assert_, assertEquals, assertThrows } from "../tests/_assert.ts";
import { addressKey, RateLimiter } from "./rate_limit.ts";

function clock() {
  let t = 0;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

Deno.test("RateLimiter allows a burst of ratePerSec, then refuses until tokens refill", () => {
  const c = clock();
  const limiter = new RateLimiter({ ratePerSec: 5, now: c.now });
  const first = Array.from({ length: 7 }, () => limiter.take("a"));
  assertEquals(first, [true, true, true, true, true, false, false]);
  c.advance(199);
  assertEquals(
    limiter.take("a"),
    false,
    "less than one token refilled after 199ms at 5/s",
  );
  c.advance(1);
  assertEquals(limiter.take("a"), true, "one token after 200ms at 5/s");
  assertEquals(limiter.take("a"), false);
});

Deno.test("RateLimiter keeps separate buckets per key", () => {
  const c = clock();
  const limiter = new RateLimiter({ ratePerSec: 1, now: c.now });
  assertEquals(limiter.take("a"), true);
  assertEquals(limiter.take("a"), false);
  assertEquals(limiter.take("b"), true);
  assertEquals(limiter.take("b"), false);
});

Deno.test("RateLimiter sustains exactly the configured rate over a long run", () => {
  const c = clock();
  const limiter = new RateLimiter({ ratePerSec: 10, burst: 1, now: c.now });
  let allowed = 0;
  for (let i = 0; i < 10_000; i++) {
    if (limiter.take("a")) allowed++;
    c.advance(1); // 1000 attempts per second for 10s
  }
  assert_(
    allowed >= 100 && allowed <= 101,
    `allowed ${allowed} of 10000 attempts at 10/s for 10s`,
  );
});

Deno.test("RateLimiter forgets idle keys and lets new keys through untracked past maxKeys", () => {
  const c = clock();
  const limiter = new RateLimiter({ ratePerSec: 1, maxKeys: 2, now: c.now });
  assertEquals([
    limiter.take("a"),
    limiter.take("b"),
    limiter.take("c"),
    limiter.take("c"),
  ], [
    true,
    true,
    true,
    true,
  ]);
  assertEquals(limiter.size, 2, "c was over the key cap and not tracked");
  c.advance(1000);
  assertEquals(limiter.take("d"), true);
  assertEquals(
    limiter.size,
    1,
    "a and b refilled, were swept, and d is tracked",
  );
  assertEquals(limiter.take("d"), false);
});

Deno.test("RateLimiter rejects a rate that is not positive", () => {
  assertThrows(
    () => new RateLimiter({ ratePerSec: 0 }),
    RangeError,
    "positive",
  );
  assertThrows(() => new RateLimiter({ ratePerSec: Number.NaN }), RangeError);
});

Deno.test("addressKey keeps IPv4, maps IPv4-mapped IPv6, and groups IPv6 by /64", () => {
  assertEquals(addressKey("127.0.0.1"), "127.0.0.1");
  assertEquals(addressKey("::ffff:10.0.0.1"), "10.0.0.1");
  assertEquals(addressKey("::1"), "0:0:0:0::/64");
  assertEquals(addressKey("2001:db8::1"), "2001:db8:0:0::/64");
  assertEquals(addressKey("2001:0db8:0000:0000:ffff::2"), "2001:db8:0:0::/64");
  assertEquals(addressKey("[2001:db8:1:2:3:4:5:6]"), "2001:db8:1:2::/64");
  assertEquals(addressKey("fe80::1%eth0"), "fe80:0:0:0::/64");
  assertEquals(addressKey("2001:db8:1:2::"), "2001:db8:1:2::/64");
});
