/**
 * Micro-benchmarks of the per-number paths: `deno task bench`.
 *
 * Server side per number: `valueAt` + `encodeNumberInto` (+ a write).
 * Client side per number: `FrameDecoder.push` + `decodeMessage` + `Checksum.update`.
 * Per session: `sequenceChecksum` over 65,535 numbers (the FINAL message).
 *
 * @module
 */

import { Checksum, sequenceChecksum } from "../protocol/checksum.ts";
import { FrameDecoder } from "../protocol/frame.ts";
import {
  decodeMessage,
  encodeMessage,
  encodeNumberInto,
  NUMBER_FRAME_SIZE,
} from "../protocol/messages.ts";
import { valueAt } from "../protocol/prng.ts";

const seed = { hi: 0x12345678, lo: 0x9abcdef0 };
const frame = new Uint8Array(NUMBER_FRAME_SIZE);
const BURST = 4096;
const burst = new Uint8Array(BURST * NUMBER_FRAME_SIZE);
for (let i = 0, pos = 0; i < BURST; i++) {
  pos = encodeNumberInto(burst, pos, i, valueAt(seed, i));
}
const one = encodeMessage({ type: "number", offset: 7, value: 0xdeadbeef });
let sink = 0;

Deno.bench("valueAt (Philox4x32-10, one number)", {
  group: "server per number",
  baseline: true,
}, () => {
  sink ^= valueAt(seed, sink & 0xffff);
});

Deno.bench(
  "encodeNumberInto (no allocation)",
  { group: "server per number" },
  () => {
    encodeNumberInto(frame, 0, 7, 0xdeadbeef);
  },
);

Deno.bench(
  "encodeMessage number (allocates)",
  { group: "server per number" },
  () => {
    encodeMessage({ type: "number", offset: 7, value: 0xdeadbeef });
  },
);

const decoder = new FrameDecoder();
const checksum = new Checksum();

Deno.bench("FrameDecoder.push + decodeMessage, one frame per chunk", {
  group: "client per number",
  baseline: true,
}, () => {
  for (const f of decoder.push(one)) {
    sink ^= (decodeMessage(f) as { value: number }).value;
  }
});

Deno.bench("FrameDecoder.push only, one frame per chunk", {
  group: "client per number",
}, () => {
  for (const f of decoder.push(one)) sink ^= f.type;
});

Deno.bench("Checksum.update (node:zlib crc32 of 4 bytes)", {
  group: "client per number",
}, () => {
  checksum.update(sink++ >>> 0);
});

Deno.bench("new FrameDecoder() (per connection: 1 KiB buffer)", {
  group: "client per connection",
}, () => {
  sink ^= new FrameDecoder().buffered;
});

Deno.bench(
  "new Uint8Array(4 KiB) (the client's read buffer, per connection)",
  { group: "client per connection" },
  () => {
    sink ^= new Uint8Array(4 * 1024).length;
  },
);

Deno.bench("FrameDecoder.push + decodeMessage, 4096 frames in one chunk", {
  group: "burst",
}, () => {
  const d = new FrameDecoder();
  for (const f of d.push(burst)) {
    sink ^= (decodeMessage(f) as { value: number }).value;
  }
});

Deno.bench("FrameDecoder.push + decodeMessage, 4096 frames in 7-byte chunks", {
  group: "burst",
}, () => {
  const d = new FrameDecoder();
  for (let i = 0; i < burst.length; i += 7) {
    for (const f of d.push(burst.subarray(i, i + 7))) {
      sink ^= (decodeMessage(f) as { value: number }).value;
    }
  }
});

Deno.bench("encode 4096 numbers (valueAt + encodeNumberInto)", {
  group: "burst",
}, () => {
  for (let i = 0, pos = 0; i < BURST; i++) {
    pos = encodeNumberInto(burst, pos, i, valueAt(seed, i));
  }
});

Deno.bench("sequenceChecksum, 65,535 numbers", { group: "per session" }, () => {
  sink ^= sequenceChecksum(seed, 65535).crc;
});

Deno.bench("Checksum.update, 65,535 numbers (what the client does)", {
  group: "per session",
}, () => {
  const c = new Checksum();
  for (let i = 0; i < 65535; i++) c.update(i);
});
