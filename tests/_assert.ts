/**
 * Assertions for tests. `@std/assert` lives on JSR, which these machines cannot
 * reach, so tests use `node:assert/strict` (built into Deno) through these names.
 *
 * @module
 */

import assert from "node:assert/strict";

/** Deep strict equality. */
export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  assert.deepStrictEqual(actual, expected, msg);
}

/** Deep strict inequality. */
export function assertNotEquals<T>(actual: T, expected: T, msg?: string): void {
  assert.notDeepStrictEqual(actual, expected, msg);
}

/** Truthiness. */
export function assert_(cond: unknown, msg?: string): asserts cond {
  assert.ok(cond, msg);
}

/** Asserts that `fn` throws an error of `cls` (and whose message includes `includes`). */
export function assertThrows<E extends Error>(
  fn: () => unknown,
  cls: abstract new (...args: never[]) => E,
  includes?: string,
): E {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e}`);
    if (includes) {
      assert.ok((e as Error).message.includes(includes), (e as Error).message);
    }
    return e as E;
  }
  throw new assert.AssertionError({
    message: `expected ${cls.name} to be thrown`,
  });
}

/** Async variant of {@link assertThrows}. */
export async function assertRejects<E extends Error>(
  fn: () => Promise<unknown>,
  cls: abstract new (...args: never[]) => E,
  includes?: string,
): Promise<E> {
  try {
    await fn();
  } catch (e) {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e}`);
    if (includes) {
      assert.ok((e as Error).message.includes(includes), (e as Error).message);
    }
    return e as E;
  }
  throw new assert.AssertionError({
    message: `expected ${cls.name} to be rejected`,
  });
}

export { assert };
