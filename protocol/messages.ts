/**
 * Messages: typed values and their byte layouts (see PROTOCOL.md). Pure
 * functions from bytes to messages and back; no I/O.
 *
 * @module
 */

import { ErrorCode, ProtocolError } from "./errors.ts";
import { encodeFrame, type Frame, HEADER_SIZE, writeHeader } from "./frame.ts";
import { bytesToUuid, uuidToBytes } from "./uuid.ts";

/** The protocol version this implementation speaks. */
export const PROTOCOL_VERSION = 2;

/** Largest count a session may ask for. */
export const MAX_COUNT = 65535;

/** Message type bytes. Client → server types are < 0x80. */
export const MessageType = {
  HELLO: 0x01,
  RESUME: 0x02,
  ACK: 0x03,
  WELCOME: 0x81,
  NUMBER: 0x82,
  FINAL: 0x83,
  DONE: 0x84,
  GOAWAY: 0x85,
  ERROR: 0x86,
} as const;

const TYPES: ReadonlySet<number> = new Set(Object.values(MessageType));

/**
 * Whether `type` is a message type of this protocol version, for the
 * `accept` argument of {@link FrameDecoder}.
 */
export function isMessageType(type: number): boolean {
  return TYPES.has(type);
}

/**
 * Client asks for a new session of `count` numbers under `id`. The client
 * picks the resume `token` (16 random bytes), which makes a hello idempotent:
 * if the welcome is lost, the same hello again attaches the same session,
 * while another client that only knows the id is refused.
 */
export interface Hello {
  type: "hello";
  version: number;
  id: string;
  count: number;
  token: Uint8Array;
}

/** Client resumes session `id` from `nextOffset`, proving itself with `token`. */
export interface Resume {
  type: "resume";
  version: number;
  id: string;
  token: Uint8Array;
  nextOffset: number;
}

/**
 * Delivery acknowledgement, cumulative: the client holds every value below
 * `nextOffset`. Sent every `ceil(window / 4)` numbers and at least every
 * `ackIntervalMs` (then also a keep-alive). `nextOffset = count` (sent only
 * after FINAL, once the client has recorded the result) completes the
 * session: the server may discard it.
 */
export interface Ack {
  type: "ack";
  nextOffset: number;
}

/** Server accepted a hello or resume. */
export interface Welcome {
  type: "welcome";
  count: number;
  nextOffset: number;
  token: Uint8Array;
  intervalMs: number;
  ttlMs: number;
  /** Most numbers the server sends beyond the client's last acknowledged offset. */
  window: number;
  /**
   * The client sends an ACK at least this often (ms), progress or not; the
   * server closes a connection it hears nothing from for twice this long.
   */
  ackIntervalMs: number;
}

/** One number of the sequence. */
export interface NumberMsg {
  type: "number";
  offset: number;
  value: number;
}

/** The last number with the checksums of the whole sequence. */
export interface Final {
  type: "final";
  offset: number;
  value: number;
  /** Sum of all `count` values (exact; at most 2^48). */
  sum: number;
  /** CRC-32 (IEEE) of all values as 4-byte big-endian words, in order. */
  crc32: number;
}

/** Server discarded the session after the client's ack. */
export interface Done {
  type: "done";
}

/** Server is going away; resume elsewhere or later. */
export interface GoAway {
  type: "goaway";
  retryAfterMs: number;
  message: string;
}

/** A refusal or failure with a stable code. */
export interface ErrorMsg {
  type: "error";
  code: number;
  message: string;
}

/** Messages a client sends. */
export type ClientMessage = Hello | Resume | Ack;
/** Messages a server sends. */
export type ServerMessage =
  | Welcome
  | NumberMsg
  | Final
  | Done
  | GoAway
  | ErrorMsg;
/** Every message. */
export type Message = ClientMessage | ServerMessage;

/** Bytes of a NUMBER frame on the wire. */
export const NUMBER_FRAME_SIZE = HEADER_SIZE + 8;

/** Longest message text sent in ERROR or GOAWAY (bytes, UTF-8). */
const MAX_TEXT = 512;

const enc = new TextEncoder();
// ignoreBOM: a leading U+FEFF is text like any other, not a marker to strip.
const dec = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function malformed(msg: string): ProtocolError {
  return new ProtocolError(ErrorCode.MALFORMED_FRAME, msg);
}

function u32(b: Uint8Array, i: number): number {
  return ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>>
    0;
}

function expectLength(f: Frame, name: string, len: number): DataView {
  if (f.value.length !== len) {
    throw malformed(
      `${name} must be ${len} bytes, got ${f.value.length}`,
    );
  }
  return new DataView(f.value.buffer, f.value.byteOffset, f.value.byteLength);
}

