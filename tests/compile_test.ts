/**
 * `deno task compile`: standalone `dist/seqstream-server` and
 * `dist/seqstream-client` with the least permissions baked in.
 *
 * `deno compile` needs the `denort` runtime for this Deno version, which it
 * downloads from dl.deno.land (or takes from `DENORT_BIN`). Where that cannot
 * be had, the compile test is registered as ignored with the reason in its
 * name; it never passes without compiling. The permission sets the compile
 * tasks bake in are checked either way, by running the programs with exactly
 * those flags.
 */

import { assert_, assertEquals } from "./_assert.ts";
import { makeTestCert } from "./_certs.ts";
import { freePort, type Process, runToEnd, spawn } from "../internal/spawn.ts";

const ROOT = new URL("../", import.meta.url);
const ROOT_PATH = ROOT.pathname;

type Probe = { ok: true; how: string } | { ok: false; why: string };

/** Whether `deno compile` can get its runtime here, and if not, why not. */
async function probeDenort(): Promise<Probe> {
  const bin = Deno.env.get("DENORT_BIN");
  if (bin) {
    const real = await Deno.realPath(bin).catch(() => null);
    if (real === null) {
      return { ok: false, why: `DENORT_BIN=${bin} does not exist` };
    }
    if (real === await Deno.realPath(Deno.execPath())) {
      return {
        ok: false,
        why:
          "DENORT_BIN is the deno CLI itself, which would compile into a copy of deno",
      };
    }
    return { ok: true, how: `DENORT_BIN=${bin}` };
  }
  const info = await runToEnd(Deno.execPath(), ["info", "--json"]);
  const denoDir = JSON.parse(info.stdout)
    .denoDir as string;
  const name = `denort-${Deno.build.target}.zip`;
  const cached = `${denoDir}/dl/release/v${Deno.version.deno}/${name}`;
  if (await Deno.stat(cached).then(() => true, () => false)) {
    return { ok: true, how: `cached ${cached}` };
  }
  const url = `https://dl.deno.land/release/v${Deno.version.deno}/${name}`;
  try {
    const res = await fetch(url, {
      method: "HEAD",
      signal: AbortSignal.timeout(3000),
    });
    await res.body?.cancel();
    return res.ok
      ? { ok: true, how: `download from ${url}` }
      : { ok: false, why: `${url} answered ${res.status}` };
  } catch (err) {
    return {
      ok: false,
      why:
        `the denort runtime is not cached, DENORT_BIN is unset, and ${url} is unreachable (${
          (err as Error).message
        })`,
    };
  }
}

/** The permission flags a compile task bakes in, read from deno.json. */
async function bakedFlags(
  task: "compile:server" | "compile:client",
): Promise<string[]> {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("deno.json", ROOT)),
  );
  const words = (config.tasks[task] as string).split(/\s+/);
  return words.filter((w) =>
    w.startsWith("--allow-") || w.startsWith("--unstable-")
  );
}

/** Starts a server process; its "server listening" line says it is ready. */
function startServer(cmd: string, args: string[]): Process {
  return spawn(cmd, args, { stdout: "null" });
}

/** SIGTERM, and the exit code with everything the server wrote on stderr. */
async function stopServer(
  s: Process,
): Promise<{ code: number; stderr: string }> {
  await s.stop({ graceMs: 10_000 });
  return await s.done();
}

Deno.test("the compile tasks' permission sets are enough: TLS, a KV store and a --state file, no prompts", async () => {
  const serverFlags = await bakedFlags("compile:server");
  const clientFlags = await bakedFlags("compile:client");
  assert_(
    !serverFlags.includes("--allow-all") &&
      !clientFlags.includes("--allow-all"),
  );
  assert_(
    !clientFlags.includes("--allow-env") &&
      !clientFlags.includes("--allow-run"),
    clientFlags.join(" "),
  );
  await using cert = await makeTestCert();
  const port = freePort();
  const server = startServer(Deno.execPath(), [
    "run",
    "--quiet",
    "--no-prompt",
    ...serverFlags,
    "server.ts",
    "--port",
    String(port),
    "--interval",
    "1ms",
    "--store",
    `kv:${cert.dir}/sessions.kv`,
    "--tls-cert",
    cert.certFile,
    "--tls-key",
    cert.keyFile,
  ]);
  try {
    await server.waitForLine(/server listening/);
    const r = await runToEnd(Deno.execPath(), [
      "run",
      "--quiet",
      "--no-prompt",
      ...clientFlags,
      "client.ts",
      "--port",
      String(port),
      "--host",
      "localhost",
      "--count",
      "150",
      "--tls",
      "--ca",
      cert.certFile,
      "--state",
      `${cert.dir}/client.state`,
      "--json",
    ]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(JSON.parse(r.stdout).result, "PASS");
  } finally {
    const s = await stopServer(server);
    assertEquals(s.code, 0, s.stderr);
    assert_(
      !/PermissionDenied|NotCapable|Requires .* access/.test(s.stderr),
      s.stderr,
    );
  }
});

const probe = await probeDenort();

Deno.test({
  name: probe.ok
    ? `deno task compile builds dist/seqstream-server and dist/seqstream-client, and they pass (${probe.how})`
    : `deno task compile: SKIPPED, not compiled, because ${probe.why}`,
  ignore: !probe.ok,
  sanitizeResources: true,
  async fn() {
    const compiled = await runToEnd(Deno.execPath(), ["task", "compile"]);
    assertEquals(compiled.code, 0, compiled.stderr);
    const serverBin = `${ROOT_PATH}dist/seqstream-server`;
    const clientBin = `${ROOT_PATH}dist/seqstream-client`;
    const help = await runToEnd(clientBin, ["--help"]);
    assertEquals(help.code, 0, help.stderr);
    assert_(
      help.stdout.includes("--state FILE"),
      "the compiled client is the client, not a copy of deno",
    );
    const port = freePort();
    const server = startServer(serverBin, [
      "--port",
      String(port),
      "--interval",
      "1ms",
      "--seed",
      "3",
    ]);
    try {
      await server.waitForLine(/server listening/);
      const r = await runToEnd(clientBin, [
        "--port",
        String(port),
        "--count",
        "200",
        "--json",
      ]);
      assertEquals(r.code, 0, r.stderr);
      const j = JSON.parse(r.stdout);
      assertEquals([j.result, j.checksum], ["PASS", j.serverChecksum]);
    } finally {
      const s = await stopServer(server);
      assertEquals(s.code, 0, s.stderr);
    }
  },
});
