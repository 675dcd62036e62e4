/**
 * The load-balancer examples in docs/ work as documented: HAProxy
 * (docs/haproxy.cfg) and nginx (docs/nginx-stream.conf) in front of two real
 * server processes on one KV file; the server streaming to the client is
 * killed with SIGKILL and the client PASSes through the balancer on the other.
 *
 * The configs are used as written, with their fixed example ports replaced by
 * free ones. A balancer that is not installed registers its test as ignored,
 * saying so (apt-get install haproxy / nginx-light libnginx-mod-stream).
 */

import { runClient } from "../client/client.ts";
import { assert_, assertEquals } from "./_assert.ts";
import {
  eventually,
  ids,
  reference,
  scrapePort,
  type ServerProc,
  sharedStore,
  spawnServer,
} from "./_cluster.ts";
import {
  accepts,
  freePort,
  type Process,
  runToEnd,
  spawn,
} from "../internal/spawn.ts";

const SEED = 808;
const DOCS = new URL("../docs/", import.meta.url);

async function installed(bin: string): Promise<boolean> {
  try {
    return (await runToEnd(bin, ["-v"])).code === 0;
  } catch {
    return false;
  }
}

interface Balancer {
  /** Executable, as installed by apt. */
  bin: string;
  /** How to install it, for the ignore reason. */
  install: string;
  doc: string;
  /** The doc's text with its example ports (and paths) replaced. */
  rewrite(text: string, p: Ports, dir: string): string;
  args(cfg: string): string[];
}

interface Ports {
  front: number;
  servers: [number, number];
  metrics: [number, number];
}

const BALANCERS: Balancer[] = [
  {
    bin: "haproxy",
    install: "apt-get install haproxy",
    doc: "haproxy.cfg",
    rewrite: (t, p) =>
      t.replace("bind :8080", `bind 127.0.0.1:${p.front}`)
        .replace(
          "127.0.0.1:8081 check port 9101",
          `127.0.0.1:${p.servers[0]} check port ${p.metrics[0]}`,
        )
        .replace(
          "127.0.0.1:8082 check port 9102",
          `127.0.0.1:${p.servers[1]} check port ${p.metrics[1]}`,
        ),
    args: (cfg) => ["-db", "-f", cfg],
  },
  {
    bin: "nginx",
    install: "apt-get install nginx-light libnginx-mod-stream",
    doc: "nginx-stream.conf",
    rewrite: (t, p, dir) =>
      t.replace("listen 8080;", `listen 127.0.0.1:${p.front};`)
        .replace("server 127.0.0.1:8081 ", `server 127.0.0.1:${p.servers[0]} `)
        .replace("server 127.0.0.1:8082 ", `server 127.0.0.1:${p.servers[1]} `)
        .replace("pid /tmp/seqstream-nginx.pid;", `pid ${dir}/nginx.pid;`),
    args: (
      cfg,
    ) => [
      "-e",
      "stderr",
      "-p",
      cfg.replace(/\/[^/]*$/, ""),
      "-c",
      cfg,
      "-g",
      "daemon off;",
    ],
  },
];

for (const lb of BALANCERS) {
  const ignore = (await installed(lb.bin))
    ? undefined
    : `${lb.bin} not installed (${lb.install})`;
  Deno.test({
    name:
      `docs/${lb.doc}: ${lb.bin} in front of two servers; kill -9 of the streaming one, ` +
      `the client PASSes through ${lb.bin} on the other${
        ignore ? ` (ignored: ${ignore})` : ""
      }`,
    ignore: ignore !== undefined,
    fn: async () => {
      await using shared = await sharedStore("kv");
      const dir = await Deno.makeTempDir({ prefix: `seqstream-${lb.bin}-` });
      const servers: ServerProc[] = [];
      let balancer: Process | undefined;
      try {
        const args = [
          "--port",
          "0",
          "--metrics-port",
          "0",
          "--store",
          shared.spec,
          "--interval",
          "5ms",
          "--seed",
        ];
        servers.push(
          ...await Promise.all(
            [0, 1].map(() => spawnServer([...args, String(SEED)])),
          ),
        );
        const [s1, s2] = servers as [ServerProc, ServerProc];
        const ports: Ports = {
          front: freePort(),
          servers: [s1.port, s2.port],
          metrics: [s1.metricsPort!, s2.metricsPort!],
        };
        const cfg = `${dir}/${lb.doc}`;
        const text = await Deno.readTextFile(new URL(lb.doc, DOCS));
        const rewritten = lb.rewrite(text, ports, dir);
        assert_(
          !/\b80(80|81|82)\b|\b910[12]\b/.test(
            rewritten.replace(/^#.*$/gm, ""),
          ),
          "an example port was left",
        );
        await Deno.writeTextFile(cfg, rewritten);
        // Its own output goes to the test's failure message, not to the terminal.
        balancer = spawn(lb.bin, lb.args(cfg));
        const b = balancer;
        await b.waitUntil(
          `${lb.bin} listening`,
          () => accepts("127.0.0.1", ports.front),
          { timeoutMs: 5000, everyMs: 10 },
        ).catch(async (err) => {
          b.kill();
          throw new Error(`${err.message}\n${(await b.done()).stdout}`);
        });

        const [id] = ids(1, "1b");
        const count = 300;
        const ref = await reference(SEED, [{ id: id!, count }]);
        let got = 0;
        const client = runClient({
          port: ports.front,
          id: id!,
          count,
          backoff: () => 50,
          signal: AbortSignal.timeout(20_000),
          onNumber: () => {
            got++;
          },
        });
        await eventually(() => got >= 60, `60 numbers through ${lb.bin}`);
        // Kill whichever server the balancer picked.
        const conns = await Promise.all(
          servers.map(async (s) =>
            (await scrapePort(s.metricsPort!)).get("seqstream_connections")
          ),
        );
        const serving = conns[0] === 1 ? s1 : s2;
        assertEquals(
          conns.filter((n) => n === 1).length,
          1,
          `connections per server: ${conns}`,
        );
        await serving.crash();
        const r = await client;
        assertEquals(r.result, "PASS", JSON.stringify(r));
        assertEquals({ sum: r.sum, checksum: r.checksum }, ref.get(id!));
        assert_(r.reconnects >= 1);
        const other = serving === s1 ? s2 : s1;
        assert_(
          (await scrapePort(other.metricsPort!)).get(
            "seqstream_resumes_total",
          )! >= 1,
        );
      } finally {
        // SIGTERM matters for nginx: its master then stops its workers,
        // which hold the output pipes too, before it exits.
        if (balancer) {
          await balancer.stop({ graceMs: 3000 });
          await balancer.done();
        }
        await Promise.all(servers.map((s) => s[Symbol.asyncDispose]()));
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}
