/**
 * The lease keeper: this server's liveness lease in the store, its
 * heartbeat, takeover notices (fences), garbage collection after dead
 * servers, detection of data lost by the store, and this server's estimate
 * of the store's clock.
 *
 * One heartbeat, every `leaseMs / 3`:
 *
 * 1. `lease_check`: reads its own lease and the store's time. A lease that
 *    is missing or older than the last one written means the store lost
 *    data: the host writes its sessions back (resync), and for one lease
 *    missing sessions are answered "unavailable" rather than "unknown".
 * 2. `fence_drain`: takes the takeover notices, before steps 3 and 4,
 *    whatever they do (a failed step 1 ends the beat; a failed drain does
 *    not, and its notices wait in the store for the next beat unless the
 *    store applied it and only its answer was lost).
 * 3. the host's pending writes are flushed **before** the renewal, and the
 *    lease is not renewed while any is left: a lapsed lease then means
 *    "this server may have writes the store has not seen", and other
 *    servers judge its sessions by its last renewal (see `sessions.ts`).
 * 4. `lease_renew`: renews the lease for `leaseMs` in store time.
 * 5. `collect` (only after a renewal): deletes one bounded batch of records
 *    still attached to a server whose lease ended more than
 *    `collectGraceMs` ago. A server whose own renewal comes more than that
 *    after its lease ended (it was cut off, not dead) takes it as a loss:
 *    some of its records may have been collected meanwhile.
 *
 * Store time: every lease read and renewal returns the store's time, and the
 * keeper keeps `offset = store time − local monotonic time` (at the middle
 * of the round trip), so {@link LeaseKeeper.now} is the store's clock as
 * seen from here, whatever this host's wall clock says or does: a wall
 * clock stepped between two reads (NTP) does not move it (found by the
 * simulator, seed 591850739: a step of 1.9 s expired a session that
 * early). Before the first read it is this host's wall clock.
 *
 * @module
 */

import type { Clock, TimerId } from "../common/clock.ts";
import type { Logger } from "../common/logger.ts";
import type { Fence, Lease, LeaseRead, SessionStore } from "../store/types.ts";

/** What the lease keeper needs from the session manager. */
export interface LeaseHost {
  /** Runs a store operation counted under `name`; rejects when the store fails. */
  op<T>(name: string, fn: (store: SessionStore) => Promise<T>): Promise<T>;
  /** Writes back what is pending; resolves whether nothing is left. */
  flush(): Promise<boolean>;
  /** The store lost data: write every session back (off the heartbeat). */
  lostData(): void;
  /** A takeover notice. */
  fenced(fence: Fence): void;
}

/** Settings for {@link LeaseKeeper}. */
export interface LeaseOptions {
  /** This server's id. */
  serverId: string;
  /** Lease length (ms); renewed every third of it. */
  leaseMs: number;
  /** How long after a server's lease ended its attached records are collected (ms). */
  collectGraceMs: number;
  /** Most records one heartbeat collects. Default 100. */
  collectLimit?: number;
  /** Timers and local time. */
  clock: Clock;
  /** For data-loss warnings. */
  log: Logger;
}

/** The heartbeat, the lease, and the store clock as seen from this server. */
export class LeaseKeeper {
  readonly #host: LeaseHost;
  readonly #o: Required<LeaseOptions>;
  /** Store time − local monotonic time; `undefined` before the first read. */
  #offset: number | undefined;
  /** The lease deadline last confirmed written (store time); 0 before the first. */
  #written = 0;
  #recoveringUntil = 0;
  #timer: TimerId | undefined;
  #beating: Promise<void> | undefined;
  #closed = false;

  /** @param host the session manager's side; @param opts lease settings */
  constructor(host: LeaseHost, opts: LeaseOptions) {
    this.#host = host;
    this.#o = { collectLimit: 100, ...opts };
  }

  /** The store's time now, as estimated here (ms since the epoch). */
  now(): number {
    const clock = this.#o.clock;
    return this.#offset === undefined
      ? clock.now()
      : clock.monotonic() + this.#offset;
  }

  /** Whether a lease has been written, so other servers can see this one. */
  get registered(): boolean {
    return this.#written > 0;
  }

  /**
   * Whether the lease last written runs for at least another third of a
   * lease, in store time as seen from here: long enough for a handshake's
   * write to land while other servers still count this one alive. A
   * healthy heartbeat renews every third of a lease, so this is false only
   * before the first renewal and once renewals have failed (store outage,
   * writes pending) for a third of a lease or more (simulator seed
   * 416395431: a handshake checked 140 ms before its lease ended, and its
   * attach landed 236 ms after).
   */
  get live(): boolean {
    return this.#written - this.now() >= this.#o.leaseMs / 3;
  }

  /** The last lease deadline written (store time), 0 before the first. */
  get until(): number {
    return this.#written;
  }

  /** Runs one heartbeat, then one every `leaseMs / 3`. */
  async start(): Promise<void> {
    await this.beat();
    this.#schedule();
  }

