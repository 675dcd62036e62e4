import fc from "fast-check";
import { assert_, assertEquals, assertThrows } from "../tests/_assert.ts";
import { split } from "./_split.ts";
import { ErrorCode, ProtocolError } from "./errors.ts";
import { encodeFrame, FrameDecoder, HEADER_SIZE } from "./frame.ts";
import {
  decodeMessage,
  encodeMessage,
  encodeNumberInto,
  type Message,
  MessageType,
  NUMBER_FRAME_SIZE,
  PROTOCOL_VERSION,
} from "./messages.ts";
import { bytesToUuid } from "./uuid.ts";

/** Encodes, decodes through a fresh FrameDecoder, and checks one whole frame came out. */
function roundTrip(m: Message): Message {
  const bytes = encodeMessage(m);
  const frames = [...new FrameDecoder().push(bytes)];
  assertEquals(frames.length, 1);
  return decodeMessage(frames[0]!);
}

function decodeBytes(type: number, value: number[] | Uint8Array): Message {
  const v = value instanceof Uint8Array ? value : new Uint8Array(value);
  return decodeMessage({ type, value: v });
}

function assertMalformed(fn: () => unknown, includes?: string): void {
  const err = assertThrows(fn, ProtocolError, includes);
  assertEquals(err.code, ErrorCode.MALFORMED_FRAME);
}

const U32_EDGES = [0, 1, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];
const u32 = fc.oneof(
  fc.constantFrom(...U32_EDGES),
  fc.integer({ min: 0, max: 0xffffffff }),
);
const MAX_SUM = 65535 * 0xffffffff;
const sum = fc.oneof(
  fc.constantFrom(0, 1, 0xffffffff, 2 ** 32, MAX_SUM - 1, MAX_SUM),
  fc.integer({ min: 0, max: MAX_SUM }),
);
const u16 = fc.integer({ min: 0, max: 0xffff });
const u8 = fc.integer({ min: 0, max: 0xff });
const bytes16 = fc.uint8Array({ minLength: 16, maxLength: 16 });
const uuid = bytes16.map(bytesToUuid);
/** Well-formed text (any code point, no lone surrogates) that fits in a frame. */
const text = fc.string({ unit: "binary", maxLength: 120 });

const messageArb: fc.Arbitrary<Message> = fc.oneof(
  fc.record({
    type: fc.constant("hello" as const),
    version: fc.constant(PROTOCOL_VERSION),
    id: uuid,
    count: u32,
    token: bytes16,
  }),
  fc.record({
    type: fc.constant("resume" as const),
    version: fc.constant(PROTOCOL_VERSION),
    id: uuid,
    token: bytes16,
    nextOffset: u32,
  }),
  fc.record({ type: fc.constant("ack" as const), nextOffset: u32 }),
  fc.record({
    type: fc.constant("welcome" as const),
    count: u32,
    nextOffset: u32,
    token: bytes16,
    intervalMs: u32,
    ttlMs: u32,
    window: u32,
    ackIntervalMs: u32,
  }),
  fc.record({ type: fc.constant("number" as const), offset: u32, value: u32 }),
  fc.record({
    type: fc.constant("final" as const),
    offset: u32,
    value: u32,
    sum,
    crc32: u32,
  }),
  fc.constant({ type: "done" as const }),
  fc.record({
    type: fc.constant("goaway" as const),
    retryAfterMs: u32,
    message: text,
  }),
  fc.record({ type: fc.constant("error" as const), code: u16, message: text }),
);

Deno.test("encodeMessage and decodeMessage round-trip every message type (property)", () => {
  const seen = new Set<string>();
  fc.assert(
    fc.property(messageArb, (m) => {
      seen.add(m.type);
      // fc.record builds null-prototype objects; compare as plain ones.
      assertEquals(roundTrip(m), { ...m });
    }),
    { numRuns: 2000 },
  );
  // The property really exercised all nine types.
  assertEquals(seen.size, 9);
});

