import {
  assert_,
  assertEquals,
  assertRejects,
  assertThrows,
} from "../tests/_assert.ts";
import { PUSHBACK_BYTES, startProxy } from "./fault_proxy.ts";

const HOST = "127.0.0.1";
/** Upper bound on any single wait in these tests; reaching it fails the test. */
/**
 * A hang guard, not a speed target: what it bounds takes milliseconds, or
 * minutes when broken, so a loaded host (3 s was tight at a load of 10) must
 * not reach it.
 */
const GUARD_MS = 30_000;

/** A TCP server on port 0 that runs `handler` for each connection and closes it afterwards. */
function serve(handler: (conn: Deno.TcpConn) => Promise<unknown>) {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const conns = new Set<Deno.TcpConn>();
  const tasks: Promise<void>[] = [];
  const accepting = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      tasks.push(
        handler(conn).then(() => {}, () => {}).finally(() => {
          conns.delete(conn);
          tryClose(conn);
        }),
      );
    }
  })().catch(() => {});
  return {
    port: listener.addr.port,
    async [Symbol.asyncDispose]() {
      listener.close();
      for (const conn of conns) tryClose(conn);
      await accepting;
      await Promise.all(tasks);
    },
  };
}

function tryClose(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* already closed */ }
}

/** Writes back every byte it reads. */
async function echo(conn: Deno.TcpConn): Promise<void> {
  const buf = new Uint8Array(16 * 1024);
  for (let n; (n = await conn.read(buf)) !== null;) {
    await writeAll(conn, buf.subarray(0, n));
  }
}

/** A handler that sends `data` then closes. */
function sender(data: Uint8Array) {
  return (conn: Deno.TcpConn) => writeAll(conn, data);
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let i = 0; i < data.length;) i += await conn.write(data.subarray(i));
}

/** Rejects if `p` has not settled within {@link GUARD_MS}. */
function bounded<T>(p: Promise<T>, what: string): Promise<T> {
  const signal = AbortSignal.timeout(GUARD_MS);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Error(`Timed out waiting for ${what}`));
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() =>
      signal.removeEventListener("abort", onAbort)
    );
  });
}

/** Reads until EOF; returns the bytes and the size of every read. */
async function readToEnd(
  conn: Deno.Conn,
): Promise<{ data: Uint8Array; reads: number[] }> {
  const reads: number[] = [];
  const parts: Uint8Array[] = [];
  const buf = new Uint8Array(64 * 1024);
  for (let n; (n = await bounded(conn.read(buf), "a read")) !== null;) {
    reads.push(n);
    parts.push(buf.slice(0, n));
  }
  return { data: concat(parts), reads };
}

/** Reads exactly `n` bytes. */
async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  for (let i = 0; i < n;) {
    const got = await bounded(conn.read(out.subarray(i)), "a read");
    if (got === null) throw new Error(`EOF after ${i} of ${n} bytes`);
    i += got;
  }
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let i = 0;
  for (const p of parts) {
    out.set(p, i);
    i += p.length;
  }
  return out;
}

function bytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 7 + 3) & 0xff;
  return out;
}

const text = (s: string) => new TextEncoder().encode(s);
const connect = (port: number) => Deno.connect({ hostname: HOST, port });
const upstream = (port: number) => ({ hostname: HOST, port });
const timeout = () => ({ signal: AbortSignal.timeout(GUARD_MS) });

Deno.test("startProxy forwards bytes unchanged both ways with no toxics", async () => {
  await using server = serve(echo);
  await using proxy = await startProxy({ upstreams: [upstream(server.port)] });
  using client = await connect(proxy.port);
  const payload = crypto.getRandomValues(new Uint8Array(65536)).map((_, i, a) =>
    a[i]! ^ i
  );
  const big = concat([payload, payload, payload, payload]); // 256 KiB, exercises back-pressure
  const [, echoed] = await Promise.all([
    writeAll(client, big),
    readExactly(client, big.length),
  ]);
  assertEquals(echoed, big);
  assertEquals(proxy.stats.bytesUp, big.length);
  assertEquals(proxy.stats.bytesDown, big.length);
  assertEquals(proxy.stats.connections, 1);
  assertEquals(proxy.stats.active, 1);
});

