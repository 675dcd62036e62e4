/**
 * What the client CLI writes for people, as pure functions: the result on
 * stdout (only what is known: an ERROR has no verdict to show a sum for), the
 * log line of a status change (`cannot connect` before the first welcome,
 * `disconnected; will resume` after it, the retry delay with its unit), and
 * the expected length of a run, announced on a terminal
 * (`63,842 numbers at 1 s: about 17 h 44 min`).
 *
 * @module
 */

import { CLIENT_CODES } from "../client/errors.ts";
import type { ClientEvent, ClientResult } from "../client/types.ts";
import type { LogFields } from "../common/logger.ts";

/** `63842` → `"63,842"`. */
function count(n: number): string {
  return n.toLocaleString("en-US");
}

/** A number with at most `digits` decimals, trailing zeros dropped: `1.5`, `2`. */
function trim(n: number, digits: number): string {
  return String(Number(n.toFixed(digits)));
}

/**
 * A duration for people, to the precision that matters at its size:
 * `"250 ms"`, `"4.5 s"`, `"45 s"`, `"6 min 17 s"`, `"17 h 44 min"`, `"3 d 2 h"`.
 */
export function formatHumanDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 10) return `${trim(s, 1)} s`;
  if (Math.round(s) < 60) return `${Math.round(s)} s`;
  if (Math.round(s) < 3600) {
    const t = Math.round(s);
    const sec = t % 60;
    return `${Math.floor(t / 60)} min${sec ? ` ${sec} s` : ""}`;
  }
  if (Math.round(s / 60) < 24 * 60) {
    const m = Math.round(s / 60);
    const min = m % 60;
    return `${Math.floor(m / 60)} h${min ? ` ${min} min` : ""}`;
  }
  const h = Math.round(s / 3600);
  const hours = h % 24;
  return `${Math.floor(h / 24)} d${hours ? ` ${hours} h` : ""}`;
}

/** An interval as the server's `--interval` means it: `"250 ms"`, `"1 s"`, `"1.5 s"`, `"2 min"`. */
export function formatInterval(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${trim(ms / 1000, 3)} s`;
  if (ms < 3_600_000) return `${trim(ms / 60_000, 2)} min`;
  return `${trim(ms / 3_600_000, 2)} h`;
}

/**
 * The line that announces how long a run will take, from the numbers still
 * to come and the server's interval.
 *
 * @param left numbers still to come
 * @param total numbers in the session
 * @param intervalMs the server's interval (0: as fast as the window allows)
 * @example
 * ```ts
 * formatRunLength(63842, 63842, 1000); // "63,842 numbers at 1 s: about 17 h 44 min"
 * formatRunLength(377, 900, 1000);     // "377 of 900 numbers left at 1 s: about 6 min 17 s"
 * ```
 */
export function formatRunLength(
  left: number,
  total: number,
  intervalMs: number,
): string {
  const what = left === total
    ? `${count(total)} number${total === 1 ? "" : "s"}`
    : `${count(left)} of ${count(total)} numbers left`;
  if (intervalMs <= 0) {
    return `${what}, as fast as the server's window allows`;
  }
  return `${what} at ${formatInterval(intervalMs)}: about ${
    formatHumanDuration(left * intervalMs)
  }`;
}

/** A log line: message and fields, for a {@link Logger}. */
export interface LogLine {
  message: string;
  fields: LogFields;
}

/**
 * The info log line of a client status change, or undefined when the change
 * gets none. A failed attempt before the first welcome is `cannot connect;
 * will retry` (there is nothing to resume yet); after it,
 * `disconnected; will resume`. The delay carries its unit: `retryIn=301ms`.
 *
 * @param e the event from `connect()`
 * @param welcomedBefore whether any connection of this process was
 *   welcomed before the event
 */
export function clientEventLine(
  e: ClientEvent,
  welcomedBefore: boolean,
): LogLine | undefined {
  switch (e.type) {
    case "disconnected":
      return {
        message: welcomedBefore
          ? "disconnected; will resume"
          : "cannot connect; will retry",
        fields: { error: e.error, retryIn: `${Math.round(e.retryInMs)}ms` },
      };
    case "streaming":
      return {
        message: e.resumed ? "resumed" : "streaming",
        fields: { offset: e.nextOffset, count: e.count },
      };
    default:
      return undefined;
  }
}

/** What the run knows besides its result. */
export interface RunFacts {
  /** Numbers received in the session, including before a resume. */
  received: number;
  /** `--host` and `--port`, for the hint of an unreachable server. */
  host: string;
  port: number;
}

/**
 * Why `--host`/`--port` could not be reached, from the runtime's message, or
 * undefined when the message says nothing more specific.
 */
export function unreachableHint(
  message: string,
  host: string,
  port: number,
): string | undefined {
  const m = message.toLowerCase();
  const hp = `--host ${host} --port ${port}`;
  if (
    /failed to lookup address|name or service not known|invalid host/.test(m)
  ) {
    return `--host ${host}: the name does not resolve; give a host name or an IP address`;
  }
  if (m.includes("refused")) {
    return `${hp}: nothing listens there; is the server running on that port?`;
  }
  if (
    /network is unreachable|no route to host|os error 101|os error 113/.test(m)
  ) {
    return `--host ${host}: no route from this machine to that address`;
  }
  if (/cannot assign requested address|os error 99/.test(m)) {
    return `--host ${host}: this machine cannot connect to that address (not a usable destination)`;
  }
  if (/invalid argument|os error 22/.test(m)) {
    return `--host ${host}: not an address this machine can connect to (an IPv6 link-local address needs a %interface)`;
  }
  if (m.includes("timed out")) {
    return `${hp}: no answer; a firewall may drop the packets, or the host is down`;
  }
  return undefined;
}

/**
 * The result for people on stdout. PASS and FAIL show the sums and
 * checksums; ERROR shows what is known: how far it got and why it ended,
 * not a sum and checksum of a stream that was never verified.
 *
 * @example
 * ```ts
 * formatResult(result, { received: 0, host: "127.0.0.1", port: 8080 });
 * // ERROR  session 3f1c…, 10 numbers, 0 reconnects
 * // received         0 of 10
 * // error            unreachable: Cannot connect to 127.0.0.1:8080: connection refused
 * // hint             --host 127.0.0.1 --port 8080: nothing listens there; …
 * ```
 */
export function formatResult(r: ClientResult, facts: RunFacts): string {
  const lines = [
    `${r.result}  session ${r.id}, ${r.count} numbers, ${r.reconnects} reconnect${
      r.reconnects === 1 ? "" : "s"
    }`,
  ];
  if (r.result === "ERROR") {
    lines.push(
      `received         ${count(facts.received)} of ${count(r.count)}`,
    );
    if (r.error) {
      lines.push(`error            ${r.error.code}: ${r.error.message}`);
      const hint = r.error.code === CLIENT_CODES.UNREACHABLE
        ? unreachableHint(r.error.message, facts.host, facts.port)
        : undefined;
      if (hint) lines.push(`hint             ${hint}`);
    }
    return lines.join("\n");
  }
  lines.push(
    `sum              ${r.sum}`,
    `checksum         ${r.checksum}`,
    `server checksum  ${r.serverChecksum ?? "-"}`,
  );
  if (r.error) {
    lines.push(`error            ${r.error.code}: ${r.error.message}`);
  }
  return lines.join("\n");
}
