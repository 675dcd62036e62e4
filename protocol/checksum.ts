/**
 * Checksums of a sequence: the exact sum of its values and the CRC-32 (IEEE,
 * via `node:zlib`) of the values as 4-byte big-endian words in order. Both
 * cover every bit of every number; the CRC also covers order. The state is
 * two numbers, so a client can persist it and carry on after a restart.
 *
 * @module
 */

import { crc32 } from "node:zlib";
import { type Seed, valueAt } from "./prng.ts";

/** A running checksum over a prefix of a sequence. */
export class Checksum {
  /** Exact sum of the values so far (< 2^53 for any session). */
  sum: number;
  /** CRC-32 of the values so far. */
  crc: number;
  #word = new Uint8Array(4);

  /** Starts empty, or from a saved `{ sum, crc }`. */
  constructor(init: { sum: number; crc: number } = { sum: 0, crc: 0 }) {
    this.sum = init.sum;
    this.crc = init.crc;
  }

  /** Adds the next value. */
  update(value: number): void {
    this.sum += value;
    const w = this.#word;
    w[0] = value >>> 24;
    w[1] = (value >>> 16) & 0xff;
    w[2] = (value >>> 8) & 0xff;
    w[3] = value & 0xff;
    this.crc = crc32(w, this.crc);
  }
}

const SCRATCH = new Uint8Array(4 * 4096);
const SCRATCH_VIEW = new DataView(SCRATCH.buffer);

/**
 * Sum and CRC-32 of the whole `count`-number sequence of `seed`, computed
 * from the seed (not from what was sent): what the final message carries.
 */
export function sequenceChecksum(
  seed: Seed,
  count: number,
): { sum: number; crc: number } {
  // One scratch buffer for every call (the loop is synchronous): a 16 KiB
  // allocation per session was most of this function's cost for short
  // sessions, and external memory that brought the next GC forward.
  const chunk = SCRATCH, view = SCRATCH_VIEW;
  let sum = 0, crc = 0;
  for (let start = 0; start < count; start += 4096) {
    const n = Math.min(4096, count - start);
    for (let i = 0; i < n; i++) {
      const v = valueAt(seed, start + i);
      sum += v;
      view.setUint32(i * 4, v);
    }
    crc = crc32(chunk.subarray(0, n * 4), crc);
  }
  return { sum, crc };
}

/** A CRC as 8 lowercase hex digits, as the client prints it. */
export function formatCrc(crc: number): string {
  return (crc >>> 0).toString(16).padStart(8, "0");
}
