// deno-lint-ignore-file no-console -- a benchmark script: figures go to stdout.
/**
 * `deno task bench:floor`: the platform floor under seqstream. A bare Deno
 * writer process sends an 11-byte frame per connection per interval (one
 * timer per tick, like the server's scheduler) and a bare Deno reader reads
 * them (like the client, no decoding). Each reports its own CPU per message
 * (`process.cpuUsage()`), which is what Deno's async ops plus loopback TCP
 * cost before any seqstream code runs.
 *
 * ```sh
 * deno task bench:floor [--conns 2000] [--interval 100ms] [--seconds 10] [--json]
 *   [--ack-every N] [--writer-v8-flags=--max-semi-space-size=2]
 * ```
 *
 * `--ack-every N` makes it the floor of a server that listens to its clients,
 * as a v2 server must: the reader sends a 7-byte message after every N frames
 * (4 is about the v2 ACK rate, ~0.26 per number with keep-alives), and the
 * writer keeps one 64-byte read pending on every connection, as seqstream's
 * server does. The writer then also reports its RSS growth per connection
 * (`Deno.memoryUsage().rss` at the end of the window over the same before
 * the first accept): the memory floor under `bench:server`'s RSS per session.
 *
 * @module
 */

import process from "node:process";
import { parseArgs } from "node:util";
import { parseDuration } from "../cli/duration.ts";
import { spawnDeno } from "../internal/spawn.ts";
import { NUMBER_FRAME_SIZE } from "../protocol/messages.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    role: { type: "string", default: "main" },
    conns: { type: "string", default: "2000" },
    interval: { type: "string", default: "100ms" },
    seconds: { type: "string", default: "10" },
    port: { type: "string", default: "0" },
    json: { type: "boolean", default: false },
    "ack-every": { type: "string", default: "0" },
    "writer-v8-flags": { type: "string" },
  },
});
const conns = Number(values.conns);
const intervalMs = parseDuration(values.interval);
const seconds = Number(values.seconds);
const FRAME = NUMBER_FRAME_SIZE;
const ackEvery = Number(values["ack-every"]);
if (!Number.isInteger(ackEvery) || ackEvery < 0) {
  throw new RangeError(`--ack-every must be a whole number ≥ 0`);
}
const ACK = 7; // a v2 ACK frame
const enc = new TextEncoder();

/** Accepts `conns` connections, then writes a frame to each every interval for `seconds`. */
async function writer(): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const rss0 = Deno.memoryUsage().rss;
  let acks = 0;
  const reading: Promise<void>[] = [];
  Deno.stdout.writeSync(
    enc.encode(`${(listener.addr as Deno.NetAddr).port}\n`),
  );
  const all: { conn: Deno.Conn; busy: boolean }[] = [];
  while (all.length < conns) {
    const conn = await listener.accept();
    conn.setNoDelay(true);
    all.push({ conn, busy: false });
    if (ackEvery > 0) {
      reading.push((async () => {
        const b = new Uint8Array(64);
        while (true) {
          const n = await conn.read(b).catch(() => null);
          if (n === null) return;
          acks += n / ACK;
        }
      })());
    }
  }
  listener.close();
  const frame = new Uint8Array(FRAME);
  const cpu0 = process.cpuUsage();
  let sent = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  // Connections are due evenly spread over the interval, as sessions started at random times are.
  let due = 0;
  for (let now = start; now < end; now = performance.now()) {
    const target = Math.floor(((now - start) / intervalMs) * all.length);
    for (; due < target; due++) {
      const c = all[due % all.length]!;
      if (c.busy) continue;
      c.busy = true;
      sent++;
      c.conn.write(frame).then(() => c.busy = false, () => {});
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  const cpu = process.cpuUsage(cpu0);
  const rss = Deno.memoryUsage().rss;
  for (const c of all) c.conn.close();
  await Promise.all(reading);
  Deno.stdout.writeSync(
    enc.encode(
      JSON.stringify({
        sent,
        cpuUs: cpu.user + cpu.system,
        userUs: cpu.user,
        acks: Math.round(acks),
        rssBytesPerConn: Math.round((rss - rss0) / all.length),
      }) + "\n",
    ),
  );
}

async function main(): Promise<void> {
  // The writer prints its port, then (at its end) its figures: one line each.
  const lines: string[] = [];
  const firstLine = Promise.withResolvers<void>();
  await using child = spawnDeno(
    new URL(import.meta.url),
    ["--role", "writer", ...Deno.args],
    {
      permissions: { net: ["127.0.0.1"] },
      ...values["writer-v8-flags"]
        ? { denoFlags: [`--v8-flags=${values["writer-v8-flags"]}`] }
        : {},
      quiet: false,
      stdout: {
        onLine(l) {
          lines.push(l);
          firstLine.resolve();
        },
      },
      stderr: "inherit",
    },
  );
  await Promise.race([firstLine.promise, child.status]);
  const port = Number(lines[0]);
  const buf = () => new Uint8Array(4096);
  const sockets = [];
  for (let i = 0; i < conns; i++) {
    sockets.push(await Deno.connect({ hostname: "127.0.0.1", port }));
  }
  const cpu0 = process.cpuUsage();
  let got = 0;
  const ack = new Uint8Array(ACK);
  await Promise.all(sockets.map(async (conn) => {
    const b = buf();
    let frames = 0, acked = 0;
    while (true) {
      const n = await conn.read(b).catch(() => null);
      if (n === null) break;
      got += n;
      frames += n / FRAME;
      if (ackEvery > 0 && frames - acked >= ackEvery) {
        acked = frames;
        await conn.write(ack).catch(() => {});
      }
    }
    conn.close();
  }));
  const cpu = process.cpuUsage(cpu0);
  await child.done();
  const w = JSON.parse(lines[1]!) as {
    sent: number;
    cpuUs: number;
    userUs: number;
    acks: number;
    rssBytesPerConn: number;
  };
  const messages = got / FRAME;
  const out = {
    conns,
    intervalMs,
    seconds,
    messages: Math.round(messages),
    writerUsPerMessage: +(w.cpuUs / w.sent).toFixed(2),
    writerUserPct: Math.round((100 * w.userUs) / w.cpuUs),
    readerUsPerMessage: +((cpu.user + cpu.system) / messages).toFixed(2),
    readerUserPct: Math.round((100 * cpu.user) / (cpu.user + cpu.system)),
    acksPerMessage: +(w.acks / w.sent).toFixed(3),
    writerRssKiBPerConn: +(w.rssBytesPerConn / 1024).toFixed(1),
  };
  if (values.json) console.log(JSON.stringify(out));
  else {
    console.log(
      `${conns} connections, one ${FRAME}-byte frame each per ${intervalMs} ms, ${seconds} s: ${out.messages} messages`,
    );
    console.log(
      `bare writer ${out.writerUsPerMessage} µs CPU per message (${out.writerUserPct}% user)`,
    );
    console.log(
      `bare reader ${out.readerUsPerMessage} µs CPU per message (${out.readerUserPct}% user)`,
    );
    console.log(
      `writer RSS ${out.writerRssKiBPerConn} KiB per connection` +
        (ackEvery > 0
          ? ` (one read pending on each; ${out.acksPerMessage} acks per message)`
          : " (no read pending)"),
    );
  }
}

if (values.role === "writer") await writer();
else await main();
