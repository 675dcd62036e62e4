/**
 * The partition scenarios of docs/durability.md, run inside a network
 * namespace (see `_netns.ts`: this module starts processes on 127.0.0.1 and
 * adds iptables rules, so it must run in a namespace of its own). Started as
 * `ip netns exec NS deno run -A tests/_partition.ts '<ScenarioSpec JSON>'`
 * by `tests/partition_*_test.ts` (short form) and `bench/partition.ts` (long
 * form); prints one `RESULT {…}` line.
 *
 * Every case runs a Redis topology, two `server.ts` processes (A and B) on
 * it, a fault proxy in front of both that cuts each client connection after
 * 1–3 s (so every promise is tested by resumes on either server), and the
 * load tool's clients with their ledger (`load/worker.ts`):
 *
 * 0. no fault (the cost of confirmation: handshake latency, server CPU);
 * 1. Sentinel: the link from the primary to its replicas drops `lagMs`
 *    before the host of the primary and of server A dies (kill -9 of both):
 *    the primary's last writes never reach a replica;
 * 2. Sentinel: the primary is cut off (iptables) from the sentinels, its
 *    replicas and server B, but not from server A, for `partitionMs` (longer
 *    than the failover), then the partition heals;
 * 3. Cluster: the same cut of replication `lagMs` before the kill -9 of the
 *    primary of the shard that holds the most sessions (server A lives);
 *    once the shard has failed over, the crashed node comes back (as a
 *    replica, as an operator would bring it back).
 *
 * @module
 */

import { startProxy } from "../proxy/fault_proxy.ts";
import { readProc } from "../load/_proc.ts";
import { Histogram } from "../load/histogram.ts";
import { aggregate } from "../load/aggregate.ts";
import {
  runWorker,
  type WorkerResult,
  type WorkerSpec,
} from "../load/worker.ts";
import { scrapePort, type ServerProc, spawnServer } from "./_cluster.ts";
import {
  redisCommand,
  redisInfo,
  type RedisServer,
  startRedisCluster,
  startSentinelGroup,
  until,
} from "./_redis.ts";
import { connectionsOf, createNetns, heal, isolatePort, sh } from "./_netns.ts";

/** What one run does. */
export interface ScenarioSpec {
  case: 0 | 1 | 2 | 3;
  /** Confirmation on (the default of HA specs) or off (`?replicas=0`: the behaviour before it). */
  confirm: boolean;
  /** Sessions created, uniformly over `rampMs`. */
  clients: number;
  rampMs: number;
  /** Numbers per session, at `intervalMs`: a session streams `count × intervalMs`. */
  count: number;
  intervalMs: number;
  ttlMs: number;
  /** When the fault happens, after the first session starts (ms). */
  faultAtMs: number;
  /** Cases 1 and 3: how long before the kill the replication link drops (ms). */
  lagMs: number;
  /** Case 2: how long the partition lasts (ms). */
  partitionMs: number;
  seed: number;
  /**
   * Load-generator processes (`load/worker.ts`), each with its own slice of
   * the clients and a fault proxy of its own in front of both servers; 0 or
   * absent: the clients and one proxy run in the scenario process (the
   * short form). Several spread the clients' sockets (three file
   * descriptors a session with its proxy) and CPU over processes.
   */
  drivers?: number;
  /** How long the proxy lets a client connection live before it cuts it (ms); 1–3 s by default. */
  cutMs?: { minMs: number; maxMs: number };
  /**
   * Only sessions cut within this long after the fault count in fault →
   * resumed (ms); all of them by default, which suits cuts every 1–3 s (each
   * live session is cut within 3 s) but not longer ones, whose later cuts
   * are the proxy's, not the fault's.
   */
  killWaveMs?: number;
}

