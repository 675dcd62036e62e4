/**
 * The driver over scripted in-memory links and a fake wall clock: the order
 * in which it carries out the session's actions, what it feeds back, and
 * that it closes every link. The session's rules are `session_test.ts`'s;
 * real sockets are `client_test.ts`'s and `load/lean_client_test.ts`'s.
 */

import { assertEquals } from "../tests/_assert.ts";
import { ErrorCode } from "../protocol/errors.ts";
import { Checksum } from "../protocol/checksum.ts";
import type { ServerMessage, Welcome } from "../protocol/messages.ts";
import { drive, type DriverLink, type DriverPort } from "./driver.ts";
import { ClientSession } from "./session.ts";

const ID = "5eed5eed-0000-4000-8000-00000000c0de";
const T0 = 1_700_000_000_000;

const welcome = (nextOffset: number, count = 3): Welcome => ({
  type: "welcome",
  count,
  nextOffset,
  token: new Uint8Array(16),
  intervalMs: 100,
  ttlMs: 5000,
  window: 4,
  ackIntervalMs: 1000,
});
const num = (offset: number): ServerMessage => ({
  type: "number",
  offset,
  value: offset + 1,
});
function final(count = 3): ServerMessage {
  const c = new Checksum();
  for (let v = 1; v <= count; v++) c.update(v);
  return {
    type: "final",
    offset: count - 1,
    value: count,
    sum: c.sum,
    crc32: c.crc,
  };
}

/** One read: the messages it holds, or the error that ends the link; a number moves the wall clock to T0 + it first. */
type Read = ServerMessage[] | Error | number;

/**
 * A port whose connections play `scripts` in turn (one list of reads each;
 * a dial past the last fails), on a wall clock that moves only by `at`.
 */
function scripted(scripts: Read[][]) {
  const log: string[] = [];
  let wall = T0;
  let dials = 0;
  const ac = new AbortController();
  const port: DriverPort<ServerMessage[]> = {
    open(limitMs) {
      log.push(`dial ${limitMs}`);
      const reads = scripts[dials++];
      if (!reads) {
        return Promise.reject(new Deno.errors.ConnectionRefused("refused"));
      }
      let inbox: ServerMessage[] = [];
      let closed = false;
      const link: DriverLink<ServerMessage[]> = {
        read() {
          while (typeof reads[0] === "number") {
            wall = T0 + (reads.shift() as number);
          }
          const r = reads.shift() as ServerMessage[] | Error | undefined;
          if (r instanceof Error) return Promise.reject(r);
          return r ? Promise.resolve(r) : Promise.reject(new Error("done"));
        },
        push(msgs) {
          inbox = [...msgs];
        },
        next: () => inbox.shift(),
        send(m) {
          log.push(m.type === "ack" ? `ack ${m.nextOffset}` : m.type);
          return Promise.resolve();
        },
        welcomed(idleLimitMs) {
          log.push(`welcomed idle ${idleLimitMs}`);
        },
        hold(on) {
          log.push(on ? "hold" : "unhold");
        },
        silent: false,
        explain: (e) => e,
        close(error) {
          if (!closed) log.push(`close${error ? ` (${String(error)})` : ""}`);
          closed = true;
        },
      };
      return Promise.resolve(link);
    },
    wallMs: () => wall,
    sleep(ms) {
      log.push(`sleep ${ms}`);
      wall += ms;
      return Promise.resolve();
    },
    signal: ac.signal,
    checkpoint(state, durable) {
      log.push(
        `saved${durable ? " durable" : ""} ${state.nextOffset} at ${
          state.lastContact - T0
        }`,
      );
    },
    observe(a) {
      if (a.type === "number") log.push(`number ${a.offset}`);
    },
  };
  return {
    port,
    log,
    abort: () => ac.abort(),
  };
}

const session = (
  o: Partial<ConstructorParameters<typeof ClientSession>[0]> = {},
) =>
  new ClientSession({
    id: ID,
    count: 3,
    wallMs: T0,
    handshakeTimeoutMs: 2000,
    backoff: () => 10,
    ...o,
  });

Deno.test("drive: HELLO, numbers, the durable final save awaited before ACK(count), DONE → PASS, link closed", async () => {
  const s = scripted([[
    [welcome(0), num(0), num(1)],
    [final()],
    [{ type: "done" }],
  ]]);
  // A save that takes a while.
  const save = s.port.checkpoint!;
  s.port.checkpoint = async (state, durable) => {
    await new Promise((r) => setTimeout(r, 1));
    save(state, durable);
  };
  const r = await drive(session(), s.port);
  assertEquals(r.result, "PASS");
  assertEquals(s.log, [
    "dial 2000",
    "hello",
    "welcomed idle 1000",
    "number 0",
    "ack 1",
    "number 1",
    "ack 2",
    "number 2",
    "hold", // the server waits for ACK(count): its silence is not a failure
    "saved 0 at 0", // the welcome's, not awaited (logged after its delay)
    "saved durable 3 at 0",
    "unhold",
    "ack 3",
    "close",
  ]);
});

Deno.test("drive: a final state saved durably is not saved again: a resume at count after a cut ACKs at once", async () => {
  const s = scripted([
    [
      [welcome(0), num(0), num(1), final()],
      new Deno.errors.ConnectionReset("cut"),
    ],
    [[welcome(3)], [{ type: "done" }]],
  ]);
  // The save outlives the link: the cut is read while it is in flight.
  let saves = 0;
  const save = s.port.checkpoint!;
  s.port.checkpoint = async (state, durable) => {
    if (durable) {
      saves++;
      await new Promise((r) => setTimeout(r, 1));
    }
    save(state, durable);
  };
  const r = await drive(session(), s.port);
  assertEquals(r.result, "PASS");
  assertEquals(saves, 1, s.log.join("\n"));
  const resumed = s.log.slice(s.log.indexOf("resume"));
  assertEquals(resumed.slice(0, 4), [
    "resume",
    "welcomed idle 1000",
    "saved 3 at 10", // not durable: the final state is already saved
    "ack 3",
  ]);
});

Deno.test("drive: a cut welcomed connection saves the moved lastContact, sleeps the retry delay, then RESUMEs; a refusal ends it", async () => {
  const s = scripted([
    [[welcome(0), num(0)], 60_000, new Deno.errors.ConnectionReset("reset")],
    [[{ type: "error", code: ErrorCode.BAD_TOKEN, message: "no" }]],
  ]);
  const r = await drive(session({ checkpointEvery: 1000 }), s.port);
  assertEquals([r.result, r.error?.code], ["ERROR", "bad_token"]);
  assertEquals(s.log, [
    "dial 2000",
    "hello",
    "welcomed idle 1000",
    "saved 0 at 0",
    "number 0",
    "ack 1",
    "close (ConnectionReset: reset)",
    "saved 1 at 60000",
    "sleep 10",
    "dial 2000",
    "resume",
    "close (ClientError: no)",
  ]);
});

Deno.test("drive: an abort during the retry sleep ends the run aborted, without another dial", async () => {
  const s = scripted([]);
  s.port.sleep = (ms) => {
    s.log.push(`sleep ${ms}`);
    s.abort();
    return Promise.resolve();
  };
  const r = await drive(session(), s.port);
  assertEquals([r.result, r.error?.code], ["ERROR", "aborted"]);
  assertEquals(s.log, ["dial 2000", "sleep 10"]);
});
