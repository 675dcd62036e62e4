import { assert_, assertEquals, assertRejects } from "../tests/_assert.ts";
import {
  accepts,
  denoRunArgs,
  freePort,
  permissionFlags,
  ProcessStartError,
  runToEnd,
  spawnDeno,
} from "./spawn.ts";

/**
 * A tiny server: listens, says so on stderr, prints "bye" and exits with
 * code `Deno.args[1]` on SIGTERM. It says "ready" once its SIGTERM handler
 * is installed (`addSignalListener` binds it synchronously); a SIGTERM sent
 * before that kills it with the default action (exit 143).
 */
const SCRIPT = `
const l = Deno.listen({ hostname: "127.0.0.1", port: Number(Deno.args[0]) });
console.error("starting");
console.error("listening on " + l.addr.port);
Deno.addSignalListener("SIGTERM", () => {
  console.log("bye");
  l.close();
  Deno.exit(Number(Deno.args[1] ?? 0));
});
console.error("ready");
for await (const c of l) c.close();
`;

async function withScript(
  text: string,
  fn: (path: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/s.ts`, text);
    await fn(`${dir}/s.ts`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("permissionFlags writes scoped grants and -A for all", () => {
  assertEquals(permissionFlags("all"), ["-A"]);
  assertEquals(
    permissionFlags({ net: ["127.0.0.1", "127.0.0.2"], read: true }),
    ["--allow-net=127.0.0.1,127.0.0.2", "--allow-read"],
  );
  assertEquals(
    denoRunArgs("x.ts", ["--a"], {
      permissions: { net: true },
      unstable: ["net"],
      denoFlags: ["--cpu-prof"],
    }),
    [
      "run",
      "--quiet",
      "--allow-net",
      "--unstable-net",
      "--cpu-prof",
      "x.ts",
      "--a",
    ],
  );
});

Deno.test("spawnDeno waits for a line and a port, and stop() ends it with SIGTERM and its output", async () => {
  await withScript(SCRIPT, async (path) => {
    const port = freePort();
    await using p = spawnDeno(path, [String(port), "3"], {
      permissions: { net: ["127.0.0.1"] },
    });
    const line = await p.waitForLine(/listening on \d+/);
    assertEquals(line, `listening on ${port}`);
    await p.waitForPort(port);
    assert_(await accepts("127.0.0.1", port));
    // Listening comes before the handler: wait for it, or SIGTERM races it.
    await p.waitForLine(/^ready$/);
    const status = await p.stop({ graceMs: 5000 });
    assertEquals(status.code, 3);
    const out = await p.done();
    assertEquals(out.stdout, "bye\n");
    assertEquals(p.stderr, ["starting", `listening on ${port}`, "ready"]);
  });
});

Deno.test("Process.waitForLine rejects with the collected stderr when the process exits first", async () => {
  await withScript(`console.error("oops"); Deno.exit(2);`, async (path) => {
    await using p = spawnDeno(path, [], { permissions: {} });
    const err = await assertRejects(
      () => p.waitForLine(/never/),
      ProcessStartError,
      "exited before a line matching /never/",
    );
    assert_(err.message.includes("oops"), err.message);
    assertEquals((await p.done()).code, 2);
  });
});

Deno.test("Process.waitForPort rejects after its timeout, and dispose kills a running process", async () => {
  await withScript(`setInterval(() => {}, 1000);`, async (path) => {
    const p = spawnDeno(path, [], { permissions: {} });
    await assertRejects(
      () => p.waitForPort(freePort(), "127.0.0.1", 200),
      ProcessStartError,
      "within 200ms",
    );
    await p[Symbol.asyncDispose]();
    assertEquals((await p.status).signal, "SIGKILL");
  });
});

Deno.test("spawn sends lines to onLine and stderr to a file", async () => {
  await withScript(
    `console.log("a\\n\\nb"); console.error("to file");`,
    async (path) => {
      const log = `${path}.log`;
      const seen: string[] = [];
      await using p = spawnDeno(path, [], {
        permissions: {},
        stdout: { onLine: (l) => seen.push(l) },
        stderr: { file: log },
      });
      assertEquals((await p.done()).code, 0);
      assertEquals(seen, ["a", "b"]);
      assertEquals(await Deno.readTextFile(log), "to file\n");
    },
  );
});

Deno.test("runToEnd collects both streams of any program", async () => {
  const out = await runToEnd(Deno.execPath(), ["eval", "console.log(1)"]);
  assertEquals([out.code, out.stdout], [0, "1\n"]);
});
