/**
 * Servers whose clocks disagree by more than the lease, sharing one store:
 * decisions use the store's time, so no expired or completed session is
 * resumed, every refusal is an ERROR frame, and no gauge leaks. The servers'
 * clocks are injected (real timers, a wall clock offset by the skew); the
 * shared MemoryStore's own clock is the store clock.
 *
 * @module
 */

import { type Clock, systemClock } from "../common/clock.ts";
import { ErrorCode } from "../protocol/errors.ts";
import { MemoryStore } from "../store/memory.ts";
import { assert_, assertEquals } from "./_assert.ts";
import { eventually, ids, testServer } from "./_fixtures.ts";
import { hello, rawConnect, resume, runSession } from "./_raw.ts";

const LEASE_MS = 300;
const TTL_MS = 600;
const SKEW_MS = 10 * LEASE_MS;

function skewed(ms: number): Clock {
  return { ...systemClock, now: () => Date.now() + ms };
}

/** The first answer to a RESUME: `welcome`, or `error <code>`; then closes. */
async function answer(port: number, id: string, token: Uint8Array) {
  await using p = await rawConnect(port);
  await p.send(resume(id, token, 1));
  const m = await p.next();
  assert_(m !== null, "the server closed without an answer");
  return m.type === "error" ? `error ${m.code}` : m.type;
}

Deno.test("servers with clocks 6 s apart (20 leases) on one store: expiry and tombstones follow the store's time, every refusal is an ERROR frame, no gauge leaks", async () => {
  await using store = new MemoryStore();
  const opts = {
    store,
    ownStore: false,
    ttlMs: TTL_MS,
    leaseMs: LEASE_MS,
    intervalMs: 5,
  };
  await using behind = await testServer({ ...opts, clock: skewed(-SKEW_MS) });
  await using ahead = await testServer({ ...opts, clock: skewed(SKEW_MS) });
  const [detachedId, liveId, doneId] = ids(3, "5c3e");
  const tok = new Uint8Array(16).fill(7);

  // A session detached on the server that runs ahead, then left past its TTL.
  {
    await using p = await rawConnect(ahead.addr.port);
    await p.send(hello(detachedId!, 1000, tok));
    await p.until("number");
  }
  // One detached on the server that runs behind, resumed within its TTL.
  {
    await using p = await rawConnect(behind.addr.port);
    await p.send(hello(liveId!, 1000, tok));
    await p.until("number");
  }
  await eventually(
    () => ahead.metrics().connections + behind.metrics().connections === 0,
    "both detaches",
  );
  // Within the TTL, on the server whose clock is 6 s ahead of the other's:
  // a local clock would call it expired; the store's says it is not.
  assertEquals(await answer(ahead.addr.port, liveId!, tok), "welcome");
  // A completed session's tombstone.
  await runSession(ahead.addr.port, { id: doneId!, count: 3, token: tok });

  await new Promise((r) => setTimeout(r, TTL_MS + 200));
  // The clock that runs behind would still see the first session as live.
  assertEquals(
    await answer(behind.addr.port, detachedId!, tok),
    `error ${ErrorCode.SESSION_EXPIRED}`,
  );
  assertEquals(
    await answer(ahead.addr.port, detachedId!, tok),
    `error ${ErrorCode.SESSION_EXPIRED}`,
  );
  assertEquals(
    await answer(behind.addr.port, doneId!, tok),
    `error ${ErrorCode.SESSION_COMPLETED}`,
  );
  // Nothing left on either server: the refusals attached nothing.
  await eventually(
    () =>
      behind.metrics().sessions + ahead.metrics().sessions === 0 &&
      behind.metrics().connections + ahead.metrics().connections === 0,
    "zero state on both servers",
  );
});
