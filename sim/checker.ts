/**
 * The simulator's invariants, each a named check fed by taps on the wire,
 * the clients and the store (PROTOCOL.md "Invariants" states them and their
 * bounds):
 *
 * 1. `numbers`: every number a client accepts is the sequence's value at
 *    that offset, the offset is the next one its run lacks and below the
 *    session's count, and no run ends in FAIL. A value a byzantine server
 *    changed (`sim/byzantine.ts`) cannot be told from a true one: accepting
 *    it is allowed, and that run must then end in FAIL, never PASS.
 * 2. `one-streamer`: once a newer connection of a session sends numbers, an
 *    older one sends none later than the fencing bound.
 * 3. `ttl`: no session is resumed or completed after its TTL ran out: in
 *    store time by the records, and by the wire (a WELCOME more than TTL
 *    after the session's last connection closed, with none open).
 * 4. `exactly-once`: one DONE per session at most; `ack-durable` (in
 *    `sim.ts`, from the client's writes): ACK(count) only once the final
 *    state is saved.
 * 5. `liveness`: once faults stop, every client ends within the stated
 *    bound, and does not reconnect without end.
 * 6. `zero-state`: at quiescence no connection, held session, per-session
 *    timer or attached record remains, and no record outlives its retention.
 * 7. `refusals`: a run ends in ERROR only with a code the situation allows;
 *    a damaged record may turn into a refusal, never into wrong numbers; a
 *    frame a byzantine server sent out of order or beyond count, into a
 *    `protocol_violation`.
 *
 * @module
 */

import type { SessionRecord } from "../store/types.ts";

/** A lease as the store holds it (store time). */
export interface LeaseValue {
  readonly renewedAt: number;
  readonly until: number;
}

/** A broken invariant. */
export interface Violation {
  readonly invariant: string;
  /** The session it concerns, if one. */
  readonly session: string | undefined;
  /** Simulated ms. */
  readonly time: number;
  readonly detail: string;
}

/** One server-side connection as the checker follows it. */
export interface ConnWatch {
  readonly id: number;
  readonly session: string;
  /** When a newer connection of the session first sent a number. */
  supersededAt: number | undefined;
  open: boolean;
  /** Whether it sent a WELCOME. */
  attached: boolean;
  /** Whether the client asked to RESUME on it (not HELLO). */
  resume: boolean;
  /** Already reported as a second streamer. */
  flagged?: boolean;
}

/** The bounds the checks use (ms). */
export interface CheckBounds {
  ttlMs: number;
  /** How long an older connection may go on sending after a newer one started. */
  fenceMs: number;
  /**
   * How long it may go on sending after a store outage that began within
   * its bound ended (the old server drains notices only at a heartbeat that
   * reaches the store). Default `fenceMs`.
   */
  fenceAfterOutageMs?: number;
  /** Clock skew and store latency allowed on time judgements. */
  slackMs: number;
  /** Store latency and the servers' store-clock estimate allowed on deadlines judged in store time. */
  storeSlackMs: number;
}

interface SessionWatch {
  /** Server-side connections of the session that are open. */
  open: number;
  /** When the last one closed. */
  lastEnd: number | undefined;
  /** The connection that sent the latest number. */
  streamer: ConnWatch | undefined;
  dones: number;
  /** Welcomed connections open. */
  attached: number;
  /** When the last welcomed connection closed. */
  lastAttachedEnd: number | undefined;
  /** The longest time with no welcomed connection, between two. */
  longestGap: number;
}

/** What a session's client accepted, and what a byzantine server told it. */
interface Acceptance {
  /** The offset its run lacks first. */
  next: number;
  /** Offsets whose NUMBER a byzantine server sent with a changed value. */
  readonly changed: Set<number>;
  /** Offsets where the client accepted a changed value (held in its state). */
  readonly tainted: Set<number>;
  /** A byzantine server sent it a frame out of order or beyond count. */
  misordered: boolean;
}