Deno.test("encodeMessage and decodeMessage round-trip u32 edges, zero values and zero checksums", () => {
  for (const x of U32_EDGES) {
    for (
      const m of [
        { type: "number", offset: x, value: x },
        { type: "final", offset: x, value: x, sum: 0, crc32: x },
        { type: "final", offset: 0, value: 0, sum: MAX_SUM, crc32: 0 },
        {
          type: "welcome",
          count: x,
          nextOffset: x,
          token: new Uint8Array(16),
          intervalMs: x,
          ttlMs: x,
          window: x,
          ackIntervalMs: x,
        },
        { type: "ack", nextOffset: x },
        {
          type: "hello",
          version: PROTOCOL_VERSION,
          id: bytesToUuid(new Uint8Array(16)),
          count: x,
          token: new Uint8Array(16),
        },
        {
          type: "resume",
          version: PROTOCOL_VERSION,
          id: bytesToUuid(new Uint8Array(16).fill(0xff)),
          token: new Uint8Array(16).fill(0xff),
          nextOffset: x,
        },
        { type: "goaway", retryAfterMs: x, message: "" },
      ] satisfies Message[]
    ) {
      assertEquals(roundTrip(m), m);
    }
  }
  // Exact sums: the largest possible one, and neighbours that a double would merge above 2^53.
  const big = roundTrip({
    type: "final",
    offset: 2,
    value: 7,
    sum: MAX_SUM,
    crc32: 0,
  });
  assertEquals(big.type === "final" && big.sum, 281470681677825);
});

Deno.test("encodeMessage writes the documented byte layouts", () => {
  const id = "00000000-0000-4000-8000-000000000001";
  const idBytes = [0, 0, 0, 0, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, 1];
  const token = new Uint8Array(16).map((_, i) => i);
  const hex = (b: Uint8Array) => [...b];
  assertEquals(
    hex(encodeMessage({ type: "hello", version: 2, id, count: 3, token })),
    [0x01, 0, 37, 2, ...idBytes, 0, 0, 0, 3, ...token],
  );
  assertEquals(
    hex(
      encodeMessage({ type: "resume", version: 2, id, token, nextOffset: 1 }),
    ),
    [0x02, 0, 37, 2, ...idBytes, ...token, 0, 0, 0, 1],
  );
  assertEquals(
    hex(encodeMessage({ type: "ack", nextOffset: 0x01020304 })),
    [0x03, 0, 4, 1, 2, 3, 4],
  );
  assertEquals(
    hex(encodeMessage({
      type: "welcome",
      count: 3,
      nextOffset: 1,
      token,
      intervalMs: 1000,
      ttlMs: 30000,
      window: 20,
      ackIntervalMs: 5000,
    })),
    [
      0x81,
      0,
      40,
      0,
      0,
      0,
      3,
      0,
      0,
      0,
      1,
      ...token,
      0,
      0,
      0x03,
      0xe8,
      0,
      0,
      0x75,
      0x30,
      ...[0, 0, 0, 20],
      ...[0, 0, 0x13, 0x88],
    ],
  );
  assertEquals(
    hex(
      encodeMessage({ type: "number", offset: 0x01020304, value: 0xa0b0c0d0 }),
    ),
    [0x82, 0, 8, 1, 2, 3, 4, 0xa0, 0xb0, 0xc0, 0xd0],
  );
  assertEquals(
    hex(encodeMessage({
      type: "final",
      offset: 2,
      value: 0xffffffff,
      sum: 2 ** 32 + 5,
      crc32: 0xcbf43926,
    })),
    [
      0x83,
      0,
      20,
      0,
      0,
      0,
      2,
      0xff,
      0xff,
      0xff,
      0xff,
      0,
      0,
      0,
      1,
      0,
      0,
      0,
      5,
      0xcb,
      0xf4,
      0x39,
      0x26,
    ],
  );
  assertEquals(hex(encodeMessage({ type: "done" })), [0x84, 0, 0]);
  assertEquals(
    hex(encodeMessage({ type: "goaway", retryAfterMs: 258, message: "bye" })),
    [0x85, 0, 7, 0, 0, 1, 2, 0x62, 0x79, 0x65],
  );
  assertEquals(
    hex(encodeMessage({ type: "error", code: 13, message: "é" })),
    [0x86, 0, 4, 0, 13, 0xc3, 0xa9],
  );
});

