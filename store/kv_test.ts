/**
 * KvStore: the contract on a file and on `:memory:`, the expiry hint read
 * back from the SQLite file, and several processes writing one file.
 *
 * Run as a program (`deno run store/kv_test.ts PATH WORKER SHARED_ID`) this
 * file is the worker of the multi-process test.
 *
 * @module
 */

import { DatabaseSync } from "node:sqlite";
import { FakeClock } from "../common/fake_clock.ts";
import { assert_, assertEquals, assertRejects } from "../tests/_assert.ts";
import { storeContractTests } from "./_contract.ts";
import { isKvLockError, KvStore } from "./kv.ts";
import {
  type SessionRecord,
  type SessionStore,
  StoreUnavailableError,
} from "./types.ts";

/** A KvStore on a file in its own temp dir, removed on close. */
class TempKvStore extends KvStore {
  readonly #dir: string;
  constructor(kv: Deno.Kv, dir: string, path: string) {
    super(kv, path);
    this.#dir = dir;
  }
  static async create(): Promise<TempKvStore> {
    const dir = await Deno.makeTempDir({ prefix: "seqstream-kv-" });
    const path = `${dir}/store.kv`;
    return new TempKvStore(await Deno.openKv(path), dir, path);
  }
  override async close(): Promise<void> {
    await super.close();
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }
}

/** `expiration_ms` of the record's row, read through a second SQLite connection. */
function kvExpiryHint(store: SessionStore, id: string): Promise<number | null> {
  const db = new DatabaseSync((store as KvStore).path, { readOnly: true });
  try {
    const row = db.prepare("SELECT expiration_ms FROM kv WHERE k = ?").get(
      tupleKey(["seqstream", "s", id]),
    );
    assert_(row, `no row for session ${id}`);
    const ms = Number(row.expiration_ms);
    return Promise.resolve(ms < 0 ? null : ms);
  } finally {
    db.close();
  }
}

/** Deno KV's key encoding (FoundationDB tuples) for string parts without NUL bytes. */
function tupleKey(parts: string[]): Uint8Array {
  const enc = new TextEncoder();
  return new Uint8Array(parts.flatMap((p) => [0x02, ...enc.encode(p), 0x00]));
}

const NO_SWEEP =
  "Deno KV deletes expired keys in a background pass about once a minute; " +
  "the hint test covers it";

storeContractTests("KvStore(file)", async () => await TempKvStore.create(), {
  expiryHint: kvExpiryHint,
  noSweepReason: NO_SWEEP,
});

storeContractTests("KvStore(:memory:)", () => KvStore.open(":memory:"), {
  noSweepReason: NO_SWEEP,
  noHintReason:
    "an in-memory database cannot be read from outside; KvStore(file) covers it",
});

Deno.test("KvStore.open rejects an empty path with TypeError", async () => {
  await assertRejects(() => KvStore.open(""), TypeError, "empty");
});

