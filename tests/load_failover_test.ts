/**
 * `deno task load --kill I@TIME` end to end, small: two real server
 * processes on one port (`--reuse-port`) sharing the run's own redis-server,
 * one load process of lean clients; server 0 is killed with SIGKILL mid-run.
 * Every session still PASSes (none expires), every cut session resumes on the
 * survivor, the wave histogram counts each resume once, and the survivor ends
 * in zero state.
 *
 * @module
 */

import { parseFlags } from "../cli/usage.ts";
import { FLAGS, parseConfig } from "../load/config.ts";
import { run } from "../load/main.ts";
import { assert_, assertEquals } from "./_assert.ts";
import { redisIgnoreReason } from "./_redis.ts";

const skip = await redisIgnoreReason();

Deno.test({
  name: `load --kill: every session resumes on the survivor and PASSes${
    skip ? ` (ignored: ${skip})` : ""
  }`,
  ignore: skip !== undefined,
  async fn() {
    const cfg = parseConfig(parseFlags(FLAGS, [
      "--clients",
      "60",
      "--servers",
      "2",
      "--store",
      "redis",
      "--ramp",
      "500ms",
      "--window",
      "1500ms",
      "--interval",
      "100ms",
      "--kill",
      "0@1s",
      "--settle",
      "3s",
      "--seed",
      "3",
    ]));
    assertEquals(cfg.countMin, 21, "count = (ramp + window) / interval + 1");
    const r = await run(cfg, new AbortController().signal);
    assertEquals(r.clients.errors, {});
    assertEquals([r.verdict, r.clients.passed, r.zeroState], [
      "PASS",
      60,
      true,
    ]);
    const f = r.failover!;
    assertEquals(r.servers.map((s) => s.killed), [true, false]);
    assert_(f.sessionsCut > 0, "the killed server had sessions");
    assertEquals(f.resumed, f.sessionsCut, "every cut session resumed");
    assertEquals(f.wave.counts.reduce((a, b) => a + b, 0), f.resumed);
    assert_(
      f.resumeMs.p50 <= f.resumeMs.p99 && f.resumeMs.p99 <= f.resumeMs.max,
      JSON.stringify(f.resumeMs),
    );
    assertEquals(r.peak.liveSessions, 60, "all sessions live at once");
    assert_(r.redisCalls !== null && r.redisCalls.total > 0, "redis counted");
  },
});
