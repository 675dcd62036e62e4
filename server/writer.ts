/**
 * Ordered, non-overlapping writes to one connection. The transport knows bytes,
 * not messages: callers hand it finished frames.
 *
 * @module
 */

/** Something bytes can be written to (a `Deno.Conn`, TLS or not). */
export interface ByteSink {
  write(p: Uint8Array): Promise<number>;
}

/**
 * Serialises writes to a sink. `busy` tells the scheduler to hold the next
 * number back instead of queueing it, which is how a client that stops
 * reading is paused rather than buffered without bound.
 */
export class Writer {
  readonly #sink: ByteSink;
  readonly #onError: (err: unknown) => void;
  #tail: Promise<void> = Promise.resolve();
  #pending = 0;
  #failed = false;

  /**
   * @param sink where bytes go
   * @param onError called once on the first failed write (the connection is dead)
   */
  constructor(sink: ByteSink, onError: (err: unknown) => void) {
    this.#sink = sink;
    this.#onError = onError;
  }

  /** Whether a write is in flight or queued. */
  get busy(): boolean {
    return this.#pending > 0;
  }

  /** Whether a write has failed. */
  get failed(): boolean {
    return this.#failed;
  }

  /**
   * Queues `bytes` after any earlier write. The buffer must not change until
   * the returned promise settles. Resolves `false` if the write failed.
   */
  write(bytes: Uint8Array): Promise<boolean> {
    this.#pending++;
    const p = this.#tail.then(async () => {
      if (this.#failed) return false;
      try {
        let off = 0;
        while (off < bytes.length) {
          off += await this.#sink.write(bytes.subarray(off));
        }
        return true;
      } catch (err) {
        if (!this.#failed) {
          this.#failed = true;
          this.#onError(err);
        }
        return false;
      } finally {
        this.#pending--;
      }
    });
    this.#tail = p.then(() => {});
    return p;
  }

  /** Resolves when every queued write has settled. */
  flushed(): Promise<void> {
    return this.#tail;
  }
}