Deno.test("KvStore maps an unopenable path to StoreUnavailableError", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assertRejects(
      () => KvStore.open(`${dir}/missing/dir/store.kv`),
      StoreUnavailableError,
      "Cannot open",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("KvStore rejects calls after close with StoreUnavailableError", async () => {
  const store = await KvStore.open(":memory:");
  await store.close();
  await assertRejects(
    () => store.get(crypto.randomUUID()),
    StoreUnavailableError,
    "closed",
  );
});

Deno.test("isKvLockError recognises SQLite lock contention only", () => {
  assertEquals(isKvLockError(new TypeError("database is locked")), true);
  assertEquals(isKvLockError(new Error("SQLITE_BUSY: database is busy")), true);
  assertEquals(isKvLockError(new TypeError("Value too large")), false);
  assertEquals(isKvLockError("database is locked"), false);
});

/** A Deno.Kv whose `get` fails with `errors` in turn, then answers `null`. */
function flakyKv(errors: Error[]): { kv: Deno.Kv; calls: () => number } {
  let calls = 0;
  const kv = {
    get: () => {
      const e = errors[calls++];
      return e
        ? Promise.reject(e)
        : Promise.resolve({ key: [], value: null, versionstamp: null });
    },
    close: () => {},
  };
  return { kv: kv as unknown as Deno.Kv, calls: () => calls };
}

Deno.test("KvStore retries lock errors with backoff until one attempt succeeds", async () => {
  const locked = () => new TypeError("database is locked");
  const { kv, calls } = flakyKv([locked(), locked(), locked()]);
  const retries: number[] = [];
  await using store = new KvStore(kv, "fake", {
    backoff: () => 1,
    onRetry: ({ op, attempt }) => {
      assertEquals(op, "get");
      retries.push(attempt);
    },
  });
  assertEquals(await store.get("x"), null);
  assertEquals(calls(), 4);
  assertEquals(retries, [1, 2, 3]);
});

Deno.test("KvStore gives up on a lock held past lockTimeoutMs with StoreUnavailableError", async () => {
  const { kv, calls } = flakyKv(
    Array.from({ length: 10_000 }, () => new TypeError("database is locked")),
  );
  await using store = new KvStore(kv, "fake", {
    lockTimeoutMs: 50,
    backoff: () => 5,
  });
  const t0 = performance.now();
  const err = await assertRejects(
    () => store.get("x"),
    StoreUnavailableError,
    "database is locked",
  );
  const ms = performance.now() - t0;
  assert_(ms >= 50 && ms < 1_000, `took ${ms} ms`);
  assert_(
    calls() > 1 && err.message.includes(`after ${calls()} attempts`),
    err.message,
  );
  assert_(err.cause instanceof TypeError);
});

Deno.test("KvStore does not retry errors other than lock contention", async () => {
  const { kv, calls } = flakyKv([new TypeError("Value too large")]);
  await using store = new KvStore(kv, "fake", { backoff: () => 1 });
  await assertRejects(
    () => store.get("x"),
    StoreUnavailableError,
    "Value too large",
  );
  assertEquals(calls(), 1);
});

const WORKERS = 3;
const OWN = 80; // each: 80 creates + 80 replaces
const SHARED = 40; // each: 40 CAS increments of one shared record

Deno.test("KvStore survives 3 processes writing one file (lock contention is retried)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "seqstream-kv-" });
  const path = `${dir}/shared.kv`;
  const shared = crypto.randomUUID();
  const killer = new AbortController();
  const deadline = setTimeout(() => killer.abort(), 120_000);
  try {
    {
      await using store = await KvStore.open(path);
      assertEquals(await store.create(sessionRecord(shared, "parent")), true);
    }
    const children = Array.from(
      { length: WORKERS },
      (_, w) =>
        new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "--quiet",
            "--config",
            new URL("../deno.json", import.meta.url).pathname,
            `--allow-read=${dir}`,
            `--allow-write=${dir}`,
            new URL(import.meta.url).pathname,
            path,
            String(w),
            shared,
          ],
          stdin: "piped",
          stdout: "piped",
          stderr: "piped",
          signal: killer.signal,
        }).spawn(),
    );
    const outs = children.map((c) => lines(c.stdout));
    const errs = children.map((c) => new Response(c.stderr).text());
    // Every worker opens the file, then all start together so their writes overlap.
    for (const out of outs) assertEquals((await out.next()).value, "ready");
    const go = new TextEncoder().encode("go\n");
    for (const c of children) {
      const w = c.stdin.getWriter();
      await w.write(go);
      await w.close();
    }
    const reports: WorkerReport[] = [];
    for (const [i, c] of children.entries()) {
      const line = (await outs[i]!.next()).value;
      const status = await c.status;
      const stderr = await errs[i];
      assertEquals(
        status.code,
        0,
        `worker ${i} exited ${status.code}: ${stderr}`,
      );
      assert_(
        typeof line === "string",
        `worker ${i} printed no report: ${stderr}`,
      );
      reports.push(JSON.parse(line));
    }
    const summary = JSON.stringify(
      reports.map((r) => ({
        ...r,
        errors: r.errors.length,
        first: r.errors[0],
      })),
    );
    for (const r of reports) {
      assertEquals(r.errors.length, 0, summary);
      assertEquals(r.ok, OWN * 2 + SHARED, summary);
    }
    await using store = await KvStore.open(path);
    assertEquals(
      (await store.get(shared))?.epoch,
      1 + WORKERS * SHARED,
      `lost CAS updates: ${summary}`,
    );
    for (let w = 0; w < WORKERS; w++) {
      for (let j = 0; j < OWN; j++) {
        const rec = await store.get(ownId(w, j));
        assertEquals(rec?.epoch, 2, `worker ${w} session ${j}`);
        assertEquals(rec?.owner, `w${w}`);
      }
    }
  } finally {
    clearTimeout(deadline);
    await Deno.remove(dir, { recursive: true });
  }
});

/** What a worker prints when done. */
interface WorkerReport {
  ok: number;
  errors: string[];
  lockRetries: number;
  casLosses: number;
  ms: number;
}

function sessionRecord(id: string, owner: string): SessionRecord {
  return {
    id,
    seed: "0123456789abcdef",
    count: 100,
    token: "0123456789abcdef0123456789abcdef",
    epoch: 1,
    owner,
    status: "live",
    expiresAt: 0,
    retainUntil: 0,
  };
}

