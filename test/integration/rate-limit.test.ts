/**
 * rateLimit() with the in-memory store, alone and as a gateway route option: limits, the RateLimit
 * headers, what counts as "one client" (IP, IPv6 subnet, consumer, tier, key function) and the
 * X-Forwarded-For spoofing that must not reset a client's counter.
 */
import http from 'node:http';
import os from 'node:os';
import type { AddressInfo, Socket } from 'node:net';
import request from 'supertest';
import type { Response } from 'supertest';
import { gateway, rateLimit } from '../../index';
import type { RouteOptions } from '../../index';
import { expressVersions, ExpressFactory, listen } from '../helpers/app';
import { GatewayApp, gatewayApp, GatewayAppSetup } from '../helpers/gateway-app';
import { recordingLogger } from '../helpers/logs';
import { expectProblem } from '../helpers/problem';
import { hmacSecret, signHmac } from '../helpers/tokens';
import { startUpstream, Upstream } from '../helpers/upstream';

const express = expressVersions[0][1];

/** The parts of a draft-8 `RateLimit` header: `"3-in-1min"; r=2; t=60`. */
function rateLimitHeader(res: Response): { policy: string; remaining: number; reset: number } {
  const header = res.headers['ratelimit'];
  expect(typeof header).toBe('string');
  const match = /^"([^"]+)";\s*r=(\d+);\s*t=(\d+)$/.exec(header as string);
  if (!match) throw new Error(`unexpected RateLimit header ${JSON.stringify(header)}`);
  return { policy: match[1], remaining: Number(match[2]), reset: Number(match[3]) };
}

/** The quota `q=` of a draft-8 `RateLimit-Policy` header. */
function policyQuota(res: Response): number {
  const header = res.headers['ratelimit-policy'];
  const match = /;\s*q=(\d+)/.exec(String(header));
  if (!match) throw new Error(`unexpected RateLimit-Policy header ${JSON.stringify(header)}`);
  return Number(match[1]);
}

/** A 429 problem+json ERR_RATE_LIMITED with Retry-After and the request id. */
function expectLimited(res: Response): void {
  expectProblem(res, 429, 'ERR_RATE_LIMITED');
  expect(res.headers['x-request-id']).toEqual(expect.any(String));
  expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
}

/** Sends `count` GETs one after the other and returns the statuses. */
async function statuses(url: string, path: string, count: number, headers: Record<string, string> = {}): Promise<number[]> {
  const result: number[] = [];
  for (let i = 0; i < count; i++) result.push((await request(url).get(path).set(headers)).status);
  return result;
}

/** Apps, gateways and limiters a test started, closed after it. */
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

let upstream: Upstream;
beforeAll(async () => {
  upstream = await startUpstream({ name: 'api' });
});
afterAll(async () => {
  await upstream.close();
});

/** An Express app with a gateway of `routes` (gatewayApp()), closed after the test. */
async function routesApp(routes: RouteOptions[], before?: GatewayAppSetup['before'], factory: ExpressFactory = express): Promise<GatewayApp> {
  const app = await gatewayApp({ routes }, { express: factory, before });
  cleanups.push(() => app.close());
  return app;
}

describe.each(expressVersions)('limit per window (%s)', (_label, factory) => {
  it('answers the request after the limit with 429 problem+json ERR_RATE_LIMITED, Retry-After and the request id, and forwards nothing', async () => {
    const app = await routesApp([{ path: '/api', upstream: upstream.url, rateLimit: { limit: 3, window: '1m' } }], undefined, factory);
    const before = upstream.requests.length;
    expect(await statuses(app.url, '/api/items', 3)).toEqual([200, 200, 200]);
    const limited = await request(app.url).get('/api/items').set('X-Request-Id', 'client-req-42');
    expectLimited(limited);
    expect(limited.body.requestId).toBe('client-req-42');
    expect(Number(limited.headers['retry-after'])).toBeLessThanOrEqual(60);
    expect(upstream.requests.length - before).toBe(3);
  });

  it('sends RateLimit and RateLimit-Policy on every response, the remaining count going down to 0', async () => {
    const app = await routesApp([{ path: '/api', upstream: upstream.url, rateLimit: { limit: 3, window: '1m' } }], undefined, factory);
    const remaining: number[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await request(app.url).get('/api/items');
      const header = rateLimitHeader(res);
      remaining.push(header.remaining);
      expect(header.reset).toBeGreaterThan(0);
      expect(header.reset).toBeLessThanOrEqual(60);
      expect(policyQuota(res)).toBe(3);
      expect(String(res.headers['ratelimit-policy'])).toMatch(/;\s*w=60(;|$)/);
      expect(res.headers['x-ratelimit-limit']).toBeUndefined();
    }
    expect(remaining).toEqual([2, 1, 0, 0]);
  });

  it('limits an app that uses rateLimit() directly, without the gateway', async () => {
    const server = factory();
    const limiter = rateLimit({ limit: 2, window: '1m' });
    server.use('/local', limiter, (_req, res) => {
      res.json({ ok: true });
    });
    const app = await listen(server);
    cleanups.push(() => limiter.close(), () => app.close());
    const first = await request(app.url).get('/local');
    expect(first.status).toBe(200);
    expect(rateLimitHeader(first).remaining).toBe(1);
    expect((await request(app.url).get('/local')).status).toBe(200);
    expectLimited(await request(app.url).get('/local'));
  });
});

