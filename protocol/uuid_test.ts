import fc from "fast-check";
import { assertEquals, assertThrows } from "../tests/_assert.ts";
import {
  bytesToHex,
  bytesToUuid,
  hexToBytes,
  isUuid,
  uuidToBytes,
} from "./uuid.ts";

Deno.test("uuidToBytes and bytesToUuid round-trip any 16 bytes (property)", () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (b) => {
      const s = bytesToUuid(b);
      const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
      assertEquals(
        s,
        [
          h.slice(0, 8),
          h.slice(8, 12),
          h.slice(12, 16),
          h.slice(16, 20),
          h.slice(20),
        ]
          .join("-"),
      );
      assertEquals(isUuid(s), true);
      assertEquals([...uuidToBytes(s)], [...b]);
      assertEquals(uuidToBytes(s).length, 16);
    }),
  );
});

Deno.test("uuidToBytes reads a canonical UUID big-endian, in text order", () => {
  assertEquals(
    [...uuidToBytes("00000000-0000-4000-8000-000000000001")],
    [0, 0, 0, 0, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, 1],
  );
  const id = "0123abcd-ef01-4a2b-9c3d-4e5f60718293";
  assertEquals(bytesToUuid(uuidToBytes(id)), id);
});

Deno.test("uuidToBytes accepts upper case and bytesToUuid answers lower case", () => {
  const upper = "0123ABCD-EF01-4A2B-9C3D-4E5F60718293";
  assertEquals(bytesToUuid(uuidToBytes(upper)), upper.toLowerCase());
  const random = crypto.randomUUID();
  assertEquals(bytesToUuid(uuidToBytes(random)), random);
});

Deno.test("uuidToBytes rejects non-UUIDs with TypeError", () => {
  for (
    const bad of [
      "",
      "not-a-uuid",
      "0123abcd-ef01-4a2b-9c3d-4e5f6071829", // one digit short
      "0123abcd-ef01-4a2b-9c3d-4e5f607182930", // one digit long
      "0123abcdef014a2b9c3d4e5f60718293", // no hyphens
      "0123abcd-ef014a2b-9c3d-4e5f60718293", // hyphen misplaced
      "{0123abcd-ef01-4a2b-9c3d-4e5f60718293}",
      "urn:uuid:0123abcd-ef01-4a2b-9c3d-4e5f60718293",
      "0123abcg-ef01-4a2b-9c3d-4e5f60718293", // g is not hex
      " 0123abcd-ef01-4a2b-9c3d-4e5f60718293",
      "0123abcd-ef01-4a2b-9c3d-4e5f60718293\n",
    ]
  ) {
    assertEquals(isUuid(bad), false, bad);
    assertThrows(() => uuidToBytes(bad), TypeError, "Not a UUID");
  }
});

Deno.test("hexToBytes and bytesToHex round-trip; hexToBytes rejects odd length and non-hex", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 40 }), (b) => {
      const h = bytesToHex(b);
      assertEquals(
        h,
        Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(""),
      );
      assertEquals([...hexToBytes(h)], [...b]);
    }),
  );
  assertEquals([...hexToBytes("00FFa5")], [0, 255, 0xa5]);
  assertThrows(() => hexToBytes("abc"), TypeError);
  assertThrows(() => hexToBytes("zz"), TypeError);
  assertThrows(() => hexToBytes("0x"), TypeError);
});
