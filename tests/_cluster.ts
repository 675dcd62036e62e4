/**
 * Fixtures for scale-out tests: one backend shared by several servers
 * (in-process on port 0, or real `server.ts` processes), per-session store
 * operation counts, metrics scrapes of processes, and fault-free reference
 * runs.
 *
 * @module
 */

import { runClient } from "../client/client.ts";
import type { ServerHandle, ServerOptions } from "../server/server.ts";
import { SERVER_STORE_OPS } from "../server/store_calls.ts";
import { KvStore } from "../store/kv.ts";
import { MemoryStore } from "../store/memory.ts";
import { RedisStore, type RedisStoreOptions } from "../store/redis.ts";
import type { SessionStore } from "../store/types.ts";
import { eventually, testServer } from "./_fixtures.ts";
import { type Proc, spawnDeno } from "./_process.ts";
import type { RawPeer } from "./_raw.ts";
import { redisIgnoreReason, type RedisServer, startRedis } from "./_redis.ts";

/** The backends a shared-store test runs on. */
export type Backend = "memory" | "kv" | "redis";

/** Why the Redis variants are ignored, or `undefined` (they run, or fail loudly). */
export const redisIgnore: string | undefined = await redisIgnoreReason();

/** Short Redis timings, so that outages are noticed in milliseconds. */
export const FAST_REDIS: RedisStoreOptions = {
  commandTimeoutMs: 300,
  connectTimeoutMs: 500,
  backoff: () => 20,
};

/**
 * For tests that count or rely on confirmed writes, not on noticing an
 * outage fast: {@link FAST_REDIS}'s 300 ms command timeout leaves `WAIT` its
 * default of half that, 150 ms, which a replica on a loaded 2-core host
 * missed in CI runs (`0 of 1 replica(s) answered within 150 ms`). Pair with
 * {@link patientSpec}.
 */
export const PATIENT_REDIS: RedisStoreOptions = {
  ...FAST_REDIS,
  commandTimeoutMs: 5_000,
};

/** `spec` with a 2 s `?waitMs=` (below {@link PATIENT_REDIS}'s command timeout). */
export function patientSpec(spec: string): string {
  return `${spec}${spec.includes("?") ? "&" : "?"}waitMs=2000`;
}

/** One backend several servers share: every {@link connect} is a new client of it. */
export interface SharedStore extends AsyncDisposable {
  readonly kind: Backend;
  /** `--store` for server processes (`kv:FILE` or `redis://…`); memory has none. */
  readonly spec: string;
  /** The Redis server, for outage tests. */
  readonly redis: RedisServer | undefined;
  /**
   * A new client of the backend and whether the server should own it (close
   * it). Memory: the one shared instance, never owned by a server.
   */
  connect(
    opts?: RedisStoreOptions,
  ): Promise<{ store: SessionStore; own: boolean }>;
}

/**
 * Opens a backend for several servers: a shared {@link MemoryStore}, a KV
 * file in a new temporary directory, or a new `redis-server`.
 */
export async function sharedStore(kind: Backend): Promise<SharedStore> {
  if (kind === "memory") {
    const mem = new MemoryStore();
    return {
      kind,
      spec: "memory",
      redis: undefined,
      connect: () => Promise.resolve({ store: mem, own: false }),
      [Symbol.asyncDispose]: () => mem.close(),
    };
  }
  if (kind === "kv") {
    const dir = await Deno.makeTempDir({ prefix: "seqstream-kv-" });
    const path = `${dir}/sessions.kv`;
    return {
      kind,
      spec: `kv:${path}`,
      redis: undefined,
      connect: async () => ({ store: await KvStore.open(path), own: true }),
      [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
    };
  }
  const redis = await startRedis();
  return {
    kind,
    spec: redis.url,
    redis,
    connect: async (opts) => ({
      store: await RedisStore.connect(redis.url, opts ?? FAST_REDIS),
      own: true,
    }),
    [Symbol.asyncDispose]: () => redis.stop(),
  };
}

/** Several in-process servers on one backend. */
export interface Cluster extends AsyncDisposable {
  readonly servers: ServerHandle[];
  /** Their client ports, for proxy upstreams. */
  readonly upstreams: { hostname: string; port: number }[];
}

/**
 * Starts `n` quiet servers on port 0 (see {@link testServer}), each with its
 * own client of `shared`.
 */
export async function startCluster(
  n: number,
  shared: SharedStore,
  opts: ServerOptions = {},
  redisOpts?: RedisStoreOptions,
): Promise<Cluster> {
  const servers: ServerHandle[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const { store, own } = await shared.connect(redisOpts);
      servers.push(await testServer({ ...opts, store, ownStore: own }));
    }
  } catch (e) {
    await Promise.all(servers.map((s) => s.close()));
    throw e;
  }
  return {
    servers,
    upstreams: servers.map((s) => ({
      hostname: "127.0.0.1",
      port: s.addr.port,
    })),
    [Symbol.asyncDispose]: async () => {
      await Promise.all(servers.map((s) => s.close()));
    },
  };
}

