/**
 * seqstream server: the CLI entry point. The library is `server/mod.ts`
 * (`startServer()`); this file only parses flags, opens the store, starts
 * the server and turns signals into a graceful shutdown.
 *
 * ```sh
 * deno task server --port 8080 --interval 1s --session-ttl 30s
 * ```
 *
 * @module
 */

import { ExitError, type MainContext, runMain } from "./cli/main.ts";
import {
  COMMON_FLAGS,
  durationFlag,
  type FlagSpec,
  type FlagValues,
  intFlag,
  logLevelFlag,
  UsageError,
} from "./cli/usage.ts";
import {
  DURATION_RANGES,
  formatMs,
  type MsRange,
  SERVER_DEFAULTS,
} from "./common/defaults.ts";
import { LineLogger } from "./common/logger.ts";
import {
  denoListenProbe,
  failedListener,
  listenFailureMessage,
} from "./cli/listen_failure.ts";
import { startServer } from "./server/mod.ts";
import { openStore, STORE_SPEC_FORMS } from "./store/open.ts";
import { StoreUnavailableError } from "./store/types.ts";

const R = DURATION_RANGES;
const range = (r: MsRange) => `${formatMs(r.min)}..${formatMs(r.max)}`;

const FLAGS = {
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
    help: `SPEC  session store: ${STORE_SPEC_FORMS}`,
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
    help:
      "PORT  serve GET /metrics, /healthz and the dashboard (GET /) on this port (default: off)",
  },
  "metrics-host": {
    type: "string",
    default: "127.0.0.1",
    help:
      "HOST  interface for --metrics-port; the dashboard and /sessions show session ids, so keep it private",
  },
  "log-format": {
    type: "string",
    default: "pretty",
    help: "FORMAT  pretty | json",
  },
  ...COMMON_FLAGS,
} as const satisfies Record<string, FlagSpec>;

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
      throw new ExitError(
        `Cannot read --${flag} ${path}: ${(err as Error).message}`,
        1,
        { cause: err },
      );
    }
    if (!marker.test(text)) {
      throw new ExitError(
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

async function serve(
  f: FlagValues<typeof FLAGS>,
  { signal }: MainContext,
): Promise<number> {
  const level = logLevelFlag(f["log-level"]);
  const format = f["log-format"];
  if (format !== "pretty" && format !== "json") {
    throw new UsageError(
      `--log-format must be pretty or json, got "${format}"`,
    );
  }
  const opts = {
    port: intFlag("port", f.port, 0, 65535),
    hostname: f.host,
    intervalMs: durationFlag("interval", f.interval, R.interval),
    ttlMs: durationFlag("session-ttl", f["session-ttl"], R.sessionTtl),
    clientTimeoutMs: durationFlag(
      "client-timeout",
      f["client-timeout"],
      R.clientTimeout,
    ),
    seed: f.seed === undefined
      ? undefined
      : intFlag("seed", f.seed, 0, Number.MAX_SAFE_INTEGER),
    maxConnections: intFlag(
      "max-connections",
      f["max-connections"],
      1,
      1_000_000,
    ),
    handshakeTimeoutMs: durationFlag(
      "handshake-timeout",
      f["handshake-timeout"],
      R.handshakeTimeout,
    ),
    metricsPort: f["metrics-port"] === undefined
      ? undefined
      : intFlag("metrics-port", f["metrics-port"], 0, 65535),
    metricsHost: f["metrics-host"],
    reusePort: f["reuse-port"],
    maxHandshakesPerSec: f["max-handshakes-per-sec"] === undefined
      ? undefined
      : intFlag(
        "max-handshakes-per-sec",
        f["max-handshakes-per-sec"],
        1,
        1_000_000,
      ),
    tls: await readTls(f["tls-cert"], f["tls-key"]),
    log: new LineLogger({ level, format }),
  };
  let store;
  try {
    store = await openStore(f.store);
  } catch (err) {
    if (err instanceof TypeError) {
      throw new UsageError(`--store: ${err.message}`);
    }
    if (err instanceof StoreUnavailableError) {
      throw new ExitError(`--store: ${err.message}`, 2, { cause: err });
    }
    throw err;
  }
  if (opts.reusePort && store.kind === "memory") {
    opts.log.warn(
      "--reuse-port with the memory store: a client that reconnects to another process sharing this port cannot resume there; share a store (--store kv:PATH or redis://…)",
    );
  }
  let server;
  try {
    // The server owns the store from here: it closes it if it fails to start.
    server = await startServer({ ...opts, store, ownStore: true });
  } catch (err) {
    const target = failedListener(
      err,
      {
        portFlag: "port",
        hostFlag: "host",
        hostname: opts.hostname,
        port: opts.port,
      },
      opts.metricsPort === undefined ? undefined : {
        portFlag: "metrics-port",
        hostFlag: "metrics-host",
        hostname: opts.metricsHost,
        port: opts.metricsPort,
      },
      denoListenProbe(opts.reusePort),
    );
    const why = listenFailureMessage(err, target);
    if (why !== undefined) throw new ExitError(why, 1, { cause: err });
    if (opts.tls) {
      throw new ExitError(
        `Cannot serve TLS with --tls-cert ${f["tls-cert"]} and --tls-key ${
          f["tls-key"]
        }: ${(err as Error).message}`,
        1,
        { cause: err },
      );
    }
    throw err;
  }
  const stop = () => {
    opts.log.info("signal received; shutting down");
    void server.close();
  };
  signal.addEventListener("abort", stop, { once: true });
  if (server.metricsAddr) {
    opts.log.info("metrics listening", {
      addr: `${server.metricsAddr.hostname}:${server.metricsAddr.port}`,
    });
  }
  opts.log.debug("settings", {
    interval: formatMs(opts.intervalMs),
    ttl: formatMs(opts.ttlMs),
    clientTimeout: formatMs(opts.clientTimeoutMs),
  });
  await server.closed;
  signal.removeEventListener("abort", stop);
  return 0;
}

if (import.meta.main) {
  Deno.exit(
    await runMain(
      {
        name: "seqstream-server",
        usage: "Usage: deno task server [options]",
        flags: FLAGS,
      },
      Deno.args,
      serve,
    ),
  );
}
