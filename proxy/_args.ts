/**
 * Command-line parsing for `proxy.ts`: pure functions from `string[]` to
 * {@link FaultProxyOptions}, so the CLI entry only does I/O.
 *
 * Durations are read by the shared `cli/duration.ts`, as in the server and
 * client. Every duration and rate flag has a range ({@link PROXY_RANGES},
 * {@link RATE_RANGE}); a value outside it is a {@link UsageError}.
 *
 * @module
 */

import { parseDuration as parseSharedDuration } from "../cli/duration.ts";
import { formatMs, type MsRange } from "../common/defaults.ts";
import {
  type FlagSpec,
  helpText,
  parseFlags,
  UsageError,
} from "../cli/usage.ts";
import type { Endpoint, FaultProxyOptions } from "./fault_proxy.ts";

// A bad command line: the CLI prints its message on one line and exits 64.
export { UsageError };

/** The range of every duration flag, in ms (inclusive). All fit a runtime timer. */
export const PROXY_RANGES = {
  lifetime: { min: 0, max: 86_400_000 },
  slicerDelay: { min: 0, max: 60_000 },
  latency: { min: 0, max: 3_600_000 },
  jitter: { min: 0, max: 3_600_000 },
  blackholeEvery: { min: 1, max: 86_400_000 },
  blackholeFor: { min: 0, max: 86_400_000 },
  freezeEvery: { min: 1, max: 86_400_000 },
  freezeFor: { min: 0, max: 86_400_000 },
} as const satisfies Record<string, MsRange>;

/** The range of the rate flags (`--bandwidth`, `--bloat`, `--pushback`), in bytes per second. */
export const RATE_RANGE = { min: 1, max: 1_000_000_000 } as const;

const R = PROXY_RANGES;
const range = (r: MsRange) => `${formatMs(r.min)}..${formatMs(r.max)}`;
const rates = `${RATE_RANGE.min}..${RATE_RANGE.max}`;

/**
 * Every flag of the proxy, in the shape the server and client CLIs use
 * (`cli/usage.ts`), so `--help` reads the same in all three.
 */
export const PROXY_FLAGS = {
  listen: {
    type: "string",
    default: "127.0.0.1:0",
    help: "HOST:PORT  where to listen (port 0 picks a free one, logged)",
  },
  upstream: {
    type: "string",
    multiple: true,
    help: "HOST:PORT  server to forward to; repeat for round-robin (required)",
  },
  lifetime: {
    type: "string",
    help:
      `MIN-MAX  cut each connection after a random lifetime, e.g. 200ms-2s, each side ${
        range(R.lifetime)
      } (default: off)`,
  },
  "reset-probability": {
    type: "string",
    help: "P  probability in [0, 1] that a lifetime cut is an RST (default: 0)",
  },
  slicer: {
    type: "string",
    help:
      "MIN-MAX  split server-to-client data into MIN..MAX-byte pieces, e.g. 1-7 (default: off)",
  },
  "slicer-delay": {
    type: "string",
    help: `DURATION  pause between slices, ${
      range(R.slicerDelay)
    }; needs --slicer (default: 0)`,
  },
  latency: {
    type: "string",
    help: `DURATION  delay added to every chunk, both directions, ${
      range(R.latency)
    } (default: 0)`,
  },
  jitter: {
    type: "string",
    help: `DURATION  uniform random +/- added to the latency, ${
      range(R.jitter)
    } (default: 0)`,
  },
  bandwidth: {
    type: "string",
    help:
      `BYTES  slow link: bytes per second per direction and connection, ${rates}; holds up to 64 KiB, then pauses the sender (default: unlimited)`,
  },
  bloat: {
    type: "string",
    help:
      `BYTES  slow link that buffers eagerly: reads everything at once and delivers BYTES per second, ${rates} (default: off)`,
  },
  pushback: {
    type: "string",
    help:
      `BYTES  slow link that pushes back: delivers BYTES per second and stops reading past 1 KiB held, ${rates}; at most one of --bandwidth, --bloat, --pushback (default: off)`,
  },
  "blackhole-every": {
    type: "string",
    help: `DURATION  start a black hole this often, ${
      range(R.blackholeEvery)
    }; needs --blackhole-for (default: off)`,
  },
  "blackhole-for": {
    type: "string",
    help: `DURATION  how long each black hole drops all bytes, ${
      range(R.blackholeFor)
    } (default: off)`,
  },
  "freeze-every": {
    type: "string",
    help: `DURATION  start a freeze this often, ${
      range(R.freezeEvery)
    }; needs --freeze-for (default: off)`,
  },
  "freeze-for": {
    type: "string",
    help:
      `DURATION  how long each freeze forwards nothing, reads nothing and keeps the sockets open, ${
        range(R.freezeFor)
      }; alone, the length of a SIGUSR2 freeze, otherwise SIGUSR2 toggles the freeze (default: off)`,
  },
  "cut-after-bytes": {
    type: "string",
    help:
      "N  close each connection after N server-to-client bytes (default: off)",
  },
  "cut-once": {
    type: "boolean",
    default: false,
    help: "apply --cut-after-bytes to the first connection only",
  },
  seed: {
    type: "string",
    help:
      "N  seed of the random choices, 0..4294967295 (default: random, logged)",
  },
  help: { type: "boolean", short: "h", default: false, help: "show this help" },
} as const satisfies Record<string, FlagSpec>;

