/**
 * `client --state FILE` with real client processes: a client killed with
 * SIGKILL mid-stream and started again with the same file resumes its session
 * and ends with the sums of a fault-free run; unusable files are refused with
 * exit 2 and a message naming them.
 *
 * The client runs with the permissions a compiled client gets (network, and
 * read/write of the state file's directory), so a new need shows up here.
 * The server is the in-test fake v2 server (`client/_fake_server.ts`), so
 * these tests judge the client alone.
 */

import { join } from "node:path";
import { startFakeServer } from "../client/_fake_server.ts";
import { runClient } from "../client/client.ts";
import { STATE_FORMAT } from "../client/state_file.ts";
import { formatCrc } from "../protocol/checksum.ts";
import { assert_, assertEquals } from "./_assert.ts";
import { eventually } from "./_fixtures.ts";
import { type Proc, spawnDeno } from "./_process.ts";

const ID = "5eed5eed-0000-4000-8000-00000000c0de";
const COUNT = 1000;

/** A real client process with the permissions a compiled client gets. */
function spawnClient(dir: string, args: string[]): Proc {
  return spawnDeno("client.ts", args, {
    permissions: { net: ["127.0.0.1"], read: [dir], write: [dir] },
  });
}

async function readState(
  path: string,
): Promise<Record<string, unknown> | null> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch {
    return null; // not there yet
  }
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "seqstream-state-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("client --state: SIGKILL mid-stream, start again with the same file, PASS with the fault-free sums", async () => {
  await withDir(async (dir) => {
    const file = join(dir, "run.state");
    await using server = startFakeServer({ intervalMs: 2, window: 64 });
    const args = [
      "--port",
      String(server.port),
      "--count",
      String(COUNT),
      "--id",
      ID,
      "--state",
      file,
      "--json",
    ];

    const first = spawnClient(dir, args);
    try {
      await eventually(
        async () => {
          const s = await readState(file);
          return typeof s?.nextOffset === "number" && s.nextOffset > 0;
        },
        "the state file to show progress",
        15_000,
      );
    } finally {
      first.kill("SIGKILL");
    }
    const killed = await first.done();
    assertEquals(
      killed.signal,
      "SIGKILL",
      `the first client ended on its own: ${killed.stdout}${killed.stderr}`,
    );
    const killedAt = (await readState(file))?.nextOffset as number;
    assert_(
      killedAt > 0 && killedAt < COUNT,
      `killed at offset ${killedAt}: mid-stream`,
    );
    const saved = (await readState(file))!;
    assertEquals([saved.format, saved.id, saved.count], [
      STATE_FORMAT,
      ID,
      COUNT,
    ]);
    assertEquals(
      (await Deno.stat(file)).mode! & 0o777,
      0o600,
      "the file holds the resume token",
    );

    const second = await spawnClient(dir, args).done();
    assertEquals(second.code, 0, second.stderr);
    const r = JSON.parse(second.stdout);
    assertEquals([r.result, r.id, r.count], ["PASS", ID, COUNT]);
    assert_(
      r.reconnects >= 1,
      "the second process resumed rather than starting over",
    );
    assert_(/resuming from state file/.test(second.stderr), second.stderr);
    assertEquals(
      await exists(file),
      false,
      "the state file is deleted after PASS",
    );
    assertEquals(server.connections, 2);
    const want = server.expected(COUNT);
    assertEquals([r.sum, r.checksum, r.serverChecksum], [
      want.sum,
      formatCrc(want.crc),
      formatCrc(want.crc),
    ]);
  });
});

Deno.test("client --state: a run that is not interrupted deletes its file at the end", async () => {
  await withDir(async (dir) => {
    const file = join(dir, "s.json");
    await using server = startFakeServer();
    const r = await spawnClient(dir, [
      "--port",
      String(server.port),
      "--count",
      "300",
      "--state",
      file,
    ]).done();
    assertEquals(r.code, 0, r.stderr);
    assert_(r.stdout.startsWith("PASS"), r.stdout);
    assertEquals(await exists(file), false);
  });
});

const valid = (patch: Record<string, unknown> = {}) =>
  JSON.stringify({
    format: STATE_FORMAT,
    id: ID,
    count: 100,
    token: "00112233445566778899aabbccddeeff",
    nextOffset: 10,
    sum: 12345,
    crc: 1,
    ttlMs: 30_000,
    intervalMs: 10,
    lastContact: Date.now(),
    ...patch,
  });

Deno.test("client --state: a stale file is refused with exit 2, a clear message, and kept", async () => {
  await withDir(async (dir) => {
    const file = join(dir, "s.json");
    const written = Date.now();
    await Deno.writeTextFile(file, valid({ lastContact: written - 95_000 }));
    const r = await spawnClient(dir, ["--port", "1", "--state", file, "--json"])
      .done();
    assertEquals(r.code, 2, r.stderr);
    const lines = r.stderr.trim().split("\n");
    assertEquals(lines.length, 1, r.stderr);
    // 95 s since the last contact, less the 30 s TTL, plus however long the
    // client took to start (seconds on a loaded host).
    const ago =
      /^seqstream-client: state file is stale: the session expired about (\d+)s ago/
        .exec(lines[0]!);
    assert_(ago !== null, lines[0]);
    const late = Math.ceil((Date.now() - written) / 1000);
    assert_(
      Number(ago[1]) >= 65 && Number(ago[1]) <= 65 + late,
      `${lines[0]} (${late} s after the file was written)`,
    );
    assert_(lines[0]!.includes(file), lines[0]);
    assertEquals(JSON.parse(r.stdout).error.code, "session_expired");
    assertEquals(await exists(file), true, "the user decides to delete it");
  });
});

