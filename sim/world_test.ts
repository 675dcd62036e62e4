import { assert, assertEquals } from "../tests/_assert.ts";
import { Rng } from "./rng.ts";
import { checkpoint, checkpointRuns, Node, SimClock, World } from "./world.ts";

/**
 * A seeded tangle of timers and promise chains: each event starts chains
 * of awaits (some through `queueMicrotask`, some resolving promises other
 * chains wait on) that log, arm timers (some at the same instant) and clear
 * some. Returns the log (`time label` per step, in the order they ran),
 * and how many steps ran after the instant that set them off had passed.
 */
async function tangle(
  world: World,
  seed: number,
): Promise<{ log: string[]; late: number }> {
  const rng = new Rng(seed);
  const node = new Node("n");
  const clock = new SimClock(world, node);
  const log: string[] = [];
  /** Opened with the opener's id and the instant it opened the gate at. */
  const gates: ((v: { id: number; at: number }) => void)[] = [];
  const open = (id: number) => gates.shift()?.({ id, at: world.time });
  let n = 0, late = 0;
  const chain = async (id: number, depth: number): Promise<void> => {
    // Its steps run at this instant, or at the one a gate opened at.
    let at = world.time;
    const step = (label: string) => {
      if (world.time !== at) late++;
      log.push(`${world.time} ${label}`);
    };
    for (let d = 0; d < depth; d++) {
      switch (rng.int(0, 3)) {
        case 0:
          await null;
          break;
        case 1:
          await new Promise<void>((r) => queueMicrotask(r));
          break;
        case 2: {
          // Wait on a gate another chain (or event) opens, if one is open.
          const v = await new Promise<{ id: number; at: number }>((r) => {
            gates.push(r);
            if (gates.length > 1) open(id);
          });
          at = v.at;
          step(`chain ${id} through gate from ${v.id}`);
          break;
        }
        default:
          await Promise.resolve(d);
      }
      step(`chain ${id} step ${d}`);
    }
    if (n < 400 && rng.chance(0.6)) fire(rng.chance(0.3) ? 0 : rng.int(1, 5));
  };
  const fire = (ms: number) => {
    const id = n++;
    const timer = clock.setTimeout(() => {
      log.push(`${world.time} event ${id}`);
      for (let k = rng.int(0, 3); k > 0; k--) void chain(id, rng.int(0, 6));
      if (rng.chance(0.2)) open(id);
    }, ms);
    if (rng.chance(0.1)) clock.clearTimeout(timer);
  };
  for (let i = 0; i < 20; i++) fire(rng.int(0, 10));
  await world.run(Infinity);
  // (Chains still waiting on a gate stay there.)
  return { log, late };
}

Deno.test("World.run with a microtask checkpoint runs the promise callbacks of an instant before the next, as a macrotask per instant does", async () => {
  assert(checkpoint !== undefined, "this Deno has a microtask checkpoint");
  for (let seed = 1; seed <= 30; seed++) {
    const fast = new World();
    const slow = new World();
    slow.microtaskCheckpoint = undefined;
    const a = await tangle(fast, seed);
    const b = await tangle(slow, seed);
    assert(a.log.length > 50, `seed ${seed}: a tangle worth comparing`);
    assertEquals(a.log, b.log, `seed ${seed}`);
    assertEquals(fast.events, slow.events);
    assertEquals([a.late, b.late], [0, 0], `seed ${seed}: ran late`);
  }
});

Deno.test("World.run: a checkpoint that runs nothing lets callbacks run after time moved (the check above can fail)", async () => {
  let broken = false;
  for (let seed = 1; seed <= 5; seed++) {
    const world = new World();
    // It passes run()'s probe, then does nothing.
    let calls = 0;
    world.microtaskCheckpoint = () => {
      if (calls++ === 0) checkpoint!();
    };
    broken ||= (await tangle(world, seed)).late > 0;
  }
  assert(broken);
});

Deno.test("checkpointRuns: true in a macrotask, false inside a microtask (World.run then drains per instant)", async () => {
  const run = checkpoint!;
  assertEquals(
    await new Promise((r) => setTimeout(() => r(checkpointRuns(run)), 0)),
    true,
  );
  assertEquals(
    await new Promise((r) => queueMicrotask(() => r(checkpointRuns(run)))),
    false,
  );
  // run() called from inside a microtask still runs every instant in order.
  const world = new World();
  const seen: number[] = [];
  world.after(1, () => void Promise.resolve().then(() => seen.push(1)));
  world.after(2, () => seen.push(2));
  await new Promise<void>((r) =>
    queueMicrotask(() => void world.run(Infinity).then(() => r()))
  );
  assertEquals(seen, [1, 2]);
});