Deno.test("startProxy slicer delivers downstream data in pieces of at most maxBytes", async () => {
  // TCP may merge pieces that arrive between two reads, so read sizes prove
  // little. Time does: each piece is followed by delayMs, so 64 bytes in pieces
  // of at most 7 take at least ceil(64 / 7) = 10 delays from first byte to EOF.
  const data = bytes(64);
  const delayMs = 5;
  await using server = serve(sender(data));
  await using proxy = await startProxy({
    upstreams: [upstream(server.port)],
    slicer: { minBytes: 1, maxBytes: 7, delayMs },
    seed: 1,
  });
  using client = await connect(proxy.port);
  const first = await readExactly(client, 1);
  const start = performance.now();
  const { data: rest, reads } = await readToEnd(client);
  const took = performance.now() - start;
  assertEquals(concat([first, rest]), data);
  assert_(
    took >= 9 * delayMs,
    `first byte to EOF took ${took} ms, expected >= 50 ms`,
  );
  assert_(reads.length > 1, `the data came in ${reads.length} read(s)`);
});

Deno.test("startProxy lifetime cuts a connection with FIN when resetProbability is 0", async () => {
  await using server = serve(echo);
  await using proxy = await startProxy({
    upstreams: [upstream(server.port)],
    lifetime: { minMs: 10, maxMs: 20 },
  });
  const opened = proxy.waitFor("open", timeout());
  const cut = proxy.waitFor("cut", timeout());
  using client = await connect(proxy.port);
  const { lifetimeMs } = await opened;
  assert_(
    lifetimeMs !== undefined && lifetimeMs >= 10 && lifetimeMs <= 20,
    `${lifetimeMs}`,
  );
  assertEquals(await bounded(client.read(new Uint8Array(8)), "EOF"), null);
  assertEquals(await cut, {
    type: "cut",
    id: 1,
    reason: "lifetime",
    reset: false,
  });
  assertEquals(proxy.stats.cuts, 1);
  assertEquals(proxy.stats.resets, 0);
});

Deno.test("startProxy lifetime with resetProbability 1 resets the connection", async () => {
  await using server = serve(echo);
  await using proxy = await startProxy({
    upstreams: [upstream(server.port)],
    lifetime: { minMs: 5, maxMs: 10 },
    resetProbability: 1,
  });
  const closed = proxy.waitFor("close", timeout());
  using client = await connect(proxy.port);
  await assertRejects(
    () => bounded(client.read(new Uint8Array(8)), "a reset"),
    Deno.errors.ConnectionReset,
  );
  await closed;
  assertEquals(proxy.stats.resets, 1);
  assertEquals(proxy.stats.active, 0);
});

Deno.test("startProxy cutAfterBytesOnce delivers exactly N bytes on the first connection only", async () => {
  const data = bytes(100);
  await using server = serve(sender(data));
  await using proxy = await startProxy({
    upstreams: [upstream(server.port)],
    cutAfterBytes: 37,
    cutAfterBytesOnce: true,
  });
  const cut = proxy.waitFor("cut", timeout());
  {
    using first = await connect(proxy.port);
    assertEquals((await readToEnd(first)).data, data.subarray(0, 37));
  }
  assertEquals(await cut, {
    type: "cut",
    id: 1,
    reason: "bytes",
    reset: false,
  });
  using second = await connect(proxy.port);
  assertEquals((await readToEnd(second)).data, data);
  assertEquals(proxy.stats.cuts, 1);
});

Deno.test("startProxy cutAfterBytes applies to every connection without the once flag", async () => {
  await using server = serve(sender(bytes(50)));
  await using proxy = await startProxy({
    upstreams: [upstream(server.port)],
    cutAfterBytes: 5,
  });
  for (let i = 0; i < 2; i++) {
    using client = await connect(proxy.port);
    assertEquals((await readToEnd(client)).data, bytes(5));
  }
});

