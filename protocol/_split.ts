/**
 * Test helper: a byte string cut into chunks, the way a socket may deliver it.
 *
 * @module
 */

/** `bytes` cut at the positions `cuts` (taken modulo length+1, sorted, deduplicated). */
export function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((
    a,
    b,
  ) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const c of [...at, bytes.length]) {
    out.push(bytes.subarray(prev, c));
    prev = c;
  }
  return out;
}
