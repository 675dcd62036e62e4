/**
 * The command lines as users meet them: `--help` lists every flag with its
 * default, a bad value is one line on stderr and exit 64 (nothing on stdout),
 * and an unreachable server is exit 2 with a JSON ERROR result.
 */

import { assert_, assertEquals } from "./_assert.ts";
import {
  denoRunArgs,
  freePort,
  type ProcessOutput,
  runToEnd,
  spawnDeno,
} from "../internal/spawn.ts";
import { LineLogger } from "../common/logger.ts";
import { startServer } from "../server/mod.ts";

/** Runs `script` to completion as `deno run` with the permissions the programs need. */
async function run(script: string, args: string[]): Promise<ProcessOutput> {
  await using p = spawnDeno(script, args, {
    permissions: { net: true, read: true, write: true, env: true },
  });
  return await p.done();
}

/** Flag names in `--help` output, each with its line. */
function helpRows(text: string): Map<string, string> {
  const rows = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^\s+(?:-\w, )?--([a-z-]+)/.exec(line);
    if (m) rows.set(m[1]!, line);
  }
  return rows;
}

const EXPECTED_FLAGS = {
  "server.ts": [
    "port",
    "host",
    "interval",
    "session-ttl",
    "seed",
    "store",
    "reuse-port",
    "max-connections",
    "max-handshakes-per-sec",
    "tls-cert",
    "tls-key",
    "handshake-timeout",
    "client-timeout",
    "metrics-port",
    "metrics-host",
    "log-level",
    "log-format",
    "help",
  ],
  "client.ts": [
    "port",
    "host",
    "count",
    "id",
    "json",
    "idle-timeout",
    "connect-timeout",
    "state",
    "tls",
    "ca",
    "quiet",
    "log-level",
    "help",
  ],
  "proxy.ts": [
    "listen",
    "upstream",
    "lifetime",
    "reset-probability",
    "slicer",
    "slicer-delay",
    "latency",
    "jitter",
    "bandwidth",
    "bloat",
    "pushback",
    "blackhole-every",
    "blackhole-for",
    "freeze-every",
    "freeze-for",
    "cut-after-bytes",
    "cut-once",
    "seed",
    "help",
  ],
};

for (const [script, flags] of Object.entries(EXPECTED_FLAGS)) {
  Deno.test(`${script} --help exits 0 and lists every flag with its default`, async () => {
    const r = await run(script, ["--help"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stderr, "");
    // All three read alike: the task users run, then the shared Options table.
    const task = script.replace(".ts", "");
    assert_(
      r.stdout.startsWith(`Usage: deno task ${task} `),
      r.stdout.split("\n")[0],
    );
    assert_(r.stdout.includes("\n\nOptions:\n"), r.stdout);
    assert_(/\n {2}-h, --help +show this help\n/.test(r.stdout), r.stdout);
    const rows = helpRows(r.stdout);
    assertEquals([...rows.keys()].sort(), [...flags].sort());
    for (const [name, line] of rows) {
      if (name !== "help") {
        assert_(
          /\((default: [^)]+|required)\)$/.test(line),
          `no default shown for --${name}: ${line}`,
        );
      }
    }
    assertEquals(
      helpRows((await run(script, ["-h"])).stdout).size,
      flags.length,
      "-h is --help",
    );
  });
}

