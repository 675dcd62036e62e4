/**
 * Dead-client detection end to end (issue 8): a client that sends nothing
 * for the client timeout has its connection closed, its session detaches and
 * stays resumable, and the client resumes when it wakes.
 *
 * - a real client process, SIGSTOPped mid-stream and SIGCONTed later;
 * - the fault proxy's freeze toxic between an in-process client and server
 *   (both sockets stay open, nothing is forwarded, the proxy reads nothing).
 *
 * Written against the v2 API: `startServer` option `clientTimeoutMs`, and the
 * client's ACKs (without them the server could not tell a live client from a
 * frozen one). Set SEQSTREAM_TEST_LOG=info to see the server's log.
 *
 * @module
 */

import { connect } from "../client/client.ts";
import type { LogFields, Logger } from "../common/logger.ts";
import { startProxy } from "../proxy/fault_proxy.ts";
import type { ServerHandle } from "../server/server.ts";
import { assert_, assertEquals } from "./_assert.ts";
import { eventually, testLog, testServer } from "./_fixtures.ts";
import { spawnDeno } from "./_process.ts";

const CLIENT_TIMEOUT_MS = 1000;
/**
 * How late past the client timeout the server may notice: its check runs on
 * timers, tested to the millisecond on a fake clock (server/stream_test.ts);
 * here a real-time ceiling, far below the 10 s TTL that would end the session
 * otherwise, so that a loaded host does not fail the test (it was 600 ms).
 */
const NOTICE_SLACK_MS = 4000;

/** A logger that keeps every line, for assertion messages, and forwards to {@link testLog}. */
function recordingLog(): Logger & { lines: string[]; tail(): string } {
  const out = testLog();
  const lines: string[] = [];
  const at = (level: keyof Logger) => (msg: string, fields?: LogFields) => {
    lines.push(`${level} ${msg}${fields ? " " + JSON.stringify(fields) : ""}`);
    out[level](msg, fields);
  };
  return {
    lines,
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    tail: () => "server log:\n  " + lines.slice(-15).join("\n  "),
  };
}

/** Rejects with `what` if `p` has not settled within `ms`; clears its timer either way. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`Timed out after ${ms} ms: ${what}`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function gauges(server: ServerHandle): string {
  const m = server.metrics();
  return JSON.stringify({ connections: m.connections, sessions: m.sessions });
}

/** Waits for the server to hold nothing: no connection, no session. */
async function assertZeroState(
  server: ServerHandle,
  log: { tail(): string },
): Promise<void> {
  await eventually(
    () => server.metrics().connections === 0 && server.metrics().sessions === 0,
    `zero state (now ${gauges(server)})\n${log.tail()}`,
    3000,
  );
}

