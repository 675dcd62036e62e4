/**
 * The compiled load driver (`bench/driver/`, Go) that `deno task
 * bench:scale` uses: its own unit tests (`go test`), then the built driver
 * against a real server (every session delivered and verified), against a
 * fake server whose FINAL carries a wrong checksum (reported as a failure,
 * exit status 1), and against a fake protocol 1 server (the `-proto 1` path
 * used for the `35b3d16` baseline). Without a Go toolchain these tests are
 * ignored, and their names say so.
 *
 * @module
 */

import {
  buildDriver,
  DRIVER_SOURCE,
  goVersion,
  runDriver,
} from "../bench/_driver.ts";
import { runToEnd } from "../internal/spawn.ts";
import { Checksum } from "../protocol/checksum.ts";
import { FrameDecoder } from "../protocol/frame.ts";
import { encodeMessage, MessageType } from "../protocol/messages.ts";
import { assert_, assertEquals } from "./_assert.ts";
import { testServer } from "./_fixtures.ts";

const go = await goVersion();
const NO_GO =
  " (IGNORED: no Go toolchain on the PATH; .ci/run installs golang-go)";
const name = (n: string) => go ? n : n + NO_GO;

/** Builds the driver once per test into a temporary folder, removed after. */
async function withDriver(fn: (exe: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "seqstream-driver-test-" });
  try {
    await fn(await buildDriver(dir));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * A one-connection fake server: reads the client's first frame, writes
 * `frames`, then reads until the client closes; resolves with every frame
 * type and value length the client sent.
 */
async function fakeServer(
  frames: Uint8Array[],
  run: (port: number) => Promise<void>,
): Promise<Array<[number, number]>> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const seen: Array<[number, number]> = [];
  const serve = (async () => {
    const conn = await listener.accept();
    try {
      const decoder = new FrameDecoder();
      const buf = new Uint8Array(1024);
      let wrote = false;
      while (true) {
        const n = await conn.read(buf);
        if (n === null) break;
        for (const f of decoder.push(buf.subarray(0, n))) {
          seen.push([f.type, f.value.length]);
        }
        if (!wrote) {
          wrote = true;
          for (const f of frames) await conn.write(f);
        }
        // After an ACK of the whole session, DONE and close (v1 and v2).
        if (seen.at(-1)?.[0] === MessageType.ACK && frames.length > 0) {
          const last = frames.at(-1)!;
          if (last[0] === MessageType.FINAL) {
            await conn.write(encodeMessage({ type: "done" }));
            break;
          }
        }
      }
    } finally {
      conn.close();
    }
  })();
  await run((listener.addr as Deno.NetAddr).port);
  await serve;
  return seen;
}

Deno.test({
  name: name(
    "driver: the Go unit tests pass (codec, checksum, ACK cadence, lateness)",
  ),
  ignore: !go,
  async fn() {
    const out = await runToEnd("go", ["test", "./..."], {
      cwd: DRIVER_SOURCE,
      env: { GOFLAGS: "-mod=mod", GOPROXY: "off", CGO_ENABLED: "0" },
    });
    assertEquals(out.code, 0, `go test failed:\n${out.stdout}${out.stderr}`);
  },
});

Deno.test({
  name: name(
    "driver: 20 sessions against a real server are all delivered and every checksum verified",
  ),
  ignore: !go,
  async fn() {
    await withDriver(async (exe) => {
      await using server = await testServer({ intervalMs: 20 });
      const run = await runDriver(exe, [
        "-addr",
        `127.0.0.1:${server.addr.port}`,
        "-sessions",
        "20",
        "-rate",
        "200",
        "-count",
        "12",
        "-steady",
        "0",
        "-quiet",
      ]);
      const s = run.summary;
      assert_(s, `no summary; stderr:\n${run.stderr}`);
      assertEquals(run.code, 0, JSON.stringify(s));
      assertEquals(s.ok, true);
      assertEquals(s.protocol, 2);
      assertEquals(s.outcomes.pass, 20, JSON.stringify(s.firstErrors));
      assertEquals(s.checksumsVerified, 20);
      assertEquals(s.numbersDelivered, 20 * 12);
      assertEquals(s.deliveredPct, 100);
      assertEquals(s.intervalMs, 20);
      // Every number was timed, and reads carry the kernel's receive
      // timestamps (the host switches them on lazily, so a first few may not).
      assertEquals(s.latenessAllMs.n, 20 * 12);
      assert_(
        s.kernelStampedReads + s.unstampedReads >= 20 * 12 &&
          s.kernelStampedReads > s.unstampedReads,
        `reads with a kernel timestamp: ${s.kernelStampedReads}, without: ${s.unstampedReads}`,
      );
    });
  },
});

