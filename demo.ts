// deno-lint-ignore-file no-console -- a CLI entry point: stdout is its result, stderr its usage errors
/**
 * `deno task demo`: the whole product in one process, in about 15 seconds.
 * An in-process server on the memory store, a flaky proxy in front of it that
 * cuts (some with RST) and slices connections, and clients that get cut,
 * resume and verify. Each client prints its result line on stdout; the proxy's
 * and clients' reconnects are summarised at the end. On a terminal, a progress
 * bar on stderr shows the numbers received by all clients and the resumes.
 *
 * @module
 */

import { runMain } from "./cli/main.ts";
import { DURATION_RANGES } from "./common/defaults.ts";
import { LineLogger } from "./common/logger.ts";
import { durationFlag, type FlagSpec, intFlag } from "./cli/usage.ts";
import { runClient } from "./client/client.ts";
import { ProgressReporter } from "./client/progress.ts";
import { startProxy } from "./proxy/fault_proxy.ts";
import { startServer } from "./server/server.ts";
import { MAX_COUNT } from "./protocol/messages.ts";

const FLAGS = {
  clients: { type: "string", default: "8", help: "N  concurrent clients" },
  count: { type: "string", default: "300", help: "N  numbers per client" },
  interval: {
    type: "string",
    default: "40ms",
    help: "DURATION  server interval",
  },
  "metrics-port": {
    type: "string",
    help:
      "PORT  serve the dashboard (GET /) and /metrics on 127.0.0.1:PORT, to watch the sessions drop and resume (default: off)",
  },
  help: { type: "boolean", short: "h", default: false, help: "show this help" },
} as const satisfies Record<string, FlagSpec>;

const CLI = {
  name: "demo",
  usage: "Usage: deno task demo [options]",
  flags: FLAGS,
};

/** Short enough that the demo's sessions are gone soon after it ends. */
const DEMO_TTL_MS = 5000;

async function demo(
  f: {
    clients: string;
    count: string;
    interval: string;
    "metrics-port"?: string | undefined;
  },
  signal: AbortSignal,
): Promise<number> {
  const clients = intFlag("clients", f.clients, 1, 500);
  const count = intFlag("count", f.count, 1, MAX_COUNT);
  const intervalMs = durationFlag(
    "interval",
    f.interval,
    DURATION_RANGES.interval,
  );
  const log = new LineLogger({ level: "warn" });
  const metricsPort = f["metrics-port"] === undefined
    ? undefined
    : intFlag("metrics-port", f["metrics-port"], 0, 65535);
  await using server = await startServer({
    intervalMs,
    ttlMs: DEMO_TTL_MS,
    log,
    metricsPort,
  });
  if (server.metricsAddr) {
    console.error(
      `demo: dashboard on http://127.0.0.1:${server.metricsAddr.port}/`,
    );
  }
  await using proxy = await startProxy({
    upstreams: [server.addr],
    lifetime: { minMs: 1000, maxMs: 4000 },
    resetProbability: 0.3,
    slicer: { minBytes: 1, maxBytes: 7 },
  });
  console.error(
    `demo: server on :${server.addr.port}, flaky proxy on :${proxy.port} (cuts every 1-4s, 30% RST, 1..7-byte slices); ` +
      `${clients} clients × ${count} numbers every ${intervalMs}ms`,
  );
  const t0 = performance.now();
  // On a terminal, one bar for all clients (numbers received, resumes), so
  // the demo's seconds are not silent; result lines print above it.
  const progress = new ProgressReporter({
    total: clients * count,
    mode: Deno.stderr.isTerminal() ? "bar" : "off",
    log,
  });
  let received = 0;
  let resumes = 0;
  let running = clients;
  const show = () =>
    progress.show({
      received,
      reconnects: resumes,
      state: running > 0 ? "streaming" : "done",
    });
  const results = await Promise.all(
    Array.from({ length: clients }, async () => {
      const r = await runClient({
        port: proxy.port,
        count,
        backoff: () => 50 + Math.random() * 100,
        signal,
        // A resume starts at the first number the client lacks: each number
        // arrives once, so a running total is the sum over the clients.
        onNumber: () => {
          received++;
          show();
        },
        onEvent: (e) => {
          if (e.type === "streaming" && e.resumed) resumes++;
        },
      });
      running--;
      show();
      progress.above(() =>
        console.log(
          `${r.result}  ${r.id}  sum=${r.sum}  checksum=${r.checksum}  server=${
            r.serverChecksum ?? "-"
          }  reconnects=${r.reconnects}` +
            (r.error ? `  ${r.error.code}: ${r.error.message}` : ""),
        )
      );
      return r;
    }),
  );
  progress.stop();
  const passed = results.filter((r) => r.result === "PASS").length;
  const reconnects = results.reduce((a, r) => a + r.reconnects, 0);
  const m = server.metrics();
  console.log(
    `${passed}/${clients} PASS in ${
      ((performance.now() - t0) / 1000).toFixed(1)
    }s; ` +
      `proxy cut ${proxy.stats.cuts} connections (${proxy.stats.resets} with RST); ${reconnects} resumes; ` +
      `server left ${m.connections} connections and ${m.sessions} sessions`,
  );
  return passed === clients ? 0 : 1;
}

if (import.meta.main) {
  Deno.exit(await runMain(CLI, Deno.args, (f, { signal }) => demo(f, signal)));
}
