import { assertEquals } from "../../tests/_assert.ts";
import type { SeriesName } from "./history.ts";
import { evaluateStatus, type StatusInput } from "./status.ts";

/** A history of `seconds` points: every series 0, except those given (newest last). */
function input(
  series: Partial<Record<SeriesName, number[]>>,
  more: Partial<StatusInput> = {},
): StatusInput {
  return {
    recent: (name, n) => {
      const given = series[name] ?? [];
      const a = Array<number>(Math.max(0, 300 - given.length)).fill(0).concat(
        given,
      );
      return a.slice(-n);
    },
    connections: 10,
    maxConnections: 100,
    ...more,
  };
}

const ones = (n: number, v = 1) => Array<number>(n).fill(v);

Deno.test("evaluateStatus: each alert condition, its level and the tile it colours", () => {
  const cases: [string, StatusInput, string, string, string][] = [
    // name, input, level, rule, tile
    [
      "store errors this minute",
      input({ store_errors_per_s: [2, 0, 0] }),
      "crit",
      "store_errors",
      "seqstream_store_errors_total",
    ],
    [
      "store errors 2 minutes ago",
      input({ store_errors_per_s: [3, ...ones(120, 0)] }),
      "warn",
      "store_errors",
      "seqstream_store_errors_total",
    ],
    [
      "store unavailable refusals",
      input({ refused_store_unavailable_per_s: [5] }),
      "crit",
      "store_unavailable",
      "refusals",
    ],
    [
      "slow store",
      input({ store_p99_ms: ones(10, 150) }),
      "warn",
      "store_latency",
      "store_p99_ms",
    ],
    [
      "busy refusals",
      input({ busy_per_s: [1] }),
      "crit",
      "busy",
      "seqstream_connections_rejected_busy_total",
    ],
    [
      "bad token refusals",
      input({ refused_bad_token_per_s: [1] }),
      "warn",
      "refusals",
      "refusals",
    ],
    [
      "slow handshakes",
      input({ welcome_p99_ms: ones(12, 800) }),
      "warn",
      "slow_handshakes",
      "welcome_p99_ms",
    ],
    [
      "lagging loop",
      input({ loop_p99_ms: ones(10, 80) }),
      "warn",
      "loop_lag",
      "loop_p99_ms",
    ],
    [
      "stalled loop",
      input({ loop_p99_ms: ones(10, 400) }),
      "crit",
      "loop_lag",
      "loop_p99_ms",
    ],
    [
      "near --max-connections",
      input({}, { connections: 85 }),
      "warn",
      "capacity",
      "seqstream_connections",
    ],
    [
      "at --max-connections",
      input({}, { connections: 99 }),
      "crit",
      "capacity",
      "seqstream_connections",
    ],
    [
      "fds nearly all open",
      input({}, { openFds: 900, maxFds: 1000 }),
      "warn",
      "fds",
      "process_open_fds",
    ],
    [
      "a slow consumer",
      input({ slow_consumers_per_s: [1] }),
      "warn",
      "slow_consumers",
      "seqstream_slow_consumers_dropped_total",
    ],
    [
      "slow consumers every second",
      input({ slow_consumers_per_s: ones(10) }),
      "crit",
      "slow_consumers",
      "seqstream_slow_consumers_dropped_total",
    ],
    [
      "client timeouts",
      input({ client_timeouts_per_s: [2] }),
      "warn",
      "client_timeouts",
      "seqstream_client_timeouts_total",
    ],
  ];
  for (const [name, inp, level, rule, tile] of cases) {
    const s = evaluateStatus(inp);
    assertEquals(s.level, level, name);
    assertEquals(s.findings.map((f) => [f.rule, f.tile]), [[rule, tile]], name);
  }
});

Deno.test("evaluateStatus: green when quiet, below thresholds, or on a young server", () => {
  const quiet: StatusInput[] = [
    input({}),
    input({ store_p99_ms: ones(9, 150) }), // 9 s of the minute: not sustained
    input({ loop_p99_ms: ones(60, 40) }),
    input({ store_errors_per_s: [1, ...ones(300, 0)] }), // over 5 minutes ago
    input({}, { connections: 79 }),
    input({}, { openFds: 10, maxFds: undefined }),
    { recent: () => [], connections: 0, maxConnections: 100 },
    {
      recent: () => [NaN, NaN],
      connections: 0,
      maxConnections: 100,
    },
  ];
  for (const [i, inp] of quiet.entries()) {
    assertEquals(evaluateStatus(inp), { level: "ok", findings: [] }, `#${i}`);
  }
});

Deno.test("evaluateStatus: the worst finding sets the level and comes first", () => {
  const s = evaluateStatus(
    input({ client_timeouts_per_s: [1], busy_per_s: [3] }, {
      connections: 81,
    }),
  );
  assertEquals(s.level, "crit");
  assertEquals(s.findings.map((f) => [f.rule, f.level]), [
    ["busy", "crit"],
    ["capacity", "warn"],
    ["client_timeouts", "warn"],
  ]);
  assertEquals(
    s.findings[0]!.message,
    "3 connections refused busy in the last minute",
  );
});