function text(f: Frame, from: number, name: string): string {
  try {
    return dec.decode(f.value.subarray(from));
  } catch (cause) {
    throw new ProtocolError(
      ErrorCode.MALFORMED_FRAME,
      `${name} text is not UTF-8`,
      { cause },
    );
  }
}

/** A message of `fixed` bytes of fields followed by UTF-8 text (GOAWAY, ERROR). */
function withText(f: Frame, name: string, fixed: number): [DataView, string] {
  if (f.value.length < fixed) {
    throw malformed(`${name} is shorter than ${fixed} bytes`);
  }
  const v = new DataView(f.value.buffer, f.value.byteOffset, fixed);
  return [v, text(f, fixed, name)];
}

function truncateUtf8(s: string): Uint8Array {
  let b = enc.encode(s);
  if (b.length <= MAX_TEXT) return b;
  b = b.subarray(0, MAX_TEXT);
  // Drop a partial trailing code point (only if it is partial: a complete
  // one that ends exactly at the limit stays).
  let lead = b.length - 1;
  while (lead > 0 && (b[lead]! & 0xc0) === 0x80) lead--;
  const first = b[lead]!;
  const size = first >= 0xf0 ? 4 : first >= 0xe0 ? 3 : first >= 0xc0 ? 2 : 1;
  return b.slice(0, lead + size > b.length ? lead : b.length);
}

/**
 * Decodes one frame into a message.
 *
 * @throws {ProtocolError} `MALFORMED_FRAME` for an unknown type or a wrong
 * layout; `UNSUPPORTED_VERSION` for a HELLO or RESUME of another version,
 * checked before its length so later versions can change the layout.
 */
export function decodeMessage(f: Frame): Message {
  if (
    (f.type === MessageType.HELLO || f.type === MessageType.RESUME) &&
    f.value.length > 0 && f.value[0] !== PROTOCOL_VERSION
  ) {
    // The version comes first so that a future version may change the layout
    // and still be told apart from garbage.
    const v = f.value[0]!;
    throw new ProtocolError(
      ErrorCode.UNSUPPORTED_VERSION,
      `Protocol version ${v} is not supported; this server speaks version ${PROTOCOL_VERSION}` +
        (v < PROTOCOL_VERSION
          ? " (delivery acknowledgements); upgrade the client"
          : "; upgrade the server or use an older client"),
    );
  }
  switch (f.type) {
    case MessageType.HELLO: {
      const v = expectLength(f, "HELLO", 37);
      return {
        type: "hello",
        version: v.getUint8(0),
        id: bytesToUuid(f.value.subarray(1, 17)),
        count: v.getUint32(17),
        token: f.value.slice(21, 37),
      };
    }
    case MessageType.RESUME: {
      const v = expectLength(f, "RESUME", 37);
      return {
        type: "resume",
        version: v.getUint8(0),
        id: bytesToUuid(f.value.subarray(1, 17)),
        token: f.value.slice(17, 33),
        nextOffset: v.getUint32(33),
      };
    }
    case MessageType.ACK: {
      const v = expectLength(f, "ACK", 4);
      return { type: "ack", nextOffset: v.getUint32(0) };
    }
    case MessageType.WELCOME: {
      const v = expectLength(f, "WELCOME", 40);
      return {
        type: "welcome",
        count: v.getUint32(0),
        nextOffset: v.getUint32(4),
        token: f.value.slice(8, 24),
        intervalMs: v.getUint32(24),
        ttlMs: v.getUint32(28),
        window: v.getUint32(32),
        ackIntervalMs: v.getUint32(36),
      };
    }
    case MessageType.NUMBER: {
      // The client's hot path: read the bytes directly, no DataView per number.
      const b = f.value;
      if (b.length !== 8) {
        throw malformed(`NUMBER must be 8 bytes, got ${b.length}`);
      }
      return { type: "number", offset: u32(b, 0), value: u32(b, 4) };
    }
    case MessageType.FINAL: {
      const v = expectLength(f, "FINAL", 20);
      return {
        type: "final",
        offset: v.getUint32(0),
        value: v.getUint32(4),
        sum: Number(v.getBigUint64(8)),
        crc32: v.getUint32(16),
      };
    }
    case MessageType.DONE:
      expectLength(f, "DONE", 0);
      return { type: "done" };
    case MessageType.GOAWAY: {
      const [v, message] = withText(f, "GOAWAY", 4);
      return { type: "goaway", retryAfterMs: v.getUint32(0), message };
    }
    case MessageType.ERROR: {
      const [v, message] = withText(f, "ERROR", 2);
      return { type: "error", code: v.getUint16(0), message };
    }
    default:
      throw malformed(
        `Unknown message type 0x${f.type.toString(16).padStart(2, "0")}`,
      );
  }
}

