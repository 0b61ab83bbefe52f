/**
 * The in-memory store (bounded by entries and bytes, LRU, expiry on read, tags unfiled with their entries,
 * 100 000 unique keys through it) and single-flight (one fill, bounded waits, failed fills wake the waiters).
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import type { StoredAnswer } from '../../lib/cache/entry';
import { decodeValue, encodeValue, ownBuffer } from '../../lib/cache/entry';
import { primaryKey } from '../../lib/cache/key';
import { MemoryCacheStore } from '../../lib/cache/memory-store';
import { SingleFlight } from '../../lib/cache/single-flight';
import { sleep } from '../helpers/wait';

v8.setFlagsFromString('--expose-gc');
const collect = vm.runInNewContext('gc') as () => void;

function answer(bytes: number, ttlMs = 60_000): StoredAnswer {
  const now = Date.now();
  return { kind: 'answer', status: 200, headers: { 'content-type': 'text/plain' }, body: ownBuffer([Buffer.alloc(bytes, 1)], bytes), storedAt: now, expiresAt: now + ttlMs, age: 0 };
}
const at = (path: string) => ({ path, tags: [] as string[] });

describe('MemoryCacheStore', () => {
  it('holds at most maxEntries, least recently used out', () => {
    const store = new MemoryCacheStore({ maxEntries: 3, maxBytes: 1024 * 1024 });
    for (const key of ['/a', '/b', '/c']) store.set(key, answer(10), 60_000, at(key));
    store.get('/a'); // used: /b is now the least recently used
    store.set('/d', answer(10), 60_000, at('/d'));
    expect(store.get('/b')).toBeUndefined();
    expect(store.get('/a')).toBeDefined();
    expect(store.stats().entries).toBe(3);
  });

  it('holds at most maxBytes, counting bodies, headers and keys; an entry larger than the whole budget is refused', () => {
    const store = new MemoryCacheStore({ maxEntries: 1000, maxBytes: 10_000 });
    for (let i = 0; i < 20; i++) store.set(`/k${i}`, answer(1000), 60_000, at(`/k${i}`));
    expect(store.stats().bytes).toBeLessThanOrEqual(10_000);
    expect(store.stats().entries).toBeLessThan(10);
    store.set('/huge', answer(20_000), 60_000, at('/huge'));
    expect(store.get('/huge')).toBeUndefined();
    expect(store.get('/k19')).toBeDefined();
  });

  it('an entry is gone once its TTL has passed', async () => {
    const store = new MemoryCacheStore({ maxEntries: 10, maxBytes: 100_000 });
    store.set('/short', answer(10), 30, at('/short'));
    expect(store.get('/short')).toBeDefined();
    await sleep(60);
    expect(store.get('/short')).toBeUndefined();
  });

  it('purges by path (every key of the path) or prefix, and by tag; evicted entries leave the tag index', async () => {
    const store = new MemoryCacheStore({ maxEntries: 2, maxBytes: 100_000 });
    const key = (path: string, query = '') => primaryKey({ path, host: 'h', query, consumer: '' });
    store.set(key('/a/1'), answer(10), 60_000, { path: '/a/1', tags: ['t'] });
    store.set(key('/a/1', 'x=1'), answer(10), 60_000, { path: '/a/1', tags: ['t'] });
    expect(await store.purgeTag('t')).toBe(2);
    store.set(key('/a/1'), answer(10), 60_000, { path: '/a/1', tags: ['t'] });
    store.set(key('/a/2'), answer(10), 60_000, { path: '/a/2', tags: [] });
    store.set(key('/b'), answer(10), 60_000, { path: '/b', tags: [] }); // evicts /a/1, and its tag
    expect(await store.purgeTag('t')).toBe(0);
    expect(await store.purgePath('/a', true)).toBe(1);
    expect(await store.purgePath('/b', false)).toBe(1);
  });

  it('100 000 unique URLs: entries, counted bytes and memory held stay within the bound', () => {
    const maxBytes = 8 * 1024 * 1024;
    const store = new MemoryCacheStore({ maxEntries: 100_000, maxBytes });
    collect();
    collect();
    const before = process.memoryUsage();
    for (let i = 0; i < 100_000; i++) {
      const path = `/catalog/items/${i}`;
      store.set(primaryKey({ path, host: 'api.example', query: `page=${i % 7}`, consumer: '' }), answer(2048), 600_000, at(path));
    }
    collect();
    collect();
    const after = process.memoryUsage();
    expect(store.stats().bytes).toBeLessThanOrEqual(maxBytes);
    expect(store.stats().entries).toBeLessThan(5000);
    // Unbounded, 100 000 × 2 kB bodies would be ~200 MB of buffers alone.
    expect(after.arrayBuffers - before.arrayBuffers).toBeLessThan(maxBytes);
    expect(after.heapUsed + after.external - before.heapUsed - before.external).toBeLessThan(maxBytes + 16 * 1024 * 1024);
  });
});

describe('entries in a shared store', () => {
  it('round-trip byte for byte; anything else reads as nothing', () => {
    const stored = answer(0);
    stored.body = Buffer.from([0, 255, 10, 13, 128]);
    const back = decodeValue(encodeValue(stored));
    expect(back).toEqual(stored);
    expect(decodeValue('not json')).toBeUndefined();
    expect(decodeValue('{"k":"a"}')).toBeUndefined();
    expect(decodeValue(null)).toBeUndefined();
  });
});

describe('SingleFlight', () => {
  it('one fill; the waiters get its result', async () => {
    const flights = new SingleFlight<string>(1000);
    expect(flights.current('k')).toBeUndefined();
    const flight = flights.lead('k');
    expect(flights.current('k')).toBe(flight);
    const waiting = Promise.all([flights.wait(flight), flights.wait(flight)]);
    flights.finish(flight, 'answer');
    expect(await waiting).toEqual(['answer', 'answer']);
    expect(flights.size).toBe(0);
  });

  it('a failed fill wakes the waiters with nothing, at once', async () => {
    const flights = new SingleFlight<string>(5000);
    const flight = flights.lead('k');
    const started = Date.now();
    const waiting = flights.wait(flight);
    flights.finish(flight, undefined);
    expect(await waiting).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(100);
  });

  it('the wait is bounded, and a fill older than the bound holds nobody back', async () => {
    const flights = new SingleFlight<string>(50);
    const old = flights.lead('k');
    expect(await flights.wait(old)).toBeUndefined();
    expect(flights.current('k')).toBeUndefined();
    const fresh = flights.lead('k');
    flights.finish(old, 'late'); // the old fill ending does not end the new one
    expect(flights.current('k')).toBe(fresh);
    flights.finish(fresh, undefined);
  });
});
