/**
 * The Redis store's key layout, built so that every script touches keys of
 * one hash slot (what Redis Cluster requires), and the same layout on a
 * standalone Redis and under Sentinel.
 *
 * Sessions are spread over {@link BUCKETS} buckets by a hash of their id.
 * A bucket is one hash tag, `{bN}`, so one slot: the session's record and
 * the bucket's attachment index live together, and a create or replace
 * updates both in one atomic script. Leases, the lease deadlines and the
 * takeover notices share the tag `{lease}`.
 *
 * | key                            | type   | value                                          |
 * | ------------------------------ | ------ | ---------------------------------------------- |
 * | `{prefix}:{bN}:s:{id}`         | string | the session record as JSON                     |
 * | `{prefix}:{bN}:att`            | zset   | `owner NUL id` of each attached record in bN   |
 * | `{prefix}:{lease}:l:{owner}`   | string | `"renewedAt until"` (ms, store time)           |
 * | `{prefix}:{lease}:until`       | zset   | owners scored by lease deadline                |
 * | `{prefix}:{lease}:f:{owner}`   | list   | takeover notices as JSON, oldest first         |
 *
 * The attachment index is one sorted set per bucket with every score 0, so
 * its members sort by owner: the script that re-owns a record removes the
 * old owner's member without having to name an owner's key it has not been
 * given, and `ZRANGEBYLEX [owner NUL, (owner SOH` lists one owner's records
 * in a bucket in O(log n + k).
 *
 * @module
 */

/** How many buckets sessions are spread over (slots a cluster can spread them on). */
export const BUCKETS = 64;

/** The bucket of session `id`: FNV-1a of its text, modulo {@link BUCKETS}. */
export function bucketOf(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % BUCKETS;
}

/** The keys of one prefix. */
export class RedisKeys {
  readonly #p: string;

  /**
   * @param prefix prefix of every key; no braces (they would change the hash tag)
   * @throws {TypeError} for a prefix with `{` or `}`
   */
  constructor(prefix: string) {
    if (/[{}]/.test(prefix)) {
      throw new TypeError(
        `Invalid Redis key prefix "${prefix}": it must not contain { or }`,
      );
    }
    this.#p = prefix;
  }

  /** The record of `id`. */
  record(id: string): string {
    return `${this.#p}:{b${bucketOf(id)}}:s:${id}`;
  }

  /** The attachment index of the bucket of `id`. */
  attachedOf(id: string): string {
    return this.attached(bucketOf(id));
  }

  /** The attachment index of bucket `b`. */
  attached(b: number): string {
    return `${this.#p}:{b${b}}:att`;
  }

  /** The record of `id`, known to be in bucket `b`. */
  recordIn(b: number, id: string): string {
    return `${this.#p}:{b${b}}:s:${id}`;
  }

  /** The lease of `owner`. */
  lease(owner: string): string {
    return `${this.#p}:{lease}:l:${owner}`;
  }

  /** Every owner scored by its lease deadline. */
  leaseUntil(): string {
    return `${this.#p}:{lease}:until`;
  }

  /** The takeover notices for `owner`. */
  fence(owner: string): string {
    return `${this.#p}:{lease}:f:${owner}`;
  }
}

/**
 * The Redis Cluster hash slot of `key` (CRC16-XMODEM of its hash tag, or of
 * the whole key, modulo 16384), for tests that check the layout.
 */
export function hashSlot(key: string): number {
  const open = key.indexOf("{");
  if (open >= 0) {
    const close = key.indexOf("}", open + 1);
    if (close > open + 1) key = key.slice(open + 1, close);
  }
  let crc = 0;
  for (const byte of new TextEncoder().encode(key)) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) {
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
  }
  return crc % 16384;
}
