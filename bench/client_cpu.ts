// deno-lint-ignore-file no-console -- a benchmark script: figures go to stdout.
/**
 * `deno task bench:client`: CPU the real client spends per number and per
 * session, and its memory per session, with the server in a separate process
 * so only client work is counted (`process.cpuUsage()` of this process).
 *
 * ```sh
 * deno task bench:client [--sessions 2000] [--interval 100ms] [--seconds 10] [--ramp 0] [--json]
 * ```
 *
 * This is what bounds a load generator: on a 2-core host the clients of a
 * 100,000-session run need as much CPU as the servers, or more.
 *
 * @module
 */

import process from "node:process";
import { runClient } from "../client/client.ts";
import { benchServer, benchSettings } from "./_setup.ts";

const { sessions, interval, intervalMs, seconds, rampMs, count, json } =
  benchSettings(Deno.args);
const { port, server } = await benchServer(interval);

const cpuMs = (c: { user: number; system: number }) =>
  (c.user + c.system) / 1000;
try {
  const rss0 = process.memoryUsage().rss;
  const all0 = process.cpuUsage();
  let numbers = 0;
  const running = [];
  // Sessions start spread over one interval, as they would in steady state.
  for (let i = 0; i < sessions; i++) {
    running.push(runClient({ port, count, onNumber: () => numbers++ }));
    if (i % 100 === 99) {
      await new Promise((r) =>
        setTimeout(r, Math.max(1, (rampMs * 100) / sessions))
      );
    }
  }
  await new Promise((r) => setTimeout(r, 2000));
  const a = process.cpuUsage(), n0 = numbers, t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const b = process.cpuUsage(a), n1 = numbers, t1 = performance.now();
  const rss = process.memoryUsage().rss;
  const results = await Promise.all(running);
  const all = process.cpuUsage(all0);
  const failed = results.filter((r) => r.result !== "PASS").length;
  const perNumber = (cpuMs(b) * 1000) / (n1 - n0);
  const out = {
    sessions,
    intervalMs,
    count,
    failed,
    numbersPerSecond: Math.round(((n1 - n0) * 1000) / (t1 - t0)),
    steadyCpuPct: +((100 * cpuMs(b)) / (t1 - t0)).toFixed(1),
    usPerNumber: +perNumber.toFixed(1),
    userPct: Math.round((100 * b.user) / (b.user + b.system)),
    usPerSessionOverhead: Math.round(
      (cpuMs(all) * 1000 - perNumber * numbers) / sessions,
    ),
    /** All of this process's CPU from the first connect to the last result, per session, its `count` numbers included: an upper bound that does not lean on the per-number estimate. */
    usPerSessionAllIn: Math.round((cpuMs(all) * 1000) / sessions),
    rssKiBPerSession: Math.round((rss - rss0) / 1024 / sessions),
    coresAt100kPerSecond: +((perNumber * 100_000) / 1e6).toFixed(2),
  };
  if (json) console.log(JSON.stringify(out));
  else {
    console.log(
      `${sessions} sessions at ${intervalMs} ms: ${out.numbersPerSecond} numbers/s, ${failed} failed`,
    );
    console.log(
      `client CPU ${out.steadyCpuPct}% of a core → ${out.usPerNumber} µs per number (${out.userPct}% user)`,
    );
    console.log(
      `per-session overhead (connect … done) ≈ ${out.usPerSessionOverhead} µs; ${out.rssKiBPerSession} KiB RSS per session`,
    );
    console.log(
      `all-in per session (its ${count} numbers included) ${out.usPerSessionAllIn} µs: the overhead's upper bound`,
    );
    console.log(
      `→ ${out.coresAt100kPerSecond} cores for 100,000 sessions at 1 s`,
    );
  }
} finally {
  await server.stop();
}
