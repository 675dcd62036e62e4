import { assert, assertEquals } from "../tests/_assert.ts";

async function sim(...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read=.", "--allow-write=.", "sim/main.ts", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

Deno.test("deno task sim: runs the seeds it is given and sums them up; exit 0 when every invariant held", async () => {
  const r = await sim("--seed", "3", "--seeds", "2", "--clients", "12");
  assertEquals(r.code, 0, r.stdout + r.stderr);
  assert(
    /^sim: 2 seeds, 0 failed; 24 sessions, \d+ events in [\d.]+ s \(\d+ session lifecycles per CPU-second\)$/m
      .test(r.stdout),
    r.stdout,
  );
});

Deno.test("deno task sim: a usage error says what is wrong, with the usage, exit 2, no stack trace", async () => {
  const r = await sim("--faults", "cut,meteor");
  assertEquals(r.code, 2);
  assert(r.stderr.startsWith('sim: unknown fault class "meteor"'), r.stderr);
  assert(r.stderr.includes("Usage: deno task sim"));
  assert(!r.stderr.includes("    at "), r.stderr);
});
