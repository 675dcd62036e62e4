/**
 * Framing: every frame is `type (u8) | length (u16, big-endian) | value`.
 *
 * {@link FrameDecoder} turns an arbitrary split of the byte stream into whole
 * frames; it never touches a socket and enforces the maximum value length
 * from the header, before buffering anything of the value.
 *
 * @module
 */

import { ErrorCode, ProtocolError } from "./errors.ts";

/** Bytes in a frame header: 1 type byte and a 2-byte big-endian length. */
export const HEADER_SIZE = 3;

/** The largest value length any peer accepts (bytes). */
export const MAX_FRAME_VALUE = 1024;

/** One decoded frame. `value` is a view that is valid until the next `push`. */
export interface Frame {
  /** The message type byte. */
  type: number;
  /** The frame's value bytes (a view into the decoder's or the caller's buffer). */
  value: Uint8Array;
}

/**
 * Writes a frame header at `offset` of `buf`.
 *
 * @throws {RangeError} if `length` exceeds {@link MAX_FRAME_VALUE}
 */
export function writeHeader(
  buf: Uint8Array,
  offset: number,
  type: number,
  length: number,
): void {
  if (length > MAX_FRAME_VALUE) {
    throw new RangeError(`Frame value of ${length} bytes exceeds the maximum`);
  }
  buf[offset] = type;
  buf[offset + 1] = length >>> 8;
  buf[offset + 2] = length & 0xff;
}

/**
 * Wraps `value` in a frame of `type`.
 *
 * @example
 * ```ts
 * const bytes = encodeFrame(0x03, new Uint8Array(0)); // [3, 0, 0]
 * ```
 */
export function encodeFrame(type: number, value: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE + value.length);
  writeHeader(out, 0, type, value.length);
  out.set(value, HEADER_SIZE);
  return out;
}

/**
 * Incremental frame decoder, correct for any split of the input: one byte at
 * a time, many frames per chunk, or a frame across many chunks.
 *
 * @example
 * ```ts
 * const decoder = new FrameDecoder();
 * for (const frame of decoder.push(chunk)) handle(frame);
 * ```
 */
export class FrameDecoder {
  readonly #max: number;
  readonly #accept: ((type: number) => boolean) | undefined;
  /** Partial frames only; allocated the first time one arrives (most never do). */
  #buf: Uint8Array | undefined;
  #len = 0;
  #failed = false;

  /**
   * @param maxValue the largest value length accepted (default {@link MAX_FRAME_VALUE})
   * @param accept which type bytes to accept; others fail at the header, before
   * any of their value is waited for (default: every type)
   */
  constructor(
    maxValue: number = MAX_FRAME_VALUE,
    accept?: (type: number) => boolean,
  ) {
    this.#max = maxValue;
    this.#accept = accept;
  }

  /** Bytes held from an incomplete frame. */
  get buffered(): number {
    return this.#len;
  }

  /**
   * Feeds a chunk and yields every frame it completes. Frame values are views
   * valid only until the next call.
   *
   * @throws {ProtocolError} `MALFORMED_FRAME` when a header announces a value
   * longer than the maximum or a type not accepted; the decoder is unusable
   * afterwards.
   */
  *push(chunk: Uint8Array): Generator<Frame> {
    if (this.#failed) {
      throw new ProtocolError(ErrorCode.MALFORMED_FRAME, "Decoder has failed");
    }
    let pos = 0;
    while (pos < chunk.length) {
      if (this.#len === 0) {
        // Fast path: whole frames straight from the caller's chunk.
        const left = chunk.length - pos;
        if (left >= HEADER_SIZE) {
          const length = this.#lengthAt(chunk, pos);
          if (left >= HEADER_SIZE + length) {
            const type = chunk[pos]!;
            const start = pos + HEADER_SIZE;
            pos = start + length;
            yield { type, value: chunk.subarray(start, pos) };
            continue;
          }
        }
      }
      // Slow path: accumulate a partial frame in our own buffer.
      const buf = this.#buf ??= new Uint8Array(HEADER_SIZE + this.#max);
      if (this.#len < HEADER_SIZE) {
        const take = Math.min(HEADER_SIZE - this.#len, chunk.length - pos);
        buf.set(chunk.subarray(pos, pos + take), this.#len);
        this.#len += take;
        pos += take;
        if (this.#len < HEADER_SIZE) return;
      }
      const length = this.#lengthAt(buf, 0);
      const need = HEADER_SIZE + length - this.#len;
      const take = Math.min(need, chunk.length - pos);
      buf.set(chunk.subarray(pos, pos + take), this.#len);
      this.#len += take;
      pos += take;
      if (take < need) return;
      this.#len = 0;
      yield {
        type: buf[0]!,
        value: buf.subarray(HEADER_SIZE, HEADER_SIZE + length),
      };
    }
  }

  #lengthAt(buf: Uint8Array, pos: number): number {
    const type = buf[pos]!;
    if (this.#accept && !this.#accept(type)) {
      this.#failed = true;
      throw new ProtocolError(
        ErrorCode.MALFORMED_FRAME,
        `Unknown message type 0x${type.toString(16).padStart(2, "0")}`,
      );
    }
    const length = (buf[pos + 1]! << 8) | buf[pos + 2]!;
    if (length > this.#max) {
      this.#failed = true;
      throw new ProtocolError(
        ErrorCode.MALFORMED_FRAME,
        `Frame of type 0x${
          buf[pos]!.toString(16).padStart(2, "0")
        } announces ${length} bytes; the maximum is ${this.#max}`,
      );
    }
    return length;
  }
}
