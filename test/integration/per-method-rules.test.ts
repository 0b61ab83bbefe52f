/**
 * Policies per method on one route (adoption issue, item 4): a scope required only on POST, and a limit
 * of its own for POST, without a second route (which would mean a second pool and a second health state).
 */
import { gateway } from '../../index';
import { rawRequest } from '../helpers/app';
import { GatewayApp, gatewayApp } from '../helpers/gateway-app';
import { hmacSecret, signHmac } from '../helpers/tokens';
import { startUpstream, Upstream } from '../helpers/upstream';

const secret = hmacSecret();

describe('per-method rules on one route', () => {
  let upstream: Upstream;
  let app: GatewayApp;
  let reader: Record<string, string>;
  let writer: Record<string, string>;

  beforeAll(async () => {
    upstream = await startUpstream();
    app = await gatewayApp({
      routes: [
        {
          path: '/api/orders',
          upstream: upstream.url,
          auth: { jwt: { secret, algorithms: ['HS256'] } },
          authorize: { scopes: ['orders:read'], methods: { POST: { scopes: ['orders:write'] } } },
          rateLimit: { key: 'consumer', limit: 5, methods: { POST: { limit: 2 } } },
        },
      ],
    });
    reader = { Authorization: `Bearer ${await signHmac({ sub: 'reader', scope: 'orders:read' }, secret)}` };
    writer = { Authorization: `Bearer ${await signHmac({ sub: 'writer', scope: 'orders:read orders:write' }, secret)}` };
  });
  afterAll(async () => {
    await app.close();
    await upstream.close();
  });

  const send = async (method: string, headers: Record<string, string>) => {
    const res = await rawRequest(app.port, { method, path: '/api/orders', headers: { ...headers, 'content-type': 'application/json' }, body: method === 'POST' ? '{}' : undefined });
    return { status: res.status, code: res.status >= 400 ? JSON.parse(res.body).code : undefined };
  };

  it('asks for orders:read on GET and HEAD, and for orders:write on POST', async () => {
    expect(await send('GET', reader)).toEqual({ status: 200, code: undefined });
    expect((await send('HEAD', reader)).status).toBe(200);
    expect(await send('POST', reader)).toEqual({ status: 403, code: 'ERR_FORBIDDEN_SCOPE' });
  });

  it('counts POSTs on a counter of their own, with their own limit', async () => {
    expect((await send('POST', writer)).status).toBe(200);
    expect((await send('POST', writer)).status).toBe(200);
    expect(await send('POST', writer)).toEqual({ status: 429, code: 'ERR_RATE_LIMITED' });
    // GETs of the same consumer still have their own budget of 5.
    expect((await send('GET', writer)).status).toBe(200);
  });

  it('refuses a method rule that is not a method in capitals', () => {
    expect(() => gateway({ routes: [{ path: '/a', upstream: upstream.url, auth: { jwt: { secret, algorithms: ['HS256'] } }, authorize: { methods: { post: { scopes: ['x'] } } } }] })).toThrow(/"routes\[0\]\.authorize\.methods" must have HTTP methods in capitals/);
    expect(() => gateway({ routes: [{ path: '/a', upstream: upstream.url, rateLimit: { methods: { POST: { limt: 1 } as never } } }] })).toThrow(/Did you mean "routes\[0\]\.rateLimit\.methods\.POST\.limit"/);
  });
});