const BAD: [string, string[], RegExp][] = [
  ["client.ts", ["--count", "0"], /--count must be from 1 to 65535, got 0/],
  [
    "client.ts",
    ["--count", "65536"],
    /--count must be from 1 to 65535, got 65536/,
  ],
  ["client.ts", ["--count", "abc"], /--count must be a whole number/],
  [
    "client.ts",
    ["--port", "99999"],
    /--port must be from 1 to 65535, got 99999/,
  ],
  ["client.ts", ["--interval", "1s"], /--interval/],
  ["client.ts", ["--bogus"], /--bogus/],
  ["client.ts", ["--id", "nope"], /--id must be a UUID/],
  [
    "client.ts",
    ["--idle-timeout", "5x"],
    /--idle-timeout: Invalid duration "5x"/,
  ],
  [
    "client.ts",
    ["--connect-timeout", "5x"],
    /--connect-timeout: Invalid duration "5x"/,
  ],
  ["client.ts", ["--ca", "ca.pem"], /--ca needs --tls/],
  ["client.ts", ["--log-level", "loud"], /--log-level must be/],
  ["client.ts", ["stray"], /Unexpected argument "stray"/],
  ["server.ts", ["--interval", "5x"], /--interval: Invalid duration "5x"/],
  // Every duration has a range: no timer that fires at once, no wire field that wraps.
  [
    "server.ts",
    ["--session-ttl", "600h"],
    /--session-ttl must be from 100ms to 24h, got 600h/,
  ],
  [
    "server.ts",
    ["--session-ttl", "1200h"],
    /--session-ttl must be from 100ms to 24h, got 1200h/,
  ],
  [
    "server.ts",
    ["--client-timeout", "10ms"],
    /--client-timeout must be from 200ms to 1h, got 10ms/,
  ],
  ["server.ts", ["--interval", "2h"], /--interval must be from 0 to 1h/],
  [
    "server.ts",
    ["--handshake-timeout", "50ms"],
    /--handshake-timeout must be from 100ms to 10m/,
  ],
  [
    "client.ts",
    ["--idle-timeout", "600h"],
    /--idle-timeout must be from 100ms to 24h, got 600h/,
  ],
  [
    "client.ts",
    ["--connect-timeout", "50ms"],
    /--connect-timeout must be from 100ms to 24h, got 50ms/,
  ],
  [
    "server.ts",
    ["--port", "99999"],
    /--port must be from 0 to 65535, got 99999/,
  ],
  ["server.ts", ["--bogus"], /--bogus/],
  ["server.ts", ["--max-connections", "0"], /--max-connections must be from 1/],
  [
    "server.ts",
    ["--max-handshakes-per-sec", "0"],
    /--max-handshakes-per-sec must be from 1/,
  ],
  [
    "server.ts",
    ["--max-handshakes-per-sec", "fast"],
    /--max-handshakes-per-sec must be a whole number/,
  ],
  [
    "server.ts",
    ["--tls-cert", "cert.pem"],
    /--tls-cert and --tls-key go together/,
  ],
  ["server.ts", ["--log-format", "xml"], /--log-format must be pretty or json/],
  ["server.ts", ["--store", "mongo://x"], /--store: Unknown store/],
];

Deno.test("a bad flag value is one line on stderr, nothing on stdout, exit 64", async () => {
  const results = await Promise.all(
    BAD.map(([script, args]) => run(script, args)),
  );
  for (const [i, r] of results.entries()) {
    const [script, args, re] = BAD[i]!;
    const what = `${script} ${args.join(" ")}`;
    assertEquals(r.code, 64, `${what}: exit ${r.code}\n${r.stderr}`);
    assertEquals(r.stdout, "", what);
    const lines = r.stderr.split("\n").filter((l) => l !== "");
    assertEquals(lines.length, 1, `${what}: ${JSON.stringify(r.stderr)}`);
    assert_(re.test(lines[0]!), `${what}: ${lines[0]}`);
    assert_(
      lines[0]!.startsWith(
        `seqstream-${script === "server.ts" ? "server" : "client"}: `,
      ),
      lines[0],
    );
  }
});

Deno.test("client against a closed port exits 2 with a JSON ERROR result, code unreachable", async () => {
  const port = freePort();
  const t0 = Date.now();
  const r = await run("client.ts", [
    "--port",
    String(port),
    "--count",
    "5",
    "--json",
    "--connect-timeout",
    "1s",
  ]);
  assertEquals(r.code, 2, r.stderr);
  const lines = r.stdout.trim().split("\n");
  assertEquals(lines.length, 1, r.stdout);
  const j = JSON.parse(lines[0]!);
  assertEquals([j.result, j.error.code, j.count, j.reconnects], [
    "ERROR",
    "unreachable",
    5,
    0,
  ]);
  assert_(/refused/i.test(j.error.message), j.error.message);
  // Ignored, the flag would leave the default 10 s: the ceiling is as far
  // from 1 s as it can be, for the process start on a loaded host.
  assert_(Date.now() - t0 < 10_000, "--connect-timeout 1s was not honoured");
});

Deno.test("server names the flag whose listen failed: a taken --metrics-port, a taken --port, a --host not on this machine", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = String((taken.addr as Deno.NetAddr).port);
  const cases: [string[], RegExp][] = [
    [
      ["--port", "0", "--metrics-port", port],
      new RegExp(`^seqstream-server: --metrics-port ${port} is already in use`),
    ],
    [
      ["--port", port, "--metrics-port", "0"],
      new RegExp(`^seqstream-server: --port ${port} is already in use`),
    ],
    // 192.0.2.0/24 is TEST-NET-1: no machine has it, so listening fails with
    // EADDRNOTAVAIL ("os error 99"), which must come with the flag and why.
    [
      ["--port", "0", "--host", "192.0.2.1"],
      /^seqstream-server: --host 192\.0\.2\.1: no interface of this machine has that address/,
    ],
    [
      ["--port", "0", "--metrics-port", "0", "--metrics-host", "192.0.2.1"],
      /^seqstream-server: --metrics-host 192\.0\.2\.1: no interface/,
    ],
  ];
  const results = await Promise.all(
    cases.map(([args]) => run("server.ts", [...args, "--log-level", "warn"])),
  );
  for (const [i, r] of results.entries()) {
    const [args, re] = cases[i]!;
    const what = `server.ts ${args.join(" ")}`;
    assertEquals(r.code, 1, `${what}: exit ${r.code}\n${r.stderr}`);
    const lines = r.stderr.split("\n").filter((l) => l !== "");
    assertEquals(lines.length, 1, `${what}: ${JSON.stringify(r.stderr)}`);
    assert_(re.test(lines[0]!), `${what}: ${lines[0]}`);
  }
});

