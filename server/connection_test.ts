import { silentLogger } from "../common/logger.ts";
import { ErrorCode } from "../protocol/errors.ts";
import { assert_, assertEquals } from "../tests/_assert.ts";
import { hello, rawConnect, resume } from "../tests/_raw.ts";
import {
  Connection,
  type ConnectionHost,
  type SessionPort,
} from "./connection.ts";
import { newCounters } from "./metrics.ts";
import { Scheduler } from "./scheduler.ts";
import type { Attachment } from "./sessions.ts";

const SANITIZED = { sanitizeOps: true, sanitizeResources: true };

/** One connection served by a fake host whose session layer is `sessions`. */
async function serveOne(sessions: SessionPort) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const scheduler = new Scheduler();
  const events: string[] = [];
  const refused: string[] = [];
  const host: ConnectionHost = {
    settings: {
      intervalMs: 10,
      ttlMs: 1000,
      handshakeTimeoutMs: 1000,
      clientTimeoutMs: 1000,
      stallMs: 1000,
      window: 16,
      ackIntervalMs: 500,
    },
    shuttingDown: false,
    scheduler,
    sessions,
    counters: newCounters(),
    log: silentLogger,
    attached: () => events.push("attached"),
    detached: () => events.push("detached"),
    closed: () => events.push("closed"),
    refused: (code) => refused.push(code),
  };
  const accepted = listener.accept();
  const peer = await rawConnect((listener.addr as Deno.NetAddr).port);
  const conn = new Connection(await accepted, host);
  const served = conn.serve();
  let disposed = false;
  return {
    conn,
    peer,
    events,
    refused,
    async [Symbol.asyncDispose]() {
      if (disposed) return;
      disposed = true;
      await peer[Symbol.asyncDispose]();
      await served;
      scheduler.close();
      listener.close();
    },
  };
}

const unexpected = (): Promise<never> =>
  Promise.reject(new TypeError('Invalid seed hex ""'));

const noSessions: SessionPort = {
  open: unexpected,
  resume: unexpected,
  holds: () => false,
  detach: () => Promise.resolve(),
  complete: () => Promise.resolve(false),
};

for (const how of ["hello", "resume"] as const) {
  Deno.test(
    `Connection answers a non-protocol error of the session layer on ${how} with store_unavailable and closes`,
    SANITIZED,
    async () => {
      await using c = await serveOne(noSessions);
      const id = crypto.randomUUID(), token = new Uint8Array(16);
      await c.peer.send(
        how === "hello" ? hello(id, 5, token) : resume(id, token, 0),
      );
      const m = await c.peer.next(2000);
      assert_(m?.type === "error", JSON.stringify(m));
      assertEquals(m.code, ErrorCode.STORE_UNAVAILABLE);
      assert_(m.message.includes(id), m.message);
      await c.peer.closed(2000);
      await c[Symbol.asyncDispose]();
      assertEquals(c.events, ["closed"]);
      assertEquals(c.refused, ["store_unavailable"]);
    },
  );
}

Deno.test(
  "Connection detaches a session whose attach completed after the server said GOAWAY",
  SANITIZED,
  async () => {
    const detached: string[] = [];
    const gate = Promise.withResolvers<Attachment>();
    const att: Attachment = {
      id: crypto.randomUUID(),
      seed: { k0: 1, k1: 2 } as unknown as Attachment["seed"],
      count: 5,
      token: new Uint8Array(16),
      epoch: 1,
    };
    await using c = await serveOne({
      ...noSessions,
      open: () => gate.promise,
      holds: () => true,
      detach: (a) => (detached.push(a.id), Promise.resolve()),
    });
    await c.peer.send(hello(att.id, 5, att.token));
    await new Promise((r) => setTimeout(r, 20));
    c.conn.goAway("Server is shutting down");
    assertEquals((await c.peer.next(2000))?.type, "goaway");
    gate.resolve(att); // the store answers after the GOAWAY
    await c.peer.closed(2000);
    await c[Symbol.asyncDispose]();
    assertEquals(detached, [att.id]);
    assertEquals(c.events, ["closed"]); // never registered as attached
  },
);
