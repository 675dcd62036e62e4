/**
 * The one contract every {@link SessionStore} backend passes: each backend's
 * test file calls {@link storeContractTests} with a way to open a fresh store.
 *
 * Ids and owners are random per test, so backends shared between tests (one
 * Redis, one KV file) do not see each other's data.
 *
 * @module
 */

import { assert_, assertEquals } from "../tests/_assert.ts";
import type { Fence, SessionRecord, SessionStore } from "./types.ts";

/** Backend-specific hooks for the retention tests. */
export interface StoreContractOptions {
  /**
   * Applies retention now: after it, records whose `retainUntil` has passed
   * must be gone (memory: `sweep()`; Redis: nothing to do, `PEXPIREAT` in the
   * past deletes at once). Without it the deletion test is ignored, saying why.
   */
  sweep?: (store: SessionStore) => Promise<void> | void;
  /** Why {@link sweep} is absent, for the ignored test's name. */
  noSweepReason?: string;
  /**
   * The backend's physical-deletion hint for `id` in ms since the epoch, or
   * `null` when there is none (Redis: `PTTL` through a second client; KV:
   * the `expiration_ms` column). Without it the hint test is ignored, saying why.
   */
  expiryHint?: (store: SessionStore, id: string) => Promise<number | null>;
  /** Why {@link expiryHint} is absent, for the ignored test's name. */
  noHintReason?: string;
  /**
   * Moves the store's clock forward by `ms` (memory: its injected `now`).
   * Default: waits `ms` of real time, for backends whose clock is real
   * (Redis `TIME`, the KV store clock).
   */
  advance?: (store: SessionStore, ms: number) => Promise<void> | void;
  /** When set, every test registers as ignored, with this reason in its name. */
  ignore?: string;
  /** Passed to every `Deno.test` (e.g. for a client that leaks an op). */
  sanitizeOps?: boolean;
  /**
   * Passed to every `Deno.test`. Deno 2.9 reports a pending timer under
   * both sanitizers, so a client that leaves a timer behind needs both off.
   */
  sanitizeResources?: boolean;
}

/** A hint may be this far from `retainUntil` (relative TTLs, clock reads). */
const HINT_SLACK_MS = 2_000;

/**
 * Registers the contract tests for one backend, each as
 * `"<name>: <behaviour>"`. Every test opens its own store with `open` and
 * closes it.
 *
 * @param name backend label for test names, e.g. `"KvStore(file)"`
 * @param open opens a fresh, empty-enough store
 * @param opts retention hooks and ignore reasons
 *
 * @example
 * ```ts
 * storeContractTests("MemoryStore", () => Promise.resolve(new MemoryStore()), {
 *   sweep: (s) => (s as MemoryStore).sweep(),
 * });
 * ```
 */
