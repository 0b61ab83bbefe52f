/**
 * rateLimit() with the Redis store: one budget shared by several gateway instances under concurrent
 * load, outages (fail open or closed, logged once, counting resumes when Redis returns) and clean
 * release of the connection. Uses a real redis-server started for this file.
 */
import Redis from 'ioredis';
import request from 'supertest';
import type { Response } from 'supertest';
import { ConfigError, rateLimit } from '../../index';
import type { Gateway } from '../../index';
import { expressVersions, listen } from '../helpers/app';
import { GatewayApp, gatewayApp } from '../helpers/gateway-app';
import { recordingLogger } from '../helpers/logs';
import { expectProblem } from '../helpers/problem';
import { describeWithRedis, RedisServer, startRedis } from '../helpers/redis';
import { closedPort, startUpstream, Upstream } from '../helpers/upstream';
import { sleep } from '../helpers/wait';

const express = expressVersions[0][1];

/** `r=` of the draft-8 RateLimit header, or undefined when the response carries none. */
function remaining(res: Response): number | undefined {
  const match = /;\s*r=(\d+)/.exec(String(res.headers['ratelimit'] ?? ''));
  return match ? Number(match[1]) : undefined;
}

/** A GET and how long it took. */
async function timedGet(url: string, path: string): Promise<{ res: Response; ms: number }> {
  const started = Date.now();
  const res = await request(url).get(path);
  return { res, ms: Date.now() - started };
}

/** Connections to `redis` other than the one asking (ioredis, closed again). */
async function otherClients(redisUrl: string): Promise<number> {
  const client = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await client.connect();
    const list = (await client.call('CLIENT', 'LIST')) as string;
    return list.trim().split('\n').length - 1;
  } finally {
    client.disconnect();
  }
}

describe('Redis option checks', () => {
  it('refuses a standalone rateLimit({ redis }) without a name, naming the option', () => {
    expect(() => rateLimit({ redis: 'redis://127.0.0.1:6379', limit: 10 })).toThrow(ConfigError);
    expect(() => rateLimit({ redis: 'redis://127.0.0.1:6379', limit: 10 })).toThrow(/"name"/);
  });
});