Deno.test({
  name: name(
    "driver: a FINAL whose checksum does not match the numbers fails the session (exit 1)",
  ),
  ignore: !go,
  async fn() {
    await withDriver(async (exe) => {
      const values = [0xd0453436, 0xeeb3e74e, 0x8c942b3d];
      const c = new Checksum();
      for (const v of values) c.update(v);
      const frames = [
        encodeMessage({
          type: "welcome",
          count: 3,
          nextOffset: 0,
          token: new Uint8Array(16),
          intervalMs: 1,
          ttlMs: 30_000,
          window: 20,
          ackIntervalMs: 5000,
        }),
        encodeMessage({ type: "number", offset: 0, value: values[0]! }),
        encodeMessage({ type: "number", offset: 1, value: values[1]! }),
        encodeMessage({
          type: "final",
          offset: 2,
          value: values[2]!,
          sum: c.sum,
          crc32: (c.crc ^ 1) >>> 0, // one bit off
        }),
      ];
      let run;
      await fakeServer(frames, async (port) => {
        run = await runDriver(exe, [
          "-addr",
          `127.0.0.1:${port}`,
          "-sessions",
          "1",
          "-count",
          "3",
          "-steady",
          "0",
          "-grace",
          "5s",
          "-quiet",
        ]);
      });
      const { code, summary } = run!;
      assertEquals(code, 1);
      assertEquals(summary?.ok, false);
      assertEquals(summary?.outcomes.badChecksum, 1);
      assertEquals(summary?.outcomes.pass, 0);
      assertEquals(summary?.checksumsVerified, 0);
    });
  },
});

Deno.test({
  name: name(
    "driver -proto 1 speaks protocol 1: 32-byte WELCOME, no ACK until FINAL, then an empty ACK",
  ),
  ignore: !go,
  async fn() {
    await withDriver(async (exe) => {
      const values = [0xd0453436, 0xeeb3e74e, 0x8c942b3d];
      const c = new Checksum();
      for (const v of values) c.update(v);
      // Version 1's WELCOME: count, nextOffset, token, intervalMs, ttlMs.
      const welcome = new Uint8Array(3 + 32);
      const w = new DataView(welcome.buffer);
      welcome[0] = MessageType.WELCOME;
      w.setUint16(1, 32);
      w.setUint32(3, 3);
      w.setUint32(3 + 24, 1);
      w.setUint32(3 + 28, 30_000);
      const frames = [
        welcome,
        encodeMessage({ type: "number", offset: 0, value: values[0]! }),
        encodeMessage({ type: "number", offset: 1, value: values[1]! }),
        encodeMessage({
          type: "final",
          offset: 2,
          value: values[2]!,
          sum: c.sum,
          crc32: c.crc,
        }),
      ];
      let run;
      const seen = await fakeServer(frames, async (port) => {
        run = await runDriver(exe, [
          "-addr",
          `127.0.0.1:${port}`,
          "-proto",
          "1",
          "-sessions",
          "1",
          "-count",
          "3",
          "-steady",
          "0",
          "-grace",
          "5s",
          "-quiet",
        ]);
      });
      const { code, summary } = run!;
      assertEquals(code, 0, JSON.stringify(summary));
      assertEquals(summary?.outcomes.pass, 1);
      // HELLO (37 bytes), then only the empty ACK.
      assertEquals(seen, [[MessageType.HELLO, 37], [MessageType.ACK, 0]]);
    });
  },
});

Deno.test({
  name: name("driver refuses bad flags with a message and exit status 2"),
  ignore: !go,
  async fn() {
    await withDriver(async (exe) => {
      const run = await runDriver(exe, [
        "-addr",
        "127.0.0.1:1",
        "-sessions",
        "25000",
      ]);
      assertEquals(run.code, 2);
      assertEquals(run.summary, undefined);
      assert_(/-sessions must be 1\.\.19000/.test(run.stderr), run.stderr);
    });
  },
});