/** What one run measured. */
export interface ScenarioResult {
  spec: ScenarioSpec;
  /** The worker's result line (ledger, histograms, errors). */
  worker: WorkerResult;
  /** p99 of fault → resumed WELCOME, over the sessions cut after the fault (ms). */
  resumeP99Ms: number;
  /** The last session to resume after the fault (ms). */
  resumeMaxMs: number;
  /** Client start → first WELCOME, p50 and p99 (ms). */
  welcomeP50Ms: number;
  welcomeP99Ms: number;
  /** Server CPU per session started (ms), both servers together (A's until it died). */
  cpuPerSessionMs: number;
  /** `seqstream_store_unconfirmed_total`, summed over the servers still up. */
  unconfirmed: number;
  /**
   * Cases 1 and 3: bytes of the victim's replication stream that no replica
   * had received when it was killed (the writes the kill lost), and the keys
   * it held then. 0 in cases 0 and 2.
   */
  unreplicatedBytes: number;
  victimKeys: number;
  /** What happened when, for the report (ms after the first session started). */
  events: string[];
  /** The load generators' event-loop delay, p99 (ms): large means the figures are the host's, not the system's. */
  driverLoopP99Ms: number;
  /** Share of the host's CPU time busy from the first session to the clients' end (0–1, all cores). */
  hostBusy: number;
  /** CPU of the load-generator processes (clients and their proxies) per session welcomed (ms); 0 in-process. */
  driverCpuPerSessionMs: number;
}

/** Keeps `line` for the result, and shows it on stderr as it happens. */
function note(events: string[], line: string): void {
  events.push(line);
  Deno.stderr.writeSync(new TextEncoder().encode(`partition: ${line}\n`));
}

const sleep = (ms: number) =>
  new Promise((r) => setTimeout(r, Math.max(0, ms)));

