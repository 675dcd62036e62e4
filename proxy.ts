/**
 * CLI of the fault-injection proxy:
 *
 * ```sh
 * deno task proxy --listen 127.0.0.1:9000 \
 *   --upstream 127.0.0.1:8080 --lifetime 200ms-2s --reset-probability 0.3 --slicer 1-7
 * ```
 *
 * Logs one line per connection event on stderr; stdout stays empty. Exits 0
 * after closing cleanly on SIGINT or SIGTERM, 64 on a bad command line (a flag
 * out of its range included), 1 if it cannot listen. `--help` lists every flag
 * with its default and range. SIGUSR2 freezes every connection (not SIGUSR1,
 * which starts the V8 inspector in Deno as in Node): for
 * `--freeze-for` when given alone, else it toggles the freeze on and off.
 *
 * @module
 */

import {
  ExitError,
  type Interrupted,
  runProgram,
  writeErr,
  writeOut,
} from "./cli/main.ts";
import { type FaultProxyEvent, startProxy } from "./proxy/fault_proxy.ts";
import { HELP, parseProxyArgs } from "./proxy/_args.ts";

function log(line: string): void {
  writeErr(`proxy: ${line}\n`);
}

/** One log line for `event`, or undefined for events not worth a line (drops). */
function describe(e: FaultProxyEvent): string | undefined {
  switch (e.type) {
    case "open": {
      const life = e.lifetimeMs === undefined
        ? ""
        : ` lifetime=${e.lifetimeMs}ms`;
      return `open #${e.id} ${e.client} -> ${e.upstream.hostname}:${e.upstream.port}${life}`;
    }
    case "cut":
      return `cut #${e.id} ${e.reason} ${e.reset ? "RST" : "FIN"}`;
    case "close":
      return `close #${e.id} up=${e.bytesUp}B down=${e.bytesDown}B` +
        (e.error === undefined ? "" : ` error="${e.error}"`);
    case "blackhole":
      return `blackhole ${e.on ? "on" : "off"}`;
    case "freeze":
      return `freeze ${e.on ? "on" : "off"}`;
    case "drop":
      return undefined;
  }
}

/**
 * Runs the proxy until SIGINT or SIGTERM.
 *
 * @param args Command-line arguments, as `Deno.args`.
 * @returns The process exit code.
 */
export function main(args: string[]): Promise<number> {
  return runProgram({ name: "proxy" }, async ({ signal }) => {
    const command = parseProxyArgs(args);
    if (command.help) {
      writeOut(HELP); // asked for, so it is the result: stdout
      return 0;
    }
    let proxy;
    try {
      proxy = await startProxy(command.options);
    } catch (e) {
      throw new ExitError(
        `Cannot start: ${(e as Error).message}`,
        e instanceof RangeError ? 64 : 1,
        { cause: e },
      );
    }
    for (
      const type of ["open", "cut", "close", "blackhole", "freeze"] as const
    ) {
      proxy.events.addEventListener(type, (e) => {
        const line = describe((e as CustomEvent<FaultProxyEvent>).detail);
        if (line) log(line);
      });
    }
    const ups = command.options.upstreams.map((u) => `${u.hostname}:${u.port}`)
      .join(", ");
    log(
      `listening on ${proxy.hostname}:${proxy.port} -> ${ups} (seed ${proxy.seed})`,
    );

    const freezeMs = command.signalFreezeMs;
    const onFreezeSignal = () => {
      if (freezeMs !== undefined) proxy.freeze(freezeMs);
      else proxy.setFrozen(!proxy.frozen);
    };
    Deno.addSignalListener("SIGUSR2", onFreezeSignal);
    await new Promise((resolve) =>
      signal.addEventListener("abort", resolve, { once: true })
    );
    Deno.removeSignalListener("SIGUSR2", onFreezeSignal);
    log(`${(signal.reason as Interrupted).signal}: closing`);
    await proxy.close();
    log("closed");
    return 0;
  });
}

if (import.meta.main) Deno.exit(await main(Deno.args));
