import { assert_, assertEquals } from "../tests/_assert.ts";
import { spawnDeno } from "../internal/spawn.ts";

/** An entry point on runMain: `--fail usage|exit|crash`, `--wait` for a signal. */
const SCRIPT = `
import { ExitError, runMain } from "${new URL("./main.ts", import.meta.url)}";
import { UsageError } from "${new URL("./usage.ts", import.meta.url)}";
const FLAGS = {
  fail: { type: "string", help: "HOW  fail this way" },
  wait: { type: "boolean", default: false, help: "wait for a signal" },
  help: { type: "boolean", short: "h", default: false, help: "show this help" },
} as const;
const cli = { name: "tiny", usage: "Usage: tiny [options]", flags: FLAGS };
Deno.exit(await runMain(cli, Deno.args, async (f, { signal }) => {
  if (f.fail === "usage") throw new UsageError("--fail must be\\nsomething else");
  if (f.fail === "exit") throw new ExitError("cannot do that", 2);
  if (f.fail === "crash") throw new Error("boom");
  if (f.wait) {
    console.error("waiting");
    await new Promise((r) => signal.addEventListener("abort", r));
    console.log(signal.reason.signal);
    return 130;
  }
  console.log("ran");
  return 0;
}));
`;

async function tiny(
  args: string[],
  onStart?: (p: ReturnType<typeof spawnDeno>) => Promise<void>,
) {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/tiny.ts`, SCRIPT);
    await using p = spawnDeno(`${dir}/tiny.ts`, args, { permissions: {} });
    await onStart?.(p);
    return await p.done();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("runMain answers --help on stdout, runs the program, and turns errors into one line and an exit code", async () => {
  const [help, ran, usage, bad, exit, crash] = await Promise.all([
    tiny(["-h"]),
    tiny([]),
    tiny(["--fail", "usage"]),
    tiny(["--nope"]),
    tiny(["--fail", "exit"]),
    tiny(["--fail", "crash"]),
  ]);
  assertEquals([help.code, help.stderr], [0, ""]);
  assert_(
    help.stdout.startsWith("Usage: tiny [options]\n\nOptions:\n"),
    help.stdout,
  );
  assert_(help.stdout.includes("--fail HOW"), help.stdout);
  assertEquals([ran.code, ran.stdout], [0, "ran\n"]);
  assertEquals(
    [usage.code, usage.stdout, usage.stderr],
    [64, "", "tiny: --fail must be something else (see --help)"],
  );
  assertEquals([bad.code, bad.stdout], [64, ""]);
  assert_(/^tiny: .*--nope.* \(see --help\)$/.test(bad.stderr), bad.stderr);
  assertEquals([exit.code, exit.stderr], [2, "tiny: cannot do that"]);
  assertEquals([crash.code, crash.stderr], [1, "tiny: boom"]);
});

Deno.test("runMain aborts the program's signal on SIGTERM, with the signal as the reason", async () => {
  const out = await tiny(["--wait"], async (p) => {
    await p.waitForLine(/waiting/);
    p.kill("SIGTERM");
  });
  assertEquals([out.code, out.stdout], [130, "SIGTERM\n"]);
});
