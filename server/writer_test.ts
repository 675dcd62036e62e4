import { assertEquals } from "../tests/_assert.ts";
import { type ByteSink, Writer } from "./writer.ts";

/** A sink that takes at most `most` bytes per write, each write settling when the test says. */
function gatedSink(most: number) {
  const taken: number[] = [];
  const waiting: (() => void)[] = [];
  let fail: Error | undefined;
  const sink: ByteSink = {
    write(p) {
      if (fail) return Promise.reject(fail);
      const n = Math.min(most, p.length);
      return new Promise((resolve, reject) =>
        waiting.push(() => {
          if (fail) return reject(fail);
          taken.push(...p.subarray(0, n));
          resolve(n);
        })
      );
    },
  };
  /** Settles every write waiting now and those they start, until none is left. */
  const drain = async () => {
    for (let i = 0; i < 100; i++) {
      await Promise.resolve();
      const w = waiting.shift();
      if (w) w();
      else if (i > 10) return;
    }
  };
  return {
    sink,
    taken,
    drain,
    breakIt: (err: Error) => (fail = err),
  };
}

Deno.test("Writer writes in order, a short write finished before the next, and goes idle once per drained queue", async () => {
  const s = gatedSink(2);
  let idle = 0;
  const w = new Writer(s.sink, { onError: () => {}, onIdle: () => idle++ });
  const a = w.write(new Uint8Array([1, 2, 3]));
  const b = w.write(new Uint8Array([4, 5]));
  assertEquals(w.busy, true);
  await s.drain();
  assertEquals(await a, true);
  assertEquals(await b, true);
  assertEquals(s.taken, [1, 2, 3, 4, 5]);
  assertEquals(idle, 1);
  assertEquals(w.busy, false);
  // Idle again: a later write starts at once, and idles again.
  const c = w.write(new Uint8Array([6]));
  await s.drain();
  assertEquals(await c, true);
  assertEquals(s.taken, [1, 2, 3, 4, 5, 6]);
  assertEquals(idle, 2);
});

Deno.test("Writer reports the first failure once, fails what is queued behind it, and never goes idle after", async () => {
  const s = gatedSink(10);
  const errors: unknown[] = [];
  let idle = 0;
  const w = new Writer(s.sink, {
    onError: (e) => errors.push(e),
    onIdle: () => idle++,
  });
  s.breakIt(new Deno.errors.BrokenPipe("gone"));
  const a = w.write(new Uint8Array([1]));
  const b = w.write(new Uint8Array([2]));
  await s.drain();
  assertEquals([await a, await b], [false, false]);
  assertEquals(errors.length, 1);
  assertEquals(await w.write(new Uint8Array([3])), false);
  assertEquals(errors.length, 1);
  assertEquals(idle, 0);
  assertEquals(w.busy, false);
});
