/**
 * Shared pieces of the Sentinel and Cluster tests: a topology started once per
 * test file (or the reason it could not start, for the ignored tests' names),
 * servers sharing it, and a sampler of handshake refusals.
 *
 * @module
 */

import type { ServerHandle } from "../server/server.ts";
import { RedisStore } from "../store/redis.ts";
import {
  FAST_REDIS,
  PATIENT_REDIS,
  patientSpec,
  type SharedStore,
} from "./_cluster.ts";
import { redisInstalled, SKIP_REDIS_ENV } from "./_redis.ts";
import { storeContractTests } from "../store/_contract.ts";

/**
 * Starts a topology for a whole test file. Resolves the topology, or the
 * reason the tests are ignored: `redis-server` missing with
 * `SEQSTREAM_SKIP_REDIS=1`, or the topology failing to start here (its
 * error in the reason). Without redis-server and without that variable, it
 * throws: the tests fail loudly, as the other Redis tests do.
 */
export async function startOnce<T>(
  what: string,
  start: () => Promise<T>,
): Promise<{ topology: T; ignore: undefined } | { ignore: string }> {
  if (!(await redisInstalled())) {
    if (Deno.env.get(SKIP_REDIS_ENV) === "1") {
      return {
        ignore: `redis-server not installed and ${SKIP_REDIS_ENV}=1`,
      };
    }
    throw new Error(
      `redis-server is not installed (apt-get install -y redis-server); set ${SKIP_REDIS_ENV}=1 to ignore the ${what} tests`,
    );
  }
  try {
    return { topology: await start(), ignore: undefined };
  } catch (e) {
    let root = e as Error;
    while (root.cause instanceof Error) root = root.cause;
    const why = String(root.message ?? root).split("\n")[0]!.slice(0, 160);
    return { ignore: `cannot start ${what} here: ${why}` };
  }
}

/** A {@link SharedStore} on a Redis spec: every server gets its own client. */
export function sharedSpec(spec: string): SharedStore {
  return {
    kind: "redis",
    spec,
    redis: undefined,
    connect: async (opts) => ({
      store: await RedisStore.connect(spec, opts ?? FAST_REDIS),
      own: true,
    }),
    [Symbol.asyncDispose]: () => Promise.resolve(),
  };
}

/** When the servers refused handshakes with `store_unavailable`. */
export interface RefusalWindow extends AsyncDisposable {
  /** Refusals counted since the sampler started. */
  readonly count: number;
  /** ms from `t0` to the first refusal seen, or undefined. */
  readonly first: number | undefined;
  /** ms from `t0` to the last refusal seen, or undefined. */
  readonly last: number | undefined;
}

/**
 * Samples the servers' `store_unavailable` refusal counters every 10 ms,
 * timing each increase from `t0` (a `performance.now()`).
 */
export function sampleRefusals(
  servers: ServerHandle[],
  t0: () => number,
): RefusalWindow {
  const total = () =>
    servers.reduce(
      (n, s) => n + (s.metrics().refusals.get("store_unavailable") ?? 0),
      0,
    );
  const base = total();
  const w = {
    count: 0,
    first: undefined as number | undefined,
    last: undefined as number | undefined,
  };
  const timer = setInterval(() => {
    const n = total() - base;
    if (n > w.count) {
      const at = performance.now() - t0();
      w.first ??= at;
      w.last = at;
      w.count = n;
    }
  }, 10);
  return Object.assign(w, {
    [Symbol.asyncDispose]: () => {
      clearInterval(timer);
      return Promise.resolve();
    },
  });
}

/** A topology shared by one test file, and how to register tests on it. */
export interface TopologySuite<T> {
  /** The running topology, or undefined when it could not start. */
  readonly topology: T | undefined;
  /** Why the file's tests are ignored, when they are. */
  readonly ignore: string | undefined;
  /**
   * Registers a test, ignored with the reason in its name when the topology
   * did not start. `sanitize` false: for tests that kill a process the file
   * started before them.
   */
  test(name: string, fn: () => Promise<void>, sanitize?: boolean): void;
}

/**
 * Starts a Redis topology once for a test file (see {@link startOnce}) and
 * registers the store contract on it as `RedisStore(label)`, each test under
 * a key prefix of its own (the tests share the topology, and `collect` must
 * see only its own dead owners).
 */
export async function topologySuite<T extends { spec: string }>(
  label: string,
  what: string,
  start: () => Promise<T>,
): Promise<TopologySuite<T>> {
  const started = await startOnce(what, start);
  const topology = started.ignore === undefined ? started.topology : undefined;
  const ignore = started.ignore;
  storeContractTests(
    `RedisStore(${label})`,
    () =>
      RedisStore.connect(patientSpec(topology!.spec), {
        // The contract checks what a write does, not how fast a replica
        // confirms it (see PATIENT_REDIS).
        ...PATIENT_REDIS,
        prefix: `t${crypto.randomUUID().slice(0, 8)}`,
      }),
    {
      sweep: () => {},
      noHintReason: "the expiry hint is checked on a standalone Redis",
      // ioredis leaves timers behind close() under Sentinel (its connector's
      // retry timer cannot be cancelled) and Cluster (a slot refresh in
      // flight at quit() re-arms its timer; a redirected command waits in a
      // delay queue): on a loaded host about one parallel suite run in five
      // ended a contract test with one pending. Deno 2.9 reports a pending
      // timer under both sanitizers, so both are off for these contract
      // tests; the topology's other tests keep them, and the standalone
      // Redis contract (store/redis_test.ts) checks the same store code with
      // both on.
      sanitizeOps: false,
      sanitizeResources: false,
      ...ignore ? { ignore } : {},
    },
  );
  return {
    topology,
    ignore,
    test(name, fn, sanitize = true) {
      Deno.test({
        name: ignore ? `${name} (ignored: ${ignore})` : name,
        ignore: ignore !== undefined,
        sanitizeOps: sanitize,
        sanitizeResources: sanitize,
        fn,
      });
    },
  };
}
