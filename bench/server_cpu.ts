// deno-lint-ignore-file no-console -- a benchmark script: figures go to stdout.
/**
 * `deno task bench:server`: CPU a real server process spends per number while
 * streaming, measured from `/proc/PID/stat` over a steady window, with a
 * lightweight protocol driver (not the full client) so the driver does not
 * starve the server on a small host. The per-session work (hello, final
 * checksum, ack) is measured separately from the per-number work. The
 * driver speaks protocol v2 and acknowledges as the real client does (one
 * ACK per quarter window; a keep-alive only after `ackIntervalMs` without
 * one), so its ACKs are what the server handles per number in real use.
 *
 * ```sh
 * deno task bench:server [--sessions 2000] [--interval 100ms] [--seconds 10] [--ramp 0] [--json]
 *   [--cpu-prof DIR] [--server-v8-flags=--max-semi-space-size=1]
 * ```
 *
 * Needs `-A`: Deno reads `/proc` only with all permissions.
 *
 * @module
 */

import { benchServer, benchSettings } from "./_setup.ts";
import { FrameDecoder } from "../protocol/frame.ts";
import {
  decodeMessage,
  encodeMessage,
  MessageType,
  PROTOCOL_VERSION,
  type Welcome,
} from "../protocol/messages.ts";
import { readProc } from "../load/_proc.ts";
import { cpuUsage } from "node:process";

const {
  sessions,
  interval,
  intervalMs,
  seconds,
  rampMs,
  count,
  json,
  cpuProf,
  serverV8Flags,
} = benchSettings(Deno.args);
const { port, server } = await benchServer(interval, {
  cpuProf,
  v8Flags: serverV8Flags,
});

/**
 * One v2 session over a bare socket, acknowledging exactly as the real client
 * does (`client/session.ts`): HELLO; after WELCOME an ACK(nextOffset) as soon
 * as `nextOffset − lastAck ≥ ceil(window / 4)` (checked after every number),
 * and a keep-alive ACK only when no ACK has gone out for `ackIntervalMs` (one
 * timer, armed for `lastAckAt + ackIntervalMs` and re-armed when it fires,
 * like the client's loop); ACK(count) on FINAL, close on DONE. No checksums:
 * only the server's work is measured.
 */
let acksSent = 0, keepAlivesSent = 0;

async function session(onNumber: () => void): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const token = crypto.getRandomValues(new Uint8Array(16));
  let every = 1, next = 0, lastAck = 0, lastAckAt = 0, ackIntervalMs = 0;
  let closed = false;
  let keepAlive: ReturnType<typeof setTimeout> | undefined;
  const ack = (nextOffset: number) => {
    lastAck = nextOffset;
    lastAckAt = performance.now();
    acksSent++;
    return conn.write(encodeMessage({ type: "ack", nextOffset }));
  };
  const armKeepAlive = () => {
    clearTimeout(keepAlive);
    if (closed) return;
    keepAlive = setTimeout(
      onKeepAlive,
      Math.max(0, lastAckAt + ackIntervalMs - performance.now()),
    );
  };
  const onKeepAlive = () => {
    if (closed) return;
    if (performance.now() - lastAckAt >= ackIntervalMs) {
      keepAlivesSent++;
      ack(next).catch(() => {});
    }
    armKeepAlive();
  };
  await conn.write(
    encodeMessage({
      type: "hello",
      version: PROTOCOL_VERSION,
      id: crypto.randomUUID(),
      count,
      token,
    }),
  );
  const decoder = new FrameDecoder();
  const buf = new Uint8Array(4096);
  try {
    while (true) {
      const n = await conn.read(buf);
      if (n === null) throw new Error("server closed early");
      for (const f of decoder.push(buf.subarray(0, n))) {
        if (f.type === MessageType.NUMBER) {
          onNumber();
          next++;
          if (next - lastAck >= every) await ack(next);
        } else if (f.type === MessageType.WELCOME) {
          const w = decodeMessage(f) as Welcome;
          every = Math.max(1, Math.ceil(w.window / 4));
          ackIntervalMs = Math.max(1, w.ackIntervalMs);
          next = lastAck = w.nextOffset;
          lastAckAt = performance.now();
          armKeepAlive();
        } else if (f.type === MessageType.FINAL) {
          closed = true;
          clearTimeout(keepAlive);
          next = count;
          await ack(count);
        } else if (f.type === MessageType.DONE) return;
        else if (f.type === MessageType.ERROR) {
          throw new Error("server refused a session");
        }
      }
    }
  } finally {
    closed = true;
    clearTimeout(keepAlive);
    conn.close();
  }
}

