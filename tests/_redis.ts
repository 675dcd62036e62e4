/**
 * A real `redis-server` for tests, started with `Deno.Command` on a free
 * loopback port and stopped (or crashed, paused, restarted) on demand.
 *
 * Redis tests never pass by skipping silently: when `redis-server` is not
 * installed, {@link startRedis} throws with a message saying how to fix it,
 * unless `SEQSTREAM_SKIP_REDIS=1` is set, in which case
 * {@link redisIgnoreReason} returns the reason and the tests register as
 * ignored with that reason in their names.
 *
 * @module
 */

/** The environment variable that turns missing-`redis-server` failures into ignored tests. */
export const SKIP_REDIS_ENV = "SEQSTREAM_SKIP_REDIS";

const MISSING =
  "redis-server is not installed (apt-get install -y redis-server); " +
  `set ${SKIP_REDIS_ENV}=1 to register the Redis tests as ignored instead`;

/** A running (or stopped) `redis-server` owned by a test. */
export interface RedisServer extends AsyncDisposable {
  /** `redis://127.0.0.1:PORT`. Stays the same across {@link stop} and {@link start}. */
  readonly url: string;
  /** The loopback port the server listens on. */
  readonly port: number;
  /**
   * Kills the server with SIGKILL, as a crash would: clients see their
   * connections drop. Nothing is kept (no RDB, no AOF). Idempotent.
   */
  stop(): Promise<void>;
  /** Starts the server again on the same port, empty, and waits until it answers PING. */
  start(): Promise<void>;
  /** SIGSTOP: connections stay open but nothing answers, like a black-holed network. */
  pause(): void;
  /** SIGCONT after {@link pause}. */
  resume(): void;
}

let installed: Promise<boolean> | undefined;

/** Whether `redis-server` can be run here. Probed once per process. */
export function redisInstalled(): Promise<boolean> {
  installed ??= (async () => {
    try {
      const out = await new Deno.Command("redis-server", {
        args: ["--version"],
        stdout: "null",
        stderr: "null",
      }).output();
      return out.success;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return false;
      throw e;
    }
  })();
  return installed;
}

/**
 * Why the Redis tests should be registered as ignored, or `undefined` when
 * they should run. They run (and fail loudly) when `redis-server` is missing
 * unless {@link SKIP_REDIS_ENV} is `1`.
 */
export async function redisIgnoreReason(): Promise<string | undefined> {
  if (await redisInstalled()) return undefined;
  if (Deno.env.get(SKIP_REDIS_ENV) === "1") {
    return `redis-server not installed and ${SKIP_REDIS_ENV}=1`;
  }
  return undefined;
}

/**
 * Starts `redis-server --port P --save "" --appendonly no` on a free loopback
 * port and waits until it answers PING.
 *
 * @throws {Error} when `redis-server` is not installed, or when it does not
 * come up within 10 s (the message carries its log).
 *
 * @example
 * ```ts
 * await using redis = await startRedis();
 * const store = await RedisStore.connect(redis.url);
 * ```
 */
export async function startRedis(
  opts: { args?: (port: number) => string[]; scheme?: string } = {},
): Promise<RedisServer> {
  if (!(await redisInstalled())) throw new Error(MISSING);
  let lastError: unknown;
  // A port found free can be taken before redis-server binds it: try a few.
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = freePort();
    const server = new Server(port, opts.args?.(port) ?? [], opts.scheme);
    try {
      await server.start();
      return server;
    } catch (e) {
      lastError = e;
      await server.stop();
    }
  }
  throw new Error("Cannot start redis-server", { cause: lastError });
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/**
 * Every redis-server still running. A topology started for a whole test file
 * is stopped by its last test; if that test is filtered out (or the run is
 * interrupted), the process exit kills what is left.
 */
const RUNNING = new Set<Deno.ChildProcess>();
globalThis.addEventListener("unload", () => {
  for (const child of RUNNING) {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }
});

/** In extra arguments: the next one is a configuration file, which must come first. */
const CONFIG_FIRST = "\0config";

class Server implements RedisServer {
  readonly url: string;
  readonly port: number;
  readonly #extra: string[];
  #child: Deno.ChildProcess | undefined;
  #log: Promise<string> = Promise.resolve("");

