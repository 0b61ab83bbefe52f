/**
 * Guessing credentials is throttled (adoption issue, item 5): a route's limit by IP runs before
 * authentication, so bad tokens count against it, and failed authentications count against a per-address
 * budget (`failureLimit`) that answers 429 without checking further credentials.
 */
import express from 'express';
import { authenticate, gateway } from '../../index';
import { listen, rawRequest, RunningApp } from '../helpers/app';
import { hmacSecret, signHmac } from '../helpers/tokens';
import { startUpstream, Upstream } from '../helpers/upstream';

const secret = hmacSecret();
const jwt = { secret, algorithms: ['HS256' as const] };
const bad = { Authorization: 'Bearer not.a.token' };

describe('throttling credential guessing', () => {
  let upstream: Upstream;
  const cleanup: Array<() => Promise<void>> = [];
  beforeAll(async () => {
    upstream = await startUpstream();
  });
  afterAll(async () => {
    for (const close of cleanup) await close();
    await upstream.close();
  });

  async function serve(handler: express.RequestHandler): Promise<RunningApp> {
    const server = express();
    server.use(handler);
    server.use((_req, res) => res.json({ ok: true }));
    const app = await listen(server);
    cleanup.push(() => app.close());
    return app;
  }

  async function statuses(app: RunningApp, count: number, headers: Record<string, string>): Promise<number[]> {
    const result: number[] = [];
    for (let i = 0; i < count; i++) result.push((await rawRequest(app.port, { path: '/api/orders', headers })).status);
    return result;
  }

  it('counts bad tokens against a route limit by IP: it runs before authentication', async () => {
    const gw = gateway({ routes: [{ path: '/api', upstream: upstream.url, auth: { jwt }, rateLimit: { limit: 2 } }] });
    cleanup.push(() => gw.close());
    const app = await serve(gw);
    expect(await statuses(app, 6, bad)).toEqual([401, 401, 429, 429, 429, 429]);
  });

  it('keeps a limit by consumer after authentication, where it sees the consumer', async () => {
    const gw = gateway({ routes: [{ path: '/api', upstream: upstream.url, auth: { jwt }, rateLimit: { limit: 2, key: 'consumer' } }] });
    cleanup.push(() => gw.close());
    const app = await serve(gw);
    const alice = { Authorization: `Bearer ${await signHmac({ sub: 'alice' }, secret)}` };
    const bob = { Authorization: `Bearer ${await signHmac({ sub: 'bob' }, secret)}` };
    expect(await statuses(app, 3, alice)).toEqual([200, 200, 429]);
    expect(await statuses(app, 1, bob)).toEqual([200]);
  });

  it('answers 429 once an address used its failed-authentication budget, without checking its credentials', async () => {
    const app = await serve(authenticate({ jwt, failureLimit: { limit: 3, window: '1m' } }));
    expect(await statuses(app, 3, bad)).toEqual([401, 401, 401]);
    const throttled = await rawRequest(app.port, { path: '/api/orders', headers: bad });
    expect(throttled.status).toBe(429);
    expect(JSON.parse(throttled.body)).toMatchObject({ code: 'ERR_RATE_LIMITED' });
    expect(Number(throttled.headers['retry-after'])).toBeGreaterThan(0);
    // A good token from the same address waits too: the address is guessing.
    const good = { Authorization: `Bearer ${await signHmac({ sub: 'alice' }, secret)}` };
    expect(await statuses(app, 1, good)).toEqual([429]);
  });

  it('does not count missing or expired credentials, and failureLimit: false turns the budget off', async () => {
    const budgeted = await serve(authenticate({ jwt, failureLimit: { limit: 2, window: '1m' } }));
    expect(await statuses(budgeted, 4, {})).toEqual([401, 401, 401, 401]);
    const expired = { Authorization: `Bearer ${await signHmac({ sub: 'alice', exp: Math.floor(Date.now() / 1000) - 60 }, secret)}` };
    expect(await statuses(budgeted, 4, expired)).toEqual([401, 401, 401, 401]);
    const unlimited = await serve(authenticate({ jwt, failureLimit: false }));
    expect((await statuses(unlimited, 25, bad)).every((status) => status === 401)).toBe(true);
  });
});