/** Store operations spent on behalf of sessions: all but the heartbeat's {@link SERVER_STORE_OPS}. */
export function sessionOps(...servers: ServerHandle[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of servers) {
    for (const [op, n] of s.metrics().storeOps) {
      if (!SERVER_STORE_OPS.has(op)) out.set(op, (out.get(op) ?? 0) + n);
    }
  }
  return out;
}

/** `after - before` per op, zeros dropped, keys sorted (for equality checks). */
export function opsDelta(
  before: ReadonlyMap<string, number>,
  after: ReadonlyMap<string, number>,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of [...after.keys()].sort()) {
    const d = after.get(k)! - (before.get(k) ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

/** The sum of a delta's values. */
export function total(delta: Record<string, number>): number {
  return Object.values(delta).reduce((a, b) => a + b, 0);
}

export { eventually, ids, scrapePort } from "./_fixtures.ts";

/** Waits until no server holds a connection or a session. */
export function drained(
  servers: ServerHandle[],
  timeoutMs = 5000,
): Promise<void> {
  return eventually(
    () =>
      servers.every((s) =>
        s.metrics().connections === 0 && s.metrics().sessions === 0
      ),
    "every server to hold no connection and no session",
    AbortSignal.timeout(timeoutMs),
  );
}

/** Sum and checksum of every session in a fault-free run: one clean server, interval 0. */
export async function reference(
  seed: number,
  sessions: { id: string; count: number }[],
): Promise<Map<string, { sum: number; checksum: string }>> {
  await using clean = await testServer({ seed, intervalMs: 0 });
  const results = await Promise.all(
    sessions.map((s) =>
      runClient({ port: clean.addr.port, id: s.id, count: s.count })
    ),
  );
  const out = new Map<string, { sum: number; checksum: string }>();
  for (const r of results) {
    if (r.result !== "PASS") {
      throw new Error(`Reference run failed: ${JSON.stringify(r)}`);
    }
    out.set(r.id, { sum: r.sum, checksum: r.checksum });
  }
  return out;
}

/** A `server.ts` process. */
export interface ServerProc extends AsyncDisposable {
  readonly proc: Proc;
  /** Its client port. */
  readonly port: number;
  /** Its `/metrics` port, if started with `--metrics-port`. */
  readonly metricsPort: number | undefined;
  /** Its server id (as in leases and fences). */
  readonly id: string;
  /** SIGKILL, as a crash: resolves once the process is gone. */
  crash(): Promise<void>;
}

/**
 * Runs `deno run -A server.ts --log-format json …args` and waits for its
 * `server listening` line (and `metrics listening` with `--metrics-port`).
 * Kill it with {@link ServerProc.crash} or dispose it.
 */
export async function spawnServer(args: string[]): Promise<ServerProc> {
  // `--reuse-port` needs Deno's unstable net API, which deno.json does not
  // enable (only "kv").
  const proc = spawnDeno(
    "server.ts",
    ["--log-format", "json", ...args],
    args.includes("--reuse-port") ? { unstable: ["net"] } : {},
  );
  try {
    const line = JSON.parse(
      await proc.waitForLine(/"server listening"/, 15_000),
    );
    let metricsPort: number | undefined;
    if (args.includes("--metrics-port")) {
      const m = JSON.parse(
        await proc.waitForLine(/"metrics listening"/, 5_000),
      );
      metricsPort = Number(String(m.addr).split(":").pop());
    }
    return {
      proc,
      port: Number(String(line.addr).split(":").pop()),
      metricsPort,
      id: String(line.server),
      async crash() {
        await proc.stop({ signal: "SIGKILL" });
      },
      [Symbol.asyncDispose]: () => proc[Symbol.asyncDispose](),
    };
  } catch (e) {
    await proc[Symbol.asyncDispose]();
    throw e;
  }
}

/** What a raw peer has received so far, updated as messages arrive. */
export interface Watched {
  welcomed: boolean;
  /** Numbers received after the welcome. */
  numbers: number;
  lastOffset: number;
  /** The code of the error frame, if one arrived. */
  error: number | undefined;
  /** The server closed the connection (or it was closed locally). */
  closed: boolean;
  /** Settles when the connection has closed. */
  readonly done: Promise<void>;
}

/** Reads every message of `peer` in the background into a {@link Watched}. */
export function watch(peer: RawPeer): Watched {
  const w: Watched = {
    welcomed: false,
    numbers: 0,
    lastOffset: -1,
    error: undefined,
    closed: false,
    done: Promise.resolve(),
  };
  (w as { done: Promise<void> }).done = (async () => {
    for (;;) {
      let m;
      try {
        m = await peer.next(60_000);
      } catch {
        continue; // nothing for a minute: keep waiting
      }
      if (m === null) break;
      if (m.type === "welcome") w.welcomed = true;
      else if (m.type === "number") {
        w.numbers++;
        w.lastOffset = m.offset;
      } else if (m.type === "error") w.error = m.code;
    }
    w.closed = true;
  })();
  return w;
}
