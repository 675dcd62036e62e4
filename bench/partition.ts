/**
 * `deno task bench:partition`: the long form of the partition tests
 * (docs/durability.md), each case with confirmation off (`?replicas=0`, the
 * behaviour before it) and on (the default), each run in a network namespace
 * of its own (root, `ip`, `iptables`, redis-server). Prints one Markdown
 * row per run, for BENCHMARKS.md: the ledger (welcomed; lost, expired,
 * resumed late, wrong), the p99 and the last of fault → resumed WELCOME,
 * handshake latency and server CPU per session.
 *
 *   deno task bench:partition [--cases 0,1,2,3] [--modes off,on]
 *     [--rate SESSIONS_PER_S] [--streaming N] [--seconds S] [--interval MS]
 *     [--ttl MS] [--drivers N] [--cut MIN-MAX] [--wave MS]
 *
 * `--drivers N` runs the clients in N load-generator processes, each with
 * its own fault proxy (0, the default: in the scenario process, one proxy);
 * a session costs its driver three file descriptors (client, and the
 * proxy's two), and a process may have 20,000 here. `--cut MIN-MAX` is how
 * long the proxies let a connection live (ms, default 1000-3000): every cut
 * is a resume, so at scale it sets the handshake rate. `--wave MS`: only
 * sessions cut within MS of the fault count in fault → resumed (with cuts
 * longer than a few seconds, later first cuts are the proxies', not the
 * fault's); all by default.
 *
 * Each session streams `streaming / rate` seconds, a number every
 * `--interval` ms (the servers' `--interval`). The issue's load, 1,000
 * sessions created per second with 10,000 streaming:
 *
 *   deno task bench:partition --cases 0,1 --rate 1000 --streaming 10000 \
 *     --seconds 20 --interval 1000 --cut 5000-15000 --wave 2000 --drivers 4
 *
 * (the fault at 10 s, once 10,000 stream). It runs, but a 2-core host
 * cannot carry it: a session costs the servers, the clients and their
 * proxies 6–9 ms of CPU in all, so two cores serve about 250 sessions a
 * second with nothing else running (BENCHMARKS.md has the ladder). The
 * defaults (50/s, 500 streaming, cuts every 1–3 s) are what the shared
 * host carries comfortably.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { runInNetns, type ScenarioSpec } from "../tests/_partition.ts";

const { values: f } = parseArgs({
  options: {
    cases: { type: "string", default: "0,1,2,3" },
    modes: { type: "string", default: "off,on" },
    rate: { type: "string", default: "50" },
    streaming: { type: "string", default: "500" },
    seconds: { type: "string", default: "12" },
    interval: { type: "string", default: "50" },
    ttl: { type: "string", default: "10000" },
    seed: { type: "string", default: "1" },
    drivers: { type: "string", default: "0" },
    cut: { type: "string", default: "1000-3000" },
    wave: { type: "string" },
  },
});
const [cutMin, cutMax] = f.cut!.split("-").map(Number) as [number, number];
if (!(cutMin > 0 && cutMax >= cutMin)) {
  throw new Error(`--cut ${f.cut}: expected MIN-MAX in ms, 0 < MIN <= MAX`);
}
const drivers = Number(f.drivers);

const rate = Number(f.rate), streaming = Number(f.streaming);
const seconds = Number(f.seconds), ttlMs = Number(f.ttl);
const intervalMs = Number(f.interval);
const count = Math.max(
  10,
  Math.round((streaming / rate) * 1000 / intervalMs),
);
const clients = Math.round(rate * seconds);
const out = (s: string) =>
  Deno.stdout.writeSync(new TextEncoder().encode(s + "\n"));

out(
  `partition bench: ${clients} sessions at ${rate}/s over ${seconds} s, ` +
    `${count} numbers each at ${intervalMs} ms (~${streaming} streaming), TTL ${ttlMs} ms, ` +
    `${
      drivers || "1 in-process"
    } driver(s), connections cut after ${cutMin}-${cutMax} ms` +
    (f.wave === undefined
      ? ""
      : `, fault → resumed over the sessions cut within ${f.wave} ms of it`),
);
out(
  "| case | confirm | welcomed | lost | expired | late | wrong | unwelcomed | fault → resumed p99 / max | welcome p50 / p99 | server CPU per session | unconfirmed | unreplicated at the kill | host CPU busy | driver loop lag p99 | driver CPU per session |",
);
out("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
for (const c of f.cases!.split(",").map(Number) as ScenarioSpec["case"][]) {
  for (const mode of f.modes!.split(",")) {
    const spec: ScenarioSpec = {
      case: c,
      confirm: mode === "on",
      clients,
      rampMs: seconds * 1000,
      count,
      intervalMs,
      ttlMs,
      faultAtMs: Math.round(seconds * 1000 / 2),
      lagMs: 300,
      partitionMs: 5000,
      seed: Number(f.seed) + c,
      drivers,
      cutMs: { minMs: cutMin, maxMs: cutMax },
      ...f.wave === undefined ? {} : { killWaveMs: Number(f.wave) },
    };
    try {
      const r = await runInNetns(
        spec,
        (seconds + count * intervalMs / 1000) * 1000 + 4 * ttlMs + 120_000,
      );
      const l = r.worker.ledger;
      const unwelcomed = r.spec.clients - l.welcomed;
      out(
        `| ${c} | ${mode} | ${l.welcomed} | ${l.lost} | ${l.expired} | ${l.late} | ${l.wrong} | ${unwelcomed} | ` +
          `${
            c === 0 ? "-" : `${ms(r.resumeP99Ms)} / ${ms(r.resumeMaxMs)}`
          } | ` +
          `${ms(r.welcomeP50Ms)} / ${ms(r.welcomeP99Ms)} | ${
            r.cpuPerSessionMs.toFixed(1)
          } ms | ${r.unconfirmed} | ${
            c === 1 || c === 3
              ? `${r.unreplicatedBytes} B of ${r.victimKeys} keys`
              : "-"
          } | ${Math.round(r.hostBusy * 100)}% | ${ms(r.driverLoopP99Ms)} | ${
            r.driverCpuPerSessionMs.toFixed(1)
          } ms |`,
      );
      Deno.stderr.writeSync(
        new TextEncoder().encode(
          `case ${c} ${mode}: ${r.events.join("; ")}; errors ${
            JSON.stringify(r.worker.errors)
          }\n`,
        ),
      );
    } catch (e) {
      out(`| ${c} | ${mode} | failed: ${(e as Error).message.slice(0, 200)} |`);
    }
  }
}

function ms(v: number): string {
  return v >= 1000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`;
}