Deno.test("startProxy black hole drops bytes while on and forwards again when off", async () => {
  await using server = serve(echo);
  await using proxy = await startProxy({ upstreams: [upstream(server.port)] });
  using client = await connect(proxy.port);
  await writeAll(client, text("ping"));
  assertEquals(await readExactly(client, 4), text("ping"));

  const dropped = proxy.waitFor("drop", timeout());
  proxy.setBlackhole(true);
  assert_(proxy.blackholed);
  await writeAll(client, text("lost"));
  assertEquals(await dropped, {
    type: "drop",
    id: 1,
    direction: "up",
    bytes: 4,
  });
  assertEquals(proxy.stats.bytesDropped, 4);

  proxy.setBlackhole(false);
  await writeAll(client, text("back"));
  // Had "lost" leaked, the echo would return it first.
  assertEquals(await readExactly(client, 4), text("back"));
  assertEquals(proxy.stats.bytesUp, 8);
});

Deno.test("FaultProxy.blackhole ends its window by itself", async () => {
  await using server = serve(echo);
  await using proxy = await startProxy({ upstreams: [upstream(server.port)] });
  const off = proxy.waitFor("blackhole", {
    ...timeout(),
    filter: (e) => !e.on,
  });
  proxy.blackhole(10);
  assert_(proxy.blackholed);
  await off;
  assert_(!proxy.blackholed);
});

Deno.test("startProxy sends each new connection to the next upstream, round-robin", async () => {
  await using a = serve(sender(text("A")));
  await using b = serve(sender(text("B")));
  await using proxy = await startProxy({
    upstreams: [upstream(a.port), upstream(b.port)],
  });
  const seen: string[] = [];
  for (let i = 0; i < 3; i++) {
    using client = await connect(proxy.port);
    seen.push(new TextDecoder().decode((await readToEnd(client)).data));
  }
  assertEquals(seen, ["A", "B", "A"]);
});

Deno.test("startProxy closes the downstream connection when the upstream refuses", async () => {
  const gone = Deno.listen({ hostname: HOST, port: 0 });
  const port = gone.addr.port;
  gone.close();
  await using proxy = await startProxy({ upstreams: [upstream(port)] });
  const events: string[] = [];
  proxy.events.addEventListener("open", (e) => events.push(e.type));
  const closed = proxy.waitFor("close", timeout());
  using client = await connect(proxy.port);
  assertEquals(await bounded(client.read(new Uint8Array(8)), "EOF"), null);
  const event = await closed;
  assert_(event.error?.includes("ECONNREFUSED"), event.error);
  assertEquals(events, []);
  assertEquals(proxy.stats.active, 0);
});

Deno.test("FaultProxy.cutAll resets every open connection", async () => {
  await using server = serve(echo);
  await using proxy = await startProxy({ upstreams: [upstream(server.port)] });
  using c1 = await connect(proxy.port);
  using c2 = await connect(proxy.port);
  for (const c of [c1, c2]) { // both links are open once each echoes
    await writeAll(c, text("x"));
    await readExactly(c, 1);
  }
  assertEquals(await proxy.cutAll({ reset: true }), 2);
  for (const c of [c1, c2]) {
    await assertRejects(
      () => bounded(c.read(new Uint8Array(8)), "a reset"),
      Deno.errors.ConnectionReset,
    );
  }
  assertEquals(proxy.stats.resets, 2);
  assertEquals(await proxy.cutAll(), 0);
});

Deno.test("startProxy latency delays each direction by at least ms", async () => {
  await using server = serve(echo);
  await using proxy = await startProxy({
    upstreams: [upstream(server.port)],
    latency: { ms: 25 },
  });
  using client = await connect(proxy.port);
  const start = performance.now();
  await writeAll(client, text("hi"));
  assertEquals(await readExactly(client, 2), text("hi"));
  const rtt = performance.now() - start;
  assert_(rtt >= 48, `round trip ${rtt} ms, expected >= 50 ms`);
});

