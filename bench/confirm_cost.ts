/**
 * `deno task bench:confirm`: what confirmation costs one handshake on a
 * quiet Sentinel group (1 primary, 2 replicas, on this host): sessions
 * opened one after the other (HELLO → WELCOME, then a cut: the detach is
 * confirmed too), with `?replicas=0` and with the default `replicas=1`,
 * interleaved in rounds. Prints the HELLO → WELCOME latency (p50, p99),
 * the server process's CPU per session (server and client share the
 * process: the difference between the modes is the server's), and the
 * primary's CPU per session.
 *
 *   deno task bench:confirm [--sessions N] [--rounds R] [--complete]
 *
 * `--complete`: each session is run to its end instead of cut (one number,
 * then ACK(1) → DONE, whose completion tombstone is confirmed too), and
 * the ACK → DONE latency is printed as well.
 *
 * @module
 */

import { cpuUsage } from "node:process";
import { parseArgs } from "node:util";
import { silentLogger } from "../common/logger.ts";
import { startServer } from "../server/server.ts";
import { RedisStore } from "../store/redis.ts";
import { ack, hello, rawConnect } from "../tests/_raw.ts";
import { redisInfo, startSentinelGroup } from "../tests/_redis.ts";

const { values: f } = parseArgs({
  options: {
    sessions: { type: "string", default: "500" },
    rounds: { type: "string", default: "3" },
    complete: { type: "boolean", default: false },
  },
});
const complete = f.complete!;
const n = Number(f.sessions), rounds = Number(f.rounds);

await using g = await startSentinelGroup();
const primary = await g.primaryPort();
const primaryCpu = async () => {
  const i = await redisInfo(primary, "cpu");
  return Number(i.get("used_cpu_sys")) + Number(i.get("used_cpu_user"));
};

type Mode = "off" | "on";
const lat: Record<Mode, number[]> = { off: [], on: [] };
const done: Record<Mode, number[]> = { off: [], on: [] };
const cpu: Record<Mode, number> = { off: 0, on: 0 };
const redisCpu: Record<Mode, number> = { off: 0, on: 0 };

for (let round = 0; round < rounds; round++) {
  for (const mode of ["off", "on"] as Mode[]) {
    const spec = mode === "off" ? `${g.spec}?replicas=0` : g.spec;
    await using server = await startServer({
      port: 0,
      store: await RedisStore.connect(spec),
      ownStore: true,
      log: silentLogger,
      ttlMs: 60_000,
    });
    const c0 = cpuUsage(), r0 = await primaryCpu();
    for (let i = 0; i < n; i++) {
      const p = await rawConnect(server.addr.port, { autoAck: false });
      const t = performance.now();
      const count = complete ? 1 : 1000;
      await p.send(hello(crypto.randomUUID(), count, new Uint8Array(16)));
      await p.until("welcome");
      lat[mode].push(performance.now() - t);
      if (complete) {
        await p.until("final");
        const t2 = performance.now();
        await p.send(ack(count));
        await p.until("done");
        done[mode].push(performance.now() - t2);
      }
      p.close();
    }
    const c1 = cpuUsage(c0);
    cpu[mode] += (c1.user + c1.system) / 1000;
    redisCpu[mode] += (await primaryCpu()) - r0;
  }
}

const pct = (a: number[], p: number) => {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const out = (s: string) =>
  Deno.stdout.writeSync(new TextEncoder().encode(s + "\n"));
out(
  `${n} sessions × ${rounds} rounds per mode, one at a time, ${
    complete ? "each completed" : "each cut after its WELCOME"
  }`,
);
out(
  `| confirm | HELLO → WELCOME p50 | p99 |${
    complete ? " ACK → DONE p50 | p99 |" : ""
  } server+client CPU per session | primary CPU per session |`,
);
out(`|---|---|---|${complete ? "---|---|" : ""}---|---|`);
for (const mode of ["off", "on"] as Mode[]) {
  const total = n * rounds;
  out(
    `| ${mode} | ${pct(lat[mode], 50).toFixed(2)} ms | ${
      pct(lat[mode], 99).toFixed(2)
    } ms |${
      complete
        ? ` ${pct(done[mode], 50).toFixed(2)} ms | ${
          pct(done[mode], 99).toFixed(2)
        } ms |`
        : ""
    } ${(cpu[mode] / total).toFixed(3)} ms | ${
      (redisCpu[mode] * 1000 / total).toFixed(3)
    } ms |`,
  );
}