/** Runs one scenario; must run inside a namespace of its own. */
export async function runScenario(spec: ScenarioSpec): Promise<ScenarioResult> {
  const cluster = spec.case === 3;
  const events: string[] = [];
  const t0 = Date.now();
  await using topo = cluster
    ? await startRedisCluster({ primaries: 3, replicasEach: 1 })
    : await startSentinelGroup();
  const storeSpec = spec.confirm ? topo.spec : `${topo.spec}?replicas=0`;
  const args = [
    "--port",
    "0",
    "--store",
    storeSpec,
    "--interval",
    `${spec.intervalMs}ms`,
    "--session-ttl",
    `${spec.ttlMs}ms`,
    "--metrics-port",
    "0",
  ];
  const [a, b] = await Promise.all([spawnServer(args), spawnServer(args)]) as [
    ServerProc,
    ServerProc,
  ];
  await using _a = a;
  await using _b = b;
  const servers = [
    { hostname: "127.0.0.1", port: a.port },
    { hostname: "127.0.0.1", port: b.port },
  ];
  const cutMs = spec.cutMs ?? { minMs: 1000, maxMs: 3000 };
  const drivers = spec.drivers ?? 0;
  await using proxy = drivers > 0 ? undefined : await startProxy({
    upstreams: servers,
    lifetime: cutMs,
    seed: spec.seed,
  });
  note(events, `setup took ${Date.now() - t0} ms`);
  const cpu0 = await cpuOf([a, b]);
  // Driver processes need a moment to start.
  const startAt = Date.now() + (drivers > 0 ? 3000 : 300);
  const faultAt = startAt + spec.faultAtMs;
  const at = () => `${Date.now() - startAt} ms`;
  let unreplicatedBytes = 0, victimKeys = 0;
  const fault = spec.case === 0 ? Promise.resolve() : (async () => {
    if (spec.case === 2) {
      await sleep(faultAt - Date.now());
      await partition(
        topo as Sentinel,
        a,
        [a, b],
        spec.partitionMs,
        events,
        at,
      );
      return;
    }
    await sleep(faultAt - spec.lagMs - Date.now());
    const victim = cluster
      ? await busiestPrimary(topo as Cluster)
      : await primaryOf(topo as Sentinel);
    // The link to the replicas drops: what the primary sends from here on
    // never arrives (a crashed host's queues die with it). Redis sees a
    // replica that does not acknowledge, as it would a lagging one.
    // A slot the victim serves, to wait for another node to serve it.
    const slot = cluster ? await slotOf(victim) : 0;
    const rules = await cutReplication(victim);
    note(
      events,
      `${at()}: replication from the primary cut (${
        rules.length / 2
      } connection(s))`,
    );
    try {
      await sleep(faultAt - Date.now());
      // What the kill takes with it: the primary's stream past what any
      // replica received, and the keys it holds.
      [unreplicatedBytes, victimKeys] = await Promise.all([
        unreplicated(victim),
        redisCommand(victim.port, ["DBSIZE"]).then(Number),
      ]);
      await victim.stop();
      if (spec.case === 1) await a.crash();
      note(
        events,
        `${at()}: kill -9 of the primary${
          spec.case === 1 ? " and server A" : ""
        } (${victimKeys} keys, ${unreplicatedBytes} bytes unreplicated)`,
      );
      if (cluster) {
        await (topo as Cluster).settled(20_000, slot);
      } else {
        await until(
          "the sentinels to promote a replica",
          async () => (await (topo as Sentinel).primaryPort()) !== victim.port,
          20_000,
        );
      }
      note(events, `${at()}: failed over`);
    } finally {
      // The dead primary's orphaned sockets may still retransmit: only
      // once the replicas have left it.
      await heal(rules);
    }
    if (cluster) {
      await victim.start();
      note(events, `${at()}: the crashed node is back (as a replica)`);
    }
  })();
  note(events, `start at ${new Date(startAt).toISOString()}`);
  const load: WorkerSpec = {
    worker: 0,
    clients: spec.clients,
    firstIndex: 0,
    targets: proxy ? [{ hostname: "127.0.0.1", port: proxy.port }] : servers,
    countMin: spec.count,
    countMax: spec.count,
    intervalMs: spec.intervalMs,
    startAt,
    rampMs: spec.rampMs,
    deadline: startAt + spec.rampMs + spec.count * spec.intervalMs +
      2 * spec.ttlMs + spec.partitionMs + 20_000,
    faultFraction: 0,
    faultLifetime: { minMs: 0, maxMs: 0 },
    faultReset: 0,
    backoff: { baseMs: 50, capMs: 500 },
    seed: spec.seed,
    client: "real",
    ...spec.case === 0 ? {} : { killAt: faultAt },
    ...spec.killWaveMs === undefined ? {} : { killWaveMs: spec.killWaveMs },
    ttlMs: spec.ttlMs,
  };
  const hostAtStart = sleep(startAt - Date.now()).then(hostCpu);
  const driverCpu = { s: 0 };
  const worker = drivers > 0
    ? await runDrivers(load, drivers, cutMs, driverCpu)
    : await runWorker(load);
  const [host1, host2] = [await hostAtStart, await hostCpu()];
  note(events, `${at()}: the clients are done`);
  await fault;
  const up = spec.case === 1 ? [b] : [a, b];
  const cpu1 = await cpuOf([a, b]);
  let unconfirmed = 0, started = 0;
  for (const s of up) {
    const m = await scrapePort(s.metricsPort!);
    unconfirmed += m.get("seqstream_store_unconfirmed_total") ?? 0;
    const pick = [...m].filter(([k]) =>
      /sessions_started|resumes_total|handshake_failures|store_errors|store_ops_total|taken_over/
        .test(k)
    ).map(([k, v]) => `${k.replace("seqstream_", "")}=${v}`).join(" ");
    note(events, `server ${s === a ? "A" : "B"}: ${pick}`);
  }
  started = worker.ledger.welcomed;
  const resume = Histogram.from(worker.resumeAfterKill);
  const welcome = Histogram.from(worker.welcome);
  return {
    spec,
    worker,
    resumeP99Ms: resume.count > 0 ? resume.percentile(99) : 0,
    resumeMaxMs: resume.count > 0 ? resume.max : 0,
    welcomeP50Ms: welcome.percentile(50),
    welcomeP99Ms: welcome.percentile(99),
    cpuPerSessionMs: started > 0 ? ((cpu1 - cpu0) * 1000) / started : 0,
    unconfirmed,
    unreplicatedBytes,
    victimKeys,
    events,
    driverLoopP99Ms: Histogram.from(worker.loop).percentile(99),
    driverCpuPerSessionMs: started > 0 ? driverCpu.s * 1000 / started : 0,
    hostBusy: (host2.busy - host1.busy) /
      Math.max(1, host2.total - host1.total),
  };
}

