/**
 * seqstream client: the CLI entry point. The library is `client/mod.ts`
 * (`connect()`, `runClient()`, …); this file only parses flags, prints the
 * result and sets the exit code.
 *
 * ```sh
 * deno task client --port 8080 --count 10
 * ```
 *
 * Exit codes: 0 PASS, 1 FAIL (checksum mismatch), 2 ERROR (refused, expired,
 * unreachable), 64 usage error, 130 interrupted.
 *
 * @module
 */

import {
  ExitError,
  type MainContext,
  runMain,
  writeErr,
  writeOut,
} from "./cli/main.ts";
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
  CLIENT_DEFAULTS,
  DURATION_RANGES,
  formatMs,
  SERVER_DEFAULTS,
} from "./common/defaults.ts";
import { LineLogger } from "./common/logger.ts";
import { connect } from "./client/client.ts";
import type {
  ClientOptions,
  ClientResult,
  ClientState,
} from "./client/types.ts";
import { CLIENT_CODES, ClientError } from "./client/errors.ts";
import { ProgressReporter } from "./client/progress.ts";
import {
  clientEventLine,
  formatResult,
  formatRunLength,
} from "./cli/client_output.ts";
import { isSessionGone } from "./client/retry.ts";
import { loadState, StateFile, StateFileError } from "./client/state_file.ts";
import { tlsDialer } from "./client/tls.ts";
import { MAX_COUNT } from "./protocol/messages.ts";
import { isUuid } from "./protocol/uuid.ts";

const FLAGS = {
  port: {
    type: "string",
    short: "p",
    default: String(SERVER_DEFAULTS.port),
    help: "PORT  server port",
  },
  host: { type: "string", default: "127.0.0.1", help: "HOST  server host" },
  count: {
    type: "string",
    short: "n",
    help: `N  numbers to ask for, 1..${MAX_COUNT} (default: random)`,
  },
  id: { type: "string", help: "UUID  session id (default: a random v4 UUID)" },
  json: {
    type: "boolean",
    default: false,
    help: "print exactly one JSON line on stdout",
  },
  "idle-timeout": {
    type: "string",
    help:
      `DURATION  reconnect when the server is silent this long (default: 3 intervals, at least ${
        formatMs(CLIENT_DEFAULTS.minIdleTimeoutMs)
      })`,
  },
  "connect-timeout": {
    type: "string",
    default: formatMs(CLIENT_DEFAULTS.connectGiveUpMs),
    help:
      "DURATION  give up (ERROR unreachable) when the server cannot be reached for this long at the start",
  },
  state: {
    type: "string",
    help:
      "FILE  keep the session's resumable state in FILE; if FILE exists, resume that session (default: none)",
  },
  tls: { type: "boolean", default: false, help: "connect with TLS" },
  ca: {
    type: "string",
    help:
      "FILE  PEM CA certificate to trust for --tls, besides the system roots (default: none)",
  },
  quiet: {
    type: "boolean",
    short: "q",
    default: false,
    help: "no progress and no info logs (warnings and errors remain)",
  },
  ...COMMON_FLAGS,
} as const satisfies Record<string, FlagSpec>;

const EXIT: Record<ClientResult["result"], number> = {
  PASS: 0,
  FAIL: 1,
  ERROR: 2,
};

