/**
 * Logging as a small interface: the library logs through {@link Logger},
 * and a user may pass any object with these four methods. {@link LineLogger}
 * is the default: one line per event on stderr, `pretty` or `json`. stdout is
 * the programs' result and never gets a log line.
 *
 * @module
 */

/** Fields attached to an event. */
export type LogFields = Record<string, string | number | boolean | undefined>;

/** What the library needs of a logger. */
export interface Logger {
  /** Detail for troubleshooting. */
  debug(msg: string, fields?: LogFields): void;
  /** One line per session event. */
  info(msg: string, fields?: LogFields): void;
  /** Something went wrong and was handled. */
  warn(msg: string, fields?: LogFields): void;
  /** Something went wrong and was not. */
  error(msg: string, fields?: LogFields): void;
}

/** A logger that drops everything. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

/** Log levels in increasing severity. */
export const LEVELS = ["debug", "info", "warn", "error", "silent"] as const;
/** A log level name. */
export type LogLevel = typeof LEVELS[number];
/** Output format. */
export type LogFormat = "pretty" | "json";

/** Options for {@link LineLogger}. */
export interface LineLoggerOptions {
  /** Minimum level written. Default `info`. */
  level?: LogLevel;
  /** `pretty` (default) or `json`. */
  format?: LogFormat;
  /** Where lines go. Default: stderr. */
  write?: (line: string) => void;
  /** Fields added to every line (e.g. `{ server: "a1b2" }`). */
  base?: LogFields;
}

const enc = new TextEncoder();

function stderrWrite(line: string): void {
  try {
    Deno.stderr.writeSync(enc.encode(line + "\n"));
  } catch {
    // stderr closed: nowhere left to report to.
  }
}

/**
 * A leveled {@link Logger} that writes one line per event.
 *
 * @example
 * ```ts
 * const log = new LineLogger({ level: "info", format: "json" });
 * log.info("session resumed", { id, offset: 42 });
 * ```
 */
export class LineLogger implements Logger {
  readonly #min: number;
  readonly #format: LogFormat;
  readonly #write: (line: string) => void;
  readonly #base: LogFields;

  /** @param opts level, format, sink and base fields */
  constructor(opts: LineLoggerOptions = {}) {
    this.#min = LEVELS.indexOf(opts.level ?? "info");
    this.#format = opts.format ?? "pretty";
    this.#write = opts.write ?? stderrWrite;
    this.#base = opts.base ?? {};
  }

  /** Whether `level` would be written. */
  enabled(level: LogLevel): boolean {
    return LEVELS.indexOf(level) >= this.#min && level !== "silent";
  }

  /** Logs at debug level. */
  debug(msg: string, fields?: LogFields): void {
    this.log("debug", msg, fields);
  }
  /** Logs at info level. */
  info(msg: string, fields?: LogFields): void {
    this.log("info", msg, fields);
  }
  /** Logs at warn level. */
  warn(msg: string, fields?: LogFields): void {
    this.log("warn", msg, fields);
  }
  /** Logs at error level. */
  error(msg: string, fields?: LogFields): void {
    this.log("error", msg, fields);
  }

  /** Logs `msg` at `level` with `fields`. */
  log(level: LogLevel, msg: string, fields: LogFields = {}): void {
    if (!this.enabled(level)) return;
    const time = new Date().toISOString();
    const all = { ...this.#base, ...fields };
    if (this.#format === "json") {
      this.#write(JSON.stringify({ time, level, msg, ...all }));
      return;
    }
    let line = `${time} ${level.toUpperCase().padEnd(5)} ${msg}`;
    for (const [k, v] of Object.entries(all)) {
      if (v === undefined) continue;
      const s = String(v);
      line += ` ${k}=${/[\s"=]/.test(s) ? JSON.stringify(s) : s}`;
    }
    this.#write(line);
  }
}

/** Whether `s` names a log level. */
export function isLogLevel(s: string): s is LogLevel {
  return (LEVELS as readonly string[]).includes(s);
}
