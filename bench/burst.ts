// deno-lint-ignore-file no-console -- a benchmark script: figures go to stdout.
/**
 * `deno task bench:burst`: a 65,535-number session at interval 0, verified end
 * to end by the real client, against the raw loopback write throughput of the
 * same bytes measured in the same run and the same process.
 *
 * ```sh
 * deno task bench:burst [--runs 15] [--count 65535] [--json]
 * ```
 *
 * - seqstream: `startServer({ intervalMs: 0 })` and `runClient()` in this
 *   process; the time runs from `runClient()` to its PASS result (connect,
 *   hello, welcome, every number decoded and checksummed, final, ack, done).
 * - raw: a `Deno.listen` server writes the same number of bytes, in chunks of
 *   the server's burst size (its largest window, 4,096 frames), to a `Deno.connect` client that
 *   reads them into a 64 KiB buffer; the time runs from connect to EOF.
 *
 * Targets: seqstream < 50 ms, and at least half the raw throughput. For
 * scale it also times a naive sender that awaits one write per 11-byte frame.
 *
 * With `--link-bytes-per-sec N` it measures flow control instead (issue 8):
 * the same session through the fault proxy (`proxy/fault_proxy.ts`) limited
 * to N bytes per second and direction, a fresh server with `/metrics`:
 *
 * ```sh
 * deno task bench:burst --link-bytes-per-sec 1000000 [--link bandwidth|bloat|pushback] [--runs 3]
 * ```
 *
 * - the time from `runClient()` to PASS, against the link's floor
 *   (bytes ÷ rate);
 * - the server's own figures: `seqstream_unacked_peak` and `seqstream_window`
 *   from `/metrics` (the largest `sent − acked` any stream reached, over
 *   every run), and the in-flight count and the proxy's held bytes sampled
 *   every 5 ms; ACKs received per run.
 *
 * `bandwidth` holds up to 64 KiB in the proxy, then pushes back; `bloat`
 * never pushes back (the server's writes all succeed at once), so there only
 * the window bounds what piles up in the link.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { runClient } from "../client/client.ts";
import { SERVER_DEFAULTS } from "../common/defaults.ts";
import { LineLogger } from "../common/logger.ts";
import {
  encodeMessage,
  encodeNumberInto,
  NUMBER_FRAME_SIZE,
} from "../protocol/messages.ts";
import { startProxy } from "../proxy/fault_proxy.ts";
import { startServer } from "../server/server.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    runs: { type: "string" },
    count: { type: "string", default: "65535" },
    json: { type: "boolean", default: false },
    "link-bytes-per-sec": { type: "string" },
    link: { type: "string", default: "bandwidth" },
  },
});
const linkRate = values["link-bytes-per-sec"] === undefined
  ? undefined
  : Number(values["link-bytes-per-sec"]);
const runs = Number(values.runs ?? (linkRate === undefined ? "15" : "3"));
const count = Number(values.count);

/** Bytes a `count`-number session puts on the wire, server to client. */
function sessionBytes(count: number): number {
  const welcome = encodeMessage({
    type: "welcome",
    count,
    nextOffset: 0,
    token: new Uint8Array(16),
    intervalMs: 0,
    ttlMs: 0,
    window: 0,
    ackIntervalMs: 0,
  });
  const final = encodeMessage({
    type: "final",
    offset: count - 1,
    value: 0,
    sum: 0,
    crc32: 0,
  });
  return welcome.length + (count - 1) * NUMBER_FRAME_SIZE + final.length +
    encodeMessage({ type: "done" }).length;
}

/** The server's burst: an unpaced stream's flow-control window. */
const BURST_FRAMES = SERVER_DEFAULTS.maxWindow;
const BURST_BYTES = BURST_FRAMES * NUMBER_FRAME_SIZE;

/** Serves `total` bytes to each connection in burst-sized writes, then closes it. */
function rawServer(total: number): Deno.Listener {
  const chunk = new Uint8Array(BURST_BYTES);
  for (let i = 0, pos = 0; i < BURST_FRAMES; i++) {
    pos = encodeNumberInto(chunk, pos, i, i);
  }
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const conn of listener) {
      (async () => {
        conn.setNoDelay(true);
        let left = total;
        while (left > 0) {
          const n = await conn.write(
            chunk.subarray(0, Math.min(left, chunk.length)),
          );
          left -= n;
        }
        conn.close();
      })().catch(() => {});
    }
  })().catch(() => {});
  return listener;
}

