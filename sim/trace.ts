/**
 * The trace of a simulated run: one line per event that matters, kept per
 * session (so the trace of the session that broke an invariant can be
 * written alone), and one hash over every line in order, so that two runs
 * of one seed can be compared.
 *
 * @module
 */

/** Lines of a run, by session, and their running hash. */
export class Trace {
  readonly #bySession = new Map<string, string[]>();
  readonly #global: string[] = [];
  #h1 = 0x811c9dc5;
  #h2 = 0x01000193;
  /** Lines recorded. */
  lines = 0;

  /** @param now simulated time, stamped on each line */
  constructor(readonly now: () => number) {}

  /** Records a line for `session` (or for the run as a whole). */
  add(session: string | undefined, text: string): void {
    const line = `${this.now().toFixed(3)} ${text}`;
    this.lines++;
    let h1 = this.#h1, h2 = this.#h2;
    for (let i = 0; i < line.length; i++) {
      const c = line.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 0x01000193);
      h2 = Math.imul(h2 ^ c, 0x5bd1e995) ^ (h2 >>> 15);
    }
    this.#h1 = h1;
    this.#h2 = h2;
    if (session === undefined) {
      this.#global.push(line);
      return;
    }
    let l = this.#bySession.get(session);
    if (l === undefined) this.#bySession.set(session, l = []);
    l.push(line);
  }

  /** The lines of one session. */
  of(session: string): readonly string[] {
    return this.#bySession.get(session) ?? [];
  }

  /** The lines about the run as a whole (settings, servers, store faults). */
  get global(): readonly string[] {
    return this.#global;
  }

  /** The hash of every line so far, as 16 hex digits. */
  hash(): string {
    return (this.#h1 >>> 0).toString(16).padStart(8, "0") +
      (this.#h2 >>> 0).toString(16).padStart(8, "0");
  }
}