export function storeContractTests(
  name: string,
  open: () => Promise<SessionStore>,
  opts: StoreContractOptions = {},
): void {
  const test = (
    behaviour: string,
    fn: (store: SessionStore) => Promise<void>,
    skip?: string,
  ) => {
    const why = opts.ignore ?? skip;
    Deno.test({
      name: `${name}: ${behaviour}${why ? ` (ignored: ${why})` : ""}`,
      ignore: why !== undefined,
      sanitizeOps: opts.sanitizeOps ?? true,
      sanitizeResources: opts.sanitizeResources ?? true,
      fn: async () => {
        const store = await open();
        try {
          await fn(store);
        } finally {
          await store.close();
        }
      },
    });
  };

  test("create stores a record only if none exists for its id", async (store) => {
    const rec = record();
    assertEquals(await store.create(rec), true);
    assertEquals(
      await store.create({ ...rec, owner: "intruder", epoch: 9 }),
      false,
    );
    assertEquals(await store.get(rec.id), rec);
  });

  test("create lets exactly one of many concurrent creates win", async (store) => {
    const id = crypto.randomUUID();
    const results = await Promise.all(
      Array.from(
        { length: 16 },
        (_, i) => store.create(record({ id, owner: `srv-${i}` })),
      ),
    );
    assertEquals(results.filter((ok) => ok).length, 1, `results: ${results}`);
    const winner = results.indexOf(true);
    assertEquals((await store.get(id))?.owner, `srv-${winner}`);
  });

  test("get returns exactly what was stored, every field", async (store) => {
    const recs: SessionRecord[] = [
      record(),
      record({
        seed: "ffffffffffffffff",
        count: 65535,
        epoch: 7,
        owner: "server-b:1234",
        status: "live",
        expiresAt: 0,
        retainUntil: Date.now() + 60_000,
      }),
      record({
        count: 1,
        status: "completed",
        expiresAt: Date.now(),
        retainUntil: Date.now() + 60_000,
      }),
      record({
        status: "expired",
        expiresAt: 1_700_000_000_123,
        retainUntil: Date.now() + 60_000,
      }),
    ];
    for (const r of recs) assertEquals(await store.create(r), true);
    for (const r of recs) assertEquals(await store.get(r.id), r);
    assertEquals(await store.get(crypto.randomUUID()), null);
  });

  test("replace is a compare-and-set on the epoch", async (store) => {
    const rec = record({ epoch: 3 });
    await store.create(rec);
    const next = { ...rec, epoch: 4, owner: "srv-b" };
    assertEquals(await store.replace(2, next), false, "lower epoch");
    assertEquals(await store.replace(4, next), false, "higher epoch");
    assertEquals(await store.get(rec.id), rec, "unchanged after failed CAS");
    assertEquals(await store.replace(3, next), true);
    assertEquals(await store.get(rec.id), next);
    assertEquals(
      await store.replace(3, { ...next, epoch: 5 }),
      false,
      "stale epoch",
    );
    // Same-epoch updates (e.g. a detach) are allowed.
    const detached = { ...next, owner: "", expiresAt: Date.now() + 30_000 };
    assertEquals(await store.replace(4, detached), true);
    assertEquals(await store.get(rec.id), detached);
  });

  test("replace does not create a missing record", async (store) => {
    const rec = record();
    assertEquals(await store.replace(1, rec), false);
    assertEquals(await store.get(rec.id), null);
  });

  test("replace lets exactly one of many concurrent CAS writes win", async (store) => {
    const rec = record({ epoch: 5 });
    await store.create(rec);
    const n = 16;
    const results = await Promise.all(
      Array.from(
        { length: n },
        (_, i) => store.replace(5, { ...rec, epoch: 6, owner: `srv-${i}` }),
      ),
    );
    assertEquals(results.filter((ok) => ok).length, 1, `results: ${results}`);
    const cur = await store.get(rec.id);
    assertEquals(cur, {
      ...rec,
      epoch: 6,
      owner: `srv-${results.indexOf(true)}`,
    });
  });

  const advance = (store: SessionStore, ms: number) =>
    opts.advance
      ? opts.advance(store, ms)
      : new Promise<void>((r) => setTimeout(r, ms));

  test("renewLease writes a lease in store time; leaseOf reads it with the store's time", async (store) => {
    const [a, b] = [owner(), owner()];
    const before = await store.leaseOf(a);
    assertEquals(before.lease, null);
    const l1 = await store.renewLease(a, 60_000, Date.now());
    assertEquals(l1.until - l1.renewedAt, 60_000);
    const r1 = await store.leaseOf(a);
    assertEquals(r1.lease, l1);
    assert_(r1.now !== null, "no store time after a renewal");
    assert_(
      r1.now >= l1.renewedAt && r1.now < l1.renewedAt + HINT_SLACK_MS,
      `store time ${r1.now} vs renewal ${l1.renewedAt}`,
    );
    await advance(store, 5);
    const l2 = await store.renewLease(a, 1_000, Date.now());
    assert_(l2.renewedAt >= l1.renewedAt, "store time went backwards");
    assertEquals(l2.until - l2.renewedAt, 1_000);
    assertEquals((await store.leaseOf(a)).lease, l2);
    assertEquals((await store.leaseOf(b)).lease, null);
    const lb = await store.renewLease(b, 5, Date.now());
    assertEquals((await store.leaseOf(b)).lease, lb);
    assertEquals((await store.leaseOf(a)).lease, l2, "other owner unaffected");
  });

  test("an attached record has no expiry and outlives any stream while its owner renews", async (store) => {
    const live = owner();
    const attached = record({ owner: live, retainUntil: 0 });
    await store.create(attached);
    const resumed = record({ owner: "", retainUntil: 0 });
    await store.create(resumed);
    const moved = { ...resumed, epoch: 2, owner: live };
    assertEquals(await store.replace(1, moved), true);
    // Many heartbeats' worth of store time (memory: days), with a short lease
    // renewed each round. In real time the 5 rounds outlast one lease (2
    // steps) more than twice, with a step of slack for a loaded host's late
    // timers: 40 ms steps left 40 ms, and a CI-like run with one core busy
    // once took longer from renewal to collect (Redis, round 2).
    const step = opts.advance ? 3_600_000 : 200;
    for (let i = 0; i < 5; i++) {
      await store.renewLease(live, step * 2, Date.now());
      await advance(store, step);
      await opts.sweep?.(store);
      assertEquals(await store.collect(0, 100), 0, `round ${i}`);
    }
    assertEquals(await store.get(attached.id), attached);
    assertEquals(await store.get(moved.id), moved);
    if (opts.expiryHint) {
      assertEquals(await opts.expiryHint(store, attached.id), null, "hint");
    }
  });

  test("collect deletes a dead owner's attached records after its lease plus the grace, not before", async (store) => {
    const [dead, live] = [owner(), owner()];
    // Real time: the eleven writes between the lease and the "not before"
    // check must take less than the grace (a loaded host took 300 ms once).
    const grace = opts.advance ? 60_000 : 2_000;
    const lease = await store.renewLease(dead, 50, Date.now());
    await store.renewLease(live, 600_000, Date.now());
    const a1 = record({ owner: dead });
    const a2 = record({ owner: dead });
    const detached = record({ owner: "", expiresAt: lease.until + 1 });
    const theirs = record({ owner: live });
    const taken = record({ owner: dead });
    for (const r of [a1, a2, detached, theirs, taken]) {
      assertEquals(await store.create(r), true);
    }
    const takenOver = { ...taken, epoch: 2, owner: live };
    assertEquals(await store.replace(1, takenOver), true);
    const gone = { ...record({ owner: dead }), status: "live" as const };
    await store.create(gone);
    const detachedLater = { ...gone, owner: "", expiresAt: 1 };
    assertEquals(await store.replace(1, detachedLater), true);
    await store.fence(dead, { id: a1.id, epoch: 9 });
    // Not before: the lease has lapsed, the grace has not.
    await advance(store, 60);
    assertEquals(await store.collect(grace, 100), 0, "collected early");
    for (const r of [a1, a2]) assertEquals(await store.get(r.id), r);
    await advance(store, grace);
    assertEquals(await store.collect(grace, 100), 2);
    assertEquals(await store.get(a1.id), null);
    assertEquals(await store.get(a2.id), null);
    assertEquals(await store.get(detached.id), detached);
    assertEquals(await store.get(theirs.id), theirs);
    assertEquals(await store.get(takenOver.id), takenOver);
    assertEquals(await store.get(gone.id), detachedLater);
    assertEquals((await store.leaseOf(dead)).lease, null, "lease kept");
    assertEquals(await store.drainFences(dead), [], "fences kept");
    assertEquals(await store.collect(grace, 100), 0);
    assert_((await store.leaseOf(live)).lease !== null, "live lease dropped");
  });

  test("collect works in batches of at most limit records", async (store) => {
    const dead = owner();
    await store.renewLease(dead, 1, Date.now());
    const recs = Array.from({ length: 5 }, () => record({ owner: dead }));
    for (const r of recs) await store.create(r);
    await advance(store, 30);
    const got: number[] = [];
    for (let i = 0; i < 4; i++) got.push(await store.collect(10, 2));
    assertEquals(got, [2, 2, 1, 0]);
    for (const r of recs) assertEquals(await store.get(r.id), null);
    assertEquals((await store.leaseOf(dead)).lease, null);
  });

  test("drainFences returns an owner's fences in order and clears them", async (store) => {
    const [a, b] = [owner(), owner()];
    assertEquals(await store.drainFences(a), []);
    const forA: Fence[] = Array.from(
      { length: 25 },
      (_, i) => ({ id: crypto.randomUUID(), epoch: i + 2 }),
    );
    const forB: Fence = { id: crypto.randomUUID(), epoch: 3 };
    for (const [i, f] of forA.entries()) {
      await store.fence(a, f);
      if (i === 10) await store.fence(b, forB);
    }
    assertEquals(await store.drainFences(a), forA);
    assertEquals(await store.drainFences(a), [], "cleared");
    assertEquals(await store.drainFences(b), [forB], "other owner unaffected");
    assertEquals(await store.drainFences(b), []);
    const late: Fence = { id: crypto.randomUUID(), epoch: 99 };
    await store.fence(a, late);
    assertEquals(
      await store.drainFences(a),
      [late],
      "fences after a drain are kept",
    );
  });

  test(
    "records past retainUntil are deleted, others kept",
    async (store) => {
      const now = Date.now();
      const past = record({ status: "expired", retainUntil: now - 1_000 });
      const future = record({ status: "completed", retainUntil: now + 60_000 });
      const forever = record({ retainUntil: 0 });
      const moved = record({ retainUntil: now + 60_000 });
      for (const r of [past, future, forever, moved]) await store.create(r);
      assertEquals(
        await store.replace(1, { ...moved, retainUntil: now - 1 }),
        true,
      );
      await opts.sweep!(store);
      assertEquals(await store.get(past.id), null, "past retainUntil");
      assertEquals(
        await store.get(moved.id),
        null,
        "retainUntil moved into the past",
      );
      assertEquals(await store.get(future.id), future);
      assertEquals(await store.get(forever.id), forever);
    },
    opts.sweep
      ? undefined
      : opts.noSweepReason ?? "backend cannot delete on demand",
  );

  test(
    "retainUntil sets the backend's deletion hint, and 0 clears it",
    async (store) => {
      const hint = opts.expiryHint!;
      const near = (actual: number | null, expected: number, what: string) => {
        assert_(actual !== null, `${what}: no hint`);
        assert_(
          Math.abs(actual - expected) <= HINT_SLACK_MS,
          `${what}: hint ${actual}, retainUntil ${expected}`,
        );
      };
      const rec = record({ retainUntil: Date.now() + 60_000 });
      await store.create(rec);
      near(await hint(store, rec.id), rec.retainUntil, "create");
      const later = { ...rec, retainUntil: Date.now() + 600_000 };
      assertEquals(await store.replace(1, later), true);
      near(await hint(store, rec.id), later.retainUntil, "replace");
      assertEquals(await store.replace(1, { ...rec, retainUntil: 0 }), true);
      assertEquals(await hint(store, rec.id), null, "retainUntil 0");
      const zero = record({ retainUntil: 0 });
      await store.create(zero);
      assertEquals(
        await hint(store, zero.id),
        null,
        "created with retainUntil 0",
      );
    },
    opts.expiryHint
      ? undefined
      : opts.noHintReason ?? "backend exposes no deletion hint",
  );

  test("close is idempotent", async (store) => {
    await store.create(record());
    await store.close();
    await store.close();
    await store[Symbol.asyncDispose]();
  });
}

function owner(): string {
  return `srv-${crypto.randomUUID().slice(0, 8)}`;
}

function record(over: Partial<SessionRecord> = {}): SessionRecord {
  const hex = (n: number) =>
    Array.from(
      crypto.getRandomValues(new Uint8Array(n)),
      (b) => b.toString(16).padStart(2, "0"),
    ).join("");
  return {
    id: crypto.randomUUID(),
    seed: hex(8),
    count: 1000,
    token: hex(16),
    epoch: 1,
    owner: "srv-a",
    status: "live",
    expiresAt: 0,
    retainUntil: 0,
    ...over,
  };
}