describe('rate limit headers and counters', () => {
  it('adds X-RateLimit-Limit/Remaining/Reset with legacyHeaders', async () => {
    const app = await routesApp([{ path: '/api', upstream: upstream.url, rateLimit: { limit: 3, window: '1m', legacyHeaders: true } }]);
    const first = await request(app.url).get('/api/a').expect(200);
    expect(first.headers['x-ratelimit-limit']).toBe('3');
    expect(first.headers['x-ratelimit-remaining']).toBe('2');
    expect(Number(first.headers['x-ratelimit-reset'])).toBeGreaterThan(0);
    const second = await request(app.url).get('/api/a').expect(200);
    expect(second.headers['x-ratelimit-remaining']).toBe('1');
    expect(second.headers['ratelimit']).toBeDefined();
  });

  it('counts each route on its own counter', async () => {
    const app = await routesApp([
      { path: '/orders', upstream: upstream.url, rateLimit: { limit: 2 } },
      { path: '/users', upstream: upstream.url, rateLimit: { limit: 2 } },
    ]);
    expect(await statuses(app.url, '/orders', 3)).toEqual([200, 200, 429]);
    expect(await statuses(app.url, '/users/1', 3)).toEqual([200, 200, 429]);
  });

  it('shares one counter between routes that name the same counter', async () => {
    const app = await routesApp([
      { path: '/orders', upstream: upstream.url, rateLimit: { limit: 3, name: 'shop' } },
      { path: '/users', upstream: upstream.url, rateLimit: { limit: 3, name: 'shop' } },
      { path: '/other', upstream: upstream.url, rateLimit: { limit: 3, name: 'other' } },
    ]);
    expect(await statuses(app.url, '/orders', 2)).toEqual([200, 200]);
    const third = await request(app.url).get('/users').expect(200);
    expect(rateLimitHeader(third).remaining).toBe(0);
    expectLimited(await request(app.url).get('/users'));
    expectLimited(await request(app.url).get('/orders'));
    expect((await request(app.url).get('/other')).status).toBe(200);
  });

  it('groups requests by a key function of the request', async () => {
    const app = await routesApp([
      { path: '/api', upstream: upstream.url, rateLimit: { limit: 2, key: (req) => String(req.headers['x-tenant'] ?? 'none') } },
    ]);
    expect(await statuses(app.url, '/api', 3, { 'X-Tenant': 'acme' })).toEqual([200, 200, 429]);
    expect(await statuses(app.url, '/api', 3, { 'X-Tenant': 'globex' })).toEqual([200, 200, 429]);
    expect(await statuses(app.url, '/api', 1, { 'X-Tenant': 'initech' })).toEqual([200]);
  });
});

describe('key: consumer and tiers', () => {
  const secret = hmacSecret();
  const token = (claims: Record<string, unknown>) => signHmac(claims, secret);
  const bearer = async (claims: Record<string, unknown>) => ({ Authorization: `Bearer ${await token(claims)}` });

  it('gives two consumers behind the same IP their own buckets, and anonymous requests a bucket per IP', async () => {
    const app = await routesApp(
      [{ path: '/api', upstream: upstream.url, auth: { jwt: { secret, algorithms: ['HS256'] }, optional: true }, rateLimit: { limit: 2, key: 'consumer' } }],
      (server) => server.set('trust proxy', 'loopback'),
    );
    const alice = await bearer({ sub: 'alice' });
    const bob = await bearer({ sub: 'bob' });
    expect(await statuses(app.url, '/api', 3, alice)).toEqual([200, 200, 429]);
    expect(await statuses(app.url, '/api', 3, bob)).toEqual([200, 200, 429]);
    // A fresh token for alice is still alice: the bucket follows the consumer, not the token.
    expect(await statuses(app.url, '/api', 1, await bearer({ sub: 'alice', jti: 'another' }))).toEqual([429]);
    // Anonymous requests are counted per client IP (not in one shared "anonymous" bucket).
    expect(await statuses(app.url, '/api', 3, { 'X-Forwarded-For': '198.51.100.7' })).toEqual([200, 200, 429]);
    expect(await statuses(app.url, '/api', 3, { 'X-Forwarded-For': '198.51.100.8' })).toEqual([200, 200, 429]);
  });

  it('falls back to the IP when no authenticate() ran', async () => {
    const app = await routesApp([{ path: '/api', upstream: upstream.url, rateLimit: { limit: 1, key: 'consumer' } }]);
    expect(await statuses(app.url, '/api', 2)).toEqual([200, 429]);
  });

  it('applies the limit of the consumer tier, and `default` to consumers without a listed tier', async () => {
    const app = await routesApp([
      { path: '/api', upstream: upstream.url, auth: { jwt: { secret, algorithms: ['HS256'] } }, rateLimit: { key: 'consumer', tiers: { free: 2, gold: 5 }, default: 1 } },
    ]);
    const cases: Array<[Record<string, unknown>, number]> = [
      [{ sub: 'free-user', tier: 'free' }, 2],
      [{ sub: 'gold-user', tier: 'gold' }, 5],
      [{ sub: 'no-tier-user' }, 1],
      [{ sub: 'unknown-tier-user', tier: 'platinum' }, 1],
    ];
    for (const [claims, allowed] of cases) {
      const headers = await bearer(claims);
      const first = await request(app.url).get('/api').set(headers).expect(200);
      expect({ sub: claims.sub, quota: policyQuota(first) }).toEqual({ sub: claims.sub, quota: allowed });
      const rest = await statuses(app.url, '/api', allowed, headers);
      expect({ sub: claims.sub, statuses: rest }).toEqual({ sub: claims.sub, statuses: [...Array(allowed - 1).fill(200), 429] });
    }
  });
});