/** Collects violations from the taps. */
export class Checker {
  readonly violations: Violation[] = [];
  readonly #sessions = new Map<string, SessionWatch>();
  readonly #accepts = new Map<string, Acceptance>();
  /** Attaches written past the record's deadline, until the next WELCOME says whether a RESUME (late) or a HELLO (a new session) made them. */
  readonly #lateAttach = new Map<string, number>();
  #conns = 0;

  /**
   * Extra time an older connection may stream when a fault destroyed the
   * session's takeover record or its notice (a failover's lost tail): it
   * then stops by its own client timeout.
   */
  lostFence: ((session: string) => number) | undefined;

  /** Store outages (sim ms), in the order they began. */
  readonly #outages: { from: number; until: number }[] = [];

  /** Each server's lease as the store held it, from a store time on, in order. */
  readonly #leases = new Map<
    string,
    { at: number; lease: LeaseValue | null }[]
  >();

  /** @param now simulated time; @param bounds the bounds checked */
  constructor(readonly now: () => number, readonly bounds: CheckBounds) {}

  /**
   * The store holds `lease` for `owner` from `at` (store time) on: a
   * renewal applied, or a failover that brought back an older one.
   */
  leaseHeld(owner: string, lease: LeaseValue | null, at: number): void {
    let h = this.#leases.get(owner);
    if (h === undefined) this.#leases.set(owner, h = []);
    h.push({ at, lease });
  }

  /**
   * Whether the store holds no lease for `owner` because a failover took
   * it (not because `collect` forgot a dead owner, which first deletes the
   * owner's records).
   */
  leaseLost(owner: string): boolean {
    const h = this.#leases.get(owner) ?? [];
    return h.length > 1 && h.at(-1)!.lease === null &&
      h.slice(0, -1).some((e) => e.lease !== null);
  }

  /**
   * Whether a server that expired a session of `owner` because of its
   * lease, at store time `at`, may have been honest (PROTOCOL.md §7 TTL: a
   * server cut off from the store for a TTL is presumed dead): at some
   * store time between the attach and `at`, the lease the store held had
   * been renewed a TTL or more before (the judge reads the lease before it
   * writes; the owner may renew in between). And the session was attached
   * while the owner had a lease running (any renewal applied before the
   * attach still ran): one attached on a lapsed lease was never covered.
   *
   * @param attachedAt when (store time) the owner attached the epoch expired, if known
   */
  presumedDead(
    owner: string,
    attachedAt: number | undefined,
    at: number,
  ): boolean {
    const h = this.#leases.get(owner);
    if (h === undefined) return true; // it never had one in the store
    const ttl = this.bounds.ttlMs;
    const from = attachedAt ?? -Infinity;
    if (attachedAt !== undefined) {
      let best = -Infinity;
      for (const e of h) {
        if (e.at > attachedAt) break;
        best = Math.max(best, e.lease?.until ?? -Infinity);
      }
      if (best <= attachedAt) return false;
    }
    for (let i = 0; i < h.length; i++) {
      const { at: start, lease } = h[i]!;
      const end = Math.min(h[i + 1]?.at ?? Infinity, at);
      const t = Math.max(
        start,
        from,
        lease === null ? -Infinity : lease.renewedAt + ttl,
      );
      if (t <= end) return true;
    }
    return false;
  }

  /** The store answers no command from `from` to `until` (sim ms). */
  storeOutage(from: number, until: number): void {
    this.#outages.push({ from, until });
  }