Deno.test("encodeNumberInto writes the same bytes as encodeMessage at any position", () => {
  fc.assert(
    fc.property(u32, u32, fc.nat({ max: 20 }), (offset, value, pos) => {
      const buf = new Uint8Array(pos + NUMBER_FRAME_SIZE + 3).fill(0x5a);
      const end = encodeNumberInto(buf, pos, offset, value);
      assertEquals(end, pos + NUMBER_FRAME_SIZE);
      assertEquals(
        [...buf.subarray(pos, end)],
        [...encodeMessage({ type: "number", offset, value })],
      );
      // Nothing written outside the frame.
      assert_(buf.subarray(0, pos).every((b) => b === 0x5a));
      assert_(buf.subarray(end).every((b) => b === 0x5a));
    }),
  );
});

Deno.test("decodeMessage rejects every wrong length with MALFORMED_FRAME", () => {
  const fixed: [number, string, number][] = [
    [MessageType.HELLO, "HELLO", 37],
    [MessageType.RESUME, "RESUME", 37],
    [MessageType.ACK, "ACK", 4],
    [MessageType.WELCOME, "WELCOME", 40],
    [MessageType.NUMBER, "NUMBER", 8],
    [MessageType.FINAL, "FINAL", 20],
    [MessageType.DONE, "DONE", 0],
  ];
  // HELLO and RESUME start with the version byte; give them the current one.
  const value = (type: number, n: number) => {
    const v = new Uint8Array(n);
    if (n > 0 && (type === MessageType.HELLO || type === MessageType.RESUME)) {
      v[0] = PROTOCOL_VERSION;
    }
    return v;
  };
  for (const [type, name, len] of fixed) {
    // The right length decodes...
    assertEquals(typeof decodeBytes(type, value(type, len)).type, "string");
    // ...and nothing else does.
    for (const bad of [0, 1, len - 1, len + 1, 64, 1024]) {
      if (bad === len || bad < 0) continue;
      assertMalformed(() => decodeBytes(type, value(type, bad)), name);
    }
  }
  for (const bad of [0, 1, 2, 3]) {
    assertMalformed(
      () => decodeBytes(MessageType.GOAWAY, new Uint8Array(bad)),
      "GOAWAY",
    );
  }
  for (const bad of [0, 1]) {
    assertMalformed(
      () => decodeBytes(MessageType.ERROR, new Uint8Array(bad)),
      "ERROR",
    );
  }
  // The shortest GOAWAY and ERROR carry empty text.
  assertEquals(decodeBytes(MessageType.GOAWAY, [0, 0, 0, 9]), {
    type: "goaway",
    retryAfterMs: 9,
    message: "",
  });
  assertEquals(decodeBytes(MessageType.ERROR, [0, 9]), {
    type: "error",
    code: 9,
    message: "",
  });
});

Deno.test("decodeMessage rejects every unknown type byte with MALFORMED_FRAME", () => {
  const known = new Set<number>(Object.values(MessageType));
  let unknown = 0;
  for (let type = 0; type <= 0xff; type++) {
    if (known.has(type)) continue;
    unknown++;
    assertMalformed(
      () => decodeBytes(type, new Uint8Array(8)),
      "Unknown message type",
    );
    assertMalformed(
      () => decodeBytes(type, new Uint8Array(0)),
      "Unknown message type",
    );
  }
  assertEquals(unknown, 256 - 9);
});

Deno.test("decodeMessage rejects non-UTF-8 ERROR and GOAWAY text with MALFORMED_FRAME", () => {
  const bad = [
    [0xff],
    [0xc3], // truncated 2-byte sequence
    [0xe2, 0x82], // truncated 3-byte sequence
    [0xc0, 0xaf], // overlong "/"
    [0xed, 0xa0, 0x80], // UTF-16 surrogate
    [0x41, 0x80, 0x42], // stray continuation byte
  ];
  for (const b of bad) {
    assertMalformed(
      () => decodeBytes(MessageType.ERROR, [0, 1, ...b]),
      "UTF-8",
    );
    assertMalformed(
      () => decodeBytes(MessageType.GOAWAY, [0, 0, 0, 0, ...b]),
      "UTF-8",
    );
  }
});

Deno.test("decodeMessage keeps a leading U+FEFF in message text", () => {
  for (const message of ["\uFEFF", "\uFEFFhi", "a\uFEFF"]) {
    assertEquals(roundTrip({ type: "error", code: 1, message }), {
      type: "error",
      code: 1,
      message,
    });
    assertEquals(roundTrip({ type: "goaway", retryAfterMs: 0, message }), {
      type: "goaway",
      retryAfterMs: 0,
      message,
    });
  }
});

