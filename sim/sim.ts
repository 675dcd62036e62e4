/**
 * One simulated run of the whole system: several real server cores sharing
 * the real memory store (behind a faulty network and an asynchronous
 * replica), and many real clients (`connect()`, with `--state`-style
 * checkpoints, durable and slow included), all on one {@link World} and one
 * seed. Faults run from the start to `faultMs`; then the run waits for
 * every client to end (liveness) and for every held session and record to
 * go (zero state), checking the invariants of `checker.ts` on the way.
 *
 * @module
 */

import { connect } from "../client/client.ts";
import { stallFor } from "../common/defaults.ts";
import type { ClientResult, ClientState } from "../client/types.ts";
import type { Logger } from "../common/logger.ts";
import { MessageType } from "../protocol/messages.ts";
import { deriveSeed, valueAt } from "../protocol/prng.ts";
import { uuidToBytes } from "../protocol/uuid.ts";
import { createServerCore, type ServerCore } from "../server/core.ts";
import { CORRUPTIONS, FrameCorruptor } from "./byzantine.ts";
import {
  Checker,
  type ConnWatch,
  refusalAllowed,
  type Violation,
} from "./checker.ts";
import { FAST_LINK, type LinkShape, SimNet, type SimSocket } from "./net.ts";
import { Rng } from "./rng.ts";
import { SimStore } from "./store.ts";
import { Trace } from "./trace.ts";
import { Node, SIM_EPOCH, SimClock, World } from "./world.ts";

/** Fault classes, each on by default. */
export const FAULTS = [
  "cut", // a connection cut: FIN, RST or half-open
  "slow", // slow, bloated, pushing-back or delayed links; late handshakes
  "freeze", // a client process stopped (SIGSTOP) for a while
  "store-latency", // slow store commands
  "store-outage", // the store unreachable for a while
  "store-lost", // commands lost before or after they were applied
  "failover", // an asynchronous failover that loses the replica's lag
  "damage", // a record rolled back or deleted under a live session
  "server-crash", // kill -9 of a server, then a restart
  "server-stop", // a graceful shutdown, then a restart
  "client-crash", // kill -9 of a client, then a restart from its saved state
  "slow-save", // a durable --state save slower than the idle limit
  "skew", // server clocks that disagree, and jump
  "byzantine", // a server that sends a NUMBER twice, out of order, after FINAL or changed
] as const;

/** A fault class. */
export type FaultName = typeof FAULTS[number];

/**
 * The classes the fault process draws from, one per tick: the list before
 * `byzantine`, which is drawn per connection from its own stream, so that
 * adding it moved no other fault of any seed (with it off, a seed replays
 * as it did before it existed).
 */
const TICK_FAULTS: readonly FaultName[] = FAULTS.filter((f) =>
  f !== "byzantine"
);

/** The share of connections, made while faults run, that a byzantine server corrupts. */
export const BYZANTINE_SHARE = 0.03;

/** What one run simulates. */
export interface SimConfig {
  seed: number;
  servers: number;
  clients: number;
  /** Faults happen from 0 to this (simulated ms). */
  faultMs: number;
  /** The fault classes turned on. */
  faults: ReadonlySet<FaultName>;
  /** Mean ms between two injected faults. */
  faultEveryMs: number;
}

/** The outcome of a run. */
export interface SimResult {
  readonly config: SimConfig;
  readonly violations: readonly Violation[];
  /** Hash of the whole trace: equal for equal seeds. */
  readonly hash: string;
  readonly sessions: number;
  readonly passed: number;
  readonly events: number;
  /** Simulated ms at the end. */
  readonly simulatedMs: number;
  readonly trace: Trace;
  /** Faults injected, by name. */
  readonly injected: ReadonlyMap<string, number>;
  /** Records a data-loss fault left attached to a server that does not hold them. */
  readonly orphaned: number;
  /**
   * Clients that a byzantine server lied to and that caught it: refused a
   * frame out of order or beyond count (ERROR `protocol_violation`), or
   * ended in FAIL holding a changed value.
   */
  readonly caught: { readonly refused: number; readonly failed: number };
}

/** Defaults: a short run for CI. */
export function defaultConfig(seed: number): SimConfig {
  return {
    seed,
    servers: 3,
    clients: 60,
    faultMs: 20_000,
    faults: new Set(FAULTS),
    faultEveryMs: 400,
  };
}