Deno.test("startProxy bandwidth spreads data over time at bytesPerSecond", async () => {
  await using server = serve(sender(bytes(1000)));
  await using proxy = await startProxy({
    upstreams: [upstream(server.port)],
    bandwidth: { bytesPerSecond: 10_000 },
  });
  const start = performance.now();
  using client = await connect(proxy.port);
  assertEquals((await readToEnd(client)).data, bytes(1000));
  const took = performance.now() - start;
  // 1000 bytes take 100 ms at 10 kB/s; without the limit they take about 1 ms.
  assert_(took >= 98, `took ${took} ms, expected >= 100 ms`);
});

/** How much a blasting sender got the kernel to take, live. */
interface Blast {
  accepted: number;
  /** Resolves once the sender has written everything. */
  finished: Promise<number>;
}

/**
 * A handler that writes `total` bytes (a {@link bytes} pattern) as fast as its
 * socket takes them, counting in `blast.accepted` what each write handed to the kernel.
 */
function blaster(total: number): {
  blast: Blast;
  handler: (conn: Deno.TcpConn) => Promise<void>;
} {
  let finish!: (n: number) => void;
  const blast: Blast = {
    accepted: 0,
    finished: new Promise((r) => finish = r),
  };
  const data = bytes(total);
  return {
    blast,
    handler: async (conn) => {
      while (blast.accepted < total) {
        const end = Math.min(total, blast.accepted + 64 * 1024);
        blast.accepted += await conn.write(data.subarray(blast.accepted, end));
      }
      finish(blast.accepted);
      // Stay open until the test closes the server, so nothing is cut short.
      await conn.read(new Uint8Array(1));
    },
  };
}

const sleepMs = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Reads whatever arrives within `ms`. A read still pending when time runs out
 * is not lost: `rest` resolves with its bytes (empty on EOF or an error).
 */
async function readFor(
  conn: Deno.Conn,
  ms: number,
): Promise<{ data: Uint8Array; rest: Promise<Uint8Array> }> {
  const parts: Uint8Array[] = [];
  const until = performance.now() + ms;
  const next = () => {
    const buf = new Uint8Array(64 * 1024);
    return conn.read(buf).then((n) => buf.subarray(0, n ?? 0), () => null);
  };
  let pending = next();
  for (;;) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const got = await Promise.race([
      pending,
      new Promise<"late">((r) =>
        timer = setTimeout(() => r("late"), until - performance.now())
      ),
    ]);
    clearTimeout(timer);
    if (got === "late") break;
    if (got === null || got.length === 0) {
      return { data: concat(parts), rest: Promise.resolve(new Uint8Array()) };
    }
    parts.push(got);
    pending = next();
  }
  return {
    data: concat(parts),
    rest: pending.then((b) => b ?? new Uint8Array()),
  };
}

/** What the loopback kernel buffers alone can absorb is a few MB; send well past that. */
const BLAST = 24 * 1024 * 1024;

/** How long {@link starve} blocks the thread, the proxy's with it. */
const STALL_MS = 300;

/**
 * Blocks this thread for {@link STALL_MS}, as a busy CPU would starve it: the
 * proxy, which runs on it, forwards nothing meanwhile and its timers fire late.
 * Returns when the stall began and ended.
 */
function starve(): { from: number; to: number } {
  const from = performance.now();
  while (performance.now() - from < STALL_MS) { /* busy */ }
  return { from, to: performance.now() };
}

