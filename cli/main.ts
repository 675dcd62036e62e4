/**
 * The preamble every entry point shares: parse the flags, answer `--help`,
 * turn a {@link UsageError} into one line on stderr and exit 64, any other
 * error into one line and exit 1 (or the program's own code), and turn
 * SIGINT/SIGTERM into an `AbortSignal` the program reacts to.
 *
 * ```ts
 * const CLI = { name: "seqstream-demo", usage: "Usage: deno task demo [options]", flags: FLAGS };
 * if (import.meta.main) {
 *   Deno.exit(await runMain(CLI, Deno.args, async (f, { signal }) => { … return 0; }));
 * }
 * ```
 *
 * @module
 */

import {
  EXIT_USAGE,
  type FlagSpec,
  type FlagValues,
  helpText,
  parseFlags,
  UsageError,
} from "./usage.ts";

/** What an entry point is: its name on stderr lines, its usage line and flags. */
export interface Cli<S extends Record<string, FlagSpec>> {
  /** Prefix of every stderr line it writes: `seqstream-server`. */
  name: string;
  /** First line of `--help`: `Usage: deno task server [options]`. */
  usage: string;
  flags: S;
  /** Exit code of an unexpected error (default 1). */
  errorExitCode?: number;
}

/** What {@link runMain} hands the program. */
export interface MainContext {
  /** Aborted on the first SIGINT or SIGTERM, with an {@link Interrupted} reason. */
  signal: AbortSignal;
}

/** The abort reason of {@link MainContext.signal}: which signal arrived. */
export class Interrupted extends Error {
  /** @param signal the signal received */
  constructor(readonly signal: Deno.Signal) {
    super(`Interrupted by ${signal}`);
    this.name = "Interrupted";
  }
}

/**
 * A failure the program expected and explains itself: {@link runMain} prints
 * its message as one line and exits with `exitCode`.
 */
export class ExitError extends Error {
  /**
   * @param message one line for stderr
   * @param exitCode the process exit code (default 1)
   */
  constructor(
    message: string,
    readonly exitCode = 1,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "ExitError";
  }
}

/** The signals {@link runMain} turns into an abort. */
const STOP_SIGNALS: readonly Deno.Signal[] = ["SIGINT", "SIGTERM"];

/** Writes `text` to stderr, whole. */
export function writeErr(text: string): void {
  write(Deno.stderr, text);
}

/** Writes `text` to stdout, whole. */
export function writeOut(text: string): void {
  write(Deno.stdout, text);
}

const encoder = new TextEncoder();

function write(to: typeof Deno.stderr, text: string): void {
  const data = encoder.encode(text);
  for (let i = 0; i < data.length;) i += to.writeSync(data.subarray(i));
}

/** `message` folded onto one line. */
function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, " ").trim();
}

/**
 * Runs `program` with the preamble but no flag parsing (for an entry point
 * with its own parser): a {@link UsageError} is exit 64 with
 * `<name>: <message> (see --help)`, an {@link ExitError} its code, any other
 * error `errorExitCode ?? 1`, each one line on stderr; SIGINT and SIGTERM
 * abort the context's signal. The signal listeners are removed before it
 * returns.
 */
export async function runProgram(
  cli: { name: string; errorExitCode?: number },
  program: (ctx: MainContext) => Promise<number>,
): Promise<number> {
  const ac = new AbortController();
  const handlers = STOP_SIGNALS.map((sig) => {
    const h = () => ac.abort(new Interrupted(sig));
    Deno.addSignalListener(sig, h);
    return [sig, h] as const;
  });
  try {
    return await program({ signal: ac.signal });
  } catch (err) {
    if (err instanceof UsageError) {
      writeErr(`${cli.name}: ${oneLine(err.message)} (see --help)\n`);
      return EXIT_USAGE;
    }
    writeErr(
      `${cli.name}: ${oneLine(String((err as Error)?.message ?? err))}\n`,
    );
    return err instanceof ExitError ? err.exitCode : cli.errorExitCode ?? 1;
  } finally {
    for (const [sig, h] of handlers) Deno.removeSignalListener(sig, h);
  }
}

/**
 * Parses `args` against `cli.flags` and runs `program` with them under
 * {@link runProgram}; `--help` prints the help text on stdout and exits 0.
 */
export function runMain<S extends Record<string, FlagSpec>>(
  cli: Cli<S>,
  args: string[],
  program: (flags: FlagValues<S>, ctx: MainContext) => Promise<number>,
): Promise<number> {
  return runProgram(cli, (ctx) => {
    const flags = parseFlags(cli.flags, args);
    if (flags.help === true) {
      writeOut(helpText(cli.usage, cli.flags));
      return Promise.resolve(0);
    }
    return program(flags, ctx);
  });
}
