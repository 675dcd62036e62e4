/**
 * Session ids are RFC 9562 UUIDs: text at the edges, 16 bytes on the wire.
 *
 * @module
 */

const UUID_RE =
  /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether `s` is a UUID in the canonical 8-4-4-4-12 hex form. */
export function isUuid(s: string): boolean {
  return UUID_RE.test(s);
}

/**
 * Parses a canonical UUID string into 16 bytes.
 *
 * @throws {TypeError} if `s` is not a canonical UUID
 */
export function uuidToBytes(s: string): Uint8Array {
  if (!isUuid(s)) throw new TypeError(`Not a UUID: "${s}"`);
  return hexToBytes(s.replaceAll("-", ""));
}

/** ASCII codes of the two hex digits of every byte value. */
const HEX_PAIRS: Uint16Array = (() => {
  const t = new Uint16Array(256);
  const d = "0123456789abcdef";
  for (let i = 0; i < 256; i++) {
    t[i] = (d.charCodeAt(i >> 4) << 8) | d.charCodeAt(i & 15);
  }
  return t;
})();
/** Scratch for {@link hex}: 16 bytes as digits and four dashes at most. */
const CHARS = new Uint16Array(36);

/**
 * The hex digits of `b` as one flat string, with a dash before the bytes
 * listed in `dashes`. Built from character codes in one step: `+=` and
 * template literals leave a tree of V8 cons strings behind (about twelve
 * objects for one UUID), kept for as long as the session's id is.
 */
function hex(b: Uint8Array, dashes: number): string {
  let n = 0;
  for (let i = 0; i < b.length; i++) {
    if ((dashes >> i) & 1) CHARS[n++] = 0x2d;
    const pair = HEX_PAIRS[b[i]!]!;
    CHARS[n++] = pair >> 8;
    CHARS[n++] = pair & 0xff;
  }
  // apply takes any array-like (the typing says number[]).
  return String.fromCharCode.apply(
    null,
    CHARS.subarray(0, n) as unknown as number[],
  );
}

/** Formats 16 bytes as a lowercase canonical UUID string. */
export function bytesToUuid(b: Uint8Array): string {
  // Dashes before bytes 4, 6, 8 and 10: 8-4-4-4-12 digits.
  return hex(b, (1 << 4) | (1 << 6) | (1 << 8) | (1 << 10));
}

/** Lowercase hex of `b`, one flat string for up to 16 bytes. */
export function bytesToHex(b: Uint8Array): string {
  if (b.length <= 16) return hex(b, 0);
  let s = "";
  for (let i = 0; i < b.length; i += 16) s += hex(b.subarray(i, i + 16), 0);
  return s;
}

/**
 * Bytes of an even-length hex string.
 *
 * @throws {TypeError} on odd length or a non-hex character
 */
export function hexToBytes(h: string): Uint8Array {
  if (h.length % 2 !== 0 || !/^[0-9a-f]*$/i.test(h)) {
    throw new TypeError(`Not a hex string: "${h}"`);
  }
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(h.slice(i * 2, i * 2 + 2), 16);
  }
  return out;
}
