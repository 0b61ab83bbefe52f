import request from 'supertest';
import { ConfigError, gateway } from '../../index';
import { expressVersions, rawRequest } from '../helpers/app';
import { GatewayApp, gatewayApp } from '../helpers/gateway-app';
import { startUpstream, Upstream } from '../helpers/upstream';
import { hmacSecret, signHmac } from '../helpers/tokens';

const API_KEY = 'partner-key-0123456789abcdef';

describe.each(expressVersions)('identity forwarding through gateway() (%s)', (_label, express) => {
  const secret = hmacSecret();
  const jwt = { secret, algorithms: ['HS256' as const] };
  const apiKey = { keys: { [API_KEY]: { id: 'partner-1', tier: 'partner', scopes: ['catalog:read'] } } };
  let upstream: Upstream;
  let app: GatewayApp;

  beforeAll(async () => {
    upstream = await startUpstream({ name: 'backend' });
    app = await gatewayApp(
      {
        authSchemes: { partners: { apiKey, jwt } },
        routes: [
          { path: '/api/orders', upstream: upstream.url, auth: { jwt, identityHeaders: { claims: { email: 'x-consumer-email', org: 'x-consumer-org' } } } },
          { path: '/api/custom', upstream: upstream.url, auth: { jwt, identityHeaders: { id: 'X-User', scopes: 'x-user-scopes', tier: 'x-user-tier' } } },
          { path: '/api/silent', upstream: upstream.url, auth: { jwt, apiKey, identityHeaders: false } },
          { path: '/api/private', upstream: upstream.url, auth: { jwt, apiKey, forwardAuthorization: false } },
          { path: '/api/private-query', upstream: upstream.url, auth: { apiKey: { ...apiKey, query: 'api_key' }, forwardAuthorization: false } },
          { path: '/api/passthrough', upstream: upstream.url, auth: { jwt, apiKey } },
          { path: '/partners/catalog', upstream: upstream.url, auth: 'partners' },
          { path: '/partners/stock', upstream: upstream.url, auth: 'partners' },
        ],
      },
      { express },
    );
  });
  afterAll(async () => {
    await app.close();
    await upstream.close();
  });

  /** Sends a request and returns the headers the upstream received for it. */
  async function forwarded(send: () => PromiseLike<{ status: number }>) {
    const before = upstream.requests.length;
    const res = await send();
    expect(res.status).toBe(200);
    expect(upstream.requests.length).toBe(before + 1);
    return upstream.requests[before].headers;
  }

  it('the upstream receives the consumer id, scopes, tier and the configured claims', async () => {
    const token = await signHmac({ sub: 'user-42', scope: 'orders:read orders:write', tier: 'gold', email: 'ada@example.com', org: { id: 7 } }, secret);
    const headers = await forwarded(() => request(app.url).get('/api/orders/1').set('Authorization', `Bearer ${token}`));
    expect(headers).toMatchObject({
      'x-consumer-id': 'user-42',
      'x-consumer-scopes': 'orders:read orders:write',
      'x-consumer-tier': 'gold',
      'x-consumer-email': 'ada@example.com',
      'x-consumer-org': '{"id":7}',
    });
  });

  it('values outside visible ASCII are percent-encoded, never raw', async () => {
    const token = await signHmac({ sub: 'jürgen', email: 'a@b.c\r\nx-injected: 1' }, secret);
    const headers = await forwarded(() => request(app.url).get('/api/orders').set('Authorization', `Bearer ${token}`));
    expect(headers['x-consumer-id']).toBe(encodeURIComponent('jürgen'));
    expect(headers['x-consumer-email']).toBe(encodeURIComponent('a@b.c\r\nx-injected: 1'));
    expect(headers['x-injected']).toBeUndefined();
  });

  it("client-sent identity headers are stripped and replaced by the gateway's", async () => {
    const token = await signHmac({ sub: 'user-42' }, secret);
    const headers = await forwarded(() =>
      request(app.url)
        .get('/api/orders')
        .set('Authorization', `Bearer ${token}`)
        .set('X-Consumer-Id', 'admin')
        .set('X-Consumer-Scopes', 'admin:all')
        .set('X-Consumer-Tier', 'enterprise')
        .set('X-Consumer-Email', 'root@example.com'),
    );
    expect(headers['x-consumer-id']).toBe('user-42');
    expect(headers['x-consumer-scopes']).toBe('');
    // The consumer has no tier and no email: the client's values must not survive either.
    expect(headers['x-consumer-tier']).toBeUndefined();
    expect(headers['x-consumer-email']).toBeUndefined();
  });

  it("a client listing identity headers in Connection cannot remove the gateway's copies", async () => {
    const token = await signHmac({ sub: 'user-42', scope: 'orders:read', tier: 'gold', email: 'ada@example.com' }, secret);
    const headers = await forwarded(() =>
      rawRequest(app.port, {
        path: '/api/orders',
        headers: {
          Authorization: `Bearer ${token}`,
          Connection: 'keep-alive, x-consumer-id, x-consumer-scopes, x-consumer-tier, x-consumer-email',
          'X-Consumer-Id': 'admin',
        },
      }),
    );
    expect(headers).toMatchObject({ 'x-consumer-id': 'user-42', 'x-consumer-scopes': 'orders:read', 'x-consumer-tier': 'gold', 'x-consumer-email': 'ada@example.com' });
  });

  it('custom identity header names are used, and client copies of them are stripped', async () => {
    const token = await signHmac({ sub: 'user-7', scope: 'a b', tier: 'free' }, secret);
    const headers = await forwarded(() => request(app.url).get('/api/custom').set('Authorization', `Bearer ${token}`).set('X-User', 'admin'));
    expect(headers).toMatchObject({ 'x-user': 'user-7', 'x-user-scopes': 'a b', 'x-user-tier': 'free' });
    expect(headers['x-consumer-id']).toBeUndefined();
  });

  it('identityHeaders: false sends no identity headers', async () => {
    const token = await signHmac({ sub: 'user-42', scope: 'orders:read', tier: 'gold' }, secret);
    const viaJwt = await forwarded(() => request(app.url).get('/api/silent').set('Authorization', `Bearer ${token}`));
    const viaKey = await forwarded(() => request(app.url).get('/api/silent').set('X-Api-Key', API_KEY));
    for (const headers of [viaJwt, viaKey]) {
      expect(Object.keys(headers).filter((name) => name.startsWith('x-consumer-'))).toEqual([]);
    }
  });

  it('identityHeaders: false still removes forged X-Consumer-* headers sent by the client', async () => {
    const forged = await forwarded(() =>
      request(app.url).get('/api/silent').set('X-Api-Key', API_KEY).set('X-Consumer-Id', 'admin').set('X-Consumer-Scopes', 'admin:*').set('X-Consumer-Tier', 'enterprise'),
    );
    expect(Object.keys(forged).filter((name) => name.startsWith('x-consumer-'))).toEqual([]);
  });

  it('forwardAuthorization: false removes Authorization and the API key before forwarding', async () => {
    const token = await signHmac({ sub: 'user-42' }, secret);
    const viaJwt = await forwarded(() => request(app.url).get('/api/private').set('Authorization', `Bearer ${token}`));
    expect(viaJwt.authorization).toBeUndefined();
    expect(viaJwt['x-consumer-id']).toBe('user-42');
    const viaKey = await forwarded(() => request(app.url).get('/api/private').set('X-Api-Key', API_KEY));
    expect(viaKey['x-api-key']).toBeUndefined();
    expect(viaKey['x-consumer-id']).toBe('partner-1');
  });

  it('forwardAuthorization: false also keeps a query-string API key from reaching the upstream', async () => {
    const before = upstream.requests.length;
    await request(app.url).get(`/api/private-query/items?api_key=${API_KEY}&page=2`).expect(200);
    const received = upstream.requests[before];
    expect(received.headers['x-consumer-id']).toBe('partner-1');
    expect(received.url).not.toContain(API_KEY);
    expect(received.url).toBe('/api/private-query/items?page=2');
  });

  it('leaves the rest of the query byte for byte when it strips the API key (signed URLs stay valid)', async () => {
    const before = upstream.requests.length;
    await rawRequest(app.port, { path: `/api/private-query/items?a=b%20c&api_key=${API_KEY}&flag&x=1,2&t[]=y&api%5Fkey=${API_KEY}` }).then((res) => expect(res.status).toBe(200));
    const received = upstream.requests[before];
    expect(received.url).toBe('/api/private-query/items?a=b%20c&flag&x=1,2&t[]=y');
  });

  it('by default the Authorization header and API key are forwarded unchanged', async () => {
    const token = await signHmac({ sub: 'user-42' }, secret);
    const viaJwt = await forwarded(() => request(app.url).get('/api/passthrough').set('Authorization', `Bearer ${token}`));
    expect(viaJwt.authorization).toBe(`Bearer ${token}`);
    const viaKey = await forwarded(() => request(app.url).get('/api/passthrough').set('X-Api-Key', API_KEY));
    expect(viaKey['x-api-key']).toBe(API_KEY);
  });

  it("routes naming a shared scheme from authSchemes use it (auth: 'partners')", async () => {
    const catalog = await forwarded(() => request(app.url).get('/partners/catalog').set('X-Api-Key', API_KEY));
    expect(catalog).toMatchObject({ 'x-consumer-id': 'partner-1', 'x-consumer-tier': 'partner', 'x-consumer-scopes': 'catalog:read' });
    const token = await signHmac({ sub: 'jwt-partner' }, secret);
    const stock = await forwarded(() => request(app.url).get('/partners/stock').set('Authorization', `Bearer ${token}`).set('X-Consumer-Id', 'admin'));
    expect(stock['x-consumer-id']).toBe('jwt-partner');

    const before = upstream.requests.length;
    const refused = await request(app.url).get('/partners/stock').set('X-Api-Key', 'wrong-key-0000000000000000');
    expect(refused.status).toBe(401);
    expect(refused.body.code).toBe('ERR_AUTH_KEY_INVALID');
    expect(refused.text).not.toContain('wrong-key-0000000000000000');
    const missing = await request(app.url).get('/partners/catalog');
    expect(missing.status).toBe(401);
    expect(missing.headers['www-authenticate']).toBe('Bearer realm="api", ApiKey realm="api", header="x-api-key"');
    expect(upstream.requests.length).toBe(before);
  });

  it('an unknown scheme name is a ConfigError naming the route option', () => {
    const build = () => gateway({ authSchemes: { partners: { apiKey } }, routes: [{ path: '/x', upstream: upstream.url, auth: 'partnerz' }] });
    expect(build).toThrow(ConfigError);
    expect(build).toThrow(/routes\[0\]\.auth.*partnerz/);
  });

  it('invalid auth options inside authSchemes and routes name their full path', () => {
    expect(() => gateway({ authSchemes: { partners: { jwt: { secret } as never } }, routes: [] })).toThrow(/authSchemes\.partners\.jwt\.algorithms/);
    expect(() => gateway({ routes: [{ path: '/x', upstream: upstream.url, auth: { jwt: { secret, algorithms: ['RS256'] } } }] })).toThrow(/routes\[0\]\.auth\.jwt\.algorithms/);
  });
});
