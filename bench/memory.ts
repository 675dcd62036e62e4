// deno-lint-ignore-file no-console -- a benchmark script: figures go to stdout.
/**
 * `bench/memory.ts`: where a server's bytes per session go. A server
 * (`startServer`, memory store, 1 s interval) runs in a child process with
 * `--expose-gc`; this process opens `--sessions` bare v2 sessions that
 * acknowledge every quarter window, as the real client does, and asks the
 * child for its memory after two full GCs, before the sessions and once they
 * are all streaming. Per session it prints: the live JS heap, V8's reserved
 * heap, external memory (ArrayBuffers), RSS, and the kernel's socket memory
 * of the server's sockets (`ss -tm`, the `skmem` fields).
 *
 * ```sh
 * deno run -A bench/memory.ts [--sessions 5000] [--settle 10] [--v8=--max-semi-space-size=1] [--snapshots DIR]
 * deno run --allow-read bench/heap_diff.ts DIR/before.heapsnapshot DIR/after.heapsnapshot 5000
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { FD_BOUND_MAX_CONNECTIONS } from "../internal/server_process.ts";
import { readLines } from "../internal/spawn.ts";
import { denoSession } from "./_deno_driver.ts";
import {
  numberFlag,
  parseFlags,
  sessionList,
  UsageError,
  v8FlagList,
} from "./_flags.ts";

const { values, sessions, settleS } = parseFlags("bench/memory.ts", () => {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      role: { type: "string", default: "main" },
      sessions: { type: "string", default: "5000" },
      settle: { type: "string", default: "10" },
      v8: { type: "string", default: "" },
      /** Write heap snapshots `DIR/before.heapsnapshot` and `DIR/after.heapsnapshot`. */
      snapshots: { type: "string" },
    },
  });
  const list = sessionList(values.sessions, {
    n: FD_BOUND_MAX_CONNECTIONS,
    why: "the server's --max-connections",
  });
  if (list.length !== 1) {
    throw new UsageError(
      `--sessions takes one count here, got "${values.sessions}"`,
    );
  }
  return {
    values,
    sessions: list[0]!,
    settleS: numberFlag("--settle", values.settle, 0),
  };
});

interface Mem {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
}

if (values.role === "server") {
  const { startServer } = await import("../server/server.ts");
  const { LineLogger } = await import("../common/logger.ts");
  const server = await startServer({
    port: 0,
    intervalMs: 1000,
    maxConnections: 19_800,
    log: new LineLogger({ level: "warn" }),
  });
  console.log(JSON.stringify({ port: server.addr.port }));
  const gc = (globalThis as { gc?: () => void }).gc!;
  const { writeHeapSnapshot } = await import("node:v8");
  await readLines(Deno.stdin.readable, (l) => {
    if (l.startsWith("s ")) {
      gc();
      writeHeapSnapshot(l.slice(2).trim());
      console.log("{}");
      return;
    }
    gc();
    gc();
    const m = Deno.memoryUsage();
    console.log(JSON.stringify(m));
  }, true);
  await server.close();
  Deno.exit(0);
}

const v8 = ["--expose-gc", ...v8FlagList(values.v8)];
const child = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "-A",
    `--v8-flags=${v8.join(",")}`,
    new URL(import.meta.url).pathname,
    "--role",
    "server",
  ],
  stdin: "piped",
  stdout: "piped",
  stderr: "inherit",
}).spawn();
const out = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
let pending = "";
async function line(): Promise<string> {
  while (!pending.includes("\n")) {
    const r = await out.read();
    if (r.done) throw new Error("server exited");
    pending += r.value;
  }
  const i = pending.indexOf("\n");
  const l = pending.slice(0, i);
  pending = pending.slice(i + 1);
  return l;
}
const stdin = child.stdin.getWriter();
async function mem(): Promise<Mem> {
  await stdin.write(new TextEncoder().encode("m\n"));
  return JSON.parse(await line());
}

/** Sum of the server's sockets' kernel memory (`ss -tmn`, skmem r+t+f+w…). */
async function socketMem(
  port: number,
): Promise<{ conns: number; bytes: number }> {
  const r = await new Deno.Command("ss", {
    args: ["-tmnH", "state", "established", `( sport = :${port} )`],
  }).output();
  const text = new TextDecoder().decode(r.stdout);
  let conns = 0, bytes = 0;
  for (const m of text.matchAll(/skmem:\(([^)]*)\)/g)) {
    conns++;
    const f = Object.fromEntries(
      m[1]!.split(",").map((kv) => {
        const [, k, v] = kv.match(/^([a-z_]+?)(\d+)$/)!;
        return [k!, Number(v)];
      }),
    );
    // r: receive queue, t: send queue, f: forward alloc, w: queued for send, o: options, bl: backlog.
    bytes += (f.r ?? 0) + (f.t ?? 0) + (f.f ?? 0) + (f.w ?? 0) + (f.o ?? 0) +
      (f.bl ?? 0);
  }
  return { conns, bytes };
}

const { port } = JSON.parse(await line()) as { port: number };
await new Promise((r) => setTimeout(r, 500));
const before = await mem();
async function snapshot(name: string): Promise<void> {
  if (values.snapshots === undefined) return;
  await stdin.write(
    new TextEncoder().encode(`s ${values.snapshots}/${name}.heapsnapshot\n`),
  );
  await line();
}
await snapshot("before");
const count = Math.ceil((sessions / 100) * 10 + settleS * 1000 / 1000 + 30);
const stop = new AbortController();

/** One session of the Deno driver: quarter-window ACKs, no keep-alives. */
async function session(): Promise<void> {
  try {
    await denoSession({
      port,
      count,
      keepAlive: false,
      readBytes: 1024,
      signal: stop.signal,
    });
  } catch {
    // closed at the end
  }
}

const running: Promise<void>[] = [];
for (let i = 0; i < sessions; i++) {
  running.push(session());
  if (i % 100 === 99) await new Promise((r) => setTimeout(r, 100));
}
await new Promise((r) => setTimeout(r, settleS * 1000));
const after = await mem();
const sock = await socketMem(port);
await snapshot("after");
const per = (k: keyof Mem) => Math.round((after[k] - before[k]) / sessions);
console.log(
  `${sessions} sessions, v8 flags ${
    v8.join(" ")
  }; per session, after two full GCs:`,
);
console.log(`  live JS heap (heapUsed)    ${per("heapUsed")} B`);
console.log(`  V8 heap reserved           ${per("heapTotal")} B`);
console.log(`  external (ArrayBuffers)    ${per("external")} B`);
console.log(
  `  RSS                        ${per("rss")} B (${
    (per("rss") / 1024).toFixed(1)
  } KiB); whole process ${(after.rss / 2 ** 20).toFixed(1)} MiB`,
);
console.log(
  `  kernel socket memory       ${
    Math.round(sock.bytes / Math.max(1, sock.conns))
  } B (ss -tm, ${sock.conns} server sockets)`,
);
stop.abort();
await Promise.allSettled(running);
await stdin.close();
await child.status;
