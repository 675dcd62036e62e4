/**
 * Redis store specifications, parsed without loading the Redis client (so
 * that `openStore` can refuse a malformed spec as a usage error before it
 * downloads or loads anything).
 *
 * | spec                                                         | topology                      |
 * | ------------------------------------------------------------ | ----------------------------- |
 * | `redis://[user[:pass]@]host[:port][/db]`                     | one Redis                     |
 * | `redis+sentinel://[user[:pass]@]h:p[,h:p…]/MASTER[?db=N]`    | Sentinel-managed primary      |
 * | `redis+cluster://[user[:pass]@]h:p[,h:p…]`                   | Redis Cluster (seed nodes)    |
 *
 * Each scheme has a TLS twin with `rediss`: `rediss://`, `rediss+sentinel://`
 * (TLS to the data nodes and the sentinels), `rediss+cluster://`. The CA that
 * signs the servers' certificates is `?ca=/path/ca.pem` or, if absent, the
 * file named by `SEQSTREAM_REDIS_CA`; without either, the system's roots.
 *
 * Every form takes `?replicas=N&waitMs=MS`: a write that a client is
 * promised is confirmed by `WAIT N MS` (see `redis_options.ts`). Sentinel and
 * Cluster default to `replicas=1` within 500 ms (or half the command
 * timeout); one Redis to `replicas=0` (no `WAIT`).
 *
 * Credentials: from the URL (`user:pass@`, percent-encoded), or else from
 * `SEQSTREAM_REDIS_USERNAME` / `SEQSTREAM_REDIS_PASSWORD`. Sentinels that
 * require a password of their own take `SEQSTREAM_REDIS_SENTINEL_PASSWORD`.
 * No message this module (or the store) writes contains a password: they
 * name the spec through {@link redactRedisSpec}.
 *
 * @module
 */

import {
  CONFIRM_PARAMS,
  type ConfirmOptions,
  parseConfirm,
} from "./redis_options.ts";

/** The environment variables the Redis specs read, by purpose. */
export const REDIS_ENV = {
  username: "SEQSTREAM_REDIS_USERNAME",
  password: "SEQSTREAM_REDIS_PASSWORD",
  sentinelPassword: "SEQSTREAM_REDIS_SENTINEL_PASSWORD",
  ca: "SEQSTREAM_REDIS_CA",
} as const;

/** The accepted forms, for messages. */
export const REDIS_SPEC_FORMS =
  "redis[s]://HOST[:PORT][/DB], redis[s]+sentinel://HOST:PORT[,HOST:PORT…]/MASTER[?db=N] " +
  "or redis[s]+cluster://HOST:PORT[,HOST:PORT…]";

/** One `host:port`. */
export interface RedisNode {
  /** Host name or address (IPv6 without brackets). */
  readonly host: string;
  /** TCP port. */
  readonly port: number;
}

/** What a Redis spec says to connect to, and how. */
export interface RedisSpec {
  /** One server, a Sentinel-managed primary, or a cluster. */
  readonly mode: "standalone" | "sentinel" | "cluster";
  /** The server (standalone), the sentinels, or the cluster's seed nodes. */
  readonly nodes: readonly RedisNode[];
  /** Sentinel: the monitored master's name. */
  readonly masterName?: string;
  /** Database number (always 0 for a cluster). */
  readonly db: number;
  /** ACL user name. */
  readonly username?: string;
  /** Password (never printed). */
  readonly password?: string;
  /** Password of the sentinels themselves, if they require one. */
  readonly sentinelPassword?: string;
  /** TLS to Redis (`rediss…`). */
  readonly tls: boolean;
  /** Path of the PEM file of the CA to trust (TLS only). */
  readonly caFile?: string;
  /**
   * Confirmation of the writes a client is promised (`?replicas=&waitMs=`;
   * see `redis_options.ts` and docs/durability.md).
   */
  readonly confirm: ConfirmOptions;
}

/** Reads an environment variable; `undefined` when unset or not permitted. */
export type EnvLookup = (name: string) => string | undefined;

/** {@link EnvLookup} on `Deno.env`, quiet when `--allow-env` was not given. */
export const denoEnv: EnvLookup = (name) => {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
};

const SCHEMES: Record<string, { mode: RedisSpec["mode"]; tls: boolean }> = {
  "redis:": { mode: "standalone", tls: false },
  "rediss:": { mode: "standalone", tls: true },
  "redis+sentinel:": { mode: "sentinel", tls: false },
  "rediss+sentinel:": { mode: "sentinel", tls: true },
  "redis+cluster:": { mode: "cluster", tls: false },
  "rediss+cluster:": { mode: "cluster", tls: true },
};

/** Whether `spec` starts with one of the Redis schemes (well-formed or not). */
export function isRedisSpec(spec: string): boolean {
  const m = /^([a-z+]+:)\/\//i.exec(spec);
  return m !== null && m[1]!.toLowerCase() in SCHEMES;
}

/**
 * `spec` with its password (if any) replaced by `***`, for messages and logs.
 *
 * @example
 * ```ts
 * redactRedisSpec("redis://u:secret@h:1/0"); // "redis://u:***@h:1/0"
 * ```
 */
