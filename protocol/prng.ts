/**
 * The session sequence: Philox4x32-10 (Salmon et al., "Parallel random
 * numbers: as easy as 1, 2, 3", SC'11), a counter-based generator. The value
 * at offset `i` is the first output word of Philox applied to counter
 * `(i, 0, 0, 0)` under the session's 64-bit key, so any offset is computed
 * directly: a resume never replays and a session needs no per-number state.
 *
 * @module
 */

import { bytesToHex } from "./uuid.ts";

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** A session seed: the 64-bit Philox key as two unsigned 32-bit words. */
export interface Seed {
  readonly hi: number;
  readonly lo: number;
}

function mulhi(a: number, b: number): number {
  const al = a & 0xffff, ah = a >>> 16, bl = b & 0xffff, bh = b >>> 16;
  const lh = al * bh, hl = ah * bl;
  const mid = ((al * bl) >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  return (ah * bh + (lh >>> 16) + (hl >>> 16) + (mid >>> 16)) >>> 0;
}

/** The last output block; written by {@link philox} so nothing allocates per call. */
const words = new Uint32Array(4);

/** Philox4x32-10 on scalar words (locals only: this is the server's hot path). */
function philox(
  c0: number,
  c1: number,
  c2: number,
  c3: number,
  k0: number,
  k1: number,
): void {
  c0 >>>= 0;
  c1 >>>= 0;
  c2 >>>= 0;
  c3 >>>= 0;
  k0 >>>= 0;
  k1 >>>= 0;
  for (let r = 0; r < 10; r++) {
    if (r > 0) {
      k0 = (k0 + W0) >>> 0;
      k1 = (k1 + W1) >>> 0;
    }
    const hi0 = mulhi(M0, c0);
    const lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi(M1, c2);
    const lo1 = Math.imul(M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
  }
  words[0] = c0;
  words[1] = c1;
  words[2] = c2;
  words[3] = c3;
}

/**
 * Philox4x32-10 on a full 128-bit counter; writes the 4 output words to `out`.
 * Exposed for the known-answer tests; use {@link valueAt} for sequences.
 */
export function philox4x32(
  c: readonly [number, number, number, number],
  k0: number,
  k1: number,
  out: Uint32Array,
): void {
  philox(c[0], c[1], c[2], c[3], k0, k1);
  out.set(words);
}

/**
 * The uint32 value at `offset` of the sequence for `seed`.
 *
 * @example
 * ```ts
 * const v = valueAt({ hi: 1, lo: 2 }, 0); // same on every machine, every time
 * ```
 */
export function valueAt(seed: Seed, offset: number): number {
  philox(offset, 0, 0, 0, seed.lo, seed.hi);
  return words[0]!;
}

/** A fresh seed from the platform's CSPRNG. */
export function randomSeed(): Seed {
  const w = crypto.getRandomValues(new Uint32Array(2));
  return { hi: w[0]!, lo: w[1]! };
}

/**
 * The seed of session `id` on a server started with `--seed base`: Philox
 * keyed by `base` over the id's 16 bytes, so it depends only on both.
 *
 * @param base a non-negative integer below 2^53
 * @param id the session id's 16 bytes
 */
export function deriveSeed(base: number, id: Uint8Array): Seed {
  const lo = base >>> 0;
  const hi = Math.floor(base / 2 ** 32) >>> 0;
  const v = new DataView(id.buffer, id.byteOffset, id.byteLength);
  philox(
    v.getUint32(0),
    v.getUint32(4),
    v.getUint32(8),
    v.getUint32(12),
    lo,
    hi,
  );
  return { hi: words[0]!, lo: words[1]! };
}

/** The seed as 16 lowercase hex digits (for stores). */
export function seedToHex(s: Seed): string {
  SEED_VIEW.setUint32(0, s.hi);
  SEED_VIEW.setUint32(4, s.lo);
  return bytesToHex(SEED_BYTES); // one flat string, no cons-string tree
}

const SEED_BYTES = new Uint8Array(8);
const SEED_VIEW = new DataView(SEED_BYTES.buffer);

/**
 * Parses {@link seedToHex} output.
 *
 * @throws {TypeError} if `h` is not 16 hex digits
 */
export function seedFromHex(h: string): Seed {
  if (!/^[0-9a-f]{16}$/i.test(h)) throw new TypeError(`Bad seed: "${h}"`);
  return { hi: parseInt(h.slice(0, 8), 16), lo: parseInt(h.slice(8), 16) };
}
