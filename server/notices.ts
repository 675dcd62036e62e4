/**
 * Takeover notices this server sends: when a resume here takes a session
 * over from another server, that server must learn it (from a fence its
 * heartbeat drains) or its connection streams on. A notice whose write
 * fails is kept, newest epoch per owner and session, and written again by
 * the heartbeat ({@link TakeoverNotices.retry}), so the old owner's
 * connection stops within a few beats of the store coming back, not when its
 * client times out (review of issue 17).
 *
 * @example
 * ```ts
 * const notices = new TakeoverNotices({ op: calls.op.bind(calls), closed: () => false, log });
 * await notices.send("b1", { id, epoch: 4 }); // never rejects
 * await notices.retry(); // from the heartbeat
 * ```
 *
 * @module
 */

import type { Logger } from "../common/logger.ts";
import type { Fence, SessionStore } from "../store/types.ts";

/** What {@link TakeoverNotices} needs from the session layer. */
export interface NoticesHost {
  /** Runs a store operation counted under `name`; rejects when the store fails. */
  op<T>(name: string, fn: (store: SessionStore) => Promise<T>): Promise<T>;
  /** Whether the session layer is closing (stop between writes). */
  closed(): boolean;
  /** For the warning about a notice that failed. */
  log: Logger;
}

/** Takeover notices: sent, and retried by the heartbeat when they failed. */
export class TakeoverNotices {
  readonly #host: NoticesHost;
  /** Notices whose write failed, by owner and session id. */
  readonly #unsent = new Map<string, { owner: string; fence: Fence }>();

  /** @param host the session layer's side */
  constructor(host: NoticesHost) {
    this.#host = host;
  }

  /** Notices waiting to be written again. */
  get unsent(): number {
    return this.#unsent.size;
  }

  /** Writes a notice to `owner`; one that fails is kept for {@link retry}. Never rejects. */
  async send(owner: string, fence: Fence): Promise<void> {
    try {
      await this.#host.op("fence", (s) => s.fence(owner, fence));
    } catch (err) {
      this.#host.log.warn("could not notify the previous owner; retrying", {
        id: fence.id,
        owner,
        error: String(err),
      });
      const key = `${owner}\n${fence.id}`;
      const cur = this.#unsent.get(key);
      if (cur === undefined || cur.fence.epoch < fence.epoch) {
        this.#unsent.set(key, { owner, fence });
      }
    }
  }

  /** Writes the notices that failed; stops at the first store failure. Never rejects. */
  async retry(): Promise<void> {
    for (const [key, { owner, fence }] of [...this.#unsent]) {
      if (this.#host.closed()) return;
      try {
        await this.#host.op("fence", (s) => s.fence(owner, fence));
      } catch {
        return;
      }
      if (this.#unsent.get(key)?.fence === fence) this.#unsent.delete(key);
    }
  }
}
