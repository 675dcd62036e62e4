import fc from "fast-check";
import { assert_, assertEquals, assertThrows } from "../tests/_assert.ts";
import { split } from "./_split.ts";
import { ErrorCode, ProtocolError } from "./errors.ts";
import {
  encodeFrame,
  type Frame,
  FrameDecoder,
  HEADER_SIZE,
  MAX_FRAME_VALUE,
  writeHeader,
} from "./frame.ts";

/** A frame as plain data, copied out of the decoder's (reused) buffer. */
interface Plain {
  type: number;
  value: number[];
}

const plain = (f: Frame): Plain => ({ type: f.type, value: [...f.value] });

/** Feeds `chunks` one after the other and collects every frame, copied at once. */
function decodeAll(
  chunks: Iterable<Uint8Array>,
  decoder = new FrameDecoder(),
): Plain[] {
  const out: Plain[] = [];
  for (const chunk of chunks) {
    for (const f of decoder.push(chunk)) out.push(plain(f));
  }
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

function* byteByByte(bytes: Uint8Array): Generator<Uint8Array> {
  for (let i = 0; i < bytes.length; i++) yield bytes.subarray(i, i + 1);
}

const frameArb = fc.record({
  type: fc.integer({ min: 0, max: 255 }),
  value: fc.oneof(
    fc.uint8Array({ maxLength: 40 }),
    fc.uint8Array({
      minLength: MAX_FRAME_VALUE - 2,
      maxLength: MAX_FRAME_VALUE,
    }),
  ),
});

function expected(frames: { type: number; value: Uint8Array }[]): Plain[] {
  return frames.map((f) => ({ type: f.type, value: [...f.value] }));
}

Deno.test("encodeFrame writes type, big-endian length and value", () => {
  const value = new Uint8Array(0x1ab).fill(7);
  const bytes = encodeFrame(0x82, value);
  assertEquals(bytes.length, HEADER_SIZE + 0x1ab);
  assertEquals([...bytes.subarray(0, 3)], [0x82, 0x01, 0xab]);
  assertEquals([...bytes.subarray(3)], [...value]);
  assertEquals([...encodeFrame(0x03, new Uint8Array(0))], [0x03, 0, 0]);
});

Deno.test("FrameDecoder reassembles a frame split into 1-byte chunks", () => {
  const frames = [
    { type: 0x01, value: new Uint8Array([1, 2, 3, 4, 5]) },
    { type: 0x83, value: new Uint8Array(20).map((_, i) => i * 13) },
    { type: 0x86, value: new Uint8Array(MAX_FRAME_VALUE).fill(0xee) },
  ];
  const bytes = concat(frames.map((f) => encodeFrame(f.type, f.value)));
  const decoder = new FrameDecoder();
  const seen: number[] = [];
  const out: Plain[] = [];
  for (const chunk of byteByByte(bytes)) {
    for (const f of decoder.push(chunk)) out.push(plain(f));
    seen.push(decoder.buffered);
  }
  assertEquals(out, expected(frames));
  assertEquals(decoder.buffered, 0);
  // It held the partial frame in between rather than dropping bytes.
  assertEquals(Math.max(...seen), HEADER_SIZE + MAX_FRAME_VALUE - 1);
});

Deno.test("FrameDecoder reassembles frames fed byte by byte (property)", () => {
  fc.assert(
    fc.property(fc.array(frameArb, { maxLength: 5 }), (frames) => {
      const bytes = concat(frames.map((f) => encodeFrame(f.type, f.value)));
      assertEquals(decodeAll(byteByByte(bytes)), expected(frames));
    }),
    { numRuns: 50 },
  );
});

Deno.test("FrameDecoder reassembles frames in any random split (property)", () => {
  fc.assert(
    fc.property(
      fc.array(frameArb, { maxLength: 12 }),
      fc.array(fc.nat(), { maxLength: 30 }),
      (frames, cuts) => {
        const bytes = concat(frames.map((f) => encodeFrame(f.type, f.value)));
        const decoder = new FrameDecoder();
        assertEquals(decodeAll(split(bytes, cuts), decoder), expected(frames));
        assertEquals(decoder.buffered, 0);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("FrameDecoder yields many frames from one chunk", () => {
  const frames = Array.from({ length: 1000 }, (_, i) => ({
    type: i & 0xff,
    value: new Uint8Array(i % 9).fill(i & 0xff),
  }));
  const bytes = concat(frames.map((f) => encodeFrame(f.type, f.value)));
  assertEquals(decodeAll([bytes]), expected(frames));
});

Deno.test("FrameDecoder yields a frame across chunks, then whole frames from the same chunk", () => {
  const a = encodeFrame(0x82, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
  const b = encodeFrame(0x84, new Uint8Array(0));
  const c = encodeFrame(0x85, new Uint8Array([9, 9, 9, 9]));
  const bytes = concat([a, b, c]);
  // The first chunk ends inside a's value; the second finishes a and holds b and c whole.
  assertEquals(decodeAll([bytes.subarray(0, 5), bytes.subarray(5)]), [
    { type: 0x82, value: [1, 2, 3, 4, 5, 6, 7, 8] },
    { type: 0x84, value: [] },
    { type: 0x85, value: [9, 9, 9, 9] },
  ]);
});

Deno.test("FrameDecoder yields zero-length frames, alone and between others", () => {
  const empty = encodeFrame(0x03, new Uint8Array(0));
  assertEquals(decodeAll([empty]), [{ type: 0x03, value: [] }]);
  assertEquals(decodeAll(byteByByte(empty)), [{ type: 0x03, value: [] }]);
  const bytes = concat([empty, encodeFrame(0x82, new Uint8Array([1])), empty]);
  const want = [
    { type: 0x03, value: [] },
    { type: 0x82, value: [1] },
    { type: 0x03, value: [] },
  ];
  assertEquals(decodeAll([bytes]), want);
  assertEquals(decodeAll(byteByByte(bytes)), want);
});

Deno.test("FrameDecoder keeps an incomplete header until the rest arrives", () => {
  const decoder = new FrameDecoder();
  assertEquals([...decoder.push(new Uint8Array([0x82, 0x00]))], []);
  assertEquals(decoder.buffered, 2);
  assertEquals([...decoder.push(new Uint8Array(0))], []);
  assertEquals(decoder.buffered, 2);
  const out = decodeAll(
    [new Uint8Array([0x02, 0xaa]), new Uint8Array([0xbb])],
    decoder,
  );
  assertEquals(out, [{ type: 0x82, value: [0xaa, 0xbb] }]);
});

Deno.test("FrameDecoder rejects an oversized length from the 3 header bytes alone", () => {
  const decoder = new FrameDecoder();
  const header = new Uint8Array([0x86, 0x04, 0x01]); // 1025 bytes announced
  const err = assertThrows(
    () => [...decoder.push(header)],
    ProtocolError,
    "1025",
  );
  assertEquals(err.code, ErrorCode.MALFORMED_FRAME);
  // Nothing of the value was waited for or buffered.
  assertEquals(decoder.buffered, 0);
});

Deno.test("FrameDecoder rejects an oversized length when the header arrives byte by byte", () => {
  const decoder = new FrameDecoder();
  assertEquals([...decoder.push(new Uint8Array([0x01]))], []);
  assertEquals([...decoder.push(new Uint8Array([0xff]))], []);
  const err = assertThrows(
    () => [...decoder.push(new Uint8Array([0xff]))],
    ProtocolError,
  );
  assertEquals(err.code, ErrorCode.MALFORMED_FRAME);
  assert_(decoder.buffered <= HEADER_SIZE);
});

Deno.test("FrameDecoder accepts exactly the maximum and honours a smaller custom maximum", () => {
  const max = encodeFrame(0x01, new Uint8Array(MAX_FRAME_VALUE));
  assertEquals(decodeAll([max])[0]!.value.length, MAX_FRAME_VALUE);
  const small = new FrameDecoder(8);
  assertEquals(
    decodeAll([encodeFrame(0x82, new Uint8Array(8))], small).length,
    1,
  );
  const err = assertThrows(
    () => [...small.push(new Uint8Array([0x82, 0x00, 0x09]))],
    ProtocolError,
  );
  assertEquals(err.code, ErrorCode.MALFORMED_FRAME);
});

Deno.test("FrameDecoder is unusable after a failure", () => {
  const decoder = new FrameDecoder();
  assertThrows(
    () => [...decoder.push(new Uint8Array([0x01, 0xff, 0xff]))],
    ProtocolError,
  );
  // Even a perfectly good frame is refused now.
  const err = assertThrows(
    () => [...decoder.push(encodeFrame(0x03, new Uint8Array(0)))],
    ProtocolError,
    "failed",
  );
  assertEquals(err.code, ErrorCode.MALFORMED_FRAME);
});

Deno.test("FrameDecoder yields the good frames before a bad header in the same chunk", () => {
  const decoder = new FrameDecoder();
  const bytes = concat([
    encodeFrame(0x03, new Uint8Array(0)),
    new Uint8Array([0x82, 0xff, 0xff, 1, 2, 3]),
  ]);
  const got: Plain[] = [];
  const err = assertThrows(() => {
    for (const f of decoder.push(bytes)) got.push(plain(f));
  }, ProtocolError);
  assertEquals(err.code, ErrorCode.MALFORMED_FRAME);
  assertEquals(got, [{ type: 0x03, value: [] }]);
});

Deno.test("encodeFrame and writeHeader throw RangeError above the maximum", () => {
  assertThrows(
    () => encodeFrame(0x01, new Uint8Array(MAX_FRAME_VALUE + 1)),
    RangeError,
  );
  const buf = new Uint8Array(HEADER_SIZE);
  assertThrows(
    () => writeHeader(buf, 0, 0x01, MAX_FRAME_VALUE + 1),
    RangeError,
  );
  assertThrows(() => writeHeader(buf, 0, 0x01, 0x10000), RangeError);
  // Untouched by the refused call; the maximum itself is fine.
  assertEquals([...buf], [0, 0, 0]);
  writeHeader(buf, 0, 0x01, MAX_FRAME_VALUE);
  assertEquals([...buf], [0x01, 0x04, 0x00]);
});

Deno.test("FrameDecoder with accept fails an unknown type at its header, not after its value", () => {
  const decoder = new FrameDecoder(MAX_FRAME_VALUE, (t) => t === 0x01);
  // 'G' of "GET /": type 0x47 announcing a length within the maximum.
  const err = (() => {
    try {
      [...decoder.push(new Uint8Array([0x47, 0x00, 0x10]))];
    } catch (e) {
      return e;
    }
  })();
  assert_(err instanceof ProtocolError, String(err));
  assertEquals(err.code, ErrorCode.MALFORMED_FRAME);
  assert_(err.message.includes("0x47"), err.message);
  // An accepted type still decodes.
  const ok = new FrameDecoder(MAX_FRAME_VALUE, (t) => t === 0x01);
  assertEquals(
    [...ok.push(new Uint8Array([0x01, 0x00, 0x01, 0x09]))].map((f) => f.type),
    [0x01],
  );
});
