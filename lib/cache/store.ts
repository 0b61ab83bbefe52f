/**
 * The interface of cache() stores: in memory (bounded, LRU) or in Redis (shared by gateway instances). A call
 * may answer at once or with a promise; a rejected promise means "the store is unavailable", which cache()
 * answers by staying out of the way (the request goes upstream).
 */
import type { StoredValue } from './entry';

/** What an entry is filed under besides its key: its path (purged by invalidate() and unsafe methods) and its tags. */
export interface EntryIndex {
  path: string;
  tags: readonly string[];
}

export interface CacheStore {
  /** 'memory' or 'redis', for messages. */
  readonly kind: string;
  get(key: string): StoredValue | undefined | Promise<StoredValue | undefined>;
  set(key: string, value: StoredValue, ttlMs: number, index: EntryIndex): void | Promise<void>;
  /** Removes the entries of `path` (every query, host, consumer and variant), and those under it when `prefix`. Resolves with how many went. */
  purgePath(path: string, prefix: boolean): Promise<number>;
  /** Removes the entries tagged `tag`. */
  purgeTag(tag: string): Promise<number>;
  /** False while the store is known to be unreachable: requests skip it instead of waiting for a timeout. */
  available(): boolean;
  close(): Promise<void>;
}
