/**
 * The short form of the partition tests of docs/durability.md (the long
 * form and the figures: `deno task bench:partition`, BENCHMARKS.md), shared
 * by `partition_kill_test.ts` (case 1), `partition_cut_test.ts` (case 2) and
 * `partition_cluster_test.ts` (case 3). One case a file, so that
 * `deno test --parallel` runs them beside the other files instead of one
 * after another (about 50 s together). Each case runs in a network namespace
 * of its own (`tests/_netns.ts`), its topology, servers and clients inside it
 * (`tests/_partition.ts`), with confirmation on (the default): no session
 * that was welcomed may be lost, resumed after its TTL, or get a wrong
 * number.
 *
 * Needs root (or CAP_NET_ADMIN), `ip`, `iptables`, `ss` and redis-server.
 * Without them importing this module fails, saying what is missing, unless
 * `SEQSTREAM_SKIP_NETNS=1` (then the tests are ignored, with the reason in
 * their names).
 *
 * @module
 */

import { assert_, assertEquals } from "./_assert.ts";
import { netnsUnavailable } from "./_netns.ts";
import {
  runInNetns,
  type ScenarioResult,
  type ScenarioSpec,
} from "./_partition.ts";
import { redisIgnoreReason } from "./_redis.ts";

const SKIP_ENV = "SEQSTREAM_SKIP_NETNS";
const missing = await netnsUnavailable() ?? await redisIgnoreReason();
if (missing !== undefined && Deno.env.get(SKIP_ENV) !== "1") {
  throw new Error(
    `The partition tests cannot run here: ${missing}. They need root (or CAP_NET_ADMIN), ip, iptables and redis-server; set ${SKIP_ENV}=1 to ignore them`,
  );
}
const ignore = missing === undefined ? undefined : `${missing} (${SKIP_ENV}=1)`;

/**
 * The short form: about 15 s per case on a loaded 2-core machine (cases 1,
 * 2 and 3 took 14, 22 and 11 s here, 47 s for the three).
 */
const SHORT: Omit<ScenarioSpec, "case"> = {
  confirm: true,
  clients: 150,
  rampMs: 5000,
  count: 300,
  intervalMs: 10,
  ttlMs: 10_000,
  faultAtMs: 2500,
  lagMs: 300,
  partitionMs: 3000,
  seed: 15,
};

function check(r: ScenarioResult): void {
  const l = r.worker.ledger;
  const why = `${JSON.stringify(l)}; errors ${
    JSON.stringify(r.worker.errors)
  }; ${r.events.join("; ")}; ${r.worker.errorSamples.join(" | ")}`;
  assertEquals(l.lost, 0, `welcomed, then unknown: ${why}`);
  assertEquals(l.late, 0, `resumed after the TTL: ${why}`);
  assertEquals(l.wrong, 0, `a wrong number: ${why}`);
  // The run happened: most sessions were promised. (How many finished is
  // availability, not the promise: with confirmation a server without
  // replicas refuses, and in case 2 the side that lost its primary takes a
  // few seconds to follow the failover; BENCHMARKS.md has the figures.)
  // A fifth: case 2 sometimes leaves the new primary with no replica for
  // most of the partition (sentinel timing on a loaded host), so confirmed
  // handshakes are refused meanwhile; 74 of 150 were welcomed in one CI run.
  assert_(l.welcomed >= r.spec.clients * 0.2, `too few welcomed: ${why}`);
}

/**
 * Registers the short form of `spec.case` as a test named `name`: it runs
 * the case (60 s at most), checks the promise, then `more` on the result.
 */
export function partitionTest(
  name: string,
  spec: Pick<ScenarioSpec, "case"> & Partial<ScenarioSpec>,
  more: (r: ScenarioResult) => void,
): void {
  Deno.test({
    name: name + (ignore ? ` (ignored: ${ignore})` : ""),
    ignore: ignore !== undefined,
    fn: async () => {
      const r = await runInNetns({ ...SHORT, ...spec }, 60_000);
      check(r);
      more(r);
    },
  });
}