Deno.test("encodeMessage truncates long text to 512 bytes at a code point boundary", () => {
  const enc = new TextEncoder();
  const check = (message: string) => {
    for (
      const m of [
        { type: "error", code: 4, message },
        { type: "goaway", retryAfterMs: 0, message },
      ] satisfies Message[]
    ) {
      const bytes = encodeMessage(m);
      const got = roundTrip(m) as { message: string };
      const textBytes = enc.encode(got.message).length;
      assert_(textBytes <= 512, `${textBytes} bytes of text`);
      assertEquals(
        bytes.length,
        HEADER_SIZE + (m.type === "error" ? 2 : 4) + textBytes,
      );
      // A prefix of whole code points, and the longest one that fits.
      assert_(message.startsWith(got.message));
      if (got.message.length < message.length) {
        const nextCp = String.fromCodePoint(
          message.codePointAt(got.message.length)!,
        );
        assert_(textBytes + enc.encode(nextCp).length > 512, "cut too early");
      } else {
        assertEquals(got.message, message);
      }
    }
  };
  check("x".repeat(512)); // exactly fits
  check("x".repeat(513));
  check("é".repeat(300)); // 2-byte code points ending exactly at 512
  check("x" + "é".repeat(300)); // a 2-byte code point straddling 512
  check("€".repeat(200)); // 3-byte code points straddling 512
  check("xx" + "€".repeat(200)); // 3-byte code points ending exactly at 512
  check("😀".repeat(200)); // 4-byte code points ending exactly at 512
  check("x" + "😀".repeat(200)); // 4-byte code points straddling 512
  assertEquals(
    (roundTrip({ type: "error", code: 4, message: "é".repeat(300) }) as {
      message: string;
    })
      .message,
    "é".repeat(256),
  );
  fc.assert(
    fc.property(
      fc.string({ unit: "binary", minLength: 100, maxLength: 400 }),
      (s) => check(s),
    ),
    { numRuns: 300 },
  );
});

/** Feeds `chunks` through a decoder and decodes every frame; returns what was thrown, if anything. */
function garbageOutcome(chunks: Uint8Array[]): unknown {
  const decoder = new FrameDecoder();
  try {
    for (const chunk of chunks) {
      for (const frame of decoder.push(chunk)) decodeMessage(frame);
    }
  } catch (err) {
    return err;
  }
  return undefined;
}

/** Frames with plausible headers: known and unknown types, lengths near the real ones. */
const plausibleFrame = fc
  .tuple(
    fc.oneof(fc.constantFrom(...Object.values(MessageType)), u8),
    fc.oneof(
      fc.constantFrom(
        0,
        1,
        2,
        3,
        4,
        7,
        8,
        9,
        19,
        20,
        21,
        22,
        31,
        32,
        33,
        36,
        37,
        38,
      ),
      fc.integer({ min: 0, max: 600 }),
    ),
    fc.uint8Array({ maxLength: 600 }),
  )
  .map(([type, len, fill]) => {
    const value = new Uint8Array(len);
    value.set(fill.subarray(0, len));
    return encodeFrame(type, value);
  });

Deno.test("FrameDecoder and decodeMessage turn random garbage only into ProtocolError (property)", () => {
  const garbage = fc.oneof(
    fc.uint8Array({ maxLength: 3000 }),
    fc.array(fc.oneof(plausibleFrame, fc.uint8Array({ maxLength: 5 })), {
      maxLength: 8,
    }).map((parts) => {
      const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let pos = 0;
      for (const p of parts) {
        out.set(p, pos);
        pos += p.length;
      }
      return out;
    }),
  );
  let threw = 0;
  fc.assert(
    fc.property(
      garbage,
      fc.array(fc.nat(), { maxLength: 10 }),
      (bytes, cuts) => {
        const err = garbageOutcome(split(bytes, cuts));
        if (err === undefined) return;
        threw++;
        assert_(err instanceof ProtocolError, `threw ${String(err)}`);
        assert_(
          err.code === ErrorCode.MALFORMED_FRAME ||
            err.code === ErrorCode.UNSUPPORTED_VERSION,
          `code ${err.code}`,
        );
      },
    ),
    { numRuns: 2000 },
  );
  // The property saw failures, not only inputs that happened to decode.
  assert_(threw > 100, `only ${threw} inputs were rejected`);
});