  /**
   * Until when a connection superseded at `since` may still send: the
   * fencing bound, counted again from the end of every store outage that
   * began before it ran out and ended after `since` (outages that follow
   * each other extend it in turn), plus `lostFence`.
   */
  #fencedBy(session: string, since: number): number {
    const b = this.bounds;
    const after = b.fenceAfterOutageMs ?? b.fenceMs;
    let until = since + b.fenceMs;
    for (const o of this.#outages) {
      if (o.from >= until) break;
      if (o.until > since) until = Math.max(until, o.until + after);
    }
    return until + (this.lostFence?.(session) ?? 0);
  }

  /** Records a violation. */
  fail(invariant: string, session: string | undefined, detail: string): void {
    this.violations.push({ invariant, session, time: this.now(), detail });
  }

  #watch(id: string): SessionWatch {
    let w = this.#sessions.get(id);
    if (w === undefined) {
      w = {
        open: 0,
        lastEnd: undefined,
        streamer: undefined,
        dones: 0,
        attached: 0,
        lastAttachedEnd: undefined,
        longestGap: 0,
      };
      this.#sessions.set(id, w);
    }
    return w;
  }

  #acceptance(session: string): Acceptance {
    let a = this.#accepts.get(session);
    if (a === undefined) {
      a = {
        next: 0,
        changed: new Set(),
        tainted: new Set(),
        misordered: false,
      };
      this.#accepts.set(session, a);
    }
    return a;
  }

  /**
   * A byzantine server sent `session`'s client a corrupted frame
   * (`sim/byzantine.ts`): a changed value at `offset` (`value`), or a
   * NUMBER at `offset` that is out of order or beyond count (any other
   * kind), which the client must refuse.
   */
  corrupted(session: string, kind: string, offset: number): void {
    const a = this.#acceptance(session);
    if (kind === "value") a.changed.add(offset);
    else a.misordered = true;
  }

  /** A run of `session`'s client starts (or restarts from its saved state) lacking `from` first. */
  runStarts(session: string, from: number): void {
    const a = this.#acceptance(session);
    a.next = from;
    // What it accepts again is judged again.
    for (const t of a.tainted) if (t >= from) a.tainted.delete(t);
  }

  /**
   * `session`'s client accepted `value` at `offset`; `want` is the
   * sequence's value there, `count` the session's.
   */
  accepted(
    session: string,
    offset: number,
    value: number,
    want: number,
    count: number,
  ): void {
    const a = this.#acceptance(session);
    if (offset >= count) {
      this.fail(
        "numbers",
        session,
        `accepted a number at offset ${offset}, beyond the session's count ${count}`,
      );
    } else if (offset !== a.next) {
      this.fail(
        "numbers",
        session,
        `accepted offset ${offset} where offset ${a.next} was due`,
      );
    }
    if (value !== want) {
      if (a.changed.has(offset)) a.tainted.add(offset);
      else {
        this.fail(
          "numbers",
          session,
          `offset ${offset}: got ${value}, want ${want}`,
        );
      }
    }
    a.next = offset + 1;
  }

  /**
   * The first offset at which `session`'s client holds a value a byzantine
   * server changed, if any: its run cannot PASS.
   */
  taintedAt(session: string): number | undefined {
    const t = this.#accepts.get(session)?.tainted;
    return t === undefined || t.size === 0 ? undefined : Math.min(...t);
  }

  /** Whether a byzantine server sent `session`'s client a frame out of order or beyond count. */
  misordered(session: string): boolean {
    return this.#accepts.get(session)?.misordered ?? false;
  }

  /** A connection of `session` reached a server. */
  opened(session: string): ConnWatch {
    this.#watch(session).open++;
    return {
      id: ++this.#conns,
      session,
      supersededAt: undefined,
      open: true,
      attached: false,
      resume: false,
    };
  }

  /** The server's end of `c` closed (or its process died). */
  closed(c: ConnWatch): void {
    if (!c.open) return;
    c.open = false;
    const w = this.#watch(c.session);
    // The latest close of any of its connections: a welcome with no other
    // open judges its gap from there.
    w.open--;
    w.lastEnd = this.now();
    if (c.attached && --w.attached === 0) w.lastAttachedEnd = this.now();
  }

  /**
   * The longest time `session` had no welcomed connection, up to now: what
   * an honest `session_expired` needs to have exceeded.
   */
  unattachedFor(session: string): number {
    const w = this.#watch(session);
    const now = w.attached === 0 && w.lastAttachedEnd !== undefined
      ? this.now() - w.lastAttachedEnd
      : 0;
    return Math.max(w.longestGap, now);
  }

  /** The server wrote a NUMBER (or FINAL) on `c`. */
  numberSent(c: ConnWatch): void {
    const w = this.#watch(c.session);
    const cur = w.streamer;
    if (c.supersededAt !== undefined) {
      // Superseded: every number it still sends is judged, whether or not
      // the newer connection sent one since.
      const t = this.now();
      const until = this.#fencedBy(c.session, c.supersededAt);
      if (t > until && !c.flagged) {
        c.flagged = true;
        this.fail(
          "one-streamer",
          c.session,
          `connection ${c.id} sent a number ${
            t - c.supersededAt
          } ms after a newer connection of its session started streaming (bound ${
            until - c.supersededAt
          } ms)`,
        );
      }
    }
    if (cur === c) return;
    if (cur !== undefined && cur.supersededAt === undefined && cur.id < c.id) {
      cur.supersededAt = this.now();
    }
    w.streamer = c;
  }

  /** The server wrote a WELCOME on `c`. */
  welcomed(c: ConnWatch): void {
    const w = this.#watch(c.session);
    if (!c.attached) {
      c.attached = true;
      if (w.attached++ === 0 && w.lastAttachedEnd !== undefined) {
        w.longestGap = Math.max(w.longestGap, this.now() - w.lastAttachedEnd);
      }
    }
    const late = this.#lateAttach.get(c.session);
    this.#lateAttach.delete(c.session);
    if (c.resume && late !== undefined) {
      this.fail(
        "ttl",
        c.session,
        `resumed over a record ${late} ms (store time) past its resume deadline`,
      );
    }
    const others = w.open - (c.open ? 1 : 0);
    const { ttlMs, slackMs } = this.bounds;
    // A HELLO may start the id anew (after a tombstone); a RESUME may not
    // outlive the TTL.
    if (c.resume && others === 0 && w.lastEnd !== undefined) {
      const gap = this.now() - w.lastEnd;
      if (gap > ttlMs + slackMs) {
        this.fail(
          "ttl",
          c.session,
          `welcomed ${gap} ms after its last connection closed (ttl ${ttlMs} ms + slack ${slackMs} ms)`,
        );
      }
    }
  }

  /** The server wrote a DONE for `session`. */
  done(session: string, damaged = false): void {
    const w = this.#watch(session);
    // A fault that destroyed the completion (a lost tail, a rollback, a
    // delete) leaves nothing that says it happened: the store cannot refuse
    // the second one (PROTOCOL.md §11).
    if (++w.dones > 1 && !damaged) {
      this.fail("exactly-once", session, `DONE number ${w.dones}`);
    }
  }

  /** A record write applied by the store (`storeNow` in store time). */
  storeWrite(
    before: SessionRecord | null,
    after: SessionRecord | null,
    storeNow: number,
    ownerDeadline?: number,
  ): void {
    if (before === null || after === null) return;
    if (before.status !== "live") return;
    // Detached: its own deadline; attached to a server whose lease lapsed:
    // TTL after that server's last renewal (PROTOCOL.md §7 TTL).
    const deadline = before.owner === "" ? before.expiresAt : ownerDeadline;
    if (deadline === undefined) return;
    const late = storeNow - deadline;
    if (late <= this.bounds.storeSlackMs) return;
    // An attach over an expired record may be a HELLO starting the id anew
    // (PROTOCOL.md §7): the WELCOME that follows tells (`welcomed`). A
    // completion is never a new session.
    if (after.owner !== "") {
      this.#lateAttach.set(before.id, late);
      return;
    }
    if (after.status === "completed") {
      this.fail(
        "ttl",
        before.id,
        `record completed ${late} ms (store time) after its resume deadline`,
      );
    }
  }
}

