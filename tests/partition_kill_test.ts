/**
 * Partition case 1, short form (see `_partition_short.ts`): kill -9 of the
 * Sentinel primary and of the server beside it.
 *
 * @module
 */

import { assert_ } from "./_assert.ts";
import { partitionTest } from "./_partition_short.ts";

partitionTest(
  "Partition case 1 (short): kill -9 of the Sentinel primary and of the server beside it, " +
    "300 ms after its replication link dropped: no welcomed session is lost",
  { case: 1 },
  (r) => {
    assert_(
      r.events.some((e) => e.includes("failed over")),
      r.events.join("; "),
    );
    // Sessions were being created at the kill: some of them were cut off
    // unconfirmed (refused, retried elsewhere), none was welcomed unconfirmed.
    assert_(r.worker.lostAfterKill > 0, "no session was cut by the kill");
  },
);