describe('key: ip and X-Forwarded-For', () => {
  it('does not let an untrusted client escape the limit with a new X-Forwarded-For on each request', async () => {
    const app = await routesApp([{ path: '/api', upstream: upstream.url, rateLimit: { limit: 3 } }]);
    const before = upstream.requests.length;
    const result: number[] = [];
    for (let i = 1; i <= 6; i++) result.push((await request(app.url).get('/api').set('X-Forwarded-For', `203.0.113.${i}`)).status);
    expect(result).toEqual([200, 200, 200, 429, 429, 429]);
    expect(upstream.requests.length - before).toBe(3);
  });

  it("warns the logger about `trust proxy` = true on the first request, once", async () => {
    const logger = recordingLogger();
    const app = await routesApp([{ path: '/api', upstream: upstream.url, rateLimit: { limit: 10, logger } }], (server) => server.set('trust proxy', true));
    expect(logger.warnings.filter((w) => /trust proxy/i.test(w))).toHaveLength(0);
    await request(app.url).get('/api').expect(200);
    expect(logger.warnings.filter((w) => /trust proxy/i.test(w))).toHaveLength(1);
    await request(app.url).get('/api').expect(200);
    await request(app.url).get('/api').expect(200);
    expect(logger.warnings.filter((w) => /trust proxy/i.test(w))).toHaveLength(1);
  });

  it("does not warn about a narrow `trust proxy` setting such as 'loopback'", async () => {
    const logger = recordingLogger();
    const app = await routesApp([{ path: '/api', upstream: upstream.url, rateLimit: { limit: 10, logger } }], (server) => server.set('trust proxy', 'loopback'));
    await request(app.url).get('/api').set('X-Forwarded-For', '198.51.100.1').expect(200);
    await request(app.url).get('/api').expect(200);
    expect(logger.warnings).toEqual([]);
    expect(logger.errors).toEqual([]);
  });
});

/** True when this machine has an IPv6 loopback address to listen on. */
const ipv6Loopback = Object.values(os.networkInterfaces()).some((addresses) => addresses?.some((a) => a.family === 'IPv6' && a.address === '::1'));
const describeIpv6 = ipv6Loopback ? describe : describe.skip;
if (!ipv6Loopback) console.warn('SKIPPED "IPv6 subnet grouping": this machine has no ::1 loopback address.');

describeIpv6('IPv6 subnet grouping (app on ::1)', () => {
  let server: http.Server;
  let url: string;
  let gw: ReturnType<typeof gateway>;
  const sockets = new Set<Socket>();

  beforeAll(async () => {
    const app = express();
    app.set('trust proxy', 'loopback');
    gw = gateway({ routes: [{ path: '/api', upstream: upstream.url, rateLimit: { limit: 2 } }] });
    app.use(gw);
    server = http.createServer(app);
    server.on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '::1', () => resolve());
    });
    url = `http://[::1]:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await gw.close();
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('limits a client connecting over IPv6 by its address', async () => {
    expect(await statuses(url, '/api', 3)).toEqual([200, 200, 429]);
  });

  it('counts addresses in the same /56 together and other /56 subnets apart', async () => {
    expect(await statuses(url, '/api', 1, { 'X-Forwarded-For': '2001:db8:1:1::1' })).toEqual([200]);
    // Same /56 (and same /64): shares the bucket.
    expect(await statuses(url, '/api', 1, { 'X-Forwarded-For': '2001:db8:1:1::2' })).toEqual([200]);
    expect(await statuses(url, '/api', 1, { 'X-Forwarded-For': '2001:db8:1:1::1' })).toEqual([429]);
    // Another /64 inside the same /56 is still the same client.
    expect(await statuses(url, '/api', 1, { 'X-Forwarded-For': '2001:db8:1:2::1' })).toEqual([429]);
    // Outside the /56: their own buckets.
    expect(await statuses(url, '/api', 3, { 'X-Forwarded-For': '2001:db8:2::1' })).toEqual([200, 200, 429]);
    expect(await statuses(url, '/api', 3, { 'X-Forwarded-For': '2001:db8:1:100::1' })).toEqual([200, 200, 429]);
  });
});
