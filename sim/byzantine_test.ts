import { assertEquals } from "../tests/_assert.ts";
import { FrameDecoder } from "../protocol/frame.ts";
import {
  decodeMessage,
  encodeMessage,
  type Message,
} from "../protocol/messages.ts";
import { type Corruption, FrameCorruptor } from "./byzantine.ts";

const valueAt = (offset: number) => 1000 + offset;
const num = (offset: number): Message => ({
  type: "number",
  offset,
  value: valueAt(offset),
});
const final = (offset: number): Message => ({
  type: "final",
  offset,
  value: valueAt(offset),
  sum: 1,
  crc32: 2,
});
const write = (...ms: Message[]) => {
  const parts = ms.map(encodeMessage);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) out.set(p, (at += p.length) - p.length);
  return out;
};
/** What the client decodes: "n3=1003", "f4". */
function wire(bytes: Uint8Array): string[] {
  const out: string[] = [];
  for (const f of new FrameDecoder().push(bytes)) {
    const m = decodeMessage(f);
    if (m.type === "number") out.push(`n${m.offset}=${m.value}`);
    else if (m.type === "final") out.push(`f${m.offset}`);
    else out.push(m.type);
  }
  return out;
}

function corruptor(kind: Corruption, nth = 0) {
  const told: string[] = [];
  const c = new FrameCorruptor(
    { kind, nth },
    valueAt,
    (k, offset) => told.push(`${k} ${offset}`),
  );
  return { c, told };
}

Deno.test("FrameCorruptor after-final sends a NUMBER at offset count, with that offset's value, right after FINAL, once", () => {
  const { c, told } = corruptor("after-final");
  assertEquals(wire(c.pass(write(num(2)))), ["n2=1002"]);
  assertEquals(wire(c.pass(write(num(3), final(4), { type: "done" }))), [
    "n3=1003",
    "f4",
    "n5=1005",
    "done",
  ]);
  assertEquals(told, ["after-final 5"]);
  assertEquals(c.spent, true);
  assertEquals(wire(c.pass(write(final(4)))), ["f4"], "only once");
});

Deno.test("FrameCorruptor skip, duplicate and value corrupt the nth NUMBER of the connection, counted across writes", () => {
  const cases: [Corruption, string[], string][] = [
    ["skip", ["n2=1002", "n4=1004", "n4=1004"], "skip 4"],
    ["duplicate", ["n2=1002", "n3=1003", "n3=1003", "n4=1004"], "duplicate 3"],
    ["value", ["n2=1002", "n3=1002", "n4=1004"], "value 3"], // 1003 ^ 1
  ];
  for (const [kind, want, note] of cases) {
    const { c, told } = corruptor(kind, 1);
    const first = wire(c.pass(write(num(2))));
    const rest = wire(c.pass(write(num(3), num(4))));
    assertEquals([...first, ...rest], want, kind);
    assertEquals(told, [note], kind);
    assertEquals(wire(c.pass(write(num(5)))), ["n5=1005"], `${kind}: once`);
  }
});

Deno.test("FrameCorruptor passes a write that does not hold whole frames unchanged, and never corrupts a NUMBER it was not told to", () => {
  const { c, told } = corruptor("duplicate", 0);
  const bytes = write(num(0), num(1));
  const cut = bytes.subarray(0, bytes.length - 1);
  assertEquals(c.pass(cut), cut);
  const { c: late, told: lateTold } = corruptor("value", 9);
  assertEquals(wire(late.pass(write(num(0), final(1)))), ["n0=1000", "f1"]);
  assertEquals([told, lateTold, late.spent], [[], [], false]);
});