/** How a client's run ended in ERROR, and what the run knows about its session. */
export interface RefusalFacts {
  /** The client's error code (`session_expired`, `unreachable`, …). */
  readonly code: string;
  readonly message: string;
  /** When the run ended (simulated ms). */
  readonly endedAt: number;
  /** The session's count. */
  readonly count: number;
  /** Whether a WELCOME ever arrived. */
  readonly welcomed: boolean;
  /** Whether a fault destroyed or changed its record (a lost tail, a rollback, a delete). */
  readonly damaged: boolean;
  /** Whether a server expired it because its owner's lease lapsed for a TTL ({@link presumedDead}). */
  readonly ownerLapsed: boolean;
  /** The longest time the client was down (crashed or frozen) (ms). */
  readonly longestAbsence: number;
  /** The longest time the session had no welcomed connection ({@link Checker.unattachedFor}) (ms). */
  readonly unattachedFor: number;
  /**
   * Until when (simulated ms) a connection of the client over a slow link
   * made while faults ran was open (`Infinity`: still open; 0: none): a
   * fault whose effect outlasts the faults' end.
   */
  readonly slowLinkUntil: number;
  /** Whether a byzantine server sent it a frame out of order or beyond count ({@link Checker.misordered}). */
  readonly misordered: boolean;
}