/** First lines of `--help`: the usage line and what the proxy does. */
export const USAGE = `Usage: deno task proxy --upstream HOST:PORT [options]

A fault-injection TCP proxy. Logs one line per connection event on stderr.
SIGUSR2 toggles a freeze of every connection (see --freeze-for).`;

/** `--help` text: every flag with its default and range. */
export const HELP = `${
  helpText(USAGE, PROXY_FLAGS)
}\nDurations: 250ms, 2s, 1.5s, 1m, 1h, or 0.\n`;

/** What the command line asks for. */
export type ProxyCommand = { help: true } | {
  help: false;
  options: FaultProxyOptions;
  /**
   * How long a SIGUSR2 freeze lasts (ms): `--freeze-for` when given without
   * `--freeze-every`. Absent: SIGUSR2 toggles the freeze on and off.
   */
  signalFreezeMs?: number;
};

/**
 * Parses the proxy's command line.
 *
 * @param args The arguments, e.g. `Deno.args`.
 * @throws {UsageError} On an unknown flag, a missing `--upstream` or a bad value.
 *
 * @example
 * ```ts
 * import { parseProxyArgs } from "./_args.ts";
 *
 * parseProxyArgs(["--upstream", "127.0.0.1:8080", "--slicer", "1-7"]);
 * ```
 */
export function parseProxyArgs(args: string[]): ProxyCommand {
  const values = parseFlags(PROXY_FLAGS, args);
  if (values.help) return { help: true };

  const v = values;
  const flag = <T>(
    name: keyof typeof v,
    parse: (s: string) => T,
  ): T | undefined => {
    const raw = v[name];
    if (typeof raw !== "string") return undefined;
    try {
      return parse(raw);
    } catch (e) {
      throw new UsageError(
        `Invalid --${name} "${raw}": ${(e as Error).message}`,
        { cause: e },
      );
    }
  };

  if (!v.upstream?.length) throw new UsageError("Missing --upstream HOST:PORT");
  const listen = flag("listen", parseEndpoint) ??
    parseEndpoint(PROXY_FLAGS.listen.default);
  const options: FaultProxyOptions = {
    listen,
    upstreams: v.upstream.map((u) => {
      try {
        return parseEndpoint(u);
      } catch (e) {
        throw new UsageError(
          `Invalid --upstream "${u}": ${(e as Error).message}`,
          { cause: e },
        );
      }
    }),
  };

  const ms = (r: MsRange) => (s: string) => inRange(parseDuration(s), r);
  const lifetime = flag("lifetime", (s) => parseRange(s, ms(R.lifetime)));
  if (lifetime) options.lifetime = { minMs: lifetime.min, maxMs: lifetime.max };
  const p = flag("reset-probability", parseProbability);
  if (p !== undefined) options.resetProbability = p;

  const slicer = flag("slicer", (s) => parseRange(s, (b) => parseCount(b, 1)));
  const slicerDelay = flag("slicer-delay", ms(R.slicerDelay));
  if (slicerDelay !== undefined && !slicer) {
    throw new UsageError("--slicer-delay needs --slicer");
  }
  if (slicer) {
    options.slicer = {
      minBytes: slicer.min,
      maxBytes: slicer.max,
      delayMs: slicerDelay ?? 0,
    };
  }

  const latency = flag("latency", ms(R.latency));
  const jitter = flag("jitter", ms(R.jitter));
  if (latency !== undefined || jitter !== undefined) {
    options.latency = { ms: latency ?? 0, jitterMs: jitter ?? 0 };
  }
  const slow = (["bandwidth", "bloat", "pushback"] as const).filter((k) =>
    v[k] !== undefined
  );
  if (slow.length > 1) {
    throw new UsageError(
      `--${slow.join(" and --")} exclude each other: pick one slow link`,
    );
  }
  for (const k of slow) {
    options[k] = { bytesPerSecond: flag(k, parseRate)! };
  }

  const every = flag("blackhole-every", ms(R.blackholeEvery));
  const forMs = flag("blackhole-for", ms(R.blackholeFor));
  if ((every === undefined) !== (forMs === undefined)) {
    throw new UsageError("--blackhole-every and --blackhole-for go together");
  }
  if (every !== undefined && forMs !== undefined) {
    options.blackhole = { everyMs: every, forMs };
  }

  const freezeEvery = flag("freeze-every", ms(R.freezeEvery));
  const freezeFor = flag("freeze-for", ms(R.freezeFor));
  if (freezeEvery !== undefined && freezeFor === undefined) {
    throw new UsageError("--freeze-every needs --freeze-for");
  }
  let signalFreezeMs: number | undefined;
  if (freezeEvery !== undefined && freezeFor !== undefined) {
    options.freeze = { everyMs: freezeEvery, forMs: freezeFor };
  } else if (freezeFor !== undefined) {
    signalFreezeMs = freezeFor;
  }

  const cut = flag("cut-after-bytes", (s) => parseCount(s, 0));
  if (v["cut-once"] && cut === undefined) {
    throw new UsageError("--cut-once needs --cut-after-bytes");
  }
  if (cut !== undefined) options.cutAfterBytes = cut;
  if (v["cut-once"]) options.cutAfterBytesOnce = true;
  const seed = flag("seed", (s) => {
    const n = parseCount(s, 0);
    if (n > 0xffffffff) throw new RangeError("must be at most 4294967295");
    return n;
  });
  if (seed !== undefined) options.seed = seed;
  return signalFreezeMs === undefined
    ? { help: false, options }
    : { help: false, options, signalFreezeMs };
}

