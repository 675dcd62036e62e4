import { SERVER_DEFAULTS, windowFor } from "../common/defaults.ts";
import { assertEquals, assertThrows } from "../tests/_assert.ts";
import { settingsOf } from "./settings.ts";

Deno.test("settingsOf fills every default from SERVER_DEFAULTS and derives the window", () => {
  const s = settingsOf({});
  assertEquals(s.intervalMs, SERVER_DEFAULTS.intervalMs);
  assertEquals(s.ttlMs, SERVER_DEFAULTS.ttlMs);
  assertEquals(s.maxConnections, SERVER_DEFAULTS.maxConnections);
  assertEquals(
    s.window,
    windowFor(SERVER_DEFAULTS.intervalMs, SERVER_DEFAULTS.clientTimeoutMs),
  );
  assertEquals(settingsOf({ intervalMs: 0, window: 7 }).window, 7);
});

Deno.test("settingsOf rejects a window outside 1..65535 and a duration out of range with RangeError", () => {
  for (const window of [0, 65536, 1.5]) {
    assertThrows(() => settingsOf({ window }), RangeError, "window");
  }
  assertThrows(() => settingsOf({ ttlMs: -1 }), RangeError, "ttlMs");
});