try {
  await new Promise((r) => setTimeout(r, 500));
  const idle0 = (await readProc(server.pid))!;
  let numbers = 0;
  // Sessions start spread over one interval, as they would in steady state.
  const running: Promise<void>[] = [];
  const setup0 = (await readProc(server.pid))!;
  for (let i = 0; i < sessions; i++) {
    running.push(session(() => numbers++));
    if (i % 100 === 99) {
      await new Promise((r) =>
        setTimeout(r, Math.max(1, (rampMs * 100) / sessions))
      );
    }
  }
  await new Promise((r) => setTimeout(r, 2000));
  const a = (await readProc(server.pid))!,
    da = cpuUsage(),
    n0 = numbers,
    k0 = acksSent,
    q0 = keepAlivesSent,
    t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const b = (await readProc(server.pid))!,
    db = cpuUsage(da),
    n1 = numbers,
    k1 = acksSent,
    q1 = keepAlivesSent,
    t1 = performance.now();
  await Promise.all(running);
  const end = (await readProc(server.pid))!;
  const steadyUs = (b.cpuS - a.cpuS) * 1e6;
  const perNumber = steadyUs / (n1 - n0);
  const totalUs = (end.cpuS - setup0.cpuS) * 1e6;
  const out = {
    sessions,
    intervalMs,
    count,
    numbersPerSecond: Math.round(((n1 - n0) * 1000) / (t1 - t0)),
    steadyCpuPct: +((100 * (b.cpuS - a.cpuS)) / ((t1 - t0) / 1000)).toFixed(1),
    usPerNumber: +perNumber.toFixed(1),
    usPerSessionOverhead: +((totalUs - perNumber * numbers) / sessions).toFixed(
      0,
    ),
    rssMiB: +b.rssMiB.toFixed(1),
    rssKiBPerSession: Math.round(((b.rssMiB - idle0.rssMiB) * 1024) / sessions),
    /** ACKs the driver sent per number in the steady window (server work per number includes them). */
    acksPerNumber: +((k1 - k0) / (n1 - n0)).toFixed(3),
    /** Of those, keep-alives (no ACK for `ackIntervalMs`). */
    keepAlivesPerNumber: +((q1 - q0) / (n1 - n0)).toFixed(3),
    projected19kAt1sPct: +((perNumber * 19_000) / 1e4).toFixed(1),
    /** This driver's own CPU per number in the window (it runs on the server's cores). */
    driverUsPerNumber: +((db.user + db.system) / (n1 - n0)).toFixed(1),
  };
  if (json) console.log(JSON.stringify(out));
  else {
    console.log(
      `${sessions} sessions at ${intervalMs} ms: ${out.numbersPerSecond} numbers/s, ${out.acksPerNumber} ACKs per number (${out.keepAlivesPerNumber} keep-alives)`,
    );
    console.log(
      `server CPU ${out.steadyCpuPct}% of a core → ${out.usPerNumber} µs per number (/proc, steady ${seconds} s); this driver ${out.driverUsPerNumber} µs per number`,
    );
    console.log(
      `per-session overhead (hello … done) ≈ ${out.usPerSessionOverhead} µs; RSS ${out.rssMiB} MiB, ${out.rssKiBPerSession} KiB per session`,
    );
    console.log(
      `projected: 19,000 sessions at 1 s ≈ ${out.projected19kAt1sPct}% of a core`,
    );
  }
} finally {
  await server.stop();
}
