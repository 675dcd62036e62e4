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

/** Formats 16 bytes as a lowercase canonical UUID string. */
export function bytesToUuid(b: Uint8Array): string {
  const h = bytesToHex(b);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${
    h.slice(16, 20)
  }-${h.slice(20, 32)}`;
}

/** Lowercase hex of `b`. */
export function bytesToHex(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
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
