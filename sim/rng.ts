/**
 * The simulator's randomness: one seed, split into independent streams by
 * name, so that adding a client or turning a fault off does not change what
 * every other actor draws.
 *
 * @module
 */

import { mulberry32 } from "../internal/mulberry32.ts";

/** A seeded random source with the draws the simulator needs. */
export class Rng {
  readonly #next: () => number;

  /** @param seed any 32-bit integer */
  constructor(readonly seed: number) {
    this.#next = mulberry32(seed);
  }

  /** A new independent stream named `name`, from this seed. */
  fork(name: string): Rng {
    let h = this.seed ^ 0x9e3779b9;
    for (let i = 0; i < name.length; i++) {
      h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
    }
    return new Rng(h >>> 0);
  }

  /** A float in [0, 1). */
  float(): number {
    return this.#next();
  }

  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.#next() * (hi - lo + 1));
  }

  /** A float in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + this.#next() * (hi - lo);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.#next() < p;
  }

  /** One element of `xs`. */
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.#next() * xs.length)]!;
  }

  /** `n` random bytes. */
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = Math.floor(this.#next() * 256);
    return b;
  }

  /** A random version-4 UUID. */
  uuid(): string {
    const b = this.bytes(16);
    b[6] = (b[6]! & 0x0f) | 0x40;
    b[8] = (b[8]! & 0x3f) | 0x80;
    const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${
      h.slice(16, 20)
    }-${h.slice(20)}`;
  }
}
