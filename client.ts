/**
 * seqstream client: CLI entry point and the `connect()`/`runClient()` API.
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

import { parseDuration } from "./cli/duration.ts";
import { Logger } from "./cli/log.ts";
import { durationFlag, EXIT_USAGE, type FlagSpec, helpText, intFlag, parseFlags, UsageError } from "./cli/usage.ts";
import { type ClientResult, connect } from "./client/client.ts";
import { MAX_COUNT } from "./protocol/messages.ts";
import { isUuid } from "./protocol/uuid.ts";

export {
  type ClientEvent,
  type ClientHandle,
  type ClientOptions,
  type ClientResult,
  type ClientState,
  connect,
  runClient,
} from "./client/client.ts";

const FLAGS: Record<string, FlagSpec> = {
  port: { type: "string", short: "p", default: "8080", help: "PORT  server port" },
  host: { type: "string", default: "127.0.0.1", help: "HOST  server host" },
  count: { type: "string", short: "n", help: `N  numbers to ask for, 1..${MAX_COUNT} (default: random)` },
  id: { type: "string", help: "UUID  session id (default: a random v4 UUID)" },
  json: { type: "boolean", default: false, help: "print exactly one JSON line on stdout" },
  "idle-timeout": {
    type: "string",
    help: "DURATION  reconnect when the server is silent this long (default: 3 intervals, at least 1s)",
  },
  "log-level": { type: "string", default: "info", help: "LEVEL  debug | info | warn | error | silent (stderr)" },
  help: { type: "boolean", short: "h", default: false, help: "show this help" },
};

const EXIT: Record<ClientResult["result"], number> = { PASS: 0, FAIL: 1, ERROR: 2 };

function human(r: ClientResult): string {
  const lines = [
    `${r.result}  session ${r.id}, ${r.count} numbers, ${r.reconnects} reconnect${r.reconnects === 1 ? "" : "s"}`,
    `sum              ${r.sum}`,
    `checksum         ${r.checksum}`,
    `server checksum  ${r.serverChecksum ?? "-"}`,
  ];
  if (r.error) lines.push(`error            ${r.error.code}: ${r.error.message}`);
  return lines.join("\n");
}

async function main(args: string[]): Promise<number> {
  let f;
  let log: Logger;
  let count: number | undefined;
  let idleTimeoutMs: number | undefined;
  try {
    f = parseFlags(FLAGS, args);
    if (f.help) {
      console.log(helpText("Usage: deno task client [options]", FLAGS));
      return 0;
    }
    const level = f["log-level"] as string;
    log = new Logger({ level: level as "info", base: {} });
    if (!["debug", "info", "warn", "error", "silent"].includes(level)) {
      throw new UsageError(`--log-level must be debug, info, warn, error or silent, got "${level}"`);
    }
    if (f.count !== undefined) count = intFlag("count", f.count as string, 1, MAX_COUNT);
    if (f.id !== undefined && !isUuid(f.id as string)) {
      throw new UsageError(`--id must be a UUID like 3f1c…-…, got "${f.id}"`);
    }
    if (f["idle-timeout"] !== undefined) {
      idleTimeoutMs = durationFlag("idle-timeout", f["idle-timeout"] as string, parseDuration);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`seqstream-client: ${err.message} (see --help)`);
      return EXIT_USAGE;
    }
    throw err;
  }
  const port = intFlag("port", f.port as string, 1, 65535);
  const handle = connect({
    hostname: f.host as string,
    port,
    ...(count !== undefined ? { count } : {}),
    ...(f.id !== undefined ? { id: f.id as string } : {}),
    ...(idleTimeoutMs !== undefined ? { idleTimeoutMs } : {}),
    onEvent(e) {
      if (e.type === "disconnected") log.info("disconnected; will resume", { error: e.error, retryIn: e.retryInMs });
      else if (e.type === "streaming") {
        log.info(e.resumed ? "resumed" : "streaming", { offset: e.nextOffset, count: e.count });
      }
    },
  });
  let interrupted = false;
  const stop = () => {
    interrupted = true;
    void handle.close();
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  const r = await handle.result;
  Deno.removeSignalListener("SIGINT", stop);
  Deno.removeSignalListener("SIGTERM", stop);
  if (interrupted) {
    console.error(`seqstream-client: interrupted`);
    return 130;
  }
  console.log(f.json ? JSON.stringify(r) : human(r));
  return EXIT[r.result];
}

if (import.meta.main) Deno.exit(await main(Deno.args));