/** The host's CPU time so far, busy and total (jiffies, all cores, from /proc/stat). */
async function hostCpu(): Promise<{ busy: number; total: number }> {
  const line = (await Deno.readTextFile("/proc/stat")).split("\n")[0]!;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((x, y) => x + y, 0);
  const idle = (f[3] ?? 0) + (f[4] ?? 0); // idle, iowait
  return { busy: total - idle, total };
}

/**
 * Runs `spec`'s clients in `n` `load/worker.ts` processes, each with its
 * slice of them and one fault proxy of its own in front of all the targets
 * (cutting each connection after `cutMs`), and merges their results. Their
 * CPU seconds (sampled every second until each exits) are added to `cpu.s`.
 *
 * @throws {Error} when a driver fails or reports no result
 */
async function runDrivers(
  spec: WorkerSpec,
  n: number,
  cutMs: { minMs: number; maxMs: number },
  cpu: { s: number },
): Promise<WorkerResult> {
  const results = await Promise.all(
    Array.from({ length: n }, async (_, w) => {
      const share = Math.floor(spec.clients / n) +
        (w < spec.clients % n ? 1 : 0);
      const first = w * Math.floor(spec.clients / n) +
        Math.min(w, spec.clients % n);
      const one: WorkerSpec = {
        ...spec,
        worker: w,
        clients: share,
        firstIndex: first,
        faultFraction: 1,
        faultLifetime: cutMs,
        proxyAll: true,
      };
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          new URL("../load/worker.ts", import.meta.url).pathname,
          JSON.stringify(one),
        ],
        stdin: "null",
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      let last = 0;
      const sampler = setInterval(async () => {
        last = (await readProc(child.pid))?.cpuS ?? last;
      }, 1000);
      const out = await child.output().finally(() => clearInterval(sampler));
      cpu.s += last;
      const line = new TextDecoder().decode(out.stdout).split("\n").find((
        l,
      ) => l.includes('"type":"result"'));
      if (!out.success || line === undefined) {
        throw new Error(
          `load driver ${w} failed (exit ${out.code}${
            out.signal ? `, ${out.signal}` : ""
          })`,
        );
      }
      return JSON.parse(line) as WorkerResult;
    }),
  );
  const t = aggregate(results, spec.clients);
  return {
    ...results[0]!,
    clients: spec.clients,
    errors: t.errors,
    errorSamples: t.errorSamples.slice(0, 20),
    mismatches: t.mismatches,
    reconnects: t.reconnects,
    faulty: t.faulty,
    cuts: t.cuts,
    ledger: t.ledger,
    passed: t.passed,
    numbers: t.numbers,
    lag: t.lag.toJSON(),
    lagSteady: t.lagSteady.toJSON(),
    welcome: t.welcome.toJSON(),
    firstNumber: t.firstNumber.toJSON(),
    resume: t.resume.toJSON(),
    loop: t.loop.toJSON(),
    lostAfterKill: t.lostAfterKill,
    cutReasons: t.cutReasons,
    resumeAfterKill: t.resumeAfterKill.toJSON(),
    waveBins: t.waveBins,
  };
}

type Sentinel = Awaited<ReturnType<typeof startSentinelGroup>>;
type Cluster = Awaited<ReturnType<typeof startRedisCluster>>;

/** CPU seconds of the servers so far (a dead one counts what it had when last read). */
const lastCpu = new Map<number, number>();
async function cpuOf(servers: ServerProc[]): Promise<number> {
  let sum = 0;
  for (const s of servers) {
    const pid = s.proc.child.pid;
    const p = await readProc(pid);
    if (p) lastCpu.set(pid, p.cpuS);
    sum += lastCpu.get(pid) ?? 0;
  }
  return sum;
}

