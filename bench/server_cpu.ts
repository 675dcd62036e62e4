// deno-lint-ignore-file no-console -- a benchmark script: figures go to stdout.
/**
 * `deno task bench:server`: CPU a real server process spends per number while
 * streaming, measured from `/proc/PID/stat` over a steady window, with a
 * lightweight protocol driver (not the full client) so the driver does not
 * starve the server on a small host. The per-session work (hello, final
 * checksum, ack) is measured separately from the per-number work. The
 * driver speaks protocol v2 and acknowledges as the real client does (one
 * ACK per quarter window; a keep-alive only after `ackIntervalMs` without
 * one), so its ACKs are what the server handles per number in real use.
 *
 * ```sh
 * deno task bench:server [--sessions 2000] [--interval 100ms] [--seconds 10] [--ramp 0] [--json]
 *   [--cpu-prof DIR] [--server-v8-flags=--max-semi-space-size=1]
 * ```
 *
 * Needs `-A`: Deno reads `/proc` only with all permissions.
 *
 * @module
 */

import { benchServer, benchSettings } from "./_setup.ts";
import { denoSession } from "./_deno_driver.ts";
import { readProc } from "../load/_proc.ts";
import { cpuUsage } from "node:process";

const {
  sessions,
  interval,
  intervalMs,
  seconds,
  rampMs,
  count,
  json,
  cpuProf,
  serverV8Flags,
} = benchSettings(Deno.args);
const { port, server } = await benchServer(interval, {
  cpuProf,
  v8Flags: serverV8Flags,
});

/** ACKs and keep-alives the sessions sent. */
const counts = { acks: 0, keepAlives: 0 };

/** One session of the Deno driver (`_deno_driver.ts`), to its DONE. */
async function session(onNumber: () => void): Promise<void> {
  const end = await denoSession({ port, count, counts, onNumber });
  if (end === "closed") throw new Error("server closed early");
  if (end === "refused") throw new Error("server refused a session");
}

try {
  await new Promise((r) => setTimeout(r, 500));
  const idle0 = (await readProc(server.pid))!;
  let numbers = 0;
  // Sessions start spread over one interval, as they would in steady state.
  const running: Promise<void>[] = [];
  const setup0 = (await readProc(server.pid))!;
  for (let i = 0; i < sessions; i++) {
    running.push(session(() => numbers++));
    if (i % 100 === 99) {
      await new Promise((r) =>
        setTimeout(r, Math.max(1, (rampMs * 100) / sessions))
      );
    }
  }
  await new Promise((r) => setTimeout(r, 2000));
  const a = (await readProc(server.pid))!,
    da = cpuUsage(),
    n0 = numbers,
    k0 = counts.acks,
    q0 = counts.keepAlives,
    t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const b = (await readProc(server.pid))!,
    db = cpuUsage(da),
    n1 = numbers,
    k1 = counts.acks,
    q1 = counts.keepAlives,
    t1 = performance.now();
  await Promise.all(running);
  const end = (await readProc(server.pid))!;
  const steadyUs = (b.cpuS - a.cpuS) * 1e6;
  const perNumber = steadyUs / (n1 - n0);
  const totalUs = (end.cpuS - setup0.cpuS) * 1e6;
  const out = {
    sessions,
    intervalMs,
    count,
    numbersPerSecond: Math.round(((n1 - n0) * 1000) / (t1 - t0)),
    steadyCpuPct: +((100 * (b.cpuS - a.cpuS)) / ((t1 - t0) / 1000)).toFixed(1),
    usPerNumber: +perNumber.toFixed(1),
    usPerSessionOverhead: +((totalUs - perNumber * numbers) / sessions).toFixed(
      0,
    ),
    rssMiB: +b.rssMiB.toFixed(1),
    rssKiBPerSession: Math.round(((b.rssMiB - idle0.rssMiB) * 1024) / sessions),
    /** ACKs the driver sent per number in the steady window (server work per number includes them). */
    acksPerNumber: +((k1 - k0) / (n1 - n0)).toFixed(3),
    /** Of those, keep-alives (no ACK for `ackIntervalMs`). */
    keepAlivesPerNumber: +((q1 - q0) / (n1 - n0)).toFixed(3),
    projected19kAt1sPct: +((perNumber * 19_000) / 1e4).toFixed(1),
    /** This driver's own CPU per number in the window (it runs on the server's cores). */
    driverUsPerNumber: +((db.user + db.system) / (n1 - n0)).toFixed(1),
  };
  if (json) console.log(JSON.stringify(out));
  else {
    console.log(
      `${sessions} sessions at ${intervalMs} ms: ${out.numbersPerSecond} numbers/s, ${out.acksPerNumber} ACKs per number (${out.keepAlivesPerNumber} keep-alives)`,
    );
    console.log(
      `server CPU ${out.steadyCpuPct}% of a core → ${out.usPerNumber} µs per number (/proc, steady ${seconds} s); this driver ${out.driverUsPerNumber} µs per number`,
    );
    console.log(
      `per-session overhead (hello … done) ≈ ${out.usPerSessionOverhead} µs; RSS ${out.rssMiB} MiB, ${out.rssKiBPerSession} KiB per session`,
    );
    console.log(
      `projected: 19,000 sessions at 1 s ≈ ${out.projected19kAt1sPct}% of a core`,
    );
  }
} finally {
  await server.stop();
}