Deno.test("a SIGSTOPped client process is closed within the client timeout, keeps its session, and PASSes after SIGCONT", async () => {
  const log = recordingLog();
  await using server = await testServer({
    intervalMs: 20,
    ttlMs: 10_000, // far longer than the stop: the session must wait for it
    clientTimeoutMs: CLIENT_TIMEOUT_MS,
    log,
  });
  const count = 150; // 3 s at 20 ms
  await using client = spawnDeno("client.ts", [
    "--port",
    String(server.addr.port),
    "--count",
    String(count),
    "--json",
  ]);
  const clientLog = () => "client stderr:\n  " + client.stderr.join("\n  ");

  // Mid-stream: attached, and some numbers out.
  await eventually(
    () =>
      server.metrics().connections === 1 &&
      server.metrics().counters.numbersSent >= 20,
    `the client to be streaming (${gauges(server)})\n${clientLog()}`,
    8000,
  );
  client.kill("SIGSTOP");
  const stoppedAt = performance.now();

  // The client's kernel still ACKs every byte; only its silence gives it away.
  await eventually(
    () => server.metrics().connections === 0,
    `the server to close the stopped client's connection (${
      gauges(server)
    })\n${log.tail()}`,
    CLIENT_TIMEOUT_MS + NOTICE_SLACK_MS + 1000,
  );
  const noticedMs = performance.now() - stoppedAt;
  assert_(
    noticedMs <= CLIENT_TIMEOUT_MS + NOTICE_SLACK_MS,
    `the server took ${noticedMs} ms to drop a client silent since the stop (client timeout ${CLIENT_TIMEOUT_MS} ms)`,
  );
  assertEquals(
    server.metrics().sessions,
    1,
    `the session must stay resumable after the drop\n${log.tail()}`,
  );

  client.kill("SIGCONT");
  const { code, stdout } = await within(
    client.done(),
    8000,
    `the client to finish after SIGCONT\n${clientLog()}\n${log.tail()}`,
  );
  assertEquals(code, 0, `client exit code; stdout: ${stdout}\n${clientLog()}`);
  const r = JSON.parse(stdout);
  assertEquals(r.result, "PASS", `client result ${stdout}`);
  assertEquals(r.count, count);
  assert_(
    r.reconnects >= 1,
    `the client finished without resuming, so it was never dropped: ${stdout}`,
  );
  assertEquals(r.checksum, r.serverChecksum);
  assert_(
    server.metrics().counters.resumes >= 1,
    `no resume counted\n${log.tail()}`,
  );
  await assertZeroState(server, log);
});

Deno.test("a freeze longer than the client timeout makes the server drop the connection; after the thaw the client resumes and PASSes", async () => {
  const log = recordingLog();
  await using server = await testServer({
    intervalMs: 10,
    ttlMs: 10_000,
    clientTimeoutMs: CLIENT_TIMEOUT_MS,
    log,
  });
  await using proxy = await startProxy({ upstreams: [server.addr] });
  // 3 s at 10 ms; the window (2 × timeout / interval = 200) stops the server
  // mid-stream during the freeze, so the resume is a real one.
  const count = 300;

  let frozenAt = 0;
  await using client = connect({
    port: proxy.port,
    count,
    backoff: () => 20,
    // The client's own silent-server detection must not fire during the
    // freeze: it would dial again through the frozen proxy and the server
    // would count that connection.
    idleTimeoutMs: 8000,
    onNumber(offset) {
      if (offset === 30 && frozenAt === 0) {
        frozenAt = performance.now();
        proxy.setFrozen(true);
      }
    },
  });

  await eventually(
    () => frozenAt > 0,
    `the stream to reach offset 30 (${gauges(server)})\n${log.tail()}`,
    5000,
  );
  await eventually(
    () => server.metrics().connections === 0,
    `the server to drop the frozen connection (${
      gauges(server)
    })\n${log.tail()}`,
    CLIENT_TIMEOUT_MS + NOTICE_SLACK_MS + 1000,
  );
  const noticedMs = performance.now() - frozenAt;
  assert_(
    noticedMs <= CLIENT_TIMEOUT_MS + NOTICE_SLACK_MS,
    `the server took ${noticedMs} ms to drop a frozen client (client timeout ${CLIENT_TIMEOUT_MS} ms)`,
  );
  assert_(proxy.frozen, "the freeze ended before the server noticed");
  assertEquals(
    proxy.stats.active,
    1,
    "the client's side of the proxy must still be open: the freeze closes nothing",
  );
  assertEquals(
    server.metrics().sessions,
    1,
    `the session must stay resumable after the drop\n${log.tail()}`,
  );

  proxy.setFrozen(false);
  const r = await within(
    client.result,
    8000,
    `the client to finish after the thaw\n${log.tail()}`,
  );
  assertEquals(r.result, "PASS", `client result ${JSON.stringify(r)}`);
  assert_(
    r.reconnects >= 1,
    `the client finished without resuming: ${JSON.stringify(r)}`,
  );
  assertEquals(r.checksum, r.serverChecksum);
  await assertZeroState(server, log);
});
