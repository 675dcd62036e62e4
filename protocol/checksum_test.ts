import fc from "fast-check";
import { assertEquals, assertNotEquals } from "../tests/_assert.ts";
import { Checksum, formatCrc, sequenceChecksum } from "./checksum.ts";
import { type Seed, valueAt } from "./prng.ts";

const SEED: Seed = { hi: 0x0123_4567, lo: 0x89ab_cdef };

function over(
  values: number[],
  from = new Checksum(),
): { sum: number; crc: number } {
  for (const v of values) from.update(v);
  return { sum: from.sum, crc: from.crc };
}

Deno.test("Checksum is the exact sum and the standard CRC-32 of big-endian words", () => {
  // The words are the ASCII bytes "12345678"; CRC-32/IEEE("12345678") = 0x9ae0daaf.
  const words = [0x31323334, 0x35363738];
  assertEquals(over(words), { sum: 0x31323334 + 0x35363738, crc: 0x9ae0daaf });
  // Empty: nothing summed, CRC of no bytes.
  assertEquals(over([]), { sum: 0, crc: 0 });
});

Deno.test("Checksum.update over the values equals sequenceChecksum for several counts", () => {
  const values: number[] = [];
  for (let i = 0; i < 65535; i++) values.push(valueAt(SEED, i));
  const c = new Checksum();
  let done = 0;
  for (const n of [1, 2, 3, 100, 4095, 4096, 4097, 8193, 65535]) {
    while (done < n) c.update(values[done++]!);
    assertEquals(
      { sum: c.sum, crc: c.crc },
      sequenceChecksum(SEED, n),
      `n=${n}`,
    );
  }
  // The sum is exact: the same as adding in BigInt.
  const big = values.reduce((s, v) => s + BigInt(v), 0n);
  assertEquals(BigInt(c.sum), big);
});

Deno.test("Checksum sums 65535 maximal values exactly", () => {
  const c = new Checksum();
  for (let i = 0; i < 65535; i++) c.update(0xffffffff);
  assertEquals(c.sum, 65535 * 0xffffffff);
  assertEquals(BigInt(c.sum), 65535n * 0xffffffffn);
});

Deno.test("Checksum restored from a saved {sum, crc} mid-way gives the same result", () => {
  fc.assert(
    fc.property(
      fc.record({
        hi: fc.integer({ min: 0, max: 0xffffffff }),
        lo: fc.integer({ min: 0, max: 0xffffffff }),
      }),
      fc.integer({ min: 1, max: 3000 }),
      fc.nat(),
      (seed, count, cutAt) => {
        const cut = cutAt % (count + 1);
        const first = new Checksum();
        for (let i = 0; i < cut; i++) first.update(valueAt(seed, i));
        // What a client persists and reads back after a restart.
        const saved = JSON.parse(
          JSON.stringify({ sum: first.sum, crc: first.crc }),
        );
        const resumed = new Checksum(saved);
        for (let i = cut; i < count; i++) resumed.update(valueAt(seed, i));
        assertEquals(
          { sum: resumed.sum, crc: resumed.crc },
          sequenceChecksum(seed, count),
        );
      },
    ),
    { numRuns: 100 },
  );
});

Deno.test("Checksum treats 0 as a value like any other", () => {
  const withZero = over([5, 0, 7]);
  const without = over([5, 7]);
  assertEquals(withZero.sum, without.sum);
  assertNotEquals(withZero.crc, without.crc);
  // A single 0 gives a non-zero CRC, and a checksum of 0 can be restored from.
  assertNotEquals(over([0]).crc, 0);
  assertEquals(over([1, 2], new Checksum({ sum: 0, crc: 0 })), over([1, 2]));
});

Deno.test("Checksum CRC covers order and every byte of every value", () => {
  const base = [0x11223344, 0x55667788, 0x99aabbcc];
  const ref = over(base);
  // Swapping two values keeps the sum and changes the CRC.
  const swapped = over([base[1]!, base[0]!, base[2]!]);
  assertEquals(swapped.sum, ref.sum);
  assertNotEquals(swapped.crc, ref.crc);
  // One flipped bit in any byte of any value changes the CRC.
  for (let i = 0; i < base.length; i++) {
    for (let bit = 0; bit < 32; bit++) {
      const v = base.slice();
      v[i] = (v[i]! ^ (1 << bit)) >>> 0;
      assertNotEquals(over(v).crc, ref.crc, `value ${i} bit ${bit}`);
    }
  }
  // In particular the high byte, which a 24-bit or little-endian slip would miss.
  assertNotEquals(over([0x01000000]).crc, over([0x00000000]).crc);
  assertNotEquals(over([0x80000000]).crc, over([0x00000080]).crc);
});

Deno.test("formatCrc pads to 8 lowercase hex digits", () => {
  assertEquals(formatCrc(0), "00000000");
  assertEquals(formatCrc(0x1a), "0000001a");
  assertEquals(formatCrc(0xcbf43926), "cbf43926");
  assertEquals(formatCrc(0xffffffff), "ffffffff");
  // A signed 32-bit result is shown as its unsigned value.
  assertEquals(formatCrc(-1), "ffffffff");
});
