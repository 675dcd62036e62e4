// deno-lint-ignore-file no-console -- a benchmark script: figures go to stdout.
/**
 * `deno task bench:resume`: time from a cut (`proxy.cutAll()`) to the first
 * number of the resumed stream, through the real client, the fault proxy and
 * an in-process server.
 *
 * ```sh
 * deno task bench:resume [--cuts 25] [--interval 200ms] [--json]
 * ```
 *
 * Four series: FIN and RST cuts, each with the first backoff step forced to 0
 * (isolates detection + reconnect + resume) and with the client's default
 * backoff (first step uniform in [0, 100) ms; its drawn value is recorded and
 * reported, so "minus backoff" is the same quantity as the first series).
 * Target: cut → first number < 100 ms + the first backoff step.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { exponentialBackoff } from "../client/backoff.ts";
import { connect } from "../client/client.ts";
import { LineLogger } from "../common/logger.ts";
import { parseDuration } from "../cli/duration.ts";
import { startProxy } from "../proxy/fault_proxy.ts";
import { startServer } from "../server/server.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    cuts: { type: "string", default: "25" },
    interval: { type: "string", default: "200ms" },
    json: { type: "boolean", default: false },
  },
});
const cuts = Number(values.cuts);
const intervalMs = parseDuration(values.interval);

interface Series {
  name: string;
  /** cut → resumed welcome (ms) */
  welcome: number[];
  /** cut → first resumed number (ms) */
  number: number[];
  /** first backoff step drawn (ms) */
  backoff: number[];
}

/** A promise for the next call of a callback. */
function nextCall(): { wait: () => Promise<number>; fire: () => void } {
  let waiter: ((t: number) => void) | undefined;
  return {
    wait: () => new Promise((r) => waiter = r),
    fire: () => {
      const w = waiter;
      waiter = undefined;
      w?.(performance.now());
    },
  };
}

async function series(
  name: string,
  reset: boolean,
  zeroFirst: boolean,
): Promise<Series> {
  const out: Series = { name, welcome: [], number: [], backoff: [] };
  await using server = await startServer({
    intervalMs,
    log: new LineLogger({ level: "silent" }),
  });
  await using proxy = await startProxy({
    upstreams: [{ hostname: "127.0.0.1", port: server.addr.port }],
  });
  const defaultBackoff = exponentialBackoff();
  let drawn = 0;
  const num = nextCall(), welcomed = nextCall();
  await using client = connect({
    port: proxy.port,
    count: 65535,
    backoff: (attempt) =>
      drawn = zeroFirst && attempt === 0 ? 0 : defaultBackoff(attempt),
    onNumber: num.fire,
    onEvent: (e) => {
      if (e.type === "streaming") welcomed.fire();
    },
  });
  await num.wait();
  for (let i = 0; i < cuts; i++) {
    await num.wait();
    await new Promise((r) => setTimeout(r, Math.min(50, intervalMs / 4)));
    const w = welcomed.wait(), n = num.wait();
    const t0 = performance.now();
    await proxy.cutAll({ reset });
    out.welcome.push((await w) - t0);
    out.number.push((await n) - t0);
    out.backoff.push(drawn);
  }
  await client.close();
  return out;
}

const q = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return +s[Math.min(s.length - 1, Math.floor(p * s.length))]!.toFixed(1);
};
const summary = (s: Series) => {
  const minus = s.number.map((x, i) => x - s.backoff[i]!);
  return {
    name: s.name,
    cuts: s.number.length,
    toWelcomeMs: {
      median: q(s.welcome, 0.5),
      p90: q(s.welcome, 0.9),
      max: q(s.welcome, 1),
    },
    toFirstNumberMs: {
      median: q(s.number, 0.5),
      p90: q(s.number, 0.9),
      max: q(s.number, 1),
    },
    firstBackoffMs: { median: q(s.backoff, 0.5), max: q(s.backoff, 1) },
    minusBackoffMs: {
      median: q(minus, 0.5),
      p90: q(minus, 0.9),
      max: q(minus, 1),
    },
    pass: minus.every((x) => x < 100),
  };
};

const results = [];
for (
  const [name, reset, zero] of [
    ["FIN cut, first backoff 0", false, true],
    ["RST cut, first backoff 0", true, true],
    ["FIN cut, default backoff", false, false],
    ["RST cut, default backoff", true, false],
  ] as const
) {
  results.push(summary(await series(name, reset, zero)));
}
if (values.json) console.log(JSON.stringify({ intervalMs, cuts, results }));
else {
  console.log(
    `resume after a proxy cut: ${cuts} cuts per series, interval ${intervalMs} ms`,
  );
  for (const r of results) {
    console.log(
      `${
        r.name.padEnd(26)
      } cut→welcome med ${r.toWelcomeMs.median} p90 ${r.toWelcomeMs.p90} max ${r.toWelcomeMs.max} ms | ` +
        `cut→number med ${r.toFirstNumberMs.median} p90 ${r.toFirstNumberMs.p90} max ${r.toFirstNumberMs.max} ms | ` +
        `backoff med ${r.firstBackoffMs.median} max ${r.firstBackoffMs.max} | minus backoff max ${r.minusBackoffMs.max} ms → ${
          r.pass ? "PASS" : "MISS"
        } (< 100 ms + backoff)`,
    );
  }
}
