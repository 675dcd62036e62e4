import { assert, assertEquals } from "../tests/_assert.ts";
import { MAX_TIMER_MS, systemClock } from "./clock.ts";

Deno.test("systemClock.monotonic follows performance.now and never goes back", () => {
  const a = systemClock.monotonic();
  const p = performance.now();
  const b = systemClock.monotonic();
  assert(a <= p && p <= b, `${a} <= ${p} <= ${b}`);
  const w = systemClock.now();
  assert(Math.abs(w - Date.now()) < 1000, "now() is wall time");
});

Deno.test("systemClock.setTimeout fires once after the delay; clearTimeout cancels", async () => {
  const fired: string[] = [];
  const t0 = systemClock.monotonic();
  const cancelled = systemClock.setTimeout(() => fired.push("cancelled"), 0);
  systemClock.clearTimeout(cancelled);
  systemClock.clearTimeout(undefined);
  await new Promise<void>((r) =>
    systemClock.setTimeout(() => {
      fired.push("fired");
      r();
    }, 5)
  );
  assertEquals(fired, ["fired"]);
  assert(systemClock.monotonic() - t0 >= 4, "waited about the delay");
});

Deno.test("systemClock clamps a delay beyond MAX_TIMER_MS instead of firing at once", async () => {
  let fired = false;
  const id = systemClock.setTimeout(() => fired = true, MAX_TIMER_MS * 2, {
    unref: true,
  });
  await new Promise<void>((r) => systemClock.setTimeout(r, 5));
  systemClock.clearTimeout(id);
  assertEquals(fired, false);
});
