/**
 * PROTOCOL.md §10, replayed against a real server over a real socket: the
 * bytes the document shows are the bytes the server sends and accepts.
 *
 * @module
 */

import { assertEquals } from "./_assert.ts";
import { testServer } from "./_fixtures.ts";

/** Bytes from the document's hex, `…` expanded by the caller. */
function hex(s: string): Uint8Array {
  const parts = s.trim().split(/\s+/);
  return new Uint8Array(parts.map((p) => parseInt(p, 16)));
}

const TOKEN = "a0 a1 a2 a3 a4 a5 a6 a7 a8 a9 aa ab ac ad ae af";
const ID = "00 00 00 00 00 00 40 00 80 00 00 00 00 00 00 01";

const HELLO = hex(`01 00 25  02  ${ID}  00 00 00 03  ${TOKEN}`);
const WELCOME_0 = hex(
  `81 00 28  00 00 00 03  00 00 00 00  ${TOKEN}  00 00 03 e8  00 00 75 30  00 00 00 14  00 00 13 88`,
);
const NUMBER_0 = hex("82 00 08  00 00 00 00  d0 45 34 36");
const RESUME = hex(`02 00 25  02  ${ID}  ${TOKEN}  00 00 00 01`);
const WELCOME_1 = hex(
  `81 00 28  00 00 00 03  00 00 00 01  ${TOKEN}  00 00 03 e8  00 00 75 30  00 00 00 14  00 00 13 88`,
);
const NUMBER_1 = hex("82 00 08  00 00 00 01  ee b3 e7 4e");
const FINAL = hex(
  "83 00 14  00 00 00 02  8c 94 2b 3d  00 00 00 02 4b 8d 46 c1  a4 8d da 9f",
);
const ACK_3 = hex("03 00 04  00 00 00 03");
const DONE = hex("84 00 00");

/** Reads exactly `n` bytes (or fewer at EOF). */
async function readN(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const k = await conn.read(out.subarray(got));
    if (k === null) break;
    got += k;
  }
  return out.subarray(0, got);
}

async function expectBytes(conn: Deno.Conn, want: Uint8Array, what: string) {
  assertEquals([...await readN(conn, want.length)], [...want], what);
}

Deno.test("PROTOCOL.md worked example: the real server sends and accepts exactly the documented v2 bytes", async () => {
  await using server = await testServer({
    seed: 42,
    intervalMs: 1000,
    ttlMs: 30_000,
    clientTimeoutMs: 10_000,
  });
  const port = server.addr.port;

  const c1 = await Deno.connect({ hostname: "127.0.0.1", port });
  await c1.write(HELLO);
  await expectBytes(c1, WELCOME_0, "WELCOME at offset 0");
  await expectBytes(c1, NUMBER_0, "NUMBER 0");
  c1.close();

  const c2 = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await c2.write(RESUME);
    await expectBytes(c2, WELCOME_1, "WELCOME at offset 1");
    await expectBytes(c2, NUMBER_1, "NUMBER 1");
    await expectBytes(c2, FINAL, "FINAL with the sum and CRC-32");
    await c2.write(ACK_3);
    await expectBytes(c2, DONE, "DONE after ACK(count)");
    assertEquals(await c2.read(new Uint8Array(1)), null, "closed after DONE");
  } finally {
    c2.close();
  }
});
