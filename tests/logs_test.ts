/**
 * Structured logs: every session event line names its session, so an
 * operator can follow one session through `--log-format json` output.
 */

import { LineLogger } from "../common/logger.ts";
import { ErrorCode } from "../protocol/errors.ts";
import { isUuid } from "../protocol/uuid.ts";
import { assert_, assertEquals } from "./_assert.ts";
import { eventually, testServer } from "./_fixtures.ts";
import { hello, rawConnect, runSession } from "./_raw.ts";

/** Lines about one session (as opposed to the server or the store as a whole). */
const SESSION_EVENT = /^(session |refused$|client )/;

Deno.test("every session event in JSON logs carries the session id", async () => {
  const lines: Record<string, unknown>[] = [];
  const log = new LineLogger({
    level: "debug",
    format: "json",
    write: (l) => lines.push(JSON.parse(l)),
  });
  await using server = await testServer({
    log,
    intervalMs: 1,
    ttlMs: 150,
    clientTimeoutMs: 200,
    seed: 1,
  });

  // Started, detached (the socket closed), resumed, completed.
  const first = crypto.randomUUID();
  const token = crypto.getRandomValues(new Uint8Array(16));
  let resumeAt;
  {
    await using p = await rawConnect(server.addr.port);
    await p.send(hello(first, 60, token));
    for (let i = 0; i < 20; i++) await p.until("number");
    resumeAt = p.nextOffset;
  }
  await eventually(
    () => lines.some((l) => l.msg === "session detached" && l.id === first),
    "the detach",
  );
  const rest = await runSession(server.addr.port, {
    id: first,
    count: 60,
    token,
    resumeAt,
  });
  assertEquals(rest, 60 - resumeAt);

  // Timed out: a client that stops sending.
  {
    await using p = await rawConnect(server.addr.port);
    await p.send(hello(crypto.randomUUID(), 1000, token));
    await p.until("number");
    p.freeze();
    assertEquals((await p.until("error")).code, ErrorCode.CLIENT_TIMEOUT);
  }

  // Refused: the same id again with another token.
  const id = crypto.randomUUID();
  await using a = await rawConnect(server.addr.port);
  await a.send(hello(id, 1000, crypto.getRandomValues(new Uint8Array(16))));
  assertEquals((await a.next())?.type, "welcome");
  await using b = await rawConnect(server.addr.port);
  await b.send(hello(id, 1000, crypto.getRandomValues(new Uint8Array(16))));
  assertEquals((await b.next())?.type, "error");

  // Expired: detached and never resumed within the TTL.
  a.close();
  await eventually(
    () => lines.some((l) => l.msg === "session expired" && l.id === id),
    "the session to expire",
  );

  const seen = new Set(
    lines.map((l) => l.msg as string).filter((m) => SESSION_EVENT.test(m)),
  );
  for (
    const msg of [
      "session started",
      "session detached",
      "session resumed",
      "session completed",
      "client timed out; session stays resumable",
      "refused",
      "session expired",
    ]
  ) {
    assert_(
      seen.has(msg),
      `no "${msg}" line, so this test would prove nothing about it: ${[
        ...seen,
      ]}`,
    );
  }
  for (const l of lines) {
    if (SESSION_EVENT.test(l.msg as string)) {
      assert_(
        typeof l.id === "string" && isUuid(l.id),
        `no session id: ${JSON.stringify(l)}`,
      );
    }
  }
});