Deno.test("startProxy bloat takes everything the sender writes at once, yet never exceeds the rate, even after the proxy was starved", async () => {
  const { blast, handler } = blaster(BLAST);
  await using server = serve(handler);
  const rate = 100_000;
  /** One piece: 10 ms worth (proxy/_pacer.ts). */
  const burst = rate / 100;
  await using proxy = await startProxy({
    upstreams: [upstream(server.port)],
    bloat: { bytesPerSecond: rate },
  });
  // No byte can leave the proxy towards the client before it connects.
  const t0 = performance.now();
  using client = await connect(proxy.port);
  // At 100 kB/s the 24 MB take 4 minutes to deliver; the sender is done in a moment.
  assertEquals(await bounded(blast.finished, "the sender to finish"), BLAST);
  const writeMs = performance.now() - t0;
  assert_(
    writeMs < GUARD_MS,
    `bloat made the sender wait ${writeMs} ms for ${BLAST} bytes`,
  );
  const stall = starve();
  // Every byte read by time t left the proxy within [t0, stall.from] or
  // [stall.to, t], and the pacer lets at most rate * w + one piece leave in
  // any window w. A pacer that caught up after the stall would exceed this by
  // STALL_MS worth (30 kB); bytes the kernel held for this reader, however
  // late it reads, were counted when they left.
  const allowed = (t: number) =>
    (rate * (stall.from - t0 + (t - stall.to))) / 1000 + 2 * burst;
  const parts: Uint8Array[] = [];
  let got = 0;
  let t = performance.now();
  for (const until = t + 500; t < until;) {
    const buf = new Uint8Array(64 * 1024);
    const n = await bounded(client.read(buf), "a read");
    t = performance.now();
    assert_(n !== null, "EOF");
    parts.push(buf.subarray(0, n));
    got += n;
    assert_(
      got <= allowed(t),
      `delivered ${got} bytes ${t - t0} ms after the connection, ${
        stall.to - stall.from
      } ms of it starved: more than ${allowed(t)} (${rate} B/s)`,
    );
  }
  // Timers under load only ever deliver later, so a loose floor; an unlimited
  // link would have failed above with megabytes.
  const floor = (rate * (t - stall.to)) / 1000 / 4;
  assert_(got >= floor, `delivered only ${got} bytes, less than ${floor}`);
  assertEquals(concat(parts), bytes(got));
});

Deno.test("startProxy pushback makes the sender's writes block, unlike bloat", async () => {
  const rate = 100_000;
  const acceptedWithin = async (toxic: "bloat" | "pushback") => {
    const { blast, handler } = blaster(BLAST);
    await using server = serve(handler);
    await using proxy = await startProxy({
      upstreams: [upstream(server.port)],
      [toxic]: { bytesPerSecond: rate },
    });
    using client = await connect(proxy.port);
    await readExactly(client, 1);
    // Bloat takes the whole blast (4 minutes' worth at the rate): wait for
    // it, however slow the host. Pushback does not: a second shows it,
    // and a slower host only lets fewer bytes through.
    if (toxic === "bloat") await bounded(blast.finished, "the blast");
    else await Promise.race([blast.finished, sleepMs(1000)]);
    return { accepted: blast.accepted, held: proxy.stats.bytesHeldDown };
  };
  const { accepted: bloat, held: bloatHeld } = await acceptedWithin("bloat");
  const { accepted: pushback, held } = await acceptedWithin("pushback");
  assert_(
    held <= 3 * PUSHBACK_BYTES,
    `under pushback the proxy holds ${held} bytes`,
  );
  assert_(bloatHeld > BLAST / 2, `under bloat the proxy holds ${bloatHeld}`);
  // Loopback kernel buffers take a few MB (tcp_wmem autotuning); the proxy's
  // share is PUSHBACK_BYTES, and the link drained about 100 kB in that second.
  assertEquals(bloat, BLAST, "bloat pushed back");
  assert_(
    pushback < BLAST / 3,
    `under pushback the sender still wrote ${pushback} of ${BLAST} bytes within 1 s`,
  );
});

Deno.test("startProxy pushback delivers every byte, in order, at the rate", async () => {
  const data = bytes(20_000);
  await using server = serve(sender(data));
  await using proxy = await startProxy({
    upstreams: [upstream(server.port)],
    pushback: { bytesPerSecond: 100_000 },
  });
  const start = performance.now();
  using client = await connect(proxy.port);
  assertEquals((await readToEnd(client)).data, data);
  const took = performance.now() - start;
  // 20 kB take 200 ms at 100 kB/s.
  assert_(took >= 195, `took ${took} ms, expected >= 200 ms`);
});