/**
 * Returns `ms` if it lies in `r`.
 *
 * @throws {RangeError} Naming the range, e.g. `must be from 0 to 1h`.
 */
export function inRange(ms: number, r: MsRange): number {
  if (ms < r.min || ms > r.max) {
    throw new RangeError(
      `must be from ${formatMs(r.min)} to ${formatMs(r.max)}`,
    );
  }
  return ms;
}

/**
 * Parses a rate in whole bytes per second, within {@link RATE_RANGE}.
 *
 * @throws {RangeError} If `s` is not a whole number in range.
 */
export function parseRate(s: string): number {
  const n = parseCount(s, 0);
  if (n < RATE_RANGE.min || n > RATE_RANGE.max) {
    throw new RangeError(
      `must be from ${RATE_RANGE.min} to ${RATE_RANGE.max} bytes per second`,
    );
  }
  return n;
}

/**
 * Parses a duration into whole milliseconds with the shared parser
 * (`250ms`, `2s`, `1.5s`, `1m`, `1h`, or a bare `0`), as a {@link RangeError}
 * whose message leaves out the value, which the flag's message already quotes.
 *
 * @throws {RangeError} If `s` is not such a duration.
 */
export function parseDuration(s: string): number {
  try {
    return parseSharedDuration(s);
  } catch (e) {
    throw new RangeError(
      (e as Error).message.replace(/^Invalid duration "[^"]*": /, ""),
      { cause: e },
    );
  }
}

/**
 * Parses `MIN-MAX` (or a single value, meaning `MIN-MIN`) with `parse` for each side.
 *
 * @throws {RangeError} If a side does not parse or MIN exceeds MAX.
 */
export function parseRange(
  s: string,
  parse: (s: string) => number,
): { min: number; max: number } {
  const parts = s.split("-");
  if (parts.length > 2) throw new RangeError("expected MIN-MAX");
  const min = parse(parts[0]!);
  const max = parts[1] === undefined ? min : parse(parts[1]);
  if (min > max) throw new RangeError("MIN is more than MAX");
  return { min, max };
}

/**
 * Parses `HOST:PORT`, where HOST may be a bracketed IPv6 address (`[::1]:9000`).
 *
 * @throws {RangeError} If there is no port or it is not in 0..65535.
 */
export function parseEndpoint(s: string): Endpoint {
  const i = s.lastIndexOf(":");
  if (i <= 0) throw new RangeError("expected HOST:PORT");
  const hostname = s.slice(0, i).replace(/^\[(.*)\]$/, "$1");
  const port = parseCount(s.slice(i + 1), 0);
  if (port > 65535) throw new RangeError("port must be at most 65535");
  return { hostname, port };
}

function parseCount(s: string, min: number): number {
  if (!/^\d+$/.test(s)) throw new RangeError("expected a whole number");
  const n = Number(s);
  if (n < min) throw new RangeError(`must be at least ${min}`);
  return n;
}

function parseProbability(s: string): number {
  const n = /^\d*\.?\d+$/.test(s) ? Number(s) : NaN;
  if (!(n >= 0 && n <= 1)) throw new RangeError("expected a number in [0, 1]");
  return n;
}
