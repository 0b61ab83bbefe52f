/**
 * The shared store of cache(): entries in Redis, so an answer cached through one gateway instance is a hit on
 * every other, and a purge through one is a purge for all (nothing is kept in-process in front of Redis).
 * Entries are filed in a set per path and one per tag, which purges read: no keyspace scan on the hot path.
 * Every call has a timeout; an outage is logged once (and its end once), and for a second after a failure
 * requests skip Redis altogether instead of each waiting for the timeout.
 */
import type { Logger } from '../log';
import { RedisOutageGuard } from '../redis';
import type { SendCommand } from '../redis';
import { decodeValue, encodeValue } from './entry';
import type { StoredValue } from './entry';
import type { CacheStore, EntryIndex } from './store';

/** How long requests skip Redis after a failure before one tries again. */
const RETRY_AFTER_MS = 1000;

/** Stores the entry (KEYS[1], ARGV[1], for ARGV[2] ms) and files it in the path and tag sets (KEYS[2..]), which live as long as their longest entry. */
const SET_SCRIPT = `
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
for i = 2, #KEYS do
  redis.call('SADD', KEYS[i], KEYS[1])
  if redis.call('PTTL', KEYS[i]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
end
return 1`;

/** Deletes every entry filed in the sets KEYS[1..], and the sets; returns how many entries went. */
const PURGE_SCRIPT = `
local removed = 0
for i = 1, #KEYS do
  for _, key in ipairs(redis.call('SMEMBERS', KEYS[i])) do removed = removed + redis.call('DEL', key) end
  redis.call('DEL', KEYS[i])
end
return removed`;

export class RedisCacheStore implements CacheStore {
  readonly kind = 'redis';
  private retryAt = 0;
  private readonly outage: RedisOutageGuard;

  /**
   * @param prefix every key's prefix, e.g. `frontdoor:cache:{catalog}:` (the braces keep a cache's keys in one
   *   Redis Cluster slot, as its scripts need).
   */
  constructor(
    private readonly send: SendCommand,
    private readonly prefix: string,
    timeoutMs: number,
    logger: Logger,
    private readonly release: () => Promise<void>,
  ) {
    this.outage = new RedisOutageGuard(
      timeoutMs,
      logger,
      {
        down: (reason) => `frontdoor: cache (${prefix}) cannot reach Redis: ${reason}. Requests go to the upstream uncached until it returns.`,
        up: `frontdoor: cache (${prefix}) is using Redis again.`,
      },
      // While it is down, requests skip the cache rather than each waiting for the timeout; one tries again after a pause.
      () => {
        this.retryAt = Date.now() + RETRY_AFTER_MS;
      },
    );
  }

  async get(key: string): Promise<StoredValue | undefined> {
    const value = decodeValue(await this.outage.run(this.send('GET', `${this.prefix}e:${key}`)));
    return value && value.expiresAt > Date.now() ? value : undefined;
  }

  async set(key: string, value: StoredValue, ttlMs: number, index: EntryIndex): Promise<void> {
    const keys = [`${this.prefix}e:${key}`, this.pathSet(index.path), ...index.tags.map((tag) => this.tagSet(tag))];
    await this.outage.run(this.send('EVAL', SET_SCRIPT, keys.length, ...keys, encodeValue(value), Math.max(1, Math.ceil(ttlMs))));
  }

  async purgePath(path: string, prefix: boolean): Promise<number> {
    const sets = [this.pathSet(path)];
    if (prefix) {
      // The sets of the paths under `path`: found by name (segment-aware: `/a` covers `/a/b`, not `/ab`).
      const pattern = `${this.prefix}p:${globEscape(path.endsWith('/') ? path : `${path}/`)}*`;
      let cursor = '0';
      do {
        const [next, keys] = (await this.outage.run(this.send('SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000))) as [string, string[]];
        cursor = String(next);
        sets.push(...keys.map(String));
      } while (cursor !== '0');
    }
    return this.purgeSets([...new Set(sets)]);
  }

  async purgeTag(tag: string): Promise<number> {
    return this.purgeSets([this.tagSet(tag)]);
  }

  available(): boolean {
    return !this.outage.down || Date.now() >= this.retryAt;
  }

  async close(): Promise<void> {
    await this.release();
  }

  private async purgeSets(sets: string[]): Promise<number> {
    let removed = 0;
    for (let i = 0; i < sets.length; i += 100) {
      const batch = sets.slice(i, i + 100);
      removed += Number(await this.outage.run(this.send('EVAL', PURGE_SCRIPT, batch.length, ...batch)));
    }
    return removed;
  }

  private pathSet(path: string): string {
    return `${this.prefix}p:${path}`;
  }

  private tagSet(tag: string): string {
    return `${this.prefix}t:${tag}`;
  }
}

/** `value` as a literal inside a Redis glob pattern. */
function globEscape(value: string): string {
  return value.replace(/[*?[\]\\]/g, '\\$&');
}
