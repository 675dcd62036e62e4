/**
 * Partition case 3, short form (see `_partition_short.ts`): kill -9 of the
 * busiest Redis Cluster primary.
 *
 * @module
 */

import { assert_ } from "./_assert.ts";
import { partitionTest } from "./_partition_short.ts";

partitionTest(
  "Partition case 3 (short): kill -9 of the Redis Cluster primary holding the most sessions, " +
    "300 ms after its replication link dropped: no welcomed session is lost",
  { case: 3, seed: 17 },
  (r) => {
    assert_(
      r.events.some((e) => e.includes("failed over")),
      r.events.join("; "),
    );
    // The kill took writes with it: the shard held sessions, and its
    // primary had replicated less than it had written.
    assert_(r.victimKeys > 0, `the killed primary held nothing: ${r.events}`);
    assert_(
      r.unreplicatedBytes > 0,
      `the kill lost no write (replication was not cut): ${r.events}`,
    );
  },
);
