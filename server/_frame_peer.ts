/**
 * Test helper: the client end of a {@link Transport} speaking raw frames
 * (`protocol/messages.ts`), with no timers of its own. A pump reads what the
 * server sends into {@link FramePeer.messages}; a test moves its fake clock
 * and then looks at what arrived.
 *
 * @module
 */

import { FrameDecoder, MAX_FRAME_VALUE } from "../protocol/frame.ts";
import {
  decodeMessage,
  encodeMessage,
  type Message,
} from "../protocol/messages.ts";
import type { Transport } from "./transport.ts";

/** A raw-frame client over a transport. */
export class FramePeer {
  /** Every message received, in order. */
  readonly messages: Message[] = [];
  /** How the link ended: `eof`, the read error's name, or `undefined` while open. */
  end: string | undefined;
  readonly #t: Transport;
  readonly #pump: Promise<void>;

  /** @param t the client end; the pump starts at once */
  constructor(t: Transport) {
    this.#t = t;
    this.#pump = this.#run();
  }

  /** Messages of type `type` received so far. */
  of<T extends Message["type"]>(type: T): Extract<Message, { type: T }>[] {
    return this.messages.filter((m) => m.type === type) as Extract<
      Message,
      { type: T }
    >[];
  }

  /** Writes `msg` whole. */
  async send(msg: Message): Promise<void> {
    const bytes = encodeMessage(msg);
    let off = 0;
    while (off < bytes.length) off += await this.#t.write(bytes.subarray(off));
  }

  /** Closes the client end and waits for the pump. */
  async close(): Promise<void> {
    this.#t.close();
    await this.#pump;
  }

  async #run(): Promise<void> {
    const decoder = new FrameDecoder(MAX_FRAME_VALUE);
    const buf = new Uint8Array(4096);
    try {
      for (;;) {
        const n = await this.#t.read(buf);
        if (n === null) {
          this.end = "eof";
          return;
        }
        for (const f of decoder.push(buf.subarray(0, n))) {
          this.messages.push(decodeMessage(f));
        }
      }
    } catch (err) {
      this.end = err instanceof Error ? err.name : String(err);
    }
  }
}