  /** Stops the heartbeat and waits for the one in flight. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#o.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#beating;
  }

  /** One heartbeat, or the one in flight. Never rejects. */
  beat(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#beating ??= this.#heartbeat()
      .catch(() => {})
      .finally(() => this.#beating = undefined);
    return this.#beating;
  }

  /**
   * The lease of `owner` and the store's time, read under `op` (a per-session
   * `lease_get` when judging another server's session); updates the clock
   * estimate.
   */
  async leaseOf(owner: string, op: string): Promise<LeaseRead> {
    const t0 = this.#o.clock.monotonic();
    const read = await this.#host.op(op, (s) => s.leaseOf(owner));
    if (read.now !== null) this.#sync(read.now, t0);
    return read;
  }

  /**
   * Whether a missing record may be one the store lost: this server's own
   * lease is missing or older than the last one written. Opens a recovery
   * window of one lease, in which every live server's heartbeat writes its
   * sessions back.
   */
  async storeLostData(): Promise<boolean> {
    if (this.now() < this.#recoveringUntil) return true;
    // What the store must hold at least, as of this read: a renewal that
    // completes while the read is on its way raises #written past what the
    // read can see, and is no loss (review of issue 17).
    const written = this.#written;
    if (written === 0) return false;
    const { lease } = await this.leaseOf(this.#o.serverId, "lease_get");
    if (lease !== null && lease.until >= written) return false;
    this.#recoveringUntil = this.now() + this.#o.leaseMs;
    void this.beat();
    return true;
  }

  /**
   * The store lost data: this server's lease went back or vanished, or (as
   * the host sees it) a record of a session this server holds is gone, a
   * loss the lease did not witness. Opens the recovery window and has the
   * host write its sessions back; warns once per window.
   */
  dataLost(what: string): void {
    const already = this.now() < this.#recoveringUntil;
    this.#recoveringUntil = Math.max(
      this.#recoveringUntil,
      this.now() + this.#o.leaseMs,
    );
    if (!already) {
      this.#o.log.warn(
        "the session store lost data; writing this server's sessions back",
        { server: this.#o.serverId, seen: what },
      );
    }
    this.#host.lostData();
  }

  #schedule(): void {
    if (this.#closed) return;
    const every = Math.max(20, Math.floor(this.#o.leaseMs / 3));
    this.#timer = this.#o.clock.setTimeout(() => {
      this.#timer = undefined;
      void this.beat().finally(() => this.#schedule());
    }, every);
  }

  /** `sentAt`: the local monotonic time the read was sent. */
  #sync(storeNow: number, sentAt: number): void {
    const local = (sentAt + this.#o.clock.monotonic()) / 2;
    this.#offset = storeNow - local;
  }

  async #heartbeat(): Promise<void> {
    const self = this.#o.serverId;
    // The store did not answer the first call: nothing else this beat (one
    // timeout per beat during an outage, not one per step).
    const { lease } = await this.leaseOf(self, "lease_check");
    // Takeover notices next, before the flush and whatever becomes of it:
    // a write this server could not make because the session was taken
    // over is dropped by its notice instead of being retried, and a server
    // whose writes are pending, or whose renewal fails, still closes the
    // connections that lost their session elsewhere (or they would stream
    // on, and their clients wait, until the store heals).
    // A drain that fails does not keep this beat from renewing the lease;
    // one the store never applied leaves its notices for the next beat, but
    // one applied whose answer was lost took them with it (their connections
    // then stop by their client timeout; PROTOCOL.md §11, seed 859265192).
    const fences = await this.#host.op(
      "fence_drain",
      (s) => s.drainFences(self),
    ).catch((): Fence[] => []);
    for (const f of fences) this.#host.fenced(f);
    if (!(await this.#renew(lease).catch(() => false))) return;
    await this.#host.op(
      "collect",
      (s) => s.collect(this.#o.collectGraceMs, this.#o.collectLimit),
    );
  }

  /**
   * Given this server's lease as just read: detects a store that lost data,
   * flushes, renews. Resolves whether the lease was renewed (not while
   * writes are pending); rejects when a store call fails.
   */
  async #renew(lease: Lease | null): Promise<boolean> {
    const self = this.#o.serverId;
    if (this.#written > 0 && (lease === null || lease.until < this.#written)) {
      this.dataLost("this server's lease");
    }
    if (!(await this.#host.flush())) return false; // let the lease lapse
    const t0 = this.#o.clock.monotonic();
    const renewed = await this.#host.op(
      "lease_renew",
      (s) => s.renewLease(self, this.#o.leaseMs, this.now()),
    );
    this.#sync(renewed.renewedAt, t0);
    this.#written = renewed.until;
    // Away for longer than the collect grace (cut off, not dead): other
    // servers may have collected records still attached here, bucket by
    // bucket, and a collect spans many heartbeats, so its lease can still be
    // there, unforgotten, with some of its records already gone. Nothing
    // else would show it until a write of one of those sessions found none.
    if (
      lease !== null && renewed.renewedAt > lease.until + this.#o.collectGraceMs
    ) {
      this.dataLost("this server's records, collectable while it was away");
    }
    return true;
  }
}