/** The settings a refusal is judged by (ms). */
export interface RefusalBounds {
  /** When the faults stopped (simulated ms). */
  readonly faultMs: number;
  readonly ttlMs: number;
  readonly leaseMs: number;
  readonly intervalMs: number;
}

/**
 * Whether a run that ended in ERROR ended as PROTOCOL.md §11 `refusals`
 * allows. `unreachable` if never welcomed, within 15 s of the faults' end;
 * `session_expired` from the client's own give-up within a TTL of it;
 * `session_expired` or `unknown_session` once the session was away for a
 * TTL (less the third of a lease by which a crashed owner's sessions may
 * expire early) or its owner was presumed dead; and any refusal for a
 * session a fault damaged, ending within a lease + 2 × TTL + 10 s of the
 * faults' end or of its own stream's (count × interval after them: a
 * rolled-back session streams on until its completion finds the loss);
 * `protocol_violation` once a byzantine server sent its client a frame out
 * of order or beyond count (PROTOCOL.md §4: the client gives up).
 */
export function refusalAllowed(f: RefusalFacts, b: RefusalBounds): boolean {
  const stream = f.count * Math.max(b.intervalMs, 1);
  const damaged = f.damaged &&
    f.endedAt <= b.faultMs + stream + b.leaseMs + 2 * b.ttlMs + 10_000;
  const away = f.longestAbsence >= b.ttlMs - 1000 || f.ownerLapsed ||
    f.unattachedFor >= b.ttlMs - b.leaseMs / 3 - 100;
  // The client's own give-up (no progress for a TTL) while faults kept it
  // from the server: the server may still hold the session (it noticed the
  // drop later), but the client cannot know. Once faults stop, never; a slow
  // link made while they ran lasts as long as its connection (simulator
  // seeds 416395916, 416396034: an ACK(count) seconds late on the uplink).
  const gaveUp = f.code === "session_expired" &&
    f.message.startsWith("No stream progress") &&
    f.endedAt <= Math.max(b.faultMs, f.slowLinkUntil) + b.ttlMs;
  // Never welcomed within the connect give-up (the client's own rule),
  // while faults could explain it.
  const unreachable = f.code === "unreachable" && !f.welcomed &&
    f.endedAt <= b.faultMs + 15_000;
  const refusedLie = f.code === "protocol_violation" && f.misordered;
  return gaveUp || unreachable || damaged || refusedLie ||
    ((f.code === "session_expired" || f.code === "unknown_session") && away);
}
