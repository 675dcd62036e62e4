import { join } from "node:path";
import {
  assert_,
  assertEquals,
  assertRejects,
  assertThrows,
} from "../tests/_assert.ts";
import type { ClientState } from "./types.ts";
import {
  loadState,
  STATE_FORMAT,
  StateFile,
  StateFileError,
  validateClientState,
} from "./state_file.ts";

const NOW = Date.UTC(2026, 0, 1);

const state = (s: Partial<ClientState> = {}): ClientState => ({
  id: "3f1c2a4b-5d6e-4f70-8a9b-0c1d2e3f4a5b",
  count: 1000,
  token: "00112233445566778899aabbccddeeff",
  nextOffset: 100,
  sum: 123456789,
  crc: 0xdeadbeef,
  ttlMs: 30_000,
  intervalMs: 10,
  lastContact: NOW - 1000,
  ...s,
});

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "seqstream-state-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("validateClientState accepts a state and drops unknown fields", () => {
  assertEquals(
    validateClientState({ format: STATE_FORMAT, ...state(), extra: 1 }),
    state(),
  );
});

Deno.test("validateClientState names the first bad field", () => {
  const bad: [Record<string, unknown>, string][] = [
    [{ format: "other/1" }, "format"],
    [{ id: "not-a-uuid" }, "id"],
    [{ count: 0 }, "count"],
    [{ count: 65536 }, "count"],
    [{ token: "XYZ" }, "token"],
    [{ nextOffset: 1001 }, "nextOffset"],
    [{ nextOffset: -1 }, "nextOffset"],
    [{ nextOffset: 1.5 }, "nextOffset"],
    [{ sum: -1 }, "sum"],
    [{ nextOffset: 1, sum: 2 ** 33 }, "sum"],
    [{ crc: 2 ** 32 }, "crc"],
    [{ ttlMs: 0 }, "ttlMs"],
    [{ intervalMs: "1s" }, "intervalMs"],
    [{ lastContact: null }, "lastContact"],
  ];
  for (const [patch, field] of bad) {
    assertThrows(
      () => validateClientState({ format: STATE_FORMAT, ...state(), ...patch }),
      TypeError,
      field,
    );
  }
  assertThrows(
    () => validateClientState([1, 2]),
    TypeError,
    "not a JSON object",
  );
  assertThrows(() => validateClientState(null), TypeError, "not a JSON object");
});

Deno.test("loadState returns null for a missing file", async () => {
  await withDir(async (dir) => {
    assertEquals(await loadState(join(dir, "missing.json"), NOW), null);
  });
});

Deno.test("loadState refuses a corrupt file with a message naming the file", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    for (
      const text of [
        "{not json",
        "",
        JSON.stringify({ format: STATE_FORMAT, ...state(), id: "x" }),
      ]
    ) {
      await Deno.writeTextFile(path, text);
      const err = await assertRejects(
        () => loadState(path, NOW),
        StateFileError,
        path,
      );
      assertEquals(err.problem, "corrupt");
      assert_(err.message.includes("corrupt"), err.message);
    }
  });
});

Deno.test("loadState refuses a state whose last contact is older than the TTL as stale", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    await Deno.writeTextFile(
      path,
      JSON.stringify({
        format: STATE_FORMAT,
        ...state({ lastContact: NOW - 95_000 }),
      }),
    );
    const err = await assertRejects(
      () => loadState(path, NOW),
      StateFileError,
      "state file is stale: the session expired",
    );
    assertEquals(err.problem, "stale");
    assert_(
      err.message.includes("the session expired about 65s ago"),
      err.message,
    );
    assert_(err.message.includes(path), err.message);
    // Just inside the TTL it loads.
    assertEquals(
      await loadState(path, NOW - 95_000 + 30_000),
      state({ lastContact: NOW - 95_000 }),
    );
  });
});

Deno.test("StateFile writes atomically with mode 0600, keeps only the newest pending state, and removes", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    const file = new StateFile(path);
    for (let i = 0; i < 50; i++) file.save(state({ nextOffset: i, sum: i }));
    await file.flush();
    assertEquals(file.error, null);
    assert_(
      file.writes >= 1 && file.writes < 50,
      `writes coalesce: ${file.writes}`,
    );
    assertEquals(
      await loadState(path, NOW),
      state({ nextOffset: 49, sum: 49 }),
    );
    assertEquals((await Deno.stat(path)).mode! & 0o777, 0o600);
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assertEquals(names, ["s.json"], "no temporary file left behind");
    await file.remove();
    assertEquals(await loadState(path, NOW), null);
    file.save(state());
    await file.flush();
    assertEquals(
      await loadState(path, NOW),
      null,
      "saves after remove are ignored",
    );
  });
});

Deno.test("StateFile reports a write error instead of throwing from save", async () => {
  await withDir(async (dir) => {
    const file = new StateFile(join(dir, "no-such-dir", "s.json"));
    file.save(state());
    await file.flush();
    assert_(file.error instanceof Deno.errors.NotFound, String(file.error));
    assertEquals(file.writes, 0);
  });
});

Deno.test("StateFile never writes through a symlink planted at its temporary path", async () => {
  await withDir(async (dir) => {
    const victim = join(dir, "victim.txt");
    await Deno.writeTextFile(victim, "precious\n");
    const path = join(dir, "s.json");
    await Deno.symlink(victim, join(dir, `.s.json.${Deno.pid}.tmp`));
    const file = new StateFile(path);
    file.save(state());
    await file.flush();
    assertEquals(file.error, null);
    assertEquals(await Deno.readTextFile(victim), "precious\n");
    assertEquals(await loadState(path, NOW), state());
  });
});

Deno.test("StateFile.saveDurable resolves with the state on disk and rejects when it cannot be written", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const ok = new StateFile(`${dir}/s.json`);
    await ok.saveDurable(state());
    assertEquals(
      JSON.parse(await Deno.readTextFile(ok.path)).nextOffset,
      state().nextOffset,
    );
    const bad = new StateFile(`${dir}/missing/s.json`);
    let thrown: unknown;
    await bad.saveDurable(state()).catch((e) => (thrown = e));
    assert_(thrown instanceof Deno.errors.NotFound, String(thrown));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
