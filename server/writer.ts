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

/** Callbacks of a {@link Writer}. */
export interface WriterEvents {
  /** Called once, on the first failed write (the connection is dead). */
  onError(err: unknown): void;
  /** Called each time the last queued write has been taken by the sink. */
  onIdle?(): void;
}

/**
 * Serialises writes to a sink. `busy` (and `onIdle`) let the stream hold the
 * next number back instead of queueing it behind a write the kernel has not
 * taken, which is how a client that stops reading is paused rather than
 * buffered without bound.
 */
export class Writer {
  readonly #sink: ByteSink;
  readonly #events: WriterEvents;
  /**
   * The last queued write while one is in flight; dropped when the writer
   * goes idle, so that no settled write's promise is kept until the next
   * write (an interval later): kept, every number's promise outlived a
   * young-generation collection and was copied, then promoted.
   */
  #tail: Promise<unknown> | undefined;
  #pending = 0;
  #failed = false;

  /**
   * @param sink where bytes go
   * @param events error and idle callbacks
   */
  constructor(sink: ByteSink, events: WriterEvents) {
    this.#sink = sink;
    this.#events = events;
  }

  /** Whether a write is in flight or queued. */
  get busy(): boolean {
    return this.#pending > 0;
  }

  /**
   * Queues `bytes` after any earlier write. The buffer must not change until
   * the returned promise settles. Resolves `false` if the write failed.
   */
  write(bytes: Uint8Array): Promise<boolean> {
    // Nothing in flight (the usual case, one number per tick): write at
    // once instead of chaining behind the settled tail.
    const tail = this.#tail;
    const p = ++this.#pending === 1 || tail === undefined
      ? this.#run(bytes)
      : tail.then(() => this.#run(bytes));
    if (this.#pending > 0) this.#tail = p;
    return p;
  }

  /** Writes `bytes` fully; never rejects. */
  async #run(bytes: Uint8Array): Promise<boolean> {
    if (this.#failed) {
      this.#pending--;
      return false;
    }
    try {
      let off = await this.#sink.write(bytes);
      while (off < bytes.length) {
        off += await this.#sink.write(bytes.subarray(off));
      }
      return true;
    } catch (err) {
      if (!this.#failed) {
        this.#failed = true;
        this.#events.onError(err);
      }
      return false;
    } finally {
      if (--this.#pending === 0) {
        this.#tail = undefined;
        if (!this.#failed) this.#events.onIdle?.();
      }
    }
  }
}