  /** @param extra more arguments, after the defaults (later ones win) */
  constructor(port: number, extra: string[] = [], scheme = "redis") {
    this.port = port;
    this.#extra = extra;
    this.url = `${scheme}://127.0.0.1:${port}`;
  }

  /** The output so far (complete once stopped). */
  log(): Promise<string> {
    return this.#log;
  }

  async start(): Promise<void> {
    if (this.#child) return;
    const child = new Deno.Command("redis-server", {
      args: [
        // A configuration file must come first.
        ...this.#extra[0] === CONFIG_FIRST ? [this.#extra[1]!] : [],
        "--port",
        String(this.port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--loglevel",
        "warning",
        ...this.#extra[0] === CONFIG_FIRST ? this.#extra.slice(2) : this.#extra,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    RUNNING.add(child);
    // Drain both pipes until the process exits, so a chatty server never blocks
    // and the log is at hand when it fails to start.
    this.#log = Promise.all([
      new Response(child.stdout).text(),
      new Response(child.stderr).text(),
    ]).then(([out, err]) => out + err);
    let exited = false;
    child.status.then(() => exited = true);
    const deadline = Date.now() + 10_000;
    while (!(await ping(this.port))) {
      if (exited || Date.now() > deadline) {
        await this.stop();
        const log = await this.#log;
        throw new Error(
          `redis-server did not come up on port ${this.port}: ${
            log.trim() || "no output"
          }`,
        );
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async stop(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    RUNNING.delete(child);
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await child.status;
    await this.#log;
  }

  pause(): void {
    this.#child?.kill("SIGSTOP");
  }

  resume(): void {
    this.#child?.kill("SIGCONT");
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

/** One PING over a fresh connection: true when the answer is PONG. */
async function ping(port: number): Promise<boolean> {
  try {
    return await redisCommand(port, ["PING"]) === "PONG";
  } catch (e) {
    // A server with a password is up, too.
    return /NOAUTH/.test((e as Error).message);
  }
}

/** A RESP reply: simple and bulk strings, integers, arrays, null; errors throw. */
export type Reply = string | number | null | Reply[];

/**
 * Sends one command to the Redis (or sentinel) on `port` over a fresh plain
 * connection and returns its reply, within `timeoutMs`.
 *
 * @throws {Error} for an error reply, a refused connection or a timeout
 */
export async function redisCommand(
  port: number,
  args: string[],
  timeoutMs = 2_000,
): Promise<Reply> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const timer = setTimeout(() => conn.close(), timeoutMs);
  try {
    const enc = new TextEncoder();
    let req = `*${args.length}\r\n`;
    for (const a of args) req += `$${enc.encode(a).length}\r\n${a}\r\n`;
    const bytes = enc.encode(req);
    for (let off = 0; off < bytes.length;) {
      off += await conn.write(bytes.subarray(off));
    }
    let buf = new Uint8Array(0);
    const chunk = new Uint8Array(64 * 1024);
    for (;;) {
      const parsed = parseReply(buf, 0);
      if (parsed) {
        if (parsed.error) {
          throw new Error(`Redis :${port} ${args[0]}: ${parsed.error}`);
        }
        return parsed.value;
      }
      let n: number | null;
      try {
        n = await conn.read(chunk);
      } catch (e) {
        throw new Error(
          `Redis :${port} ${args[0]}: no reply within ${timeoutMs} ms`,
          {
            cause: e,
          },
        );
      }
      if (n === null) {
        throw new Error(`Redis :${port} ${args[0]}: connection closed`);
      }
      const next = new Uint8Array(buf.length + n);
      next.set(buf);
      next.set(chunk.subarray(0, n), buf.length);
      buf = next;
    }
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // Closed by the timer.
    }
  }
}

interface Parsed {
  value: Reply;
  error?: string;
  end: number;
}

function parseReply(buf: Uint8Array, at: number): Parsed | undefined {
  const eol = buf.indexOf(13, at);
  if (eol < 0 || eol + 1 >= buf.length) return undefined;
  const line = new TextDecoder().decode(buf.subarray(at + 1, eol));
  const end = eol + 2;
  switch (String.fromCharCode(buf[at]!)) {
    case "+":
      return { value: line, end };
    case "-":
      return { value: null, error: line, end };
    case ":":
      return { value: Number(line), end };
    case "$": {
      const len = Number(line);
      if (len < 0) return { value: null, end };
      if (buf.length < end + len + 2) return undefined;
      return {
        value: new TextDecoder().decode(buf.subarray(end, end + len)),
        end: end + len + 2,
      };
    }
    case "*": {
      const len = Number(line);
      if (len < 0) return { value: null, end };
      const out: Reply[] = [];
      let pos = end;
      for (let i = 0; i < len; i++) {
        const p = parseReply(buf, pos);
        if (!p) return undefined;
        out.push(p.error !== undefined ? `ERR ${p.error}` : p.value);
        pos = p.end;
      }
      return { value: out, end: pos };
    }
    default:
      throw new Error(`Unexpected RESP reply: ${line}`);
  }
}

/** `INFO section` as a map of its `key:value` lines. */
export async function redisInfo(
  port: number,
  section: string,
): Promise<Map<string, string>> {
  const text = String(await redisCommand(port, ["INFO", section]));
  const out = new Map<string, string>();
  for (const line of text.split("\r\n")) {
    const i = line.indexOf(":");
    if (i > 0) out.set(line.slice(0, i), line.slice(i + 1));
  }
  return out;
}

/** Calls `check` every 20 ms until it returns true (errors count as false), or throws after `ms`. */
export async function until(
  what: string,
  check: () => Promise<boolean>,
  ms: number,
): Promise<void> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${ms} ms waiting for ${what}`, {
        cause: last,
      });
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

// ---- Topologies ----

/**
 * Runs `start` `n` times at once and adds every server that came up to
 * `into` (so that a caller's teardown stops them), in the order started;
 * throws the first failure once all have settled.
 */
async function startAll(
  into: RedisServer[],
  n: number,
  start: () => Promise<RedisServer>,
): Promise<void> {
  const started = await Promise.allSettled(Array.from({ length: n }, start));
  for (const r of started) if (r.status === "fulfilled") into.push(r.value);
  const failed = started.find((r) => r.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
}

/** Stops every server, ignoring failures; removes `dir`. */
async function teardown(servers: RedisServer[], dir?: string): Promise<void> {
  await Promise.allSettled(servers.map((s) => s.stop()));
  if (dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
}

/** A primary, its replicas and the sentinels that watch them. */
export interface SentinelGroup extends AsyncDisposable {
  /** `redis+sentinel://127.0.0.1:S1,…/MASTER`. */
  readonly spec: string;
  readonly masterName: string;
  /** The first primary, then the replicas. */
  readonly nodes: RedisServer[];
  readonly sentinels: RedisServer[];
  /** The port of the node the sentinels name as primary now. */
  primaryPort(): Promise<number>;
}

/**
 * Starts a primary, `replicas` replicas and `sentinels` sentinels (quorum 2,
 * `down-after-milliseconds` 500, so a failover takes a second or two), and
 * waits until the replicas are in sync and every sentinel knows every
 * replica and every other sentinel (needed to elect a leader for failover).
 *
 * @throws {Error} when any part does not come up within `timeoutMs`
 */
export async function startSentinelGroup(
  opts: { replicas?: number; sentinels?: number; timeoutMs?: number } = {},
): Promise<SentinelGroup> {
  const replicas = opts.replicas ?? 2;
  const nSentinels = opts.sentinels ?? 3;
  const timeoutMs = opts.timeoutMs ?? 12_000;
  const masterName = "seqstream-test";
  const dir = await Deno.makeTempDir({ prefix: "seqstream-sentinel-" });
  const nodes: RedisServer[] = [];
  const sentinels: RedisServer[] = [];
  try {
    const primary = await startRedis({ args: () => FAST_REPLICATION });
    nodes.push(primary);
    // The replicas, then the sentinels, start side by side: one at a time
    // took about a second of a test's setup on a loaded 2-core host.
    await startAll(nodes, replicas, () =>
      startRedis({
        args: () => [
          ...FAST_REPLICATION,
          "--replicaof",
          "127.0.0.1",
          String(primary.port),
        ],
      }));
    await startAll(sentinels, nSentinels, async () => {
      const sentinel = await startRedis({
        args: (port) => {
          const conf = `${dir}/sentinel-${port}.conf`;
          Deno.writeTextFileSync(
            conf,
            [
              `sentinel monitor ${masterName} 127.0.0.1 ${primary.port} 2`,
              `sentinel down-after-milliseconds ${masterName} 500`,
              `sentinel failover-timeout ${masterName} 4000`,
              `sentinel parallel-syncs ${masterName} ${replicas}`,
              "",
            ].join("\n"),
          );
          return [CONFIG_FIRST, conf, "--sentinel"];
        },
      });
      // Sentinels find each other by a hello on the primary every 2 s (a
      // fixed period but for this debug setting): every 200 ms, a group is
      // ready in a fraction of a second instead of two. It changes nothing
      // else the tests rely on (down-after, failover timeout, quorum).
      await redisCommand(sentinel.port, [
        "SENTINEL",
        "DEBUG",
        "PUBLISH-PERIOD",
        "200",
      ]);
      return sentinel;
    });
    await until("the replicas to sync", async () => {
      for (const r of nodes.slice(1)) {
        if (
          (await redisInfo(r.port, "replication")).get("master_link_status") !==
            "up"
        ) {
          return false;
        }
      }
      return true;
    }, timeoutMs);
    await until(
      "the sentinels to know each other and the replicas",
      async () => {
        for (const s of sentinels) {
          const rs = await redisCommand(s.port, [
            "SENTINEL",
            "REPLICAS",
            masterName,
          ]);
          const ss = await redisCommand(s.port, [
            "SENTINEL",
            "SENTINELS",
            masterName,
          ]);
          if (
            (rs as Reply[]).length < replicas ||
            (ss as Reply[]).length < nSentinels - 1
          ) {
            return false;
          }
        }
        return true;
      },
      timeoutMs,
    );
  } catch (e) {
    await teardown([...sentinels, ...nodes], dir);
    throw e;
  }
  return {
    spec: `redis+sentinel://${
      sentinels.map((s) => `127.0.0.1:${s.port}`).join(",")
    }/${masterName}`,
    masterName,
    nodes,
    sentinels,
    async primaryPort() {
      const a = await redisCommand(sentinels[0]!.port, [
        "SENTINEL",
        "GET-MASTER-ADDR-BY-NAME",
        masterName,
      ]) as string[];
      return Number(a[1]);
    },
    [Symbol.asyncDispose]: () => teardown([...sentinels, ...nodes], dir),
  };
}

/** Replication with no disk and no delay: a replica syncs in milliseconds. */
const FAST_REPLICATION = [
  "--repl-diskless-sync",
  "yes",
  "--repl-diskless-sync-delay",
  "0",
  "--repl-diskless-load",
  "swapdb",
];

/** A Redis Cluster of primaries and replicas. */
export interface RedisClusterGroup extends AsyncDisposable {
  /** `redis+cluster://127.0.0.1:P1,…` (every node a seed). */
  readonly spec: string;
  readonly nodes: RedisServer[];
  /** The node serving `slot` as primary now, as `node`'s view says (default: the first live one). */
  primaryOf(slot: number): Promise<RedisServer>;
  /** Whether the node has a replica that is in sync. */
  hasReplica(node: RedisServer): Promise<boolean>;
  /** Waits until every live node reports `cluster_state:ok` and agrees on `slot`'s primary. */
  settled(timeoutMs?: number, slot?: number): Promise<void>;
}

/**
 * Starts `primaries × (1 + replicasEach)` cluster nodes
 * (`cluster-node-timeout` 1000, so a failover takes a couple of seconds),
 * joins them with `redis-cli --cluster create`, and waits until the cluster
 * is ok on every node.
 */
export async function startRedisCluster(
  opts: { primaries?: number; replicasEach?: number; timeoutMs?: number } = {},
): Promise<RedisClusterGroup> {
  const primaries = opts.primaries ?? 3;
  const replicasEach = opts.replicasEach ?? 1;
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const dir = await Deno.makeTempDir({ prefix: "seqstream-cluster-" });
  const nodes: RedisServer[] = [];
  const dead = new Set<RedisServer>();
  try {
    await startAll(nodes, primaries * (1 + replicasEach), () =>
      startRedis({
        args: (port) => [
          ...FAST_REPLICATION,
          "--cluster-enabled",
          "yes",
          "--cluster-config-file",
          `${dir}/nodes-${port}.conf`,
          "--cluster-node-timeout",
          "1000",
          "--dir",
          dir,
        ],
      }));
    const out = await new Deno.Command("redis-cli", {
      args: [
        "--cluster",
        "create",
        ...nodes.map((n) => `127.0.0.1:${n.port}`),
        "--cluster-replicas",
        String(replicasEach),
        "--cluster-yes",
      ],
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).output();
    if (!out.success) {
      throw new Error(
        `redis-cli --cluster create failed: ${
          new TextDecoder().decode(out.stdout)
        }${new TextDecoder().decode(out.stderr)}`,
      );
    }
  } catch (e) {
    await teardown(nodes, dir);
    throw e;
  }
  const live = () => nodes.filter((n) => !dead.has(n));
  const slotsView = async (port: number) =>
    await redisCommand(port, ["CLUSTER", "SLOTS"]) as [
      number,
      number,
      [string, number, string],
      ...unknown[],
    ][];
  const group: RedisClusterGroup = {
    spec: `redis+cluster://${
      nodes.map((n) => `127.0.0.1:${n.port}`).join(",")
    }`,
    nodes,
    async primaryOf(slot) {
      for (const n of live()) {
        try {
          for (const [lo, hi, [, port]] of await slotsView(n.port)) {
            if (slot >= lo && slot <= hi) {
              const node = nodes.find((x) => x.port === port);
              if (node) return node;
            }
          }
        } catch {
          // Try another node.
        }
      }
      throw new Error(`No node serves slot ${slot}`);
    },
    async hasReplica(node) {
      const info = await redisInfo(node.port, "replication");
      return Number(info.get("connected_slaves") ?? 0) > 0;
    },
    async settled(ms = timeoutMs, slot) {
      await until("the cluster to be ok on every node", async () => {
        let owner: number | undefined;
        for (const n of live()) {
          const info = String(await redisCommand(n.port, ["CLUSTER", "INFO"]));
          if (!info.includes("cluster_state:ok")) return false;
          if (slot !== undefined) {
            const p = (await slotsView(n.port)).find(([lo, hi]) =>
              slot >= lo && slot <= hi
            )?.[2][1];
            if (owner !== undefined && p !== owner) return false;
            if (!live().some((x) => x.port === p)) return false;
            owner = p;
          }
        }
        return true;
      }, ms);
    },
    [Symbol.asyncDispose]: () => teardown(nodes, dir),
  };
  // Wrap stop so that a killed node is left out of the checks.
  for (const n of nodes) {
    const stop = n.stop.bind(n);
    (n as { stop: () => Promise<void> }).stop = async () => {
      dead.add(n);
      await stop();
    };
  }
  try {
    await group.settled();
    await until("every replica to sync", async () => {
      for (const n of nodes) {
        const info = await redisInfo(n.port, "replication");
        if (
          info.get("role") === "slave" &&
          info.get("master_link_status") !== "up"
        ) return false;
      }
      return true;
    }, timeoutMs);
  } catch (e) {
    await teardown(nodes, dir);
    throw e;
  }
  return group;
}

/**
 * A `redis-server` that speaks TLS on its URL's port (`rediss://…`), with a
 * certificate for 127.0.0.1 made at run time; its plain port is for health
 * checks only.
 */
export async function startTlsRedis(
  cert: { certFile: string; keyFile: string },
  extra: string[] = [],
): Promise<RedisServer & { plainPort: number }> {
  const tlsPort = freePort();
  let plainPort = 0;
  const server = await startRedis({
    args: (port) => {
      plainPort = port;
      return [
        "--tls-port",
        String(tlsPort),
        "--tls-cert-file",
        cert.certFile,
        "--tls-key-file",
        cert.keyFile,
        "--tls-auth-clients",
        "no",
        ...extra,
      ];
    },
  });
  return Object.assign(server, {
    url: `rediss://127.0.0.1:${tlsPort}`,
    plainPort,
  });
}
