/**
 * The memory bound of cache(): a flood of unique URLs, each answer cacheable, keeps the entries within
 * maxEntries / maxBytes (least recently used out) and the process's RSS within the bound plus a fixed overhead.
 *
 * Scale: the issue asks for 100 000 unique URLs. Here each one is a real HTTP request through Express and the
 * cache, and a 2-core machine serves ~1–2 000 of them a second, so the flood is 4 000 URLs (CACHE_FLOOD_URLS=100000
 * runs the full one in about a minute) with 32 kB answers: unbounded, they would hold ~125 MB, twice the bound plus
 * overhead asserted below. test/unit/cache-memory-store.test.ts puts 100 000 unique keys through the store itself.
 */
import http from 'node:http';
import v8 from 'node:v8';
import vm from 'node:vm';
import express from 'express';
import { cache } from '../../middleware/cache';
import { listen, RunningApp } from '../helpers/app';

const FLOOD_URLS = Number(process.env.CACHE_FLOOD_URLS ?? 4000);
const BODY = 'x'.repeat(32 * 1024);
const MAX_BYTES = 4 * 1024 * 1024;
/**
 * What the process may grow by besides the cache's bytes: V8 heap slack, sockets, Express, jest, and what the
 * memory allocator keeps of freed buffers — which differs by Node line: measured +30–60 MB on Node 20, up to
 * +130 MB on Node 22, where it levels off by ~6 000 URLs (12 000 and 24 000 URLs: the same). The exact bound is
 * the heap-and-buffers check; RSS must stay under this ceiling and stop growing with the flood.
 */
const OVERHEAD = 160 * 1024 * 1024;

// A full collection before each measure, so RSS counts what is held, not garbage not yet collected.
v8.setFlagsFromString('--expose-gc');
const collect = vm.runInNewContext('gc') as () => void;

/** Memory the process holds after full collections (the second one returns the freed buffers' memory). */
function held(): { rss: number; js: number } {
  collect();
  collect();
  const usage = process.memoryUsage();
  return { rss: usage.rss, js: usage.heapUsed + usage.external };
}

describe('cache() memory bound', () => {
  let app: RunningApp;
  const middleware = cache({ ttl: '10m', maxEntries: 50_000, maxBytes: MAX_BYTES });

  beforeAll(async () => {
    const server = express();
    server.use('/flood', middleware, (req, res) => {
      res.setHeader('content-type', 'text/plain');
      res.end(BODY);
    });
    app = await listen(server);
  });
  afterAll(async () => {
    await app.close();
    await middleware.close();
  });

  it(`a flood of ${FLOOD_URLS} unique URLs keeps entries and RSS under the bound`, async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
    const get = (path: string) =>
      new Promise<void>((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port: app.port, path, agent }, (res) => {
            res.resume();
            res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
          })
          .on('error', reject);
      });
    const run = async (from: number, to: number) => {
      let next = from;
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          while (next < to) await get(`/flood/item/${next++}?page=1`);
        }),
      );
    };
    await run(0, 500); // warm up: JIT, sockets, the first entries
    const before = held();
    const started = Date.now();
    const half = Math.floor(FLOOD_URLS / 2);
    await run(500, half);
    const middle = held();
    await run(half, FLOOD_URLS);
    const elapsed = Date.now() - started;
    const after = held();
    agent.destroy();

    const stats = middleware.stats()!;
    const mb = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MB`;
    console.log(`cache flood: ${FLOOD_URLS} URLs in ${elapsed} ms, ${stats.entries} entries, ${mb(stats.bytes)} counted; RSS +${mb(middle.rss - before.rss)} at half, +${mb(after.rss - before.rss)} at the end; heap and buffers +${mb(after.js - before.js)}`);
    expect(stats.bytes).toBeLessThanOrEqual(MAX_BYTES);
    expect(stats.entries).toBeLessThanOrEqual(Math.ceil(MAX_BYTES / BODY.length));
    // What JavaScript holds (heap and buffers) is the bound's, give or take a few MB.
    expect(after.js - before.js).toBeLessThan(MAX_BYTES + 16 * 1024 * 1024);
    // RSS: the bound plus a fixed overhead (the allocator keeps what garbage between collections took)...
    expect(after.rss - before.rss).toBeLessThan(MAX_BYTES + OVERHEAD);
    // ...and it does not grow with the number of URLs: the second half of the flood adds next to nothing,
    // where unbounded it would add half the flood's bodies (~60 MB).
    expect(after.rss - middle.rss).toBeLessThan(32 * 1024 * 1024);
  }, 60_000);
});
