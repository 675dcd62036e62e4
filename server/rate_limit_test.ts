import { assert_, assertEquals, assertThrows } from "../tests/_assert.ts";
import { FakeClock } from "../common/fake_clock.ts";
import { addressKey, RateLimiter } from "./rate_limit.ts";

function clock(): FakeClock {
  return new FakeClock(1_700_000_000_000, 0);
}

Deno.test("RateLimiter allows a burst of ratePerSec, then refuses until tokens refill", async () => {
  const c = clock();
  const limiter = new RateLimiter({ ratePerSec: 5, clock: c });
  const first = Array.from({ length: 7 }, () => limiter.take("a"));
  assertEquals(first, [true, true, true, true, true, false, false]);
  await c.advance(199);
  assertEquals(
    limiter.take("a"),
    false,
    "less than one token refilled after 199ms at 5/s",
  );
  await c.advance(1);
  assertEquals(limiter.take("a"), true, "one token after 200ms at 5/s");
  assertEquals(limiter.take("a"), false);
});

Deno.test("RateLimiter keeps separate buckets per key", () => {
  const c = clock();
  const limiter = new RateLimiter({ ratePerSec: 1, clock: c });
  assertEquals(limiter.take("a"), true);
  assertEquals(limiter.take("a"), false);
  assertEquals(limiter.take("b"), true);
  assertEquals(limiter.take("b"), false);
});

Deno.test("RateLimiter sustains exactly the configured rate over a long run", async () => {
  const c = clock();
  const limiter = new RateLimiter({ ratePerSec: 10, burst: 1, clock: c });
  let allowed = 0;
  for (let i = 0; i < 10_000; i++) {
    if (limiter.take("a")) allowed++;
    await c.advance(1); // 1000 attempts per second for 10s
  }
  assert_(
    allowed >= 100 && allowed <= 101,
    `allowed ${allowed} of 10000 attempts at 10/s for 10s`,
  );
});

Deno.test("RateLimiter forgets idle keys and lets new keys through untracked past maxKeys", async () => {
  const c = clock();
  const limiter = new RateLimiter({ ratePerSec: 1, maxKeys: 2, clock: c });
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
  await c.advance(1000);
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

Deno.test("RateLimiter refills on monotonic time: a wall-clock step neither refills nor drains", async () => {
  const c = clock();
  const limiter = new RateLimiter({ ratePerSec: 1, clock: c });
  assertEquals(limiter.take("a"), true);
  c.set(c.now() + 3_600_000); // an hour forward on the wall
  assertEquals(limiter.take("a"), false);
  c.set(0); // and back
  await c.advance(999);
  assertEquals(limiter.take("a"), false);
  await c.advance(1);
  assertEquals(limiter.take("a"), true);
});