async function program(
  f: FlagValues<typeof FLAGS>,
  { signal }: MainContext,
): Promise<number> {
  let progress: ProgressReporter | undefined;
  const level = logLevelFlag(f["log-level"]);
  const log = new LineLogger({
    level: f.quiet && (level === "debug" || level === "info") ? "warn" : level,
    base: {},
    write: (line) =>
      progress ? progress.writeLine(line) : writeErr(line + "\n"),
  });
  const port = intFlag("port", f.port, 1, 65535);
  const connectGiveUpMs = durationFlag(
    "connect-timeout",
    f["connect-timeout"],
    DURATION_RANGES.connectTimeout,
  );
  if (f.ca !== undefined && !f.tls) throw new UsageError("--ca needs --tls");
  const count = f.count === undefined
    ? undefined
    : intFlag("count", f.count, 1, MAX_COUNT);
  if (f.id !== undefined && !isUuid(f.id)) {
    throw new UsageError(`--id must be a UUID like 3f1c…-…, got "${f.id}"`);
  }
  const idleTimeoutMs = f["idle-timeout"] === undefined
    ? undefined
    : durationFlag(
      "idle-timeout",
      f["idle-timeout"],
      DURATION_RANGES.idleTimeout,
    );

  const statePath = f.state;
  const stateFile = statePath === undefined
    ? undefined
    : new StateFile(statePath);
  let resumeFrom: ClientState | undefined;
  let dial: ClientOptions["dial"];
  try {
    if (statePath !== undefined) {
      resumeFrom = await loadStateForStart(statePath, f.id, count);
      if (resumeFrom) {
        log.info("resuming from state file", {
          file: statePath,
          offset: resumeFrom.nextOffset,
        });
      }
    }
    if (f.tls) {
      dial = tlsDialer(
        f.ca === undefined ? {} : { caCerts: [await readCa(f.ca)] },
      );
    }
  } catch (err) {
    // A failure before the run starts: exit 2, one line on stderr, and the JSON result with --json.
    if (!(err instanceof ClientError)) throw err;
    if (!f.json) throw new ExitError(err.message, 2, { cause: err });
    writeErr(`seqstream-client: ${err.message}\n`);
    const result: ClientResult = {
      result: "ERROR",
      id: resumeFrom?.id ?? f.id ?? "",
      count: count ?? 0,
      sum: 0,
      checksum: "00000000",
      serverChecksum: null,
      serverSum: null,
      reconnects: 0,
      error: { code: err.code, message: err.message },
    };
    writeOut(JSON.stringify(result) + "\n");
    return 2;
  }

  // The CLI picks a random count itself (rather than leaving it to connect()) so the progress line knows the total.
  const total = resumeFrom?.count ?? count ??
    1 + Math.floor(Math.random() * MAX_COUNT);
  const mode = f.quiet ? "off" : Deno.stderr.isTerminal() ? "bar" : "log";
  progress = new ProgressReporter({
    total,
    received: resumeFrom?.nextOffset ?? 0,
    mode,
    log,
  });
  // On a terminal, say how long the run will take once the interval is
  // known: from the state file, or from the first welcome's checkpoint.
  // (A bare `deno task client` asks for up to 65,535 numbers at 1 s: 18 h.)
  let announced = mode !== "bar";
  const announce = (s: { nextOffset: number; intervalMs: number }) => {
    if (announced) return;
    announced = true;
    const left = total - s.nextOffset;
    // Resumed at the end (only the acknowledgement was missing): nothing to announce.
    if (left > 0) {
      progress?.writeLine(formatRunLength(left, total, s.intervalMs));
    }
  };
  if (resumeFrom) announce(resumeFrom);
  // Whether a connection of this process was welcomed: until then a failed
  // attempt is "cannot connect", as the bar says `connecting`.
  let welcomed = false;
  const handle = connect({
    hostname: f.host,
    port,
    ...(resumeFrom ? { resumeFrom } : { count: total }),
    ...(f.id !== undefined ? { id: f.id } : {}),
    ...(idleTimeoutMs !== undefined ? { idleTimeoutMs } : {}),
    ...(dial ? { dial } : {}),
    connectGiveUpMs,
    // Every 100 numbers, or each second on slow streams: the file's lastContact, which judges staleness, stays fresh.
    checkpointEvery: CLIENT_DEFAULTS.checkpointEvery,
    checkpointMs: 1000,
    // The final state is awaited on disk (fsynced, renamed, directory fsynced) before the ACK that completes the session.
    onCheckpoint: (s, { durable }) => {
      announce(s);
      if (!stateFile) return;
      return durable ? stateFile.saveDurable(s) : stateFile.save(s);
    },
    onNumber: (offset) => progress!.onNumber(offset),
    onEvent(e) {
      progress!.onEvent(e);
      const line = clientEventLine(e, welcomed);
      if (line) log.info(line.message, line.fields);
      if (e.type === "streaming") welcomed = true;
    },
  });
  let interrupted = false;
  const stop = () => {
    interrupted = true;
    void handle.close();
  };
  signal.addEventListener("abort", stop, { once: true });
  const r = await handle.result;
  signal.removeEventListener("abort", stop);
  const received = progress.view().received;
  progress.stop();
  progress = undefined;
  if (stateFile) {
    await stateFile.flush();
    if (stateFile.error) {
      log.warn("could not write the state file", {
        file: stateFile.path,
        error: String(stateFile.error),
      });
    }
    if (
      !interrupted &&
      (r.result !== "ERROR" || isSessionGone(r.error?.code ?? ""))
    ) {
      await stateFile.remove().catch((err) =>
        log.warn("could not delete the state file", {
          file: stateFile.path,
          error: String(err),
        })
      );
    }
  }
  if (interrupted) {
    writeErr(
      `seqstream-client: interrupted${
        stateFile ? `; run again with --state ${stateFile.path} to resume` : ""
      }\n`,
    );
    return 130;
  }
  writeOut(
    (f.json
      ? JSON.stringify(r)
      : formatResult(r, { received, host: f.host, port })) + "\n",
  );
  return EXIT[r.result];
}