async function primaryOf(g: Sentinel): Promise<RedisServer> {
  const port = await g.primaryPort();
  return g.nodes.find((n) => n.port === port)!;
}

/**
 * Bytes of `primary`'s replication stream that none of its replicas has
 * received: its `master_repl_offset` less the highest `slave_repl_offset`
 * of its replicas (asked directly: the primary's own view lags by up to a
 * second of acknowledgements).
 */
async function unreplicated(primary: RedisServer): Promise<number> {
  const info = await redisInfo(primary.port, "replication");
  const head = Number(info.get("master_repl_offset") ?? 0);
  let got = 0;
  for (const [k, v] of info) {
    const port = /^slave\d+$/.test(k) ? /port=(\d+)/.exec(v)?.[1] : undefined;
    if (port === undefined) continue;
    const r = await redisInfo(Number(port), "replication");
    got = Math.max(got, Number(r.get("slave_repl_offset") ?? 0));
  }
  return head - got;
}

/** The first slot `node` serves, by its own view. */
async function slotOf(node: RedisServer): Promise<number> {
  const me = String(await redisCommand(node.port, ["CLUSTER", "MYID"]));
  const slots = await redisCommand(node.port, ["CLUSTER", "SLOTS"]) as [
    number,
    number,
    [string, number, string],
  ][];
  const mine = slots.find(([, , owner]) => owner[2] === me);
  if (!mine) throw new Error(`node ${node.port} serves no slot`);
  return mine[0];
}

/** The primary holding the most keys (sessions), on a cluster. */
async function busiestPrimary(c: Cluster): Promise<RedisServer> {
  let best: RedisServer | undefined, most = -1;
  for (const n of c.nodes) {
    const info = await redisInfo(n.port, "replication").catch(() => null);
    if (info?.get("role") !== "master") continue;
    const keys = Number(await redisCommand(n.port, ["DBSIZE"]));
    if (keys > most) [best, most] = [n, keys];
  }
  if (!best) throw new Error("no primary found");
  return best;
}

/**
 * Drops every packet between `primary` and its replicas' connections to it
 * (their local ports, from `CLIENT LIST TYPE replica`). Returns the rules.
 */
async function cutReplication(primary: RedisServer): Promise<string[][]> {
  const list = String(
    await redisCommand(primary.port, ["CLIENT", "LIST", "TYPE", "replica"]),
  );
  const rules: string[][] = [];
  for (const m of list.matchAll(/addr=127\.0\.0\.1:(\d+)/g)) {
    const p = String(primary.port);
    rules.push(
      ["INPUT", "-p", "tcp", "--sport", p, "--dport", m[1]!, "-j", "DROP"],
      ["INPUT", "-p", "tcp", "--sport", m[1]!, "--dport", p, "-j", "DROP"],
    );
  }
  for (const r of rules) {
    const res = await sh("iptables", ["-I", ...r]);
    if (!res.ok) throw new Error(`iptables -I ${r.join(" ")}: ${res.out}`);
  }
  return rules;
}

/**
 * Case 2: cuts the primary's port off from everything but server A's
 * connections to it, for `ms`, then heals, and waits until the sentinels
 * have made it a replica.
 */