/** The server settings of a run (drawn from the seed). */
interface ServerSettings {
  intervalMs: number;
  ttlMs: number;
  leaseMs: number;
  clientTimeoutMs: number;
  handshakeTimeoutMs: number;
  tombstoneMs: number;
}

interface ServerSlot {
  index: number;
  node: Node;
  clock: SimClock;
  core: ServerCore | undefined;
  up: boolean;
  /** Timers a started core keeps armed with no session (heartbeat, probes). */
  baseTimers: number;
  sockets: Set<SimSocket>;
  incarnation: number;
}

interface ClientActor {
  index: number;
  id: string;
  count: number;
  token: Uint8Array;
  node: Node;
  rng: Rng;
  /** The last state whose save completed. */
  saved: ClientState | undefined;
  /** Durable saves take this long (ms). */
  saveMs: number;
  result: ClientResult | undefined;
  /** Crashed and restarting, or never started. */
  down: boolean;
  sockets: Set<SimSocket>;
  incarnation: number;
  /** Longest time it was down (crashed or frozen) (ms). */
  longestAbsence: number;
  /** WELCOMEs after the faults stopped. */
  lateWelcomes: number;
  /** Dials refused because no server was up (the load balancer had none). */
  refusedDials: number;
  /** Connections open over a slow link (made while faults ran). */
  slowLinks: number;
  /** When the last of them closed (sim ms). */
  slowLinkEnd: number;
  /** Whether a WELCOME ever arrived. */
  welcomed: boolean;
  /** When its run ended (sim ms). */
  endedAt: number;
}

const SEED_BASE = 0x5eed;