async function rawOnce(port: number, total: number): Promise<number> {
  const t0 = performance.now();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const buf = new Uint8Array(64 * 1024);
  let got = 0;
  while (true) {
    const n = await conn.read(buf);
    if (n === null) break;
    got += n;
  }
  conn.close();
  const ms = performance.now() - t0;
  if (got !== total) {
    throw new Error(`raw: expected ${total} bytes, got ${got}`);
  }
  return ms;
}

/** Serves `total` bytes as separate 11-byte writes, each awaited: a naive per-message sender. */
function rawFrameServer(total: number): Deno.Listener {
  const frame = new Uint8Array(NUMBER_FRAME_SIZE);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const conn of listener) {
      (async () => {
        conn.setNoDelay(true);
        for (let left = total; left > 0;) {
          left -= await conn.write(
            frame.subarray(0, Math.min(left, frame.length)),
          );
        }
        conn.close();
      })().catch(() => {});
    }
  })().catch(() => {});
  return listener;
}

async function seqOnce(port: number): Promise<number> {
  const t0 = performance.now();
  const r = await runClient({ port, count });
  const ms = performance.now() - t0;
  if (r.result !== "PASS") {
    throw new Error(`seqstream: ${r.result} ${JSON.stringify(r.error ?? r)}`);
  }
  return ms;
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return {
    min: +s[0]!.toFixed(2),
    median: +q(0.5).toFixed(2),
    p90: +q(0.9).toFixed(2),
  };
};

/** `--link-bytes-per-sec`: the burst through a rate-limited proxy; prints and exits. */
async function linkMode(rate: number, kind: string): Promise<void> {
  if (!(rate > 0) || !["bandwidth", "bloat", "pushback"].includes(kind)) {
    throw new RangeError(
      `--link-bytes-per-sec must be > 0 and --link one of bandwidth, bloat, pushback`,
    );
  }
  const total = sessionBytes(count);
  const server = await startServer({
    intervalMs: 0,
    metricsPort: 0,
    log: new LineLogger({ level: "silent" }),
  });
  const proxy = await startProxy({
    upstreams: [{ hostname: "127.0.0.1", port: server.addr.port }],
    [kind]: { bytesPerSecond: rate },
  });
  // The same bytes from a plain writer through an identical link, for scale.
  const raw = rawServer(total);
  const rawProxy = await startProxy({
    upstreams: [{
      hostname: "127.0.0.1",
      port: (raw.addr as Deno.NetAddr).port,
    }],
    [kind]: { bytesPerSecond: rate },
  });
  const times: number[] = [], acks: number[] = [], rawTimes: number[] = [];
  let sampledInFlight = 0, heldBytes = 0;
  const sampler = setInterval(() => {
    const m = server.metrics();
    if (m.unackedNumbers > sampledInFlight) sampledInFlight = m.unackedNumbers;
    if (proxy.stats.bytesHeldDown > heldBytes) {
      heldBytes = proxy.stats.bytesHeldDown;
    }
  }, 5);
  try {
    for (let i = 0; i < runs; i++) {
      const acks0 = server.metrics().counters.acksReceived;
      times.push(await seqOnce(proxy.port));
      acks.push(server.metrics().counters.acksReceived - acks0);
    }
    for (let i = 0; i < runs; i++) {
      rawTimes.push(await rawOnce(rawProxy.port, total));
    }
  } finally {
    clearInterval(sampler);
  }
  const m = server.metrics();
  const res = await fetch(
    `http://127.0.0.1:${server.metricsAddr!.port}/metrics`,
  );
  const text = await res.text();
  const gauge = (name: string) =>
    Number(new RegExp(`^${name} (\\d+)$`, "m").exec(text)?.[1] ?? NaN);
  await proxy.close();
  await rawProxy.close();
  raw.close();
  await server.close();
  const floorMs = (total / rate) * 1000;
  const st = stats(times);
  const result = {
    count,
    bytes: total,
    link: kind,
    bytesPerSecond: rate,
    runs,
    ms: { ...st, max: +Math.max(...times).toFixed(1) },
    floorMs: +floorMs.toFixed(1),
    efficiency: +(floorMs / st.median).toFixed(3),
    rawMs: stats(rawTimes),
    window: gauge("seqstream_window"),
    unackedPeak: gauge("seqstream_unacked_peak"),
    unackedPeakFromMetricsCall: m.unackedPeak,
    sampledInFlightMax: sampledInFlight,
    proxyHeldBytesMax: heldBytes,
    windowBytes: m.window * NUMBER_FRAME_SIZE,
    acksPerRun: acks,
    neverAboveWindow: gauge("seqstream_unacked_peak") <=
      gauge("seqstream_window"),
  };
  if (values.json) {
    console.log(JSON.stringify(result));
    return;
  }
  console.log(
    `burst of ${count} numbers (${total} bytes) through a ${kind} link of ${rate} B/s, ${runs} runs`,
  );
  console.log(
    `time       min ${st.min} ms  median ${st.median} ms  max ${result.ms.max} ms; link floor ${result.floorMs} ms (${
      (result.efficiency * 100).toFixed(1)
    }% of it)`,
  );
  console.log(
    `raw writer through the same link: median ${result.rawMs.median} ms (min ${result.rawMs.min})`,
  );
  console.log(
    `/metrics   seqstream_window ${result.window}, seqstream_unacked_peak ${result.unackedPeak} → ${
      result.neverAboveWindow
        ? "never more than the window in flight"
        : "ABOVE THE WINDOW"
    }`,
  );
  console.log(
    `sampled every 5 ms: in flight at most ${sampledInFlight} numbers; proxy held at most ${heldBytes} bytes (window = ${result.windowBytes} bytes)`,
  );
  console.log(`ACKs received per run: ${acks.join(", ")}`);
}

