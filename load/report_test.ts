import { assertEquals } from "../tests/_assert.ts";
import { storeOpsOf } from "./report.ts";

Deno.test("storeOpsOf counts the heartbeat's per-server operations apart from the sessions'", () => {
  const server = (hello: number, beats: number) =>
    new Map([
      ['seqstream_store_ops_total{op="create"}', hello],
      ['seqstream_store_ops_total{op="complete"}', hello],
      ['seqstream_store_ops_total{op="lease_renew"}', beats],
      ['seqstream_store_ops_total{op="lease_check"}', beats],
      ["seqstream_sessions", 0],
    ]);
  // 100 sessions, each create + complete (a = 2), over two servers, for 2 minutes.
  const s = storeOpsOf([server(60, 120), server(40, 120), null], 100, 120)!;
  assertEquals(s.perSession, 2, "heartbeats are not per session");
  assertEquals(s.sessionOps, 200);
  assertEquals(s.serverOps.total, 480);
  assertEquals(s.serverOps.servers, 2);
  assertEquals(s.serverOps.perServerPerMin, 120);
  assertEquals(s.serverOps.byOp, { lease_renew: 240, lease_check: 240 });
  assertEquals(s.byOp.create, 100);
  assertEquals(storeOpsOf([new Map(), null], 10, 60), null);
});