/**
 * Loads `--state FILE` for a start: null when it does not exist (and its
 * directory does, so it can be written), the state when it is usable.
 */
async function loadStateForStart(
  path: string,
  id: string | undefined,
  count: number | undefined,
): Promise<ClientState | undefined> {
  let state;
  try {
    state = await loadState(path);
  } catch (err) {
    if (!(err instanceof StateFileError)) throw err;
    throw new ClientError(
      err.problem === "stale"
        ? CLIENT_CODES.SESSION_EXPIRED
        : err.problem === "corrupt"
        ? CLIENT_CODES.STATE_CORRUPT
        : CLIENT_CODES.STATE_UNREADABLE,
      err.message,
      { cause: err },
    );
  }
  if (state === null) {
    const dir = path.includes("/")
      ? path.slice(0, path.lastIndexOf("/")) || "/"
      : ".";
    const info = await Deno.stat(dir).catch(() => null);
    if (!info?.isDirectory) {
      throw new ClientError(
        CLIENT_CODES.STATE_UNREADABLE,
        `cannot write state file ${path}: ${dir} is not a directory`,
      );
    }
    return undefined;
  }
  if (id !== undefined && id !== state.id) {
    throw new UsageError(
      `--id ${id} differs from session ${state.id} in state file ${path}; drop --id or the file`,
    );
  }
  if (count !== undefined && count !== state.count) {
    throw new UsageError(
      `--count ${count} differs from count ${state.count} in state file ${path}`,
    );
  }
  return state;
}

/** Reads `--ca FILE` as PEM. */
async function readCa(path: string): Promise<string> {
  let text;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new ClientError(
      CLIENT_CODES.TLS_ERROR,
      `cannot read --ca ${path}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  if (!text.includes("-----BEGIN CERTIFICATE-----")) {
    throw new ClientError(
      CLIENT_CODES.TLS_ERROR,
      `--ca ${path} is not a PEM certificate file`,
    );
  }
  return text;
}

if (import.meta.main) {
  Deno.exit(
    await runMain(
      {
        name: "seqstream-client",
        usage: "Usage: deno task client [options]",
        flags: FLAGS,
        errorExitCode: 2,
      },
      Deno.args,
      program,
    ),
  );
}
