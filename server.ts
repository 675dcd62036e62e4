// deno-lint-ignore-file no-console -- a CLI entry point: stdout is its result, stderr its one-line errors
/**
 * seqstream server: CLI entry point and the `startServer()` API.
 *
 * ```sh
 * deno task server --port 8080 --interval 1s --session-ttl 30s
 * ```
 *
 * @module
 */

import { formatDuration, parseDuration } from "./cli/duration.ts";
import {
  checkMs,
  DURATION_RANGES,
  formatMs,
  type MsRange,
  SERVER_DEFAULTS,
} from "./common/defaults.ts";
import { isLogLevel, LineLogger, type LogFormat } from "./common/logger.ts";
import {
  durationFlag,
  EXIT_USAGE,
  type FlagSpec,
  helpText,
  intFlag,
  parseFlags,
  UsageError,
} from "./cli/usage.ts";
import { startServer } from "./server/mod.ts";
import { openStore } from "./store/open.ts";

export {
  type ServerHandle,
  type ServerOptions,
  startServer,
} from "./server/mod.ts";

const R = DURATION_RANGES;
const range = (r: MsRange) => `${formatMs(r.min)}..${formatMs(r.max)}`;

const FLAGS: Record<string, FlagSpec> = {
  port: {
    type: "string",
    short: "p",
    default: String(SERVER_DEFAULTS.port),
    help: "PORT  TCP port to listen on (0 picks one)",
  },
  host: {
    type: "string",
    default: "127.0.0.1",
    help: "ADDR  interface to listen on",
  },
  interval: {
    type: "string",
    default: formatMs(SERVER_DEFAULTS.intervalMs),
    help: `DURATION  time between numbers (0 = as fast as the window allows; ${
      range(R.interval)
    })`,
  },
  "session-ttl": {
    type: "string",
    default: formatMs(SERVER_DEFAULTS.ttlMs),
    help: `DURATION  how long a disconnected session stays resumable (${
      range(R.sessionTtl)
    })`,
  },
  "client-timeout": {
    type: "string",
    default: formatMs(SERVER_DEFAULTS.clientTimeoutMs),
    help:
      `DURATION  close a connection the client sends nothing on (not even an ACK) for this long; its session stays resumable (${
        range(R.clientTimeout)
      })`,
  },
  seed: {
    type: "string",
    help:
      "N  derive each session's seed from N and the client id, for reproducible runs (default: random seeds)",
  },
  store: {
    type: "string",
    default: "memory",
    help:
      "SPEC  session store: memory | kv:PATH | kv::memory: | kv:https://… | redis://host:port[/db]",
  },
  "reuse-port": {
    type: "boolean",
    default: false,
    help: "share the port with other server processes (Linux)",
  },
  "max-connections": {
    type: "string",
    default: String(SERVER_DEFAULTS.maxConnections),
    help: "N  refuse connections beyond N with server_busy",
  },
  "max-handshakes-per-sec": {
    type: "string",
    help:
      "N  refuse more than N new connections per second from one address with server_busy (default: unlimited)",
  },
  "tls-cert": {
    type: "string",
    help:
      "FILE  serve TLS with this PEM certificate chain; needs --tls-key (default: plain TCP)",
  },
  "tls-key": {
    type: "string",
    help: "FILE  PEM private key for --tls-cert (default: none)",
  },
  "handshake-timeout": {
    type: "string",
    default: formatMs(SERVER_DEFAULTS.handshakeTimeoutMs),
    help: `DURATION  close sockets that send no hello within this (${
      range(R.handshakeTimeout)
    })`,
  },
  "metrics-port": {
    type: "string",
    help: "PORT  serve GET /metrics and /healthz on this port (default: off)",
  },
  "log-level": {
    type: "string",
    default: "info",
    help: "LEVEL  debug | info | warn | error | silent",
  },
  "log-format": {
    type: "string",
    default: "pretty",
    help: "FORMAT  pretty | json",
  },
  help: { type: "boolean", short: "h", default: false, help: "show this help" },
};

/** A file the server was told to read and cannot use; exit 1 with its message. */
class ConfigFileError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConfigFileError";
  }
}