function ownId(worker: number, j: number): string {
  return `w${worker}-${j}`;
}

async function* lines(
  stream: ReadableStream<Uint8Array>,
): AsyncGenerator<string> {
  let buf = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      yield buf.slice(0, nl);
      buf = buf.slice(nl + 1);
    }
  }
  if (buf !== "") yield buf;
}

/** The worker: 80 creates, 80 replaces and 40 contended CAS increments, interleaved. */
async function worker(path: string, w: number, shared: string): Promise<void> {
  const report: WorkerReport = {
    ok: 0,
    errors: [],
    lockRetries: 0,
    casLosses: 0,
    ms: 0,
  };
  await using store = await KvStore.open(path, {
    onRetry: ({ error }) => {
      if (isKvLockError(error)) report.lockRetries++;
    },
  });
  const out = (s: string) =>
    Deno.stdout.write(new TextEncoder().encode(s + "\n"));
  await out("ready");
  const stdin = lines(Deno.stdin.readable);
  if ((await stdin.next()).value !== "go") throw new Error("expected go");
  await stdin.return(undefined);
  const t0 = performance.now();
  const step = async (fn: () => Promise<boolean>) => {
    try {
      if (await fn()) report.ok++;
      else report.errors.push("operation returned false");
    } catch (e) {
      report.errors.push(String(e));
    }
  };
  const increment = async () => {
    for (;;) {
      const cur = await store.get(shared);
      if (!cur) return false;
      if (
        await store.replace(cur.epoch, {
          ...cur,
          epoch: cur.epoch + 1,
          owner: `w${w}`,
        })
      ) return true;
      report.casLosses++;
    }
  };
  for (let j = 0; j < OWN; j++) {
    const rec = {
      ...sessionRecord(ownId(w, j), `w${w}`),
      retainUntil: Date.now() + 600_000,
    };
    await step(() => store.create(rec));
    await step(() => store.replace(1, { ...rec, epoch: 2 }));
    if (j % 2 === 0) await step(increment);
  }
  report.ms = Math.round(performance.now() - t0);
  await out(JSON.stringify(report));
}

if (import.meta.main) {
  const [path, w, shared] = Deno.args;
  await worker(path!, Number(w), shared!);
}

Deno.test("KvStore.collect on a file leaves alone a server that renews its lease while it is judged dead", async () => {
  const dir = await Deno.makeTempDir({ prefix: "seqstream-kv-" });
  const path = `${dir}/store.kv`;
  const clock = new FakeClock(1_700_000_000_000);
  const raw = await Deno.openKv(path);
  // The collector's database: once, right after it lists the lease
  // deadlines (so right after it found the dead owner), the owner renews.
  let meanwhile: (() => Promise<unknown>) | undefined;
  const kv = new Proxy(raw, {
    get(target, prop) {
      if (prop === "list") {
        return (sel: Deno.KvListSelector, o?: Deno.KvListOptions) =>
          (async function* () {
            yield* target.list(sel, o);
            const f = meanwhile;
            meanwhile = undefined;
            await f?.();
          })();
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  const collector = new KvStore(kv, path, { clock });
  const server = await KvStore.open(path, { clock });
  try {
    const rec: SessionRecord = {
      id: crypto.randomUUID(),
      seed: "0123456789abcdef",
      count: 10,
      token: "00".repeat(16),
      epoch: 1,
      owner: "a",
      status: "live",
      expiresAt: 0,
      retainUntil: 0,
    };
    await server.renewLease("a", 300, clock.now());
    await collector.renewLease("b", 60_000, clock.now()); // both see the store's clock
    assertEquals(await server.create(rec), true);
    // Cut off from the store for longer than its lease and the grace.
    await clock.advance(300 + 1000 + 1);
    meanwhile = () => server.renewLease("a", 300, clock.now());
    assertEquals(await collector.collect(1000, 100), 0);
    assert_(
      (await server.leaseOf("a")).lease !== null,
      "renewed lease deleted",
    );
    assertEquals(
      await server.get(rec.id),
      rec,
      "a live server's record deleted",
    );
    // Nothing stale is left to collect it later either.
    await clock.advance(200);
    await server.renewLease("a", 300, clock.now());
    await clock.advance(200);
    await collector.renewLease("b", 60_000, clock.now());
    assertEquals(await collector.collect(0, 100), 0);
    assertEquals(await server.get(rec.id), rec, "collected after all");
  } finally {
    await collector.close();
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