describeWithRedis('rate limiting in Redis', () => {
  let redis: RedisServer;
  let upstream: Upstream;
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown) => void rejections.push(reason);
  const cleanups: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    process.on('unhandledRejection', onRejection);
    redis = await startRedis();
    upstream = await startUpstream({ name: 'api' });
  });
  /** Redis is killed by outage() and restarted by recovery(), or after the test if an assertion stopped it. */
  let down = false;
  const outage = async () => {
    down = true;
    await redis.stop();
  };
  const recovery = async () => {
    if (!down) return;
    await redis.start();
    down = false;
  };
  afterEach(async () => {
    await recovery();
    while (cleanups.length) await cleanups.pop()!();
    expect(rejections).toEqual([]);
  });
  afterAll(async () => {
    process.off('unhandledRejection', onRejection);
    await upstream.close();
    await redis.stop();
  });

  /** An Express app in front of a gateway with one /api route limited by `rateLimit`. */
  async function instance(rateLimitOptions: Parameters<typeof rateLimit>[0], name = 'api', path = '/api'): Promise<{ app: GatewayApp; gw: Gateway }> {
    const app = await gatewayApp({ routes: [{ path, name, upstream: upstream.url, rateLimit: rateLimitOptions }] });
    cleanups.push(() => app.close());
    return { app, gw: app.gw };
  }

  it('close() releases the Redis connection, for gateways and standalone limiters', async () => {
    const { app, gw } = await instance({ limit: 5, redis: redis.url }, 'release-gw');
    await request(app.url).get('/api').expect(200);
    const server = express();
    const limiter = rateLimit({ limit: 5, redis: `${redis.url}/0`, name: 'release-standalone' });
    server.use('/alone', limiter, (_req, res) => {
      res.json({ ok: true });
    });
    const alone = await listen(server);
    cleanups.push(() => alone.close());
    await request(alone.url).get('/alone').expect(200);
    expect(await otherClients(redis.url)).toBe(2);

    await gw.close();
    await limiter.close();
    const deadline = Date.now() + 2000;
    let clients = await otherClients(redis.url);
    while (clients > 0 && Date.now() < deadline) {
      await sleep(50);
      clients = await otherClients(redis.url);
    }
    expect(clients).toBe(0);
  });

  /** Timers and sockets keeping the process alive (unref'd ones are not listed). */
  const liveResources = () => {
    const counts: Record<string, number> = { Timeout: 0, TCPSocketWrap: 0 };
    for (const type of process.getActiveResourcesInfo()) if (type in counts) counts[type] += 1;
    return counts;
  };

  it('close() leaves nothing behind that keeps the process alive', async () => {
    await sleep(300); // earlier tests' client sockets finish closing
    const before = liveResources();
    const limiter = rateLimit({ limit: 5, redis: redis.url, name: 'release-handles' });
    const server = express();
    server.use('/alone', limiter, (_req, res) => {
      res.json({ ok: true });
    });
    const alone = await listen(server);
    await request(alone.url).get('/alone').expect(200);
    await alone.close();
    await limiter.close();
    await sleep(200);
    const after = liveResources();
    expect(after.Timeout).toBeLessThanOrEqual(before.Timeout);
    expect(after.TCPSocketWrap).toBeLessThanOrEqual(before.TCPSocketWrap);
  });

  it('close() of a limiter whose Redis never answered leaves nothing behind that keeps the process alive', async () => {
    await sleep(300);
    const before = liveResources();
    const port = await closedPort();
    const logger = recordingLogger();
    const limiter = rateLimit({ limit: 5, redis: `redis://127.0.0.1:${port}`, name: 'release-never-up', logger });
    // Close while a reconnect is pending: just after the first attempt failed (the next one is ~100 ms later).
    const deadline = Date.now() + 2000;
    while (logger.warnings.length === 0 && Date.now() < deadline) await sleep(5);
    await sleep(30);
    await limiter.close();
    await sleep(200);
    const after = liveResources();
    expect(after.Timeout).toBeLessThanOrEqual(before.Timeout);
    expect(after.TCPSocketWrap).toBeLessThanOrEqual(before.TCPSocketWrap);
  });
  it('two gateway instances sharing Redis allow exactly `limit` requests in total under concurrent load', async () => {
    for (let round = 1; round <= 3; round++) {
      const name = `shared-round-${round}`;
      // Two spellings of the same server: two separate connections, as two gateway processes would have.
      const a = await instance({ limit: 10, window: '1m', redis: redis.url }, name);
      const b = await instance({ limit: 10, window: '1m', redis: `${redis.url}/0` }, name);
      const before = upstream.requests.length;
      const responses = await Promise.all([...Array(6)].flatMap(() => [request(a.app.url).get('/api/items'), request(b.app.url).get('/api/items')]));
      const ok = responses.filter((res) => res.status === 200);
      const limited = responses.filter((res) => res.status === 429);
      expect({ round, ok: ok.length, limited: limited.length }).toEqual({ round, ok: 10, limited: 2 });
      for (const res of limited) expect(res.body).toMatchObject({ code: 'ERR_RATE_LIMITED' });
      // Every allowed request saw its own count: the increments were atomic.
      expect(ok.map(remaining).sort((x, y) => x! - y!)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      expect(upstream.requests.length - before).toBe(10);
      while (cleanups.length) await cleanups.pop()!();
    }
  });

  it('keeps counters of different routes apart in Redis', async () => {
    const orders = await instance({ limit: 2, redis: redis.url }, 'orders');
    const users = await instance({ limit: 2, redis: redis.url }, 'users');
    expect((await request(orders.app.url).get('/api')).status).toBe(200);
    expect((await request(orders.app.url).get('/api')).status).toBe(200);
    expect((await request(orders.app.url).get('/api')).status).toBe(429);
    expect((await request(users.app.url).get('/api')).status).toBe(200);
  });

  /** A gateway with an 'allow' and a 'deny' limited route, each on its own connection and logger. */
  async function outageGateway(prefix: string) {
    const allowLog = recordingLogger();
    const denyLog = recordingLogger();
    const app = await gatewayApp({
      routes: [
        { path: '/allow', upstream: upstream.url, rateLimit: { limit: 4, redis: redis.url, onStoreError: 'allow', logger: allowLog, name: `${prefix}-allow` } },
        // Its own connection (another spelling of the URL), so each limiter's logger sees its own outage.
        { path: '/deny', upstream: upstream.url, rateLimit: { limit: 4, redis: `${redis.url}/0`, onStoreError: 'deny', logger: denyLog, name: `${prefix}-deny` } },
      ],
    });
    cleanups.push(() => app.close());
    return { app, allowLog, denyLog };
  }

  /** Polls `path` until its response carries a RateLimit header (Redis counts again); returns its `r=`. */
  async function untilCounted(url: string, path: string): Promise<number | undefined> {
    const deadline = Date.now() + 5000;
    for (;;) {
      const res = await request(url).get(path);
      const left = remaining(res);
      if ((res.status === 200 && left !== undefined) || Date.now() > deadline) return left;
      await sleep(100);
    }
  }

  const outageMessage = /cannot reach|unreachable|unavailable/i;
  const recoveryMessage = /again/i;

  it('fails open or closed while Redis is down, promptly, and resumes counting when it returns', async () => {
    const { app } = await outageGateway('outage');
    expect(remaining(await request(app.url).get('/allow').expect(200))).toBe(3);
    expect(remaining(await request(app.url).get('/deny').expect(200))).toBe(3);

    await outage();
    // 'allow': more requests than the limit pass, each promptly (no hang on the dead connection).
    for (let i = 0; i < 6; i++) {
      const { res, ms } = await timedGet(app.url, '/allow');
      expect({ i, status: res.status }).toEqual({ i, status: 200 });
      expect(ms).toBeLessThan(1000);
    }
    // 'deny': 503 problem+json with Retry-After, promptly.
    for (let i = 0; i < 3; i++) {
      const { res, ms } = await timedGet(app.url, '/deny');
      expectProblem(res, 503, 'ERR_RATE_LIMIT_UNAVAILABLE');
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
      expect(ms).toBeLessThan(1000);
    }

    await recovery();
    // The counter was lost with the restart (no persistence), so counting starts again from the top.
    expect(await untilCounted(app.url, '/allow')).toBe(3);
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await request(app.url).get('/allow')).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
    expect(await untilCounted(app.url, '/deny')).toBe(3);
  });

  it('logs an outage once and its end once per limiter, however many requests go by', async () => {
    const { app, allowLog, denyLog } = await outageGateway('outage-log');
    await request(app.url).get('/allow').expect(200);
    await request(app.url).get('/deny').expect(200);
    expect(allowLog.warnings).toEqual([]);

    await outage();
    let outageWarnings: [number, number];
    try {
      for (let i = 0; i < 5; i++) {
        await request(app.url).get('/allow').expect(200);
        await request(app.url).get('/deny').expect(503);
      }
      await sleep(400); // let reconnect attempts fail in the background too
      outageWarnings = [allowLog.warnings.filter((w) => outageMessage.test(w)).length, denyLog.warnings.filter((w) => outageMessage.test(w)).length];
    } finally {
      await recovery();
    }
    expect(outageWarnings).toEqual([1, 1]);
    expect(await untilCounted(app.url, '/allow')).toBeDefined();
    expect(await untilCounted(app.url, '/deny')).toBeDefined();
    for (let i = 0; i < 3; i++) await request(app.url).get('/allow');
    expect(allowLog.warnings.filter((w) => recoveryMessage.test(w))).toHaveLength(1);
    expect(denyLog.warnings.filter((w) => recoveryMessage.test(w))).toHaveLength(1);
    // The recovery did not count as another outage.
    expect(allowLog.warnings.filter((w) => outageMessage.test(w))).toHaveLength(1);
  });

  it('lets requests through without crashing when Redis is unreachable from the start', async () => {
    const logger = recordingLogger();
    const port = await closedPort();
    const { app } = await instance({ limit: 1, redis: `redis://127.0.0.1:${port}`, onStoreError: 'allow', logger, storeTimeout: '300ms' }, 'never-up');
    for (let i = 0; i < 4; i++) {
      const { res, ms } = await timedGet(app.url, '/api');
      expect({ i, status: res.status }).toEqual({ i, status: 200 });
      expect(ms).toBeLessThan(1000);
    }
    // Give late failures (timeouts, reconnect errors) time to surface as unhandled rejections, if any.
    await sleep(500);
    expect(rejections).toEqual([]);
    expect(logger.warnings.filter((w) => outageMessage.test(w)).length).toBeGreaterThanOrEqual(1);
  });

  it('logs a Redis that is unreachable from the start once', async () => {
    const logger = recordingLogger();
    const port = await closedPort();
    const { app } = await instance({ limit: 1, redis: `redis://127.0.0.1:${port}`, logger, storeTimeout: '300ms' }, 'never-up-log');
    for (let i = 0; i < 3; i++) await request(app.url).get('/api').expect(200);
    await sleep(400);
    expect(logger.warnings.filter((w) => outageMessage.test(w))).toHaveLength(1);
  });

});
