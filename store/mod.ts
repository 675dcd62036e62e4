/**
 * Session stores: the interface and its backends.
 *
 * @module
 */

export * from "./types.ts";
export { MemoryStore, type MemoryStoreOptions } from "./memory.ts";