/** Reads `--tls-cert`/`--tls-key`: both or neither, each a readable PEM file. */
async function readTls(
  certPath: string | undefined,
  keyPath: string | undefined,
): Promise<{ cert: string; key: string } | undefined> {
  if (certPath === undefined && keyPath === undefined) return undefined;
  if (certPath === undefined || keyPath === undefined) {
    throw new UsageError("--tls-cert and --tls-key go together");
  }
  const read = async (flag: string, path: string, marker: RegExp) => {
    let text;
    try {
      text = await Deno.readTextFile(path);
    } catch (err) {
      throw new ConfigFileError(
        `Cannot read --${flag} ${path}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    if (!marker.test(text)) {
      throw new ConfigFileError(
        `--${flag} ${path} is not a PEM file (no ${marker.source} block)`,
      );
    }
    return text;
  };
  return {
    cert: await read("tls-cert", certPath, /-----BEGIN CERTIFICATE-----/),
    key: await read("tls-key", keyPath, /-----BEGIN [A-Z ]*PRIVATE KEY-----/),
  };
}

/** A duration flag, parsed and checked against its range. */
function msFlag(f: Record<string, unknown>, name: string, r: MsRange): number {
  const ms = durationFlag(name, f[name] as string, parseDuration);
  try {
    return checkMs(`--${name}`, ms, r);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

async function main(args: string[]): Promise<number> {
  let f;
  try {
    f = parseFlags(FLAGS, args);
    if (f.help) {
      console.log(helpText("Usage: deno task server [options]", FLAGS));
      return 0;
    }
    const level = f["log-level"] as string;
    if (!isLogLevel(level)) {
      throw new UsageError(
        `--log-level must be debug, info, warn, error or silent, got "${level}"`,
      );
    }
    const format = f["log-format"] as string;
    if (format !== "pretty" && format !== "json") {
      throw new UsageError(
        `--log-format must be pretty or json, got "${format}"`,
      );
    }
    const opts = {
      port: intFlag("port", f.port as string, 0, 65535),
      hostname: f.host as string,
      intervalMs: msFlag(f, "interval", R.interval),
      ttlMs: msFlag(f, "session-ttl", R.sessionTtl),
      clientTimeoutMs: msFlag(f, "client-timeout", R.clientTimeout),
      seed: f.seed === undefined
        ? undefined
        : intFlag("seed", f.seed as string, 0, Number.MAX_SAFE_INTEGER),
      maxConnections: intFlag(
        "max-connections",
        f["max-connections"] as string,
        1,
        1_000_000,
      ),
      handshakeTimeoutMs: msFlag(f, "handshake-timeout", R.handshakeTimeout),
      metricsPort: f["metrics-port"] === undefined
        ? undefined
        : intFlag("metrics-port", f["metrics-port"] as string, 0, 65535),
      reusePort: f["reuse-port"] as boolean,
      maxHandshakesPerSec: f["max-handshakes-per-sec"] === undefined
        ? undefined
        : intFlag(
          "max-handshakes-per-sec",
          f["max-handshakes-per-sec"] as string,
          1,
          1_000_000,
        ),
      tls: await readTls(
        f["tls-cert"] as string | undefined,
        f["tls-key"] as string | undefined,
      ),
      log: new LineLogger({ level, format: format as LogFormat }),
    };
    let store;
    try {
      // A crashed server's sessions expire TTL after its lease; the store
      // must keep the lease record at least that long to tell.
      const leaseGraceMs = Math.max(60_000, 2 * opts.ttlMs);
      store = await openStore(f.store as string, {
        kv: { leaseGraceMs },
        redis: { leaseGraceMs },
      });
    } catch (err) {
      if (err instanceof TypeError) {
        throw new UsageError(`--store: ${err.message}`);
      }
      throw err;
    }
    let server;
    try {
      if (opts.reusePort && store.kind === "memory") {
        opts.log.warn(
          "--reuse-port with the memory store: a client that reconnects to another process sharing this port cannot resume there; share a store (--store kv:PATH or redis://…)",
        );
      }
      // The server owns the store from here: it closes it if it fails to start.
      server = await startServer({ ...opts, store, ownStore: true });
    } catch (err) {
      if (opts.tls && !(err instanceof Deno.errors.AddrInUse)) {
        throw new ConfigFileError(
          `Cannot serve TLS with --tls-cert ${f["tls-cert"]} and --tls-key ${
            f["tls-key"]
          }: ${(err as Error).message}`,
          { cause: err },
        );
      }
      throw err;
    }
    const stop = () => {
      opts.log.info("signal received; shutting down");
      void server.close();
    };
    for (const sig of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(sig, stop);
    }
    if (server.metricsAddr) {
      opts.log.info("metrics listening", {
        addr: `${server.metricsAddr.hostname}:${server.metricsAddr.port}`,
      });
    }
    opts.log.debug("settings", {
      interval: formatDuration(opts.intervalMs),
      ttl: formatDuration(opts.ttlMs),
      clientTimeout: formatDuration(opts.clientTimeoutMs),
    });
    await server.closed;
    for (const sig of ["SIGINT", "SIGTERM"] as const) {
      Deno.removeSignalListener(sig, stop);
    }
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`seqstream-server: ${err.message} (see --help)`);
      return EXIT_USAGE;
    }
    if (err instanceof Deno.errors.AddrInUse) {
      console.error(`seqstream-server: port ${f?.port} is already in use`);
      return 1;
    }
    console.error(`seqstream-server: ${(err as Error).message}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