Deno.test("FaultProxy.setFrozen forwards nothing either way while frozen and everything after", async () => {
  await using server = serve(echo);
  await using proxy = await startProxy({ upstreams: [upstream(server.port)] });
  using client = await connect(proxy.port);
  await writeAll(client, text("ping"));
  assertEquals(await readExactly(client, 4), text("ping"));

  const on = proxy.waitFor("freeze", timeout());
  proxy.setFrozen(true);
  assertEquals(await on, { type: "freeze", on: true });
  assert_(proxy.frozen);
  await writeAll(client, text("held"));
  const buf = new Uint8Array(16);
  const reply = client.read(buf);
  const early = await Promise.race([reply, sleepMs(150).then(() => "none")]);
  assertEquals(early, "none", "a frozen proxy forwarded the echo");
  assertEquals(
    [proxy.stats.bytesUp, proxy.stats.bytesDown],
    [4, 4],
    "a frozen proxy forwarded bytes",
  );
  assertEquals(proxy.stats.active, 1, "the freeze closed the connection");

  const off = proxy.waitFor("freeze", timeout());
  proxy.setFrozen(false);
  assertEquals(await off, { type: "freeze", on: false });
  const n = await bounded(reply, "the echo after the thaw");
  let got: Uint8Array = buf.slice(0, n ?? 0);
  if (got.length < 4) {
    got = concat([got, await readExactly(client, 4 - got.length)]);
  }
  assertEquals(got, text("held"));
});

Deno.test("FaultProxy.freeze stops reading the sender, even under bloat, and loses nothing when it ends by itself", async () => {
  const total = BLAST;
  const { blast, handler } = blaster(total);
  await using server = serve(handler);
  // Bloat alone would read all of it at once (see above); only the freeze stops it.
  await using proxy = await startProxy({
    upstreams: [upstream(server.port)],
    bloat: { bytesPerSecond: 1e9 },
  });
  proxy.setFrozen(true);
  using client = await connect(proxy.port);
  await proxy.waitFor("open", timeout());
  await sleepMs(500);
  assertEquals(proxy.stats.bytesDown, 0, "a frozen proxy forwarded bytes");
  assert_(
    blast.accepted < total,
    `a frozen proxy kept reading: the sender wrote all ${total} bytes`,
  );
  const off = proxy.waitFor("freeze", {
    ...timeout(),
    filter: (e) => !e.on,
  });
  proxy.freeze(20); // replaces the open-ended freeze with one that ends by itself
  await off;
  assert_(!proxy.frozen);
  assertEquals(await readExactly(client, total), bytes(total));
  assertEquals(await bounded(blast.finished, "the sender to finish"), total);
});

Deno.test("FaultProxy.setFrozen holds the bytes the proxy already has", async () => {
  const data = bytes(3000);
  await using server = serve(sender(data));
  // 3000 bytes at 10 kB/s: the proxy holds most of them for 300 ms.
  await using proxy = await startProxy({
    upstreams: [upstream(server.port)],
    bandwidth: { bytesPerSecond: 10_000 },
  });
  using client = await connect(proxy.port);
  const head = await readExactly(client, 1);
  proxy.setFrozen(true);
  const before = proxy.stats.bytesDown;
  assert_(
    proxy.stats.bytesHeldDown > 0 && proxy.stats.bytesHeldUp === 0,
    `held ${JSON.stringify(proxy.stats)}`,
  );
  const { data: during, rest: late } = await readFor(client, 200);
  // A piece already being written when the freeze began may still land.
  assert_(
    proxy.stats.bytesDown - before <= 100 && during.length <= 200,
    `a frozen proxy forwarded ${proxy.stats.bytesDown - before} bytes it held`,
  );
  proxy.setFrozen(false);
  const pending = await bounded(late, "the read pending across the thaw");
  const rest = await readToEnd(client);
  assertEquals(concat([head, during, pending, rest.data]), data);
  assertEquals(
    proxy.stats.bytesHeldDown,
    0,
    "delivered bytes still count as held",
  );
});

