import { assert_, assertEquals } from "../tests/_assert.ts";
import type { ClientResult } from "../client/types.ts";
import {
  clientEventLine,
  formatHumanDuration,
  formatInterval,
  formatResult,
  formatRunLength,
  unreachableHint,
} from "./client_output.ts";

Deno.test("formatRunLength announces the count, the interval and the time it takes", () => {
  const cases: [number, number, number, string][] = [
    [63842, 63842, 1000, "63,842 numbers at 1 s: about 17 h 44 min"],
    [65535, 65535, 1000, "65,535 numbers at 1 s: about 18 h 12 min"],
    [377, 900, 1000, "377 of 900 numbers left at 1 s: about 6 min 17 s"],
    [5, 5, 100, "5 numbers at 100 ms: about 500 ms"],
    [1, 1, 1000, "1 number at 1 s: about 1 s"],
    [300, 300, 40, "300 numbers at 40 ms: about 12 s"],
    [900, 900, 1000, "900 numbers at 1 s: about 15 min"],
    [7200, 7200, 1500, "7,200 numbers at 1.5 s: about 3 h"],
    [65535, 65535, 3_600_000, "65,535 numbers at 1 h: about 2730 d 15 h"],
    [1000, 1000, 0, "1,000 numbers, as fast as the server's window allows"],
  ];
  for (const [left, total, interval, want] of cases) {
    assertEquals(formatRunLength(left, total, interval), want);
  }
});

Deno.test("formatHumanDuration and formatInterval round to what matters at each size", () => {
  const d: [number, string][] = [
    [0, "0 ms"],
    [250, "250 ms"],
    [4_500, "4.5 s"],
    [59_600, "1 min"],
    [60_000, "1 min"],
    [3_599_000, "59 min 59 s"],
    [3_599_700, "1 h"],
    [86_399_000, "1 d"],
    [90_000_000, "1 d 1 h"],
  ];
  for (const [ms, want] of d) {
    assertEquals(formatHumanDuration(ms), want, `${ms}`);
  }
  const i: [number, string][] = [
    [1, "1 ms"],
    [999, "999 ms"],
    [1000, "1 s"],
    [1250, "1.25 s"],
    [120_000, "2 min"],
    [3_600_000, "1 h"],
  ];
  for (const [ms, want] of i) assertEquals(formatInterval(ms), want, `${ms}`);
});

Deno.test("clientEventLine: before the first welcome a failure is 'cannot connect', after it 'disconnected; will resume'; retryIn has its unit", () => {
  const e = {
    type: "disconnected",
    error: "Cannot connect to 127.0.0.1:1: connection refused",
    retryInMs: 301.4,
  } as const;
  assertEquals(clientEventLine(e, false), {
    message: "cannot connect; will retry",
    fields: { error: e.error, retryIn: "301ms" },
  });
  assertEquals(clientEventLine(e, true)?.message, "disconnected; will resume");
  assertEquals(
    clientEventLine(
      { type: "streaming", nextOffset: 5, count: 9, resumed: true },
      true,
    ),
    { message: "resumed", fields: { offset: 5, count: 9 } },
  );
  assertEquals(
    clientEventLine({ type: "connecting", attempt: 0 }, false),
    undefined,
  );
});

const base: ClientResult = {
  result: "PASS",
  id: "3f1c2a9e-5b7d-4c1e-9a2b-6d8e4f1a7c3b",
  count: 10,
  sum: 21632054018,
  checksum: "5f0e2c71",
  serverChecksum: "5f0e2c71",
  serverSum: 21632054018,
  reconnects: 1,
};
const facts = { received: 10, host: "127.0.0.1", port: 8080 };

Deno.test("formatResult: PASS shows the sums; ERROR only what is known (how far, why, a hint), no sum or checksum", () => {
  assertEquals(
    formatResult(base, facts),
    [
      "PASS  session 3f1c2a9e-5b7d-4c1e-9a2b-6d8e4f1a7c3b, 10 numbers, 1 reconnect",
      "sum              21632054018",
      "checksum         5f0e2c71",
      "server checksum  5f0e2c71",
    ].join("\n"),
  );
  const err: ClientResult = {
    ...base,
    result: "ERROR",
    sum: 0,
    checksum: "00000000",
    serverChecksum: null,
    serverSum: null,
    reconnects: 0,
    error: {
      code: "unreachable",
      message: "Cannot connect to 127.0.0.1:8080: connection refused",
    },
  };
  const text = formatResult(err, { ...facts, received: 0 });
  assert_(!/\bsum\b|checksum|00000000/.test(text), text);
  assertEquals(text.split("\n").slice(1), [
    "received         0 of 10",
    "error            unreachable: Cannot connect to 127.0.0.1:8080: connection refused",
    "hint             --host 127.0.0.1 --port 8080: nothing listens there; is the server running on that port?",
  ]);
  const expired = formatResult({
    ...err,
    error: { code: "session_expired", message: "expired" },
  }, { ...facts, received: 4 });
  assertEquals(expired.split("\n").slice(1), [
    "received         4 of 10",
    "error            session_expired: expired",
  ]);
});

Deno.test("unreachableHint says which flag and why for each runtime failure", () => {
  const h = (m: string) => unreachableHint(m, "h.example", 8080);
  assert_(
    h("failed to lookup address information: Name or service not known")
      ?.startsWith("--host h.example: the name does not resolve"),
  );
  assert_(
    h("Cannot assign requested address (os error 99)")?.startsWith(
      "--host h.example: this machine cannot connect",
    ),
  );
  assert_(
    h("Network is unreachable (os error 101)")?.startsWith(
      "--host h.example: no route",
    ),
  );
  assert_(h("Invalid argument (os error 22)")?.includes("link-local"));
  assert_(
    h("Connect to h.example:8080 timed out")?.startsWith(
      "--host h.example --port 8080: no answer",
    ),
  );
  assertEquals(h("something else"), undefined);
});