async function partition(
  g: Sentinel,
  a: ServerProc,
  servers: ServerProc[],
  ms: number,
  events: string[],
  at: () => string,
): Promise<void> {
  const p = await primaryOf(g);
  const keep = await connectionsOf(a.proc.child.pid, p.port);
  if (keep.length === 0) {
    throw new Error("server A has no connection to the primary");
  }
  const rules = await isolatePort(p.port, keep);
  note(
    events,
    `${at()}: primary ${p.port} cut off from all but server A (${keep.length} connection(s))`,
  );
  try {
    await until(
      "the sentinels to promote a replica",
      async () => (await g.primaryPort()) !== p.port,
      ms + 10_000,
    );
    const promoted = await g.primaryPort();
    note(events, `${at()}: the sentinels promoted ${promoted}`);
    await sleep(ms / 2);
    await probe(events, at, "mid-partition", servers);
    if (Deno.env.get("PARTITION_DEBUG")) {
      for (const n of g.nodes) {
        const r = await sh("redis-cli", [
          "-p",
          String(n.port),
          "INFO",
          "replication",
        ]);
        note(
          events,
          `node ${n.port}: ${
            r.out.split("\n").filter((l) =>
              /role|connected_slaves|master_port|master_link_status/.test(l)
            ).join(" ").replace(/\r/g, "")
          }`,
        );
      }
      for (const sv of servers) {
        note(
          events,
          `log: ${sv.proc.stderr.slice(-3).join(" | ").slice(0, 600)}`,
        );
      }
    }
    await sleep(ms / 2);
    await probe(events, at, "before heal", servers);
  } finally {
    await heal(rules);
  }
  note(events, `${at()}: healed`);
  const keys = async (port: number) =>
    (await sh("redis-cli", ["-p", String(port), "DBSIZE"])).out.trim();
  note(
    events,
    `${at()}: keys on the old primary ${await keys(
      p.port,
    )}, on the new ${await keys(await g.primaryPort())}`,
  );
  await until(
    "the old primary to become a replica",
    async () =>
      (await redisInfo(p.port, "replication")).get("role") === "slave",
    // A sentinel whose timer ran 2 s late (a loaded host) can enter TILT mode
    // and makes no reconfiguration for 30 s: wait past it.
    60_000,
  );
  note(events, `${at()}: the old primary is a replica`);
}

/** Each server's lease renewals and store errors so far, as a note. */
async function probe(
  events: string[],
  at: () => string,
  what: string,
  servers: ServerProc[],
): Promise<void> {
  const parts: string[] = [];
  for (const [i, s] of servers.entries()) {
    const m = await scrapePort(s.metricsPort!);
    parts.push(
      `${"AB"[i]} renewals ${
        m.get('seqstream_store_ops_total{op="lease_renew"}') ?? 0
      } errors ${m.get("seqstream_store_errors_total") ?? 0}`,
    );
  }
  note(events, `${at()}: ${what}: ${parts.join(", ")}`);
}

/**
 * Runs one scenario in a namespace of its own (created here, and deleted
 * with every process in it afterwards, whatever happened), as a child
 * `deno run` of this module; kills it after `timeoutMs`.
 *
 * @throws {Error} with the end of its stderr when it fails or times out
 */
export async function runInNetns(
  spec: ScenarioSpec,
  timeoutMs: number,
): Promise<ScenarioResult> {
  await using ns = await createNetns(`c${spec.case}`);
  const { cmd, args } = ns.exec(Deno.execPath(), [
    "run",
    "-A",
    new URL(import.meta.url).pathname,
    JSON.stringify(spec),
  ]);
  const child = new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Exited.
    }
  }, timeoutMs);
  try {
    const out = await child.output();
    const text = new TextDecoder().decode(out.stdout);
    const line = text.split("\n").find((l) => l.startsWith("RESULT "));
    if (!out.success || line === undefined) {
      const err = new TextDecoder().decode(out.stderr);
      throw new Error(
        `the partition scenario (case ${spec.case}) failed (exit ${out.code}${
          out.signal ? `, ${out.signal}` : ""
        }): ${err.slice(-2000)}`,
      );
    }
    return JSON.parse(line.slice("RESULT ".length)) as ScenarioResult;
  } finally {
    clearTimeout(timer);
  }
}

if (import.meta.main) {
  const spec = JSON.parse(Deno.args[0]!) as ScenarioSpec;
  const result = await runScenario(spec);
  // The worker's progress lines went to stdout too: this one is marked.
  Deno.stdout.writeSync(
    new TextEncoder().encode(`RESULT ${JSON.stringify(result)}\n`),
  );
  Deno.exit(0);
}