Deno.test("FaultProxy.freeze holds a FIN until the thaw", async () => {
  await using server = serve(sender(text("bye")));
  await using proxy = await startProxy({ upstreams: [upstream(server.port)] });
  proxy.setFrozen(true);
  using client = await connect(proxy.port);
  const all = readToEnd(client);
  const early = await Promise.race([all, sleepMs(150).then(() => "none")]);
  assertEquals(early, "none", "the FIN or the data passed a frozen proxy");
  proxy.setFrozen(false);
  assertEquals((await all).data, text("bye"));
});

Deno.test("startProxy draws the same lifetimes from the same seed", async () => {
  await using server = serve(echo);
  const lifetimes = async (seed: number) => {
    await using proxy = await startProxy({
      upstreams: [upstream(server.port)],
      lifetime: { minMs: 60_000, maxMs: 120_000 },
      seed,
    });
    assertEquals(proxy.seed, seed);
    const out: number[] = [];
    for (let i = 0; i < 3; i++) {
      const opened = proxy.waitFor("open", timeout());
      using _client = await connect(proxy.port);
      out.push((await opened).lifetimeMs!);
    }
    return out;
  };
  const a = await lifetimes(7);
  assertEquals(await lifetimes(7), a);
  assert_(JSON.stringify(await lifetimes(8)) !== JSON.stringify(a));
});

Deno.test("FaultProxy.close closes every connection and stops listening", async () => {
  await using server = serve(sender(bytes(10)));
  const proxy = await startProxy({
    upstreams: [upstream(server.port)],
    lifetime: { minMs: 60_000, maxMs: 60_000 },
    slicer: { minBytes: 1, maxBytes: 1, delayMs: 60_000 },
    blackhole: { everyMs: 60_000, forMs: 1000 },
  });
  using client = await connect(proxy.port);
  // One byte through means the proxy holds the other nine and sleeps in the slicer delay.
  assertEquals(await readExactly(client, 1), bytes(1));
  proxy.blackhole(60_000);
  await bounded(proxy.close(), "close()");
  await proxy.close(); // idempotent
  assertEquals(await bounded(client.read(new Uint8Array(8)), "EOF"), null);
  assertEquals(proxy.stats.active, 0);
  assertEquals(proxy.stats.bytesDown, 1);
  assertEquals(proxy.stats.bytesHeldDown, 0, "a closed connection holds bytes");
  await assertRejects(() => connect(proxy.port), Deno.errors.ConnectionRefused);
});

Deno.test("startProxy rejects options out of range", async () => {
  await assertRejects(
    () => startProxy({ upstreams: [] }),
    RangeError,
    "upstreams",
  );
  await assertRejects(
    () =>
      startProxy({
        upstreams: [upstream(1)],
        slicer: { minBytes: 0, maxBytes: 7 },
      }),
    RangeError,
    "slicer",
  );
  await assertRejects(
    () => startProxy({ upstreams: [upstream(1)], resetProbability: 2 }),
    RangeError,
    "resetProbability",
  );
  await assertRejects(
    () =>
      startProxy({
        upstreams: [upstream(1)],
        bloat: { bytesPerSecond: 10 },
        pushback: { bytesPerSecond: 10 },
      }),
    RangeError,
    "at most one of bandwidth, bloat and pushback",
  );
  await assertRejects(
    () =>
      startProxy({
        upstreams: [upstream(1)],
        freeze: { everyMs: 2 ** 31, forMs: 10 },
      }),
    RangeError,
    "freeze",
  );
  await using proxy = await startProxy({ upstreams: [upstream(1)] });
  assertThrows(() => proxy.freeze(-1), RangeError, "freeze");
  assertThrows(() => proxy.freeze(Infinity), RangeError, "freeze");
  assert_(!proxy.frozen);
});