if (linkRate !== undefined) {
  await linkMode(linkRate, values.link);
  Deno.exit(0);
}

const total = sessionBytes(count);
const server = await startServer({
  intervalMs: 0,
  log: new LineLogger({ level: "silent" }),
});
const raw = rawServer(total);
const rawPort = (raw.addr as Deno.NetAddr).port;
const rawFrames = rawFrameServer(total);
const framesPort = (rawFrames.addr as Deno.NetAddr).port;
const seq: number[] = [], plain: number[] = [], perFrame: number[] = [];
// One warm-up of each (JIT, first connection), then interleaved runs so noise hits both alike.
await seqOnce(server.addr.port);
await rawOnce(rawPort, total);
for (let i = 0; i < runs; i++) {
  seq.push(await seqOnce(server.addr.port));
  plain.push(await rawOnce(rawPort, total));
  if (i < 5) perFrame.push(await rawOnce(framesPort, total));
}
raw.close();
rawFrames.close();
await server.close();

const s = stats(seq), r = stats(plain), pf = stats(perFrame);
const mb = (ms: number) => +((total / 1e6) / (ms / 1000)).toFixed(1);
const result = {
  count,
  bytes: total,
  runs,
  seqstreamMs: s,
  rawMs: r,
  rawPerFrameWriteMs: pf,
  seqstreamMBps: mb(s.median),
  rawMBps: mb(r.median),
  ratio: +(r.median / s.median).toFixed(3),
  targets: { underMs: 50, ratioAtLeast: 0.5 },
  timeMet: s.median < 50,
  ratioMet: r.median / s.median >= 0.5,
};
if (values.json) console.log(JSON.stringify(result));
else {
  console.log(
    `burst of ${count} numbers, ${total} bytes, ${runs} runs (after one warm-up each)`,
  );
  console.log(
    `seqstream  min ${s.min} ms  median ${s.median} ms  p90 ${s.p90} ms  (${result.seqstreamMBps} MB/s)`,
  );
  console.log(
    `raw        min ${r.min} ms  median ${r.median} ms  p90 ${r.p90} ms  (${result.rawMBps} MB/s)`,
  );
  console.log(
    `raw, one awaited write per 11-byte frame: median ${pf.median} ms (5 runs; a naive sender, for scale)`,
  );
  console.log(
    `time       median ${s.median} ms vs target < 50 ms → ${
      result.timeMet ? "met" : "MISSED"
    }`,
  );
  console.log(
    `throughput ${(result.ratio * 100).toFixed(1)}% of raw vs target ≥ 50% → ${
      result.ratioMet ? "met" : "MISSED"
    }`,
  );
}
