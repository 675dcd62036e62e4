/**
 * The client's `--state FILE`: a {@link ClientState} kept on disk so a killed
 * client can be started again and resume its session where it stopped.
 *
 * Writes are atomic and durable (a temporary file in the same directory,
 * synced, renamed over the old one, then the directory synced so the rename
 * itself survives a crash) and coalesced: while one write is in flight only
 * the newest state waits, so a fast stream costs at most one write at a time.
 * The file holds the resume token, so it is created with mode 0600.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import { MAX_COUNT } from "../protocol/messages.ts";
import { isUuid } from "../protocol/uuid.ts";
import type { ClientState } from "./types.ts";

/** The `format` field of a state file this version reads and writes. */
export const STATE_FORMAT = "seqstream-client-state/1";

/** Why a state file cannot be used. */
export type StateFileProblem = "corrupt" | "stale" | "unreadable";

/**
 * A state file that cannot be used; the message names the file and says what
 * to do. The client CLI prints it after its `seqstream-client: ` prefix (hence
 * the lowercase start) and exits 2.
 */
export class StateFileError extends Error {
  /**
   * @param path the file
   * @param problem what is wrong with it
   * @param message one line for the user
   * @param options the underlying error, if any
   */
  constructor(
    readonly path: string,
    readonly problem: StateFileProblem,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "StateFileError";
  }
}

const isInt = (v: unknown, min: number, max: number): v is number =>
  typeof v === "number" && Number.isSafeInteger(v) && v >= min && v <= max;

/**
 * Checks that `value` is a complete, consistent {@link ClientState} and
 * returns it without extra fields.
 *
 * @throws {TypeError} naming the first field that is missing or out of range
 */
export function validateClientState(value: unknown): ClientState {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError("not a JSON object");
  }
  const v = value as Record<string, unknown>;
  if (v.format !== STATE_FORMAT) {
    throw new TypeError(
      `format is ${JSON.stringify(v.format)}, expected "${STATE_FORMAT}"`,
    );
  }
  if (typeof v.id !== "string" || !isUuid(v.id)) {
    throw new TypeError("id is not a UUID");
  }
  if (!isInt(v.count, 1, MAX_COUNT)) {
    throw new TypeError(`count is not a whole number from 1 to ${MAX_COUNT}`);
  }
  if (typeof v.token !== "string" || !/^[0-9a-f]{32}$/.test(v.token)) {
    throw new TypeError("token is not 32 lowercase hex digits");
  }
  if (!isInt(v.nextOffset, 0, v.count)) {
    throw new TypeError(`nextOffset is not a whole number from 0 to count`);
  }
  if (!isInt(v.sum, 0, v.nextOffset * 0xffffffff)) {
    throw new TypeError(
      "sum is not a whole number within what nextOffset numbers can add up to",
    );
  }
  if (!isInt(v.crc, 0, 0xffffffff)) {
    throw new TypeError("crc is not a 32-bit unsigned number");
  }
  if (!isInt(v.ttlMs, 1, Number.MAX_SAFE_INTEGER)) {
    throw new TypeError("ttlMs is not a positive whole number");
  }
  if (!isInt(v.intervalMs, 0, Number.MAX_SAFE_INTEGER)) {
    throw new TypeError("intervalMs is not a whole number");
  }
  if (!isInt(v.lastContact, 1, Number.MAX_SAFE_INTEGER)) {
    throw new TypeError("lastContact is not a time in ms since the epoch");
  }
  const server = v.server as Record<string, unknown> | undefined;
  if (
    server !== undefined &&
    (typeof server !== "object" || server === null ||
      !isInt(server.sum, 0, v.count * 0xffffffff) ||
      !isInt(server.crc, 0, 0xffffffff) || v.nextOffset !== v.count)
  ) {
    throw new TypeError(
      "server checksums are malformed or present before the final number",
    );
  }
  return {
    ...(server !== undefined
      ? { server: { sum: server.sum as number, crc: server.crc as number } }
      : {}),
    id: v.id,
    count: v.count,
    token: v.token,
    nextOffset: v.nextOffset,
    sum: v.sum,
    crc: v.crc,
    ttlMs: v.ttlMs,
    intervalMs: v.intervalMs,
    lastContact: v.lastContact,
  };
}

function ago(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 120
    ? `${s}s`
    : s < 7200
    ? `${Math.round(s / 60)}m`
    : `${Math.round(s / 3600)}h`;
}

/**
 * Reads and validates a state file.
 *
 * @param path the file
 * @param now the time to judge staleness by (ms since the epoch)
 * @returns the state, or `null` when the file does not exist
 * @throws {StateFileError} `corrupt` (not JSON, or fields missing or out of
 *   range), `stale` (no contact for longer than the session TTL: the server
 *   has expired the session) or `unreadable` (permissions, a directory, …)
 */
