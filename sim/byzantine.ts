/**
 * A byzantine server, in the manner of TigerBeetle's VOPR: on a connection
 * chosen by the seed, what an honest server core wrote is changed on its way
 * to the wire, so the client meets a server that breaks PROTOCOL.md §4
 * ("Server messages in order"). The client must refuse every such frame as a
 * protocol violation and give up, except a changed value, which it cannot
 * tell from a true one until FINAL's checksums: that run must end in FAIL,
 * never PASS (`sim/checker.ts` `numbers`).
 *
 * The corruptor sees bytes only (a server write of whole frames), holds no
 * clock and draws nothing: the simulator draws the plan from its seed.
 *
 * @module
 */

import { HEADER_SIZE } from "../protocol/frame.ts";
import { encodeMessage, MessageType } from "../protocol/messages.ts";

/** The ways a byzantine server lies. */
export const CORRUPTIONS = [
  "after-final", // a NUMBER at offset `count` right after FINAL
  "skip", // a NUMBER one offset ahead (the one due is never sent)
  "duplicate", // a NUMBER sent twice
  "value", // a NUMBER whose value is not the sequence's
] as const;

/** One way to lie. */
export type Corruption = typeof CORRUPTIONS[number];

/** What to corrupt on one connection. */
export interface CorruptionPlan {
  readonly kind: Corruption;
  /**
   * For `skip`, `duplicate` and `value`: the NUMBER frame of this
   * connection to corrupt (0 = its first). Ignored for `after-final`.
   */
  readonly nth: number;
}

/** A frame was corrupted: `offset` is the offset the client is told. */
export type OnCorrupt = (kind: Corruption, offset: number) => void;

const NUMBER_LEN = 8;

/**
 * Rewrites one connection's server-to-client bytes by `plan`, once.
 *
 * @example
 * ```ts
 * const c = new FrameCorruptor({ kind: "after-final", nth: 0 }, valueAt, log);
 * socket.corrupt = (bytes) => c.pass(bytes);
 * ```
 */
export class FrameCorruptor {
  #numbers = 0;
  #spent = false;

  /**
   * @param plan what to corrupt
   * @param valueAt the session's sequence, so a lie about an offset carries that offset's true value
   * @param onCorrupt told when the corruption is made
   */
  constructor(
    readonly plan: CorruptionPlan,
    readonly valueAt: (offset: number) => number,
    readonly onCorrupt: OnCorrupt,
  ) {}

  /** Whether the corruption was made. */
  get spent(): boolean {
    return this.#spent;
  }

  /**
   * The bytes to put on the wire for one server write. A write that does
   * not hold whole frames passes unchanged, and so does everything after
   * the one corruption.
   */
  pass(bytes: Uint8Array): Uint8Array {
    if (this.#spent) return bytes;
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (!wholeFrames(v)) return bytes;
    const out: Uint8Array[] = [];
    let from = 0;
    for (let i = 0; i < bytes.length;) {
      const end = i + HEADER_SIZE + v.getUint16(i + 1);
      const type = bytes[i];
      if (type === MessageType.NUMBER && end - i === HEADER_SIZE + NUMBER_LEN) {
        const k = this.#numbers++;
        if (this.plan.kind !== "after-final" && k === this.plan.nth) {
          const offset = v.getUint32(i + HEADER_SIZE),
            value = v.getUint32(i + HEADER_SIZE + 4);
          out.push(bytes.subarray(from, i));
          out.push(...this.#lie(bytes.subarray(i, end), offset, value));
          from = end;
          this.#spent = true;
          break;
        }
      } else if (
        type === MessageType.FINAL && this.plan.kind === "after-final"
      ) {
        const offset = v.getUint32(i + HEADER_SIZE) + 1;
        out.push(bytes.subarray(from, end));
        out.push(numberFrame(offset, this.valueAt(offset)));
        this.onCorrupt("after-final", offset);
        from = end;
        this.#spent = true;
        break;
      }
      i = end;
    }
    if (!this.#spent) return bytes;
    out.push(bytes.subarray(from));
    return concat(out);
  }

  #lie(frame: Uint8Array, offset: number, value: number): Uint8Array[] {
    const kind = this.plan.kind;
    switch (kind) {
      case "skip":
        this.onCorrupt(kind, offset + 1);
        return [numberFrame(offset + 1, this.valueAt(offset + 1))];
      case "duplicate":
        this.onCorrupt(kind, offset);
        return [frame, frame];
      default: {
        this.onCorrupt("value", offset);
        // Any other value: the low bit flipped.
        return [numberFrame(offset, (value ^ 1) >>> 0)];
      }
    }
  }
}

/** Whether `v` holds whole frames only. */
function wholeFrames(v: DataView): boolean {
  let i = 0;
  while (i + HEADER_SIZE <= v.byteLength) {
    i += HEADER_SIZE + v.getUint16(i + 1);
  }
  return i === v.byteLength;
}

/** A NUMBER frame. */
function numberFrame(offset: number, value: number): Uint8Array {
  return encodeMessage({ type: "number", offset, value });
}

function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
