/**
 * The in-process store of cache(): lru-cache bounded by entry count and by bytes (every entry sized: body,
 * headers, key), least recently used first out, expiry checked on read (no timer per entry). Tags are an
 * index kept in step with evictions, so it is bounded by the entries.
 */
import { LRUCache } from 'lru-cache';
import type { StoredValue } from './entry';
import { sizeOf } from './entry';
import { pathMatches, pathOfKey } from './key';
import type { CacheStore, EntryIndex } from './store';

export interface MemoryStoreLimits {
  maxEntries: number;
  maxBytes: number;
}

export class MemoryCacheStore implements CacheStore {
  readonly kind = 'memory';
  private readonly entries: LRUCache<string, StoredValue>;
  /** tag → keys, and key → tags (to unfile a key when it goes, however it goes). */
  private readonly tagged = new Map<string, Set<string>>();
  private readonly tagsOf = new Map<string, readonly string[]>();

  constructor(limits: MemoryStoreLimits) {
    this.entries = new LRUCache<string, StoredValue>({
      max: limits.maxEntries,
      maxSize: limits.maxBytes,
      // An entry larger than the whole budget is refused rather than emptying the cache for it.
      maxEntrySize: limits.maxBytes,
      allowStale: false,
      updateAgeOnGet: false,
      dispose: (_value, key, reason) => {
        // A key set again keeps its tags (set() files the new ones itself).
        if (reason !== 'set') this.unfile(key);
      },
    });
  }

  get(key: string): StoredValue | undefined {
    return this.entries.get(key);
  }

  set(key: string, value: StoredValue, ttlMs: number, index: EntryIndex): void {
    this.unfile(key);
    // The tag index lives as long as the entry: its bytes count against the entry.
    const size = sizeOf(key, value) + index.tags.reduce((sum, tag) => sum + 64 + tag.length * 4, 0);
    this.entries.set(key, value, { ttl: Math.max(1, Math.ceil(ttlMs)), size });
    if (index.tags.length === 0 || !this.entries.has(key)) return;
    this.tagsOf.set(key, index.tags);
    for (const tag of index.tags) {
      let keys = this.tagged.get(tag);
      if (!keys) this.tagged.set(tag, (keys = new Set()));
      keys.add(key);
    }
  }

  async purgePath(path: string, prefix: boolean): Promise<number> {
    let removed = 0;
    // Keys start with their path: the scan reads keys only. Invalidation is rare; the hot path stays a lookup.
    for (const key of [...this.entries.keys()]) {
      if (pathMatches(pathOfKey(key), path, prefix) && this.entries.delete(key)) removed += 1;
    }
    return removed;
  }

  async purgeTag(tag: string): Promise<number> {
    let removed = 0;
    for (const key of [...(this.tagged.get(tag) ?? [])]) if (this.entries.delete(key)) removed += 1;
    this.tagged.delete(tag);
    return removed;
  }

  available(): boolean {
    return true;
  }

  /** Entries held and their counted bytes (for tests and diagnostics). */
  stats(): { entries: number; bytes: number } {
    return { entries: this.entries.size, bytes: this.entries.calculatedSize };
  }

  async close(): Promise<void> {
    this.entries.clear();
    this.tagged.clear();
    this.tagsOf.clear();
  }

  private unfile(key: string): void {
    const tags = this.tagsOf.get(key);
    if (!tags) return;
    this.tagsOf.delete(key);
    for (const tag of tags) {
      const keys = this.tagged.get(tag);
      keys?.delete(key);
      if (keys?.size === 0) this.tagged.delete(tag);
    }
  }
}