/** Runs one simulation to its end. */
export async function simulate(config: SimConfig): Promise<SimResult> {
  const world = new World();
  const rng = new Rng(config.seed);
  const on = (f: FaultName) => config.faults.has(f);
  const trace = new Trace(() => world.time);
  const injected = new Map<string, number>();
  const inject = (name: string, detail: string, session?: string) => {
    injected.set(name, (injected.get(name) ?? 0) + 1);
    trace.add(session, `fault ${name} ${detail}`);
  };

  const srng = rng.fork("settings");
  const settings: ServerSettings = {
    intervalMs: srng.pick([0, 5, 20, 50, 100, 250]),
    ttlMs: srng.pick([3000, 5000, 10_000]),
    leaseMs: 3000,
    clientTimeoutMs: srng.pick([2000, 4000, 10_000]),
    handshakeTimeoutMs: srng.pick([2000, 5000]),
    tombstoneMs: 300_000,
  };
  settings.leaseMs = Math.min(settings.leaseMs, settings.ttlMs);
  trace.add(undefined, `settings ${JSON.stringify(settings)}`);

  const storeNode = new Node("store");
  const storeFaults = {
    latencyMs: [0.2, 1] as [number, number],
    timeoutMs: 1000,
    pLostBefore: 0,
    pLostAfter: 0,
    replicaLagMs: 0,
  };
  const storeRng = rng.fork("store"), netRng = rng.fork("net");
  const byzRng = rng.fork("byzantine");
  const store = new SimStore(
    world,
    storeNode,
    storeFaults,
    () => storeRng.float(),
  );
  const net = new SimNet(world, () => netRng.float());
  // A takeover elsewhere is noticed at the next heartbeat (a third of a
  // lease) once the notice is written; a store command may take its
  // timeout each way.
  const fenceMs = settings.leaseMs / 3 + 4 * storeFaults.timeoutMs + 100;
  const checker = new Checker(() => world.time, {
    ttlMs: settings.ttlMs,
    fenceMs,
    // After a store outage: the beat it failed (a timeout), then a notice
    // whose write failed waits for the new owner's next beat (PROTOCOL.md
    // "Invariants", one-streamer).
    fenceAfterOutageMs: fenceMs + settings.leaseMs / 3 +
      storeFaults.timeoutMs,
    slackMs: 1000 + 2 * storeFaults.timeoutMs,
    // A judge reads the store's time a round trip late at most, and its
    // write lands one way later: 3 of the slowest one-way latencies (300 ms).
    storeSlackMs: 900,
  });
  store.onDamage = (id, what) => trace.add(id, `fault ${what}`);
  // A takeover record or notice a fault destroyed (a failover, a rollback, a
  // drain whose answer was lost) is never drained: the old connection stops
  // by itself (PROTOCOL.md "Invariants", one-streamer).
  checker.lostFence = (id) =>
    store.log.damaged.has(id) || store.log.lostNotices.has(id)
      ? settings.clientTimeoutMs + stallFor(settings.clientTimeoutMs)
      : 0;
  store.onLease = (owner, lease, storeNow) =>
    checker.leaseHeld(owner, lease, storeNow);
  const ownerLapsed = new Set<string>();
  const caught = { refused: 0, failed: 0 };
  /** The latest attach of each session: its epoch, owner and store time. */
  const attachOf = new Map<
    string,
    { epoch: number; owner: string; at: number }
  >();
  store.tap = (before, after, storeNow, by) => {
    const id = (after ?? before)!.id;
    trace.add(
      id,
      `store ${before?.status ?? "-"}/${before?.owner || "-"}@${
        before?.epoch ?? 0
      } -> ${after?.status ?? "deleted"}/${after?.owner || "-"}@${
        after?.epoch ?? 0
      }${
        after && after.expiresAt > 0
          ? ` until ${(after.expiresAt - SIM_EPOCH).toFixed(0)}`
          : ""
      } by ${by}`,
    );
    if (after !== null && after.status === "live" && after.owner !== "") {
      if (attachOf.get(id)?.epoch !== after.epoch) {
        attachOf.set(id, {
          epoch: after.epoch,
          owner: after.owner,
          at: storeNow,
        });
      }
    }
    // Expired by another server because its owner's lease lapsed (a server
    // cut off from the store for a TTL is presumed dead, PROTOCOL.md "TTL"),
    // whatever its connection was doing meanwhile. The judge reads the
    // record and the lease before it writes: the tombstone may land on the
    // owner's detach of the same epoch (the owner is then the server that
    // attached that epoch), and the owner may have renewed in between.
    const attach = before === null ? undefined : attachOf.get(id);
    const owner = before === null
      ? undefined
      : before.owner !== ""
      ? before.owner
      : attach?.epoch === before.epoch
      ? attach.owner
      : undefined;
    if (
      after?.status === "expired" && owner !== undefined &&
      checker.presumedDead(
        owner,
        attach?.epoch === before?.epoch ? attach?.at : undefined,
        storeNow,
      )
    ) ownerLapsed.add(id);
    // A record a fault rolled back or brought back has an old deadline; its
    // holder writing it back is the recovery, not a late resume (the wire
    // check still judges the session).
    if (!store.log.damaged.has(id)) {
      // Only another server's write is judged by the owner's lease: the
      // owner's own connection was streaming, not detached.
      const writer = by.replace(/^server(\d+)\.(\d+)$/, "s$1-$2");
      // (Not after a failover: it may have lost renewals the judge saw.)
      const lease = before !== null && before.owner !== "" &&
          before.owner !== writer && store.log.failovers === 0
        ? store.primary.peekLease(before.owner)
        : null;
      const ownerDeadline = lease !== null && lease.until <= storeNow
        ? lease.renewedAt + settings.ttlMs
        : undefined;
      checker.storeWrite(before, after, storeNow, ownerDeadline);
    }
  };

  // Servers.
  const slots: ServerSlot[] = [];
  const startServer = async (slot: ServerSlot) => {
    slot.incarnation++;
    slot.node = new Node(`server${slot.index}.${slot.incarnation}`);
    if (on("skew")) {
      slot.node.skew = rng.fork(`skew${slot.index}`).int(-500, 500);
    }
    slot.clock = new SimClock(world, slot.node);
    const core = createServerCore({
      clock: slot.clock,
      store: store.view(slot.node),
      serverId: `s${slot.index}-${slot.incarnation}`,
      log: serverLog(slot.index),
      seed: SEED_BASE,
      intervalMs: settings.intervalMs,
      ttlMs: settings.ttlMs,
      leaseMs: settings.leaseMs,
      clientTimeoutMs: settings.clientTimeoutMs,
      handshakeTimeoutMs: settings.handshakeTimeoutMs,
    });
    slot.core = core;
    trace.add(undefined, `server ${slot.index} starts as ${core.id}`);
    await core.start();
    slot.up = true;
    slot.baseTimers = slot.clock.pending;
  };
  const serverLog = (index: number): Logger => {
    const line =
      (level: string) => (msg: string, f?: Record<string, unknown>) => {
        const id = typeof f?.id === "string" ? f.id : undefined;
        trace.add(
          id,
          `s${index} ${level} ${msg}${f ? " " + JSON.stringify(f) : ""}`,
        );
      };
    return {
      debug() {},
      info: line("info"),
      warn: line("warn"),
      error: (msg, f) => {
        line("error")(msg, f);
        // A server error log is a bug unless a fault explains it.
      },
    };
  };
  for (let i = 0; i < config.servers; i++) {
    const node = new Node(`server${i}.0`);
    slots.push({
      index: i,
      node,
      clock: new SimClock(world, node),
      core: undefined,
      up: false,
      baseTimers: 0,
      sockets: new Set(),
      incarnation: 0,
    });
  }
  // Start them one after another, as processes would.
  for (const s of slots) {
    world.after(0, () => void startServer(s));
  }
  await world.run(10);

  const killServer = (slot: ServerSlot, graceful: boolean) => {
    const core = slot.core;
    if (!slot.up || core === undefined) return;
    slot.up = false;
    const restartIn = rng.fork(`restart${slot.index}.${slot.incarnation}`).int(
      200,
      3000,
    );
    if (graceful) {
      inject("server-stop", `server ${slot.index}`);
      void core.close().then(() => {
        slot.node.alive = false;
        world.after(restartIn, () => void startServer(slot));
      });
    } else {
      inject("server-crash", `server ${slot.index}`);
      core.abandon();
      slot.node.alive = false;
      for (const s of slot.sockets) net.died(s, "rst");
      slot.sockets.clear();
      world.after(restartIn, () => void startServer(slot));
    }
  };

  // Links.
  const nrng = rng.fork("links");
  const linkShape = (): [LinkShape, LinkShape] => {
    // Faults stop at faultMs: links made after it are fast (a slow one
    // made before lasts as long as its connection: `slowLinkUntil`).
    if (world.time >= config.faultMs) return [FAST_LINK, FAST_LINK];
    if (!on("slow") || !nrng.chance(0.15)) return [FAST_LINK, FAST_LINK];
    const kind = nrng.int(0, 3);
    switch (kind) {
      case 0: // delay and jitter
        return [
          {
            ...FAST_LINK,
            latencyMs: nrng.range(5, 200),
            jitterMs: nrng.range(0, 50),
          },
          {
            ...FAST_LINK,
            latencyMs: nrng.range(5, 200),
            jitterMs: nrng.range(0, 50),
          },
        ];
      case 1: // bloat: a large buffer drained slowly
        return [FAST_LINK, {
          ...FAST_LINK,
          rate: nrng.range(0.05, 2),
          capacity: 64 * 1024,
        }];
      case 2: // push-back: a small buffer
        return [FAST_LINK, { ...FAST_LINK, capacity: nrng.int(12, 200) }];
      default: // a late handshake: the first bytes take seconds to arrive
        return [{ ...FAST_LINK, latencyMs: nrng.range(1000, 8000) }, FAST_LINK];
    }
  };

  // Clients.
  const crng = rng.fork("clients");
  const actors: ClientActor[] = [];
  const open = new Set<
    { client: SimSocket; server: SimSocket; actor: ClientActor }
  >();
  const dialer = (actor: ClientActor) =>
  (
    o: { signal: AbortSignal },
  ): Promise<Deno.Conn> => {
    const live = slots.filter((s) => s.up);
    if (live.length === 0 || actor.rng.chance(0.02)) {
      actor.refusedDials++;
      return new Promise((_, reject) =>
        world.after(
          1,
          () => reject(new Deno.errors.ConnectionRefused("connection refused")),
          actor.node,
        )
      );
    }
    const slot = actor.rng.pick(live);
    const [up, down] = linkShape();
    const slow = up !== FAST_LINK || down !== FAST_LINK;
    const pair = net.connect(actor.node, slot.node, up, down);
    const entry = { ...pair, actor };
    actor.sockets.add(pair.client);
    return new Promise((resolve, reject) => {
      const abort = () =>
        reject(o.signal.reason ?? new Deno.errors.Interrupted("aborted"));
      if (o.signal.aborted) return abort();
      o.signal.addEventListener("abort", abort, { once: true });
      // The TCP handshake takes a fast round trip; shaped links delay the data.
      world.after(2, () => {
        o.signal.removeEventListener("abort", abort);
        if (!slot.up || slot.core === undefined || !slot.node.alive) {
          actor.refusedDials++;
          reject(new Deno.errors.ConnectionRefused("connection refused"));
          return;
        }
        const watch: ConnWatch = checker.opened(actor.id);
        trace.add(
          actor.id,
          `conn ${watch.id} to server ${slot.index} (${slot.core.id})`,
        );
        const srv = pair.server;
        let first = true;
        pair.client.onWrite = (bytes) => {
          if (first && bytes[0] === MessageType.RESUME) watch.resume = true;
          first = false;
          ackDurable(actor, bytes);
        };
        srv.onWrite = (bytes) => {
          const type = bytes[0];
          if (type === MessageType.NUMBER || type === MessageType.FINAL) {
            checker.numberSent(watch);
          } else if (type === MessageType.WELCOME) {
            trace.add(actor.id, `conn ${watch.id} WELCOME`);
            checker.welcomed(watch);
          } else if (type === MessageType.DONE) {
            trace.add(actor.id, `conn ${watch.id} DONE`);
            checker.done(actor.id, store.log.damaged.has(actor.id));
          } else if (type === MessageType.ERROR) {
            trace.add(actor.id, `conn ${watch.id} ERROR ${bytes[3]}`);
          } else if (type === MessageType.GOAWAY) {
            trace.add(actor.id, `conn ${watch.id} GOAWAY`);
          }
        };
        if (slow) actor.slowLinks++;
        srv.onClose = () => {
          if (slow && --actor.slowLinks === 0) actor.slowLinkEnd = world.time;
          trace.add(actor.id, `conn ${watch.id} closed by server side`);
          checker.closed(watch);
          slot.sockets.delete(srv);
          open.delete(entry);
        };
        if (
          on("byzantine") && world.time < config.faultMs &&
          byzRng.chance(BYZANTINE_SHARE)
        ) {
          const seed = expected(actor.id);
          const plan = {
            kind: byzRng.pick(CORRUPTIONS),
            nth: byzRng.int(0, Math.max(0, actor.count - 2)),
          };
          const c = new FrameCorruptor(
            plan,
            (offset) => valueAt(seed, offset),
            (kind, offset) => {
              inject(`byzantine:${kind}`, `at offset ${offset}`, actor.id);
              checker.corrupted(actor.id, kind, offset);
            },
          );
          srv.corrupt = (bytes) => c.pass(bytes);
          trace.add(
            actor.id,
            `conn ${watch.id} byzantine: ${plan.kind} (NUMBER ${plan.nth})`,
          );
        }
        slot.sockets.add(srv);
        open.add(entry);
        slot.core.accept(srv);
        resolve(pair.client as unknown as Deno.Conn);
      }, actor.node);
    });
  };

  // ACK(count) only once the final state is saved durably (PROTOCOL.md §4
  // ACK): the frames of each write the client makes.
  const ackDurable = (actor: ClientActor, bytes: Uint8Array) => {
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i + 3 <= bytes.length;) {
      const len = v.getUint16(i + 1);
      if (
        bytes[i] === MessageType.ACK && len === 4 && i + 7 <= bytes.length &&
        v.getUint32(i + 3) === actor.count &&
        actor.saved?.nextOffset !== actor.count
      ) {
        checker.fail(
          "ack-durable",
          actor.id,
          `ACK(${actor.count}) sent before the final state was saved durably`,
        );
      }
      i += 3 + len;
    }
  };
  const expected = (id: string) => deriveSeed(SEED_BASE, uuidToBytes(id));
  const startClient = (actor: ClientActor) => {
    actor.incarnation++;
    actor.down = false;
    actor.node = new Node(`client${actor.index}.${actor.incarnation}`);
    const clock = new SimClock(world, actor.node);
    const seed = expected(actor.id);
    const from = actor.saved;
    checker.runStarts(actor.id, from?.nextOffset ?? 0);
    trace.add(
      actor.id,
      `client starts${from ? ` from offset ${from.nextOffset}` : ""}`,
    );
    const brng = actor.rng.fork(`backoff${actor.incarnation}`);
    let saving = Promise.resolve();
    const handle = connect({
      hostname: "sim",
      port: 8080,
      id: actor.id,
      count: actor.count,
      token: actor.token,
      ...(from ? { resumeFrom: from } : {}),
      // The same id and token as the run that crashed.
      restart: actor.incarnation > 1,
      clock,
      dial: dialer(actor),
      backoff: (attempt) =>
        Math.floor(
          brng.float() * Math.min(5000, 100 * 2 ** Math.min(attempt, 30)),
        ),
      checkpointEvery: actor.rng.pick([1, 10, 100]),
      onNumber: (offset, value) =>
        checker.accepted(
          actor.id,
          offset,
          value,
          valueAt(seed, offset),
          actor.count,
        ),
      onEvent: (e) => {
        trace.add(
          actor.id,
          `client ${e.type}${"error" in e ? " " + e.error : ""}`,
        );
        if (e.type === "streaming") {
          actor.welcomed = true;
          if (world.time > config.faultMs) actor.lateWelcomes++;
        }
      },
      // One write at a time, in order, as the state file does
      // (client/state_file.ts): a quick save must not finish after a
      // slower later one and put an older state back.
      onCheckpoint: (s, { durable }) => {
        const copy = { ...s };
        const ms = durable ? actor.saveMs : 1;
        saving = saving.then(() =>
          new Promise<void>((resolve) =>
            clock.setTimeout(() => {
              actor.saved = copy;
              resolve();
            }, ms)
          )
        );
        return saving;
      },
    });
    void handle.result.then((r) => {
      actor.result = r;
      actor.endedAt = world.time;
      trace.add(
        actor.id,
        `client result ${r.result}${
          r.error ? " " + r.error.code + ": " + r.error.message : ""
        }`,
      );
    });
  };
  for (let i = 0; i < config.clients; i++) {
    const arng = crng.fork(`client${i}`);
    const actor: ClientActor = {
      index: i,
      id: arng.uuid(),
      count: arng.chance(0.1) ? arng.int(1, 3) : arng.int(1, 120),
      token: arng.bytes(16),
      node: new Node(`client${i}.0`),
      rng: arng,
      saved: undefined,
      saveMs: on("slow-save") && arng.chance(0.1)
        ? arng.int(500, 3000)
        : arng.int(0, 20),
      result: undefined,
      down: true,
      sockets: new Set(),
      incarnation: 0,
      longestAbsence: 0,
      lateWelcomes: 0,
      refusedDials: 0,
      slowLinks: 0,
      slowLinkEnd: 0,
      welcomed: false,
      endedAt: 0,
    };
    actors.push(actor);
    world.at(arng.range(0, config.faultMs * 0.6), () => startClient(actor));
  }

  const crashClient = (actor: ClientActor) => {
    if (actor.down || actor.result !== undefined) return;
    inject("client-crash", `client ${actor.index}`, actor.id);
    actor.down = true;
    actor.node.alive = false;
    for (const s of actor.sockets) {
      net.died(s, actor.rng.chance(0.5) ? "fin" : "rst");
    }
    actor.sockets.clear();
    const away = actor.rng.chance(0.15)
      ? actor.rng.int(settings.ttlMs, settings.ttlMs * 2)
      : actor.rng.int(10, 3000);
    actor.longestAbsence = Math.max(actor.longestAbsence, away);
    world.after(away, () => startClient(actor));
  };

  // The fault process.
  const frng = rng.fork("faults");
  const pickOpen = () => {
    if (open.size === 0) return undefined;
    const i = frng.int(0, open.size - 1);
    let k = 0;
    for (const e of open) if (k++ === i) return e;
    return undefined;
  };
  const faultTick = () => {
    if (world.time >= config.faultMs) return;
    world.after(frng.range(0, 2 * config.faultEveryMs), faultTick);
    const kind = frng.pick(TICK_FAULTS);
    if (!on(kind)) return;
    switch (kind) {
      case "cut": {
        const e = pickOpen();
        if (e === undefined) return;
        const how = frng.pick(
          ["fin", "rst", "half-open-server", "half-open-client"] as const,
        );
        inject("cut", how, e.actor.id);
        net.cut(e, how);
        return;
      }
      case "freeze": {
        const a = frng.pick(actors);
        if (a.down || a.result !== undefined || a.node.frozen) return;
        const ms = frng.int(100, Math.min(15_000, settings.ttlMs));
        inject("freeze", `${ms} ms`, a.id);
        const node = a.node;
        world.freeze(node);
        a.longestAbsence = Math.max(a.longestAbsence, ms);
        world.after(ms, () => {
          world.thaw(node);
          for (const s of a.sockets) s.wake();
        });
        return;
      }
      case "store-latency": {
        const hi = frng.range(1, 300);
        inject("store-latency", `${hi.toFixed(0)} ms`);
        storeFaults.latencyMs = [0.2, hi];
        world.after(
          frng.int(200, 3000),
          () => (storeFaults.latencyMs = [0.2, 1]),
        );
        return;
      }
      case "store-outage": {
        const ms = frng.int(100, Math.min(4000, settings.ttlMs / 2));
        inject("store-outage", `${ms} ms`);
        store.outage(ms);
        checker.storeOutage(world.time, world.time + ms);
        return;
      }
      case "store-lost": {
        const p = frng.range(0.01, 0.2);
        inject("store-lost", `p=${p.toFixed(2)}`);
        storeFaults.pLostBefore = p / 2;
        storeFaults.pLostAfter = p / 2;
        world.after(frng.int(200, 2000), () => {
          storeFaults.pLostBefore = 0;
          storeFaults.pLostAfter = 0;
        });
        return;
      }
      case "failover": {
        storeFaults.replicaLagMs = frng.int(0, 300);
        const lag = storeFaults.replicaLagMs;
        world.after(lag + 1, () => {
          inject("failover", `lag ${lag} ms`);
          store.failover();
          storeFaults.replicaLagMs = 0;
        }, storeNode);
        return;
      }
      case "damage": {
        const e = pickOpen();
        if (e === undefined) return;
        if (frng.chance(0.5)) {
          if (store.rollback(e.actor.id)) {
            inject("damage", "rollback", e.actor.id);
          }
        } else if (store.remove(e.actor.id)) {
          inject("damage", "delete", e.actor.id);
        }
        return;
      }
      case "server-crash":
      case "server-stop": {
        const slot = frng.pick(slots);
        if (slots.filter((s) => s.up).length <= 1 && frng.chance(0.7)) return;
        killServer(slot, kind === "server-stop");
        return;
      }
      case "client-crash":
        crashClient(frng.pick(actors));
        return;
      case "skew": {
        const slot = frng.pick(slots);
        const jump = frng.int(-2000, 2000);
        inject("skew", `server ${slot.index} wall clock jumps ${jump} ms`);
        slot.node.skew += jump;
        return;
      }
      case "slow":
      case "slow-save":
      case "byzantine":
        return; // shapes links, saves and connections as they are made
    }
  };
  world.after(frng.range(0, config.faultEveryMs), faultTick);

  // Phase 1: faults.
  await world.run(config.faultMs);
  // Phase 2: quiet; every client must end within the bound.
  storeFaults.latencyMs = [0.2, 1];
  storeFaults.pLostBefore = storeFaults.pLostAfter = 0;
  for (const s of slots) {
    if (!s.up && s.node.alive === false && s.core !== undefined) {
      // A restart is already scheduled.
    }
  }
  const longest = Math.max(...actors.map((a) => a.count)) *
    Math.max(settings.intervalMs, 1);
  const livenessBound = longest + 2 * settings.ttlMs + 30_000;
  const quiet = world.time;
  await world.run(
    quiet + livenessBound,
    () => actors.every((a) => a.result !== undefined),
  );
  for (const a of actors) {
    const own = a.count * Math.max(settings.intervalMs, 1) +
      2 * settings.ttlMs + 30_000;
    if (a.result !== undefined && a.endedAt > quiet + own) {
      checker.fail(
        "liveness",
        a.id,
        `client ${a.index} ended ${
          a.endedAt - quiet
        } ms after the faults stopped, past its bound of ${own} ms`,
      );
    }
    if (a.result === undefined) {
      checker.fail(
        "liveness",
        a.id,
        `client ${a.index} did not end within ${livenessBound} ms after the faults stopped (count ${a.count}, saved offset ${
          a.saved?.nextOffset ?? 0
        })`,
      );
    } else if (a.lateWelcomes > 3 + a.count) {
      checker.fail(
        "liveness",
        a.id,
        `${a.lateWelcomes} WELCOMEs after the faults stopped`,
      );
    }
    judgeResult(a);
  }

  function judgeResult(a: ClientActor): void {
    const r = a.result;
    if (r === undefined) return;
    const tainted = checker.taintedAt(a.id);
    if (r.result === "PASS") {
      if (tainted !== undefined) {
        checker.fail(
          "numbers",
          a.id,
          `PASS with a value a byzantine server changed, accepted at offset ${tainted}`,
        );
      }
      return;
    }
    if (r.result === "FAIL") {
      // The checksums caught a value the client could not tell was wrong.
      if (tainted !== undefined) {
        caught.failed++;
        return;
      }
      checker.fail(
        "numbers",
        a.id,
        `FAIL: sum ${r.sum} vs ${r.serverSum}, crc ${r.checksum} vs ${r.serverChecksum}`,
      );
      return;
    }
    const code = r.error?.code ?? "?";
    const facts = {
      code,
      message: r.error?.message ?? "",
      endedAt: a.endedAt,
      count: a.count,
      welcomed: a.welcomed,
      damaged: store.log.damaged.has(a.id),
      ownerLapsed: ownerLapsed.has(a.id),
      longestAbsence: a.longestAbsence,
      unattachedFor: checker.unattachedFor(a.id),
      slowLinkUntil: a.slowLinks > 0 ? Infinity : a.slowLinkEnd,
      misordered: checker.misordered(a.id),
    };
    if (code === "protocol_violation" && facts.misordered) caught.refused++;
    if (!refusalAllowed(facts, { ...settings, faultMs: config.faultMs })) {
      checker.fail(
        "refusals",
        a.id,
        `ended ERROR ${code}: ${r.error?.message}`,
      );
    }
  }

  // Phase 3: zero state, once every record has had time to expire and go.
  await world.run(world.time + settings.ttlMs + settings.tombstoneMs + 5000);
  for (const s of slots) {
    if (!s.up || s.core === undefined) continue;
    const m = s.core.metrics();
    if (m.connections !== 0 || m.sessions !== 0) {
      checker.fail(
        "zero-state",
        undefined,
        `server ${s.index}: ${m.connections} connections, ${m.sessions} sessions held`,
      );
    }
    if (s.clock.pending > s.baseTimers) {
      checker.fail(
        "zero-state",
        undefined,
        `server ${s.index}: ${s.clock.pending} timers armed, ${s.baseTimers} at start`,
      );
    }
  }
  const storeNow = store.clock.now();
  let orphaned = 0;
  for (const r of store.primary.records()) {
    if (r.retainUntil === 0 && store.log.damaged.has(r.id)) {
      // A lost tail brought back a record attached to a server that no
      // longer holds it: nothing reconciles it yet (PROTOCOL.md, known gap).
      orphaned++;
      trace.add(
        r.id,
        `orphaned by data loss: attached to ${r.owner} at quiescence`,
      );
    } else if (
      r.retainUntil === 0 && checker.leaseLost(r.owner) &&
      !slots.some((s) => s.up && s.core?.id === r.owner)
    ) {
      // A failover lost the lease of the server it is attached to, which
      // died before it could write it again: no lease ends, so no collect
      // finds it (PROTOCOL.md, known gap).
      orphaned++;
      trace.add(
        r.id,
        `orphaned by data loss: attached to ${r.owner}, whose lease a failover lost before it died`,
      );
    } else if (r.retainUntil === 0) {
      checker.fail(
        "zero-state",
        r.id,
        `record still attached to ${r.owner} at quiescence (epoch ${r.epoch})`,
      );
    } else if (r.retainUntil < storeNow - 2000) {
      checker.fail(
        "zero-state",
        r.id,
        `record kept ${storeNow - r.retainUntil} ms past its retention`,
      );
    }
  }
  for (const c of world.crashes) checker.fail("crash", undefined, c);

  // Shut down what is left.
  for (const s of slots) if (s.up) s.core?.abandon();
  await store.close();

  for (const v of checker.violations) {
    trace.add(v.session, `VIOLATION ${v.invariant}: ${v.detail}`);
  }
  return {
    config,
    violations: checker.violations,
    hash: trace.hash(),
    sessions: actors.length,
    passed: actors.filter((a) => a.result?.result === "PASS").length,
    events: world.events,
    simulatedMs: world.time,
    trace,
    injected,
    orphaned,
    caught,
  };
}