export async function loadState(
  path: string,
  now: number = Date.now(),
): Promise<ClientState | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw new StateFileError(
      path,
      "unreadable",
      `cannot read state file ${path}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  let state: ClientState;
  try {
    state = validateClientState(JSON.parse(text));
  } catch (err) {
    const why = err instanceof SyntaxError
      ? "it is not JSON"
      : (err as Error).message;
    throw new StateFileError(
      path,
      "corrupt",
      `state file ${path} is corrupt (${why}); delete it to start a new session`,
      { cause: err },
    );
  }
  const silent = now - state.lastContact;
  if (silent > state.ttlMs) {
    throw new StateFileError(
      path,
      "stale",
      `state file is stale: the session expired about ${
        ago(silent - state.ttlMs)
      } ago ` +
        `(last contact ${
          new Date(state.lastContact).toISOString()
        }, session TTL ${ago(state.ttlMs)}); ` +
        `delete ${path} to start a new session`,
    );
  }
  return state;
}

/**
 * Keeps one state file up to date.
 *
 * @example
 * ```ts
 * const file = new StateFile("run.state");
 * const r = await runClient({ port, onCheckpoint: (s) => file.save(s) });
 * await file.flush();
 * if (r.result !== "ERROR") await file.remove();
 * ```
 */
export class StateFile {
  /** The file. */
  readonly path: string;
  readonly #tmp: string;
  #pending: ClientState | null = null;
  #writing: Promise<void> | null = null;
  #error: Error | null = null;
  #removed = false;
  #writes = 0;

  /** @param path the state file; its directory must exist */
  constructor(path: string) {
    this.path = path;
    this.#tmp = join(dirname(path), `.${basename(path)}.${Deno.pid}.tmp`);
  }

  /** Completed writes so far. */
  get writes(): number {
    return this.#writes;
  }

  /** The last write error, if the last write failed. */
  get error(): Error | null {
    return this.#error;
  }

  /** Queues `state` to be written; returns at once. Only the newest queued state is written. */
  save(state: ClientState): void {
    if (this.#removed) return;
    this.#pending = state;
    this.#writing ??= this.#drain();
  }

  /**
   * Saves `state` and resolves once it is on disk, rename included: the
   * client awaits this for the final state, before the ACK that completes the
   * session.
   *
   * @throws the write error, when writing this state (or a newer one) failed
   */
  async saveDurable(state: ClientState): Promise<void> {
    this.save(state);
    await this.flush();
    if (this.#error) throw this.#error;
  }

  /** Resolves when everything saved so far is on disk (or has failed: see {@link error}). */
  async flush(): Promise<void> {
    while (this.#writing) await this.#writing;
  }

  /** Waits for pending writes, then deletes the file. A missing file is fine. */
  async remove(): Promise<void> {
    this.#removed = true;
    this.#pending = null;
    await this.flush();
    for (const p of [this.path, this.#tmp]) {
      try {
        await Deno.remove(p);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
    }
  }

  async #drain(): Promise<void> {
    try {
      while (this.#pending !== null) {
        const state = this.#pending;
        this.#pending = null;
        try {
          await this.#write(state);
          this.#error = null;
          this.#writes++;
        } catch (err) {
          this.#error = err as Error;
        }
      }
    } finally {
      this.#writing = null;
    }
  }

  async #write(state: ClientState): Promise<void> {
    const data = new TextEncoder().encode(
      JSON.stringify({ format: STATE_FORMAT, ...state }) + "\n",
    );
    // createNew: never write through something already at the temporary path
    // (a symlink planted in a shared directory); a leftover is removed first.
    const open = () =>
      Deno.open(this.#tmp, { write: true, createNew: true, mode: 0o600 });
    let file: Deno.FsFile;
    try {
      file = await open();
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
      await Deno.remove(this.#tmp);
      file = await open();
    }
    try {
      let off = 0;
      while (off < data.length) off += await file.write(data.subarray(off));
      await file.syncData();
    } finally {
      file.close();
    }
    await Deno.rename(this.#tmp, this.path);
    await syncDir(dirname(this.path));
  }
}

/** fsyncs a directory, so a rename inside it is durable. */
async function syncDir(dir: string): Promise<void> {
  let d: Deno.FsFile;
  try {
    d = await Deno.open(dir, { read: true });
  } catch (err) {
    // A platform that cannot open directories (Windows) has no directory fsync.
    if (Deno.build.os === "windows") return;
    throw err;
  }
  try {
    await d.sync();
  } finally {
    d.close();
  }
}