export function redactRedisSpec(spec: string): string {
  return spec.replace(
    /^([a-z+]+:\/\/)([^/?#]*)@/i,
    (_all, scheme: string, auth: string) => {
      const colon = auth.indexOf(":");
      return colon < 0
        ? `${scheme}${auth}@`
        : `${scheme}${auth.slice(0, colon)}:***@`;
    },
  );
}

/**
 * Parses a Redis spec (see the module documentation).
 *
 * @param spec the spec
 * @param env where credentials and the CA path come from when the URL has none
 * @returns the topology, nodes and credentials
 * @throws {TypeError} saying what is wrong, with the password redacted
 *
 * @example
 * ```ts
 * parseRedisSpec("redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster?db=2");
 * // { mode: "sentinel", nodes: [...], masterName: "mymaster", db: 2, tls: false }
 * ```
 */
export function parseRedisSpec(
  spec: string,
  env: EnvLookup = denoEnv,
): RedisSpec {
  const shown = redactRedisSpec(spec);
  const bad = (why: string) =>
    new TypeError(`Invalid Redis store "${shown}": ${why}`);
  const m = /^([a-z+]+:)\/\/(?:([^/?#]*)@)?([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$/i
    .exec(spec);
  const scheme = m ? SCHEMES[m[1]!.toLowerCase()] : undefined;
  if (!m || !scheme) {
    throw bad(`expected ${REDIS_SPEC_FORMS}`);
  }
  const [, , auth, hosts, path, query, hash] = m;
  if (hash !== undefined) throw bad("a fragment is not supported");
  const defaultPort = scheme.mode === "sentinel" ? 26379 : 6379;
  const nodes = hosts!.split(",").map((h) => parseNode(h, defaultPort, bad));
  if (scheme.mode === "standalone" && nodes.length !== 1) {
    throw bad("one host only (use redis+sentinel:// or redis+cluster://)");
  }
  const params = new URLSearchParams(query?.slice(1) ?? "");
  const allowed = new Set([
    "ca",
    ...CONFIRM_PARAMS,
    ...scheme.mode === "sentinel" ? ["db"] : [],
  ]);
  for (const k of params.keys()) {
    if (!allowed.has(k)) {
      throw bad(
        `unknown parameter "${k}" (accepted: ${[...allowed].join(", ")})`,
      );
    }
  }
  const pathPart = path!.replace(/^\//, "");
  let db = 0;
  let masterName: string | undefined;
  if (scheme.mode === "standalone") {
    if (pathPart !== "") db = dbNumber(pathPart, bad);
  } else if (scheme.mode === "sentinel") {
    masterName = decodeURIComponent(pathPart);
    if (masterName === "" || masterName.includes("/")) {
      throw bad("the path must be the master name, as in …/mymaster");
    }
    const d = params.get("db");
    if (d !== null) db = dbNumber(d, bad);
  } else if (pathPart !== "") {
    throw bad("a cluster has no database number or path");
  }
  const caParam = params.get("ca");
  if (caParam !== null && !scheme.tls) {
    throw bad("?ca= needs TLS: use rediss…");
  }
  const out: {
    -readonly [K in keyof RedisSpec]: RedisSpec[K];
  } = {
    mode: scheme.mode,
    nodes,
    db,
    tls: scheme.tls,
    confirm: parseConfirm(params, scheme.mode !== "standalone", bad),
  };
  if (masterName !== undefined) out.masterName = masterName;
  let user: string | undefined;
  let pass: string | undefined;
  if (auth !== undefined && auth !== "") {
    const colon = auth.indexOf(":");
    user = decodeURIComponent(colon < 0 ? auth : auth.slice(0, colon));
    if (colon >= 0) pass = decodeURIComponent(auth.slice(colon + 1));
    if (user === "") user = undefined;
  }
  user ??= nonEmpty(env(REDIS_ENV.username));
  pass ??= nonEmpty(env(REDIS_ENV.password));
  if (user !== undefined) out.username = user;
  if (pass !== undefined) out.password = pass;
  const sentinelPassword = scheme.mode === "sentinel"
    ? nonEmpty(env(REDIS_ENV.sentinelPassword))
    : undefined;
  if (sentinelPassword !== undefined) out.sentinelPassword = sentinelPassword;
  if (scheme.tls) {
    const ca = nonEmpty(caParam ?? undefined) ?? nonEmpty(env(REDIS_ENV.ca));
    if (ca !== undefined) out.caFile = ca;
  }
  return out;
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s === "" ? undefined : s;
}

function dbNumber(s: string, bad: (why: string) => TypeError): number {
  if (!/^\d{1,5}$/.test(s)) throw bad("the database must be a number");
  return Number(s);
}

function parseNode(
  s: string,
  defaultPort: number,
  bad: (why: string) => TypeError,
): RedisNode {
  const m = /^(\[[^\]]+\]|[^:\[\]]+)(?::(\d{1,5}))?$/.exec(s);
  if (!m) {
    throw bad(
      s === "" ? "no host" : `"${s}" is not HOST[:PORT]`,
    );
  }
  const port = m[2] === undefined ? defaultPort : Number(m[2]);
  if (port < 1 || port > 65535) throw bad(`port ${m[2]} is out of range`);
  return { host: m[1]!.replace(/^\[(.*)\]$/, "$1"), port };
}