Deno.test("FrameDecoder and decodeMessage reject an HTTP request with ProtocolError", () => {
  const http = new TextEncoder().encode(
    "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
  );
  for (const chunks of [[http], [...http].map((b) => new Uint8Array([b]))]) {
    const err = garbageOutcome(chunks);
    assert_(err instanceof ProtocolError, `threw ${String(err)}`);
    assertEquals(err.code, ErrorCode.MALFORMED_FRAME);
  }
});

Deno.test("decodeMessage refuses HELLO and RESUME of another version before checking their length", () => {
  for (const type of [MessageType.HELLO, MessageType.RESUME]) {
    for (const len of [1, 37, 50]) {
      const v = new Uint8Array(len);
      v[0] = PROTOCOL_VERSION + 1;
      try {
        decodeBytes(type, v);
        throw new Error("no error");
      } catch (err) {
        assert_(err instanceof ProtocolError, String(err));
        assertEquals(err.code, ErrorCode.UNSUPPORTED_VERSION);
        assert_(err.message.includes("version 3"), err.message);
        assert_(err.message.includes("upgrade the server"), err.message);
      }
    }
  }
});

Deno.test("decodeMessage refuses a version 1 HELLO or RESUME with a message that says to upgrade the client", () => {
  for (const type of [MessageType.HELLO, MessageType.RESUME]) {
    const v = new Uint8Array(37);
    v[0] = 1;
    const err = assertThrows(() => decodeBytes(type, v), ProtocolError);
    assertEquals(err.code, ErrorCode.UNSUPPORTED_VERSION);
    assert_(
      err.message.includes("version 1 is not supported") &&
        err.message.includes("speaks version 2") &&
        err.message.includes("upgrade the client"),
      err.message,
    );
  }
});

Deno.test("encodeMessage refuses a WELCOME or ACK field that would wrap its u32", () => {
  const welcome = {
    type: "welcome" as const,
    count: 1,
    nextOffset: 0,
    token: new Uint8Array(16),
    intervalMs: 1000,
    ttlMs: 1200 * 3_600_000, // 1200h: 4.32e9 ms, past 2^32
    window: 16,
    ackIntervalMs: 5000,
  };
  assertThrows(() => encodeMessage(welcome), RangeError, "ttlMs");
  assertThrows(
    () => encodeMessage({ ...welcome, ttlMs: 1, window: -1 }),
    RangeError,
    "window",
  );
  assertThrows(
    () => encodeMessage({ type: "ack", nextOffset: 2 ** 32 }),
    RangeError,
    "nextOffset",
  );
});

Deno.test("decodeMessage copies the token out of the frame buffer", () => {
  const bytes = encodeMessage({
    type: "resume",
    version: PROTOCOL_VERSION,
    id: bytesToUuid(new Uint8Array(16)),
    token: new Uint8Array(16).fill(0xab),
    nextOffset: 0,
  });
  const m = decodeMessage({
    type: bytes[0]!,
    value: bytes.subarray(HEADER_SIZE),
  });
  bytes.fill(0); // the decoder reuses its buffer for the next frame
  assertEquals(m.type === "resume" && [...m.token], new Array(16).fill(0xab));
});

Deno.test("encodeMessage throws TypeError for a bad id or token", () => {
  assertThrows(
    () =>
      encodeMessage({
        type: "hello",
        version: PROTOCOL_VERSION,
        id: "not-a-uuid",
        count: 1,
        token: new Uint8Array(16),
      }),
    TypeError,
  );
  assertThrows(
    () =>
      encodeMessage({
        type: "hello",
        version: PROTOCOL_VERSION,
        id: bytesToUuid(new Uint8Array(16)),
        count: 1,
        token: new Uint8Array(17),
      }),
    TypeError,
  );
  assertThrows(
    () =>
      encodeMessage({
        type: "resume",
        version: PROTOCOL_VERSION,
        id: bytesToUuid(new Uint8Array(16)),
        token: new Uint8Array(15),
        nextOffset: 0,
      }),
    TypeError,
  );
});
