/**
 * Partition case 2, short form (see `_partition_short.ts`): the Sentinel
 * primary cut off from all but one server, then healed.
 *
 * @module
 */

import { assert_ } from "./_assert.ts";
import { partitionTest } from "./_partition_short.ts";

partitionTest(
  "Partition case 2 (short): the Sentinel primary cut off from the sentinels, its replicas and " +
    "one server, but not the other, longer than the failover, then healed: no welcomed session is lost",
  { case: 2, seed: 16 },
  (r) => {
    assert_(
      r.events.some((e) => e.includes("the old primary is a replica")),
      r.events.join("; "),
    );
    // Server A kept the old primary and was refused by its WAITs.
    assert_(r.unconfirmed > 0, `nothing was left unconfirmed: ${r.events}`);
  },
);
