/**
 * cache({ redis }): two gateway instances share entries through a real redis-server — a hit on one is a hit on
 * the other, a purge on one is a purge for both — and an outage (Redis killed mid-test, or one that never
 * answers) means requests are served uncached, quickly, with the outage logged once.
 */
import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import http from 'node:http';
import express from 'express';
import Redis from 'ioredis';
import { proxy } from '../../index';
import type { ProxyMiddleware } from '../../index';
import { cache } from '../../middleware/cache';
import type { CacheMiddleware } from '../../middleware/cache';
import { listen, rawRequest, RunningApp } from '../helpers/app';
import { recordingLogger } from '../helpers/logs';
import { describeWithRedis, RedisServer, startRedis } from '../helpers/redis';
import { startUpstream, Upstream } from '../helpers/upstream';
import { sleep } from '../helpers/wait';

/** Every byte value, to show a body comes back from Redis byte for byte. */
const BINARY = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

interface Instance {
  app: RunningApp;
  cache: CacheMiddleware;
  forward: ProxyMiddleware;
  logger: ReturnType<typeof recordingLogger>;
  get(path: string, method?: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>;
  close(): Promise<void>;
}

async function startInstance(upstream: Upstream, redis: string | Redis, storeTimeout = '250ms'): Promise<Instance> {
  const logger = recordingLogger();
  const middleware = cache({ ttl: '30s', redis, name: 'catalog', storeTimeout, logger });
  const forward = proxy({ target: upstream.url, health: { passive: false } });
  const server = express();
  server.use('/catalog', middleware, forward);
  const app = await listen(server);
  return {
    app,
    cache: middleware,
    forward,
    logger,
    // Behind a load balancer every instance sees the same Host: it is part of the key.
    get: (path, method = 'GET') => rawRequest(app.port, { path, method, headers: { Host: 'catalog.example' } }),
    close: async () => {
      await app.close();
      await middleware.close();
      await forward.close();
    },
  };
}

describeWithRedis('cache() with a Redis store', () => {
  let redis: RedisServer;
  let upstream: Upstream;
  let a: Instance;
  let b: Instance;
  let ownClient: Redis;
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown) => void rejections.push(reason);

  beforeAll(async () => {
    process.on('unhandledRejection', onRejection);
    redis = await startRedis();
    upstream = await startUpstream({
      handler: (req, res) => {
        const path = (req.url ?? '/').split('?')[0];
        if (req.method !== 'GET' && req.method !== 'HEAD') {
          res.writeHead(204);
          return res.end();
        }
        if (path === '/catalog/binary') {
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          return res.end(BINARY);
        }
        const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/json' };
        if (path.startsWith('/catalog/tagged')) headers['cache-tag'] = 'shelf-1';
        res.writeHead(200, headers);
        res.end(JSON.stringify({ path, n: upstream.requests.length }));
      },
    });
    // Instance A connects by URL (the shared connection of lib/redis.ts); B brings its own client, as a
    // second process would have its own connection.
    ownClient = new Redis(redis.url, { maxRetriesPerRequest: 0, retryStrategy: (attempt) => Math.min(attempt * 50, 500) });
    ownClient.on('error', () => undefined);
    a = await startInstance(upstream, redis.url);
    b = await startInstance(upstream, ownClient);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    ownClient?.disconnect();
    await upstream?.close();
    await redis?.stop();
    process.off('unhandledRejection', onRejection);
  });
  afterEach(() => expect(rejections).toEqual([]));

  const upstreamCalls = () => upstream.requests.length;

  it('an entry cached through one instance is a hit on the other, byte for byte', async () => {
    const before = upstreamCalls();
    const first = await a.get('/catalog/items?b=2&a=1');
    const second = await b.get('/catalog/items?a=1&b=2');
    expect(first.headers['x-cache']).toBe('MISS');
    expect(second.headers['x-cache']).toBe('HIT');
    expect(second.body).toBe(first.body);
    expect(upstreamCalls() - before).toBe(1);

    expect((await a.get('/catalog/binary')).headers['x-cache']).toBe('MISS');
    const binary = await new Promise<Buffer>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: b.app.port, path: '/catalog/binary', headers: { Host: 'catalog.example' } }, (res) => {
        expect(res.headers['x-cache']).toBe('HIT');
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve(Buffer.concat(chunks)));
      }).on('error', reject);
    });
    expect(binary.equals(BINARY)).toBe(true);
  });

  it('a purge through one instance is a purge for both: invalidate(), an unsafe method, invalidateTag()', async () => {
    await a.get('/catalog/shelf/1');
    await a.get('/catalog/shelf/2?page=2');
    await a.get('/catalog/shelfish');
    expect((await b.get('/catalog/shelf/1')).headers['x-cache']).toBe('HIT');
    expect(await b.cache.invalidate('/catalog/shelf')).toBe(2);
    expect((await a.get('/catalog/shelf/1')).headers['x-cache']).toBe('MISS');
    expect((await a.get('/catalog/shelf/2?page=2')).headers['x-cache']).toBe('MISS');
    expect((await a.get('/catalog/shelfish')).headers['x-cache']).toBe('HIT');

    expect((await b.get('/catalog/shelf/1')).headers['x-cache']).toBe('HIT');
    expect((await b.get('/catalog/shelf/1', 'PUT')).status).toBe(204);
    await sleep(50); // the purge runs when the PUT's response closes
    expect((await a.get('/catalog/shelf/1')).headers['x-cache']).toBe('MISS');

    await a.get('/catalog/tagged/1');
    expect((await b.get('/catalog/tagged/1')).headers['x-cache']).toBe('HIT');
    expect(await a.cache.invalidateTag('shelf-1')).toBe(1);
    expect((await b.get('/catalog/tagged/1')).headers['x-cache']).toBe('MISS');
  });

  it('Redis killed mid-test: requests are served from the upstream, quickly, the outage logged once; caching resumes when it returns', async () => {
    await a.get('/catalog/outage');
    expect((await b.get('/catalog/outage')).headers['x-cache']).toBe('HIT');
    await redis.stop();
    const before = upstreamCalls();
    for (let i = 0; i < 6; i++) {
      const started = Date.now();
      const answer = await (i % 2 ? a : b).get('/catalog/outage');
      expect(answer.status).toBe(200);
      expect(answer.headers['x-cache']).not.toBe('HIT');
      expect(Date.now() - started).toBeLessThan(1000);
    }
    expect(upstreamCalls() - before).toBe(6);
    for (const instance of [a, b]) expect(instance.logger.warnings.filter((line) => /cannot reach Redis/.test(line))).toHaveLength(1);
    await expect(a.cache.invalidate('/catalog')).rejects.toThrow(); // a purge that cannot happen says so

    await redis.start();
    // Back within a few seconds: ioredis reconnects, the store tries again a second after its last failure.
    const deadline = Date.now() + 8000;
    let cached = false;
    while (!cached && Date.now() < deadline) {
      await a.get('/catalog/after-outage');
      cached = (await b.get('/catalog/after-outage')).headers['x-cache'] === 'HIT';
      if (!cached) await sleep(200);
    }
    expect(cached).toBe(true);
    expect(a.logger.warnings.some((line) => /using Redis again/.test(line))).toBe(true);
  });

  it('a Redis that never answers: each request waits no longer than storeTimeout, and is served', async () => {
    const sockets = new Set<Socket>();
    const blackHole = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => blackHole.listen(0, '127.0.0.1', () => resolve()));
    const port = (blackHole.address() as AddressInfo).port;
    const stuck = await startInstance(upstream, `redis://127.0.0.1:${port}`, '100ms');
    try {
      for (let i = 0; i < 3; i++) {
        const started = Date.now();
        const answer = await stuck.get('/catalog/stuck');
        expect(answer.status).toBe(200);
        expect(answer.headers['x-cache']).toBe('BYPASS');
        expect(Date.now() - started).toBeLessThan(1000);
      }
      expect(stuck.logger.warnings.filter((line) => /cannot reach Redis/.test(line))).toHaveLength(1);
    } finally {
      await stuck.close();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => blackHole.close(() => resolve()));
    }
  });
});