Deno.test("client before its first welcome logs 'cannot connect; will retry' with retryIn in ms, and its ERROR shows no sum, only how far it got, why, and a hint naming --host and --port", async () => {
  const port = freePort();
  const r = await run("client.ts", [
    "--port",
    String(port),
    "--count",
    "5",
    "--connect-timeout",
    "1s",
  ]);
  assertEquals(r.code, 2, r.stderr);
  assert_(r.stderr.includes("INFO  cannot connect; will retry "), r.stderr);
  assert_(!r.stderr.includes("will resume"), r.stderr);
  assert_(/ retryIn=\d+ms/.test(r.stderr), r.stderr);
  assert_(!/\bsum\b|checksum/.test(r.stdout), r.stdout);
  assert_(r.stdout.includes("\nreceived         0 of 5\n"), r.stdout);
  assert_(
    r.stdout.includes(
      `\nhint             --host 127.0.0.1 --port ${port}: nothing listens there`,
    ),
    r.stdout,
  );
});

/**
 * A terminal for a program: util-linux `script` runs it on a pseudo-terminal,
 * and what the program wrote to stdout and stderr comes back on script's
 * stdout (with CR LF line ends, and the bar's `\r`).
 */
const SCRIPT = (() => {
  try {
    return new Deno.Command("script", { args: ["--version"] }).outputSync()
      .success;
  } catch {
    return false;
  }
})();
const NO_TTY = SCRIPT
  ? ""
  : " (ignored: util-linux `script` is not installed, so no terminal can be given to the program)";

async function onTerminal(script: string, args: string[]): Promise<string> {
  const argv = [
    Deno.execPath(),
    ...denoRunArgs(script, args, { permissions: "all" }),
  ];
  const command = argv.map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(
    " ",
  );
  const r = await runToEnd("script", ["-qefc", command, "/dev/null"]);
  assertEquals(r.code, 0, r.stdout + r.stderr);
  return r.stdout.replaceAll("\r\n", "\n");
}

Deno.test({
  name:
    `client on a terminal announces how long the run takes; not when stderr is a pipe${NO_TTY}`,
  ignore: !SCRIPT,
  async fn() {
    await using server = await startServer({
      port: 0,
      intervalMs: 100,
      log: new LineLogger({ level: "silent" }),
    });
    const args = ["--port", String(server.addr.port), "--count", "12"];
    const tty = await onTerminal("client.ts", args);
    // On a line of its own: after a newline, or after the bar was cleared
    // (`\r\x1b[K`) when its redraw timer fired first, as on a loaded host.
    assert_(
      // deno-lint-ignore no-control-regex
      /(\n|\r\x1b\[K)12 numbers at 100 ms: about 1\.2 s\n/.test(tty),
      JSON.stringify(tty),
    );
    assert_(tty.includes("12/12  100.0%"), "the bar is drawn");
    assert_(tty.includes("\nPASS  session "), JSON.stringify(tty));
    const piped = await run("client.ts", args);
    assertEquals(piped.code, 0, piped.stderr);
    assert_(!piped.stderr.includes("numbers at"), piped.stderr);
  },
});

Deno.test({
  name:
    `demo on a terminal shows one progress bar for all its clients, results above it${NO_TTY}`,
  ignore: !SCRIPT,
  async fn() {
    const out = await onTerminal("demo.ts", [
      "--clients",
      "2",
      "--count",
      "30",
      "--interval",
      "20ms",
    ]);
    const frames = out.split(/[\r\n]/).filter((l) => l.includes("/60 "));
    assert_(frames.length >= 2, JSON.stringify(out));
    assert_(
      frames.at(-1)!.includes("60/60  100.0%") &&
        frames.at(-1)!.endsWith("done"),
      JSON.stringify(frames.at(-1)),
    );
    // deno-lint-ignore no-control-regex
    assertEquals(out.match(/\x1b\[KPASS {2}/g)?.length, 2, JSON.stringify(out));
    assert_(/\n2\/2 PASS in /.test(out), JSON.stringify(out));
  },
});
