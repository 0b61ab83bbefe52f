/**
 * Edges of the per-method rules and counters: the anonymous consumer of optional auth is asked for
 * credentials (401, with a challenge) where a rule needs a scope; a method key must be a method in capitals;
 * unnamed routes that differ only by host count apart.
 */
import express from 'express';
import { ConfigError, gateway } from '../../index';
import type { Gateway } from '../../index';
import { listen, rawRequest, RunningApp } from '../helpers/app';
import { hmacSecret } from '../helpers/tokens';
import { startUpstream, Upstream } from '../helpers/upstream';

const secret = hmacSecret();
const jwt = { secret, algorithms: ['HS256' as const] };

describe('per-method rules and counters, edges', () => {
  let upstream: Upstream;
  const started: Array<{ app: RunningApp; gw: Gateway }> = [];
  beforeAll(async () => {
    upstream = await startUpstream();
  });
  afterAll(async () => {
    for (const { app, gw } of started) {
      await app.close();
      await gw.close();
    }
    await upstream.close();
  });

  async function start(gw: Gateway): Promise<RunningApp> {
    const server = express();
    server.use(gw);
    const app = await listen(server);
    started.push({ app, gw });
    return app;
  }

  it('answers 401 with a challenge, not 403, to an anonymous request facing a scope rule', async () => {
    const app = await start(gateway({ routes: [{ path: '/api', upstream: upstream.url, auth: { jwt, optional: true }, authorize: { methods: { POST: { scopes: ['orders:write'] } } } }] }));
    expect((await rawRequest(app.port, { path: '/api/orders' })).status).toBe(200);
    const post = await rawRequest(app.port, { method: 'POST', path: '/api/orders', headers: { 'content-type': 'text/plain' }, body: 'x' });
    expect(post.status).toBe(401);
    expect(JSON.parse(post.body).code).toBe('ERR_AUTH_MISSING');
    expect(post.headers['www-authenticate']).toMatch(/^Bearer realm=/);
  });

  it('says that a method key must be a method in capitals', () => {
    let thrown: unknown;
    try {
      gateway({ routes: [{ path: '/a', upstream: upstream.url, auth: { jwt }, authorize: { methods: { post: { scopes: ['x'] } } } }] });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect((thrown as Error).message).toContain('"routes[0].authorize.methods" must have HTTP methods in capitals as keys');
  });

  it('counts unnamed routes that differ only by host on counters of their own', async () => {
    const app = await start(
      gateway({
        routes: [
          { path: '/api', host: 'a.example.com', upstream: upstream.url, rateLimit: { limit: 1 } },
          { path: '/api', host: 'b.example.com', upstream: upstream.url, rateLimit: { limit: 1 } },
        ],
      }),
    );
    expect((await rawRequest(app.port, { path: '/api/x', headers: { host: 'a.example.com' } })).status).toBe(200);
    expect((await rawRequest(app.port, { path: '/api/x', headers: { host: 'b.example.com' } })).status).toBe(200);
    expect((await rawRequest(app.port, { path: '/api/x', headers: { host: 'a.example.com' } })).status).toBe(429);
  });
});