Deno.test("client --state: a corrupt file is refused with exit 2 naming the file", async () => {
  await withDir(async (dir) => {
    const file = join(dir, "s.json");
    const cases: [string, string][] = [["{oops", "it is not JSON"], [
      valid({ token: "short" }),
      "token",
    ]];
    for (const [text, why] of cases) {
      await Deno.writeTextFile(file, text);
      const r = await spawnClient(dir, ["--port", "1", "--state", file]).done();
      assertEquals([r.code, r.stdout], [2, ""], r.stderr);
      assert_(
        r.stderr.includes(`state file ${file} is corrupt (`) &&
          r.stderr.includes(why),
        r.stderr,
      );
    }
  });
});

Deno.test("client --state: --id or --count that contradict the file are usage errors", async () => {
  await withDir(async (dir) => {
    const file = join(dir, "s.json");
    await Deno.writeTextFile(file, valid());
    const other = await spawnClient(dir, [
      "--port",
      "1",
      "--state",
      file,
      "--id",
      "00000000-0000-4000-8000-000000000000",
    ]).done();
    assertEquals(other.code, 64, other.stderr);
    assert_(other.stderr.includes(`differs from session ${ID}`), other.stderr);
    const count = await spawnClient(dir, [
      "--port",
      "1",
      "--state",
      file,
      "--count",
      "5",
    ]).done();
    assertEquals(count.code, 64, count.stderr);
  });
});

Deno.test("client --state: a session the server does not know ends in ERROR and the useless file is removed", async () => {
  await withDir(async (dir) => {
    const file = join(dir, "s.json");
    await Deno.writeTextFile(file, valid());
    await using server = startFakeServer();
    const r = await spawnClient(dir, [
      "--port",
      String(server.port),
      "--state",
      file,
      "--json",
    ]).done();
    assertEquals(r.code, 2, r.stderr);
    assertEquals(JSON.parse(r.stdout).error.code, "unknown_session");
    assertEquals(await exists(file), false);
  });
});

Deno.test("client --state in a directory that does not exist is refused before connecting", async () => {
  await withDir(async (dir) => {
    const file = join(dir, "nope", "s.json");
    const r = await spawnClient(dir, ["--port", "1", "--state", file]).done();
    assertEquals(r.code, 2, r.stderr);
    assert_(r.stderr.includes(`cannot write state file ${file}`), r.stderr);
  });
});

Deno.test("connect() checkpointMs checkpoints slow streams by time, so a saved lastContact stays fresh", async () => {
  await using server = startFakeServer({ intervalMs: 20 });
  const stamps: number[] = [];
  const r = await runClient({
    port: server.port,
    count: 20,
    checkpointMs: 100,
    onCheckpoint: (s) => stamps.push(s.lastContact),
  });
  assertEquals(r.result, "PASS");
  // Without checkpointMs: the welcome and the final only (20 < 100 numbers). With it: also one
  // per 100ms of a stream of at least 400ms, never more often, and never one per number.
  const elapsed = stamps.at(-1)! - stamps[0]!;
  assert_(elapsed >= 300, `the stream took ${elapsed}ms`);
  assert_(
    stamps.length >= 4 && stamps.length <= 2 + Math.floor(elapsed / 100) &&
      stamps.length < 20,
    `${stamps.length} checkpoints in ${elapsed}ms`,
  );
  for (let i = 1; i < stamps.length - 1; i++) {
    assert_(
      stamps[i]! - stamps[i - 1]! >= 100,
      `checkpoint ${i} came ${stamps[i]! - stamps[i - 1]!}ms after the last`,
    );
  }
});

Deno.test("client --state: the final state is on disk before ACK(count); SIGKILL right then, restart re-acks and PASSes", async () => {
  await withDir(async (dir) => {
    const file = join(dir, "final.state");
    const count = 300;
    const spawned: { child?: Proc } = {};
    let atAck: Record<string, unknown> | null | undefined;
    await using server = startFakeServer({
      window: 64,
      onAck: (n, _s, peer) => {
        if (n !== count || peer.index !== 0) return;
        // At once, before anything else runs: what is on disk now?
        try {
          atAck = JSON.parse(Deno.readTextFileSync(file));
        } catch {
          atAck = null;
        }
        spawned.child!.kill("SIGKILL");
        peer.close(); // no DONE: the crash came between the ACK and its answer
      },
    });
    const args = [
      "--port",
      String(server.port),
      "--count",
      String(count),
      "--id",
      ID,
      "--state",
      file,
      "--json",
    ];
    spawned.child = spawnClient(dir, args);
    const killed = await spawned.child.done();
    assertEquals(
      killed.signal,
      "SIGKILL",
      `the client ended on its own: ${killed.stdout}${killed.stderr}`,
    );
    const want = server.expected(count);
    assert_(atAck, "no state file when ACK(count) arrived");
    assertEquals(
      [atAck.nextOffset, atAck.server],
      [count, { sum: want.sum, crc: want.crc }],
      "the state on disk at ACK(count)",
    );
    assertEquals(server.sessions.get(ID)?.complete, false);

    const acksBefore = server.acks.length;
    const second = await spawnClient(dir, args).done();
    assertEquals(second.code, 0, second.stderr);
    const r = JSON.parse(second.stdout);
    assertEquals([r.result, r.sum, r.checksum, r.serverChecksum], [
      "PASS",
      want.sum,
      formatCrc(want.crc),
      formatCrc(want.crc),
    ]);
    assertEquals(
      server.acks.slice(acksBefore),
      [count],
      "RESUME at count, then one ACK(count)",
    );
    assertEquals(server.sessions.get(ID)?.complete, true);
    assertEquals(await exists(file), false);
  });
});
