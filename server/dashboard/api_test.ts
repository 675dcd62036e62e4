import { assertEquals } from "../../tests/_assert.ts";
import type { SessionView } from "../connection.ts";
import type { DetachedView } from "../detached.ts";
import {
  pageParams,
  querySessions,
  type SessionSource,
  sessionsPage,
  sessionsQuery,
} from "./api.ts";

function source(attached: number, awaiting: number): SessionSource {
  const a: SessionView[] = Array.from({ length: attached }, (_, i) => ({
    id: `a${i}`,
    count: 10,
    sent: 10,
    acked: i,
    epoch: i + 1,
    completing: i === 0,
    remote: "127.0.0.1:1",
    attachedAt: 1000,
  }));
  const d: DetachedView[] = Array.from({ length: awaiting }, (_, i) => ({
    id: `d${i}`,
    count: 5,
    epoch: 2,
    expiresInMs: 1500.4,
  }));
  return {
    attachedCount: attached,
    awaitingCount: awaiting,
    attached: (s, l) => a.slice(s, s + l),
    awaiting: (s, l) => d.slice(s, s + l),
  };
}

Deno.test("sessionsPage: attached first, then awaiting resume, paged across both", () => {
  const src = source(3, 2);
  const p = sessionsPage(src, 2, 2, 4000);
  assertEquals(p.sessions.map((s) => s.id), ["a2", "d0"]);
  assertEquals(p.sessions[0]!.attachedForMs, 3000);
  assertEquals(p.sessions[0]!.reconnects, 2);
  assertEquals(p.sessions[1]!.state, "awaiting resume");
  assertEquals(p.sessions[1]!.expiresInMs, 1500);
  assertEquals(sessionsPage(src, 4, 10, 0).sessions.map((s) => s.id), ["d1"]);
  assertEquals(sessionsPage(src, 0, 1, 0).sessions[0]!.state, "completing");
  assertEquals([p.attached, p.awaiting], [3, 2]);
});

Deno.test("pageParams: defaults, a cap, and nonsense ignored", () => {
  const q = (s: string) => pageParams(new URLSearchParams(s));
  assertEquals(q(""), { skip: 0, limit: 50 });
  assertEquals(q("limit=100000&skip=7"), { skip: 7, limit: 500 });
  assertEquals(q("limit=-1&skip=x"), { skip: 0, limit: 50 });
});

Deno.test("querySessions filters by id prefix, state and remote, and sorts with missing values last", () => {
  const src = source(3, 2);
  const q = (s: string) =>
    querySessions(src, sessionsQuery(new URLSearchParams(s)), 4000);
  assertEquals(q("id=D").sessions.map((s) => s.id), ["d0", "d1"]);
  assertEquals(q("id=D").matched, 2);
  assertEquals(q("state=completing").sessions.map((s) => s.id), ["a0"]);
  assertEquals(
    q("state=awaiting+resume").sessions.map((s) => s.id),
    ["d0", "d1"],
  );
  assertEquals(q("remote=127.0").sessions.length, 3, "detached have none");
  assertEquals(
    q("sort=acked&order=desc").sessions.map((s) => s.id),
    ["a2", "a1", "a0", "d0", "d1"],
  );
  assertEquals(
    q("sort=expiresIn&limit=2&skip=1").sessions.map((s) => s.id),
    ["d1", "a0"],
  );
  assertEquals(q("sort=nonsense&state=nope").matched, undefined, "ignored");
  const page = q("id=a&limit=1");
  assertEquals([page.matched, page.scanned, page.truncated], [3, 5, false]);
});
