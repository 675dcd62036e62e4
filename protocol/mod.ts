/**
 * The seqstream wire protocol: framing, messages, error codes, the sequence
 * generator and checksums. Pure: bytes in, messages out; no I/O.
 *
 * @module
 */

export * from "./errors.ts";
export * from "./frame.ts";
export * from "./messages.ts";
export * from "./prng.ts";
export * from "./checksum.ts";
export * from "./uuid.ts";