/**
 * Encodes a message as one complete frame.
 *
 * @throws {TypeError} for an id that is not a UUID or a token that is not 16 bytes
 * @throws {RangeError} for a WELCOME or ACK field that does not fit its u32
 */
export function encodeMessage(m: Message): Uint8Array {
  switch (m.type) {
    case "hello": {
      const b = new Uint8Array(37);
      const v = new DataView(b.buffer);
      v.setUint8(0, m.version);
      b.set(uuidToBytes(m.id), 1);
      v.setUint32(17, m.count);
      b.set(token16(m.token), 21);
      return encodeFrame(MessageType.HELLO, b);
    }
    case "resume": {
      const b = new Uint8Array(37);
      const v = new DataView(b.buffer);
      v.setUint8(0, m.version);
      b.set(uuidToBytes(m.id), 1);
      b.set(token16(m.token), 17);
      v.setUint32(33, m.nextOffset);
      return encodeFrame(MessageType.RESUME, b);
    }
    case "ack": {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setUint32(0, u32Field("nextOffset", m.nextOffset));
      return encodeFrame(MessageType.ACK, b);
    }
    case "welcome": {
      const b = new Uint8Array(40);
      const v = new DataView(b.buffer);
      v.setUint32(0, u32Field("count", m.count));
      v.setUint32(4, u32Field("nextOffset", m.nextOffset));
      b.set(token16(m.token), 8);
      v.setUint32(24, u32Field("intervalMs", m.intervalMs));
      v.setUint32(28, u32Field("ttlMs", m.ttlMs));
      v.setUint32(32, u32Field("window", m.window));
      v.setUint32(36, u32Field("ackIntervalMs", m.ackIntervalMs));
      return encodeFrame(MessageType.WELCOME, b);
    }
    case "number": {
      const out = new Uint8Array(NUMBER_FRAME_SIZE);
      encodeNumberInto(out, 0, m.offset, m.value);
      return out;
    }
    case "final": {
      const b = new Uint8Array(20);
      const v = new DataView(b.buffer);
      v.setUint32(0, m.offset);
      v.setUint32(4, m.value);
      v.setBigUint64(8, BigInt(m.sum));
      v.setUint32(16, m.crc32);
      return encodeFrame(MessageType.FINAL, b);
    }
    case "done":
      return encodeFrame(MessageType.DONE, new Uint8Array(0));
    case "goaway": {
      const t = truncateUtf8(m.message);
      const b = new Uint8Array(4 + t.length);
      new DataView(b.buffer).setUint32(0, m.retryAfterMs);
      b.set(t, 4);
      return encodeFrame(MessageType.GOAWAY, b);
    }
    case "error": {
      const t = truncateUtf8(m.message);
      const b = new Uint8Array(2 + t.length);
      new DataView(b.buffer).setUint16(0, m.code);
      b.set(t, 2);
      return encodeFrame(MessageType.ERROR, b);
    }
  }
}

/**
 * Writes a NUMBER frame into `buf` at `pos` with no allocation (the server's
 * hot path). Returns the position after the frame.
 */
export function encodeNumberInto(
  buf: Uint8Array,
  pos: number,
  offset: number,
  value: number,
): number {
  writeHeader(buf, pos, MessageType.NUMBER, 8);
  buf[pos + 3] = offset >>> 24;
  buf[pos + 4] = (offset >>> 16) & 0xff;
  buf[pos + 5] = (offset >>> 8) & 0xff;
  buf[pos + 6] = offset & 0xff;
  buf[pos + 7] = value >>> 24;
  buf[pos + 8] = (value >>> 16) & 0xff;
  buf[pos + 9] = (value >>> 8) & 0xff;
  buf[pos + 10] = value & 0xff;
  return pos + NUMBER_FRAME_SIZE;
}

/**
 * A u32 wire field, checked: a value that does not fit would wrap silently
 * (a 1200h TTL would arrive as about 7 minutes).
 */
function u32Field(name: string, n: number): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff) {
    throw new RangeError(
      `${name} must be a whole number in 0..2^32-1, got ${n}`,
    );
  }
  return n;
}

function token16(t: Uint8Array): Uint8Array {
  if (t.length !== 16) throw new TypeError("A token must be 16 bytes");
  return t;
}
