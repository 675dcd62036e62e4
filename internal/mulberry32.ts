/**
 * mulberry32: a tiny seeded 32-bit PRNG for reproducible test and load
 * randomness (fault timing, client start times). Not for secrets: seeds and
 * tokens come from `crypto.getRandomValues`.
 *
 * @module
 */

/** Returns a generator of floats in `[0, 1)` determined by `seed`. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
