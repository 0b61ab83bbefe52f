/**
 * Path normalisation through gateway() in real Express apps: dot segments, encoded slashes and other
 * spellings must never let a request skip a route or reach a path the route does not allow, and what
 * is forwarded is exactly the normalised path. Requests are sent raw (no client-side normalisation).
 */
import { expressVersions, rawRequest } from '../helpers/app';
import { GatewayApp, gatewayApp } from '../helpers/gateway-app';
import { startUpstream, Upstream } from '../helpers/upstream';

describe.each(expressVersions)('path normalisation through gateway() (%s)', (_label, express) => {
  let orders: Upstream;
  let admin: Upstream;
  let app: GatewayApp;
  /** URLs the app's own handlers (the monolith) answered. */
  const monolith: string[] = [];

  beforeAll(async () => {
    orders = await startUpstream({ name: 'orders' });
    admin = await startUpstream({ name: 'admin' });
    app = await gatewayApp(
      {
        routes: [
          { path: '/api/orders', upstream: orders.url },
          { path: '/admin', upstream: admin.url },
        ],
      },
      {
        express,
        after: (server) =>
          server.use((req, res) => {
            monolith.push(req.url);
            res.status(404).json({ from: 'monolith' });
          }),
      },
    );
  });
  afterAll(async () => {
    await app.close();
    await orders.close();
    await admin.close();
  });
  beforeEach(() => {
    orders.requests.length = 0;
    admin.requests.length = 0;
    monolith.length = 0;
  });

  it.each([
    '/api/orders/../admin',
    '/api/orders/%2e%2e/admin',
    '/api/orders/%2E%2E/admin',
    '/api/orders/.%2E/admin',
    '/api/orders/%2e/7',
    '/api/orders%2fadmin',
    '/api/orders%2Fadmin',
    '/api/orders/..%2fadmin',
    '/api/orders%5cadmin',
    '/api/orders/7%00',
    '/api/orders/%zz',
    '/admin/../api/orders',
    '/public/../api/orders',
    '/public/%2e%2e/admin',
  ])('rejects %s with 400 problem+json and forwards it nowhere', async (path) => {
    const res = await rawRequest(app.port, { path });
    expect(res.status).toBe(400);
    expect(res.headers['content-type']).toContain('application/problem+json');
    const body = JSON.parse(res.body);
    expect(body).toMatchObject({ status: 400, code: 'ERR_BAD_PATH', requestId: res.headers['x-request-id'] });
    expect(typeof body.detail).toBe('string');
    expect(orders.requests).toEqual([]);
    expect(admin.requests).toEqual([]);
    expect(monolith).toEqual([]);
  });

  it('rejects a bad path on a non-GET method too, without forwarding the body', async () => {
    const res = await rawRequest(app.port, {
      method: 'POST',
      path: '/api/orders/%2e%2e/admin',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ drop: 'tables' }),
    });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body)).toMatchObject({ code: 'ERR_BAD_PATH' });
    expect(orders.requests).toEqual([]);
    expect(admin.requests).toEqual([]);
  });

  it('lets a bad path that concerns no route fall through to the app (404 from the app)', async () => {
    const res = await rawRequest(app.port, { path: '/public/../static/app.js' });
    expect(res.status).toBe(404);
    expect(JSON.parse(res.body)).toEqual({ from: 'monolith' });
    expect(monolith).toEqual(['/public/../static/app.js']);
    expect(orders.requests).toEqual([]);
    expect(admin.requests).toEqual([]);
  });

  it('collapses doubled slashes: //api//orders//7 is forwarded to the orders upstream as /api/orders/7', async () => {
    const res = await rawRequest(app.port, { path: '//api//orders//7' });
    expect(res.status).toBe(200);
    expect(orders.requests.map((r) => r.url)).toEqual(['/api/orders/7']);
    expect(admin.requests).toEqual([]);
    expect(monolith).toEqual([]);
  });

  it('decodes encoded unreserved characters: /api/%6Frders/7 is forwarded as /api/orders/7', async () => {
    const res = await rawRequest(app.port, { path: '/api/%6Frders/7' });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ upstream: 'orders', url: '/api/orders/7' });
    expect(orders.requests.map((r) => r.url)).toEqual(['/api/orders/7']);
  });

  it('keeps the query string as sent while normalising the path', async () => {
    const res = await rawRequest(app.port, { path: '/api//%6Frders/7?next=/a/../b&x=%2e%2e' });
    expect(res.status).toBe(200);
    expect(orders.requests.map((r) => r.url)).toEqual(['/api/orders/7?next=/a/../b&x=%2e%2e']);
  });

  it('keeps non-unreserved escapes encoded (upper-cased) in the forwarded path', async () => {
    const res = await rawRequest(app.port, { path: '/api/orders/caf%c3%a9' });
    expect(res.status).toBe(200);
    expect(orders.requests.map((r) => r.url)).toEqual(['/api/orders/caf%C3%A9']);
  });

  it('matches case-insensitively by default: /API/Orders/7 goes to the orders upstream', async () => {
    const res = await rawRequest(app.port, { path: '/API/Orders/7' });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ upstream: 'orders' });
    expect(orders.requests.map((r) => r.url)).toEqual(['/API/Orders/7']);
    expect(monolith).toEqual([]);
  });

  it('matches by segment: /api/ordersX falls through to the app', async () => {
    const res = await rawRequest(app.port, { path: '/api/ordersX' });
    expect(res.status).toBe(404);
    expect(JSON.parse(res.body)).toEqual({ from: 'monolith' });
    expect(monolith).toEqual(['/api/ordersX']);
    expect(orders.requests).toEqual([]);
    expect(admin.requests).toEqual([]);
  });

  it('forwards the admin route to its own upstream with the exact path', async () => {
    const res = await rawRequest(app.port, { path: '/admin//users' });
    expect(res.status).toBe(200);
    expect(admin.requests.map((r) => r.url)).toEqual(['/admin/users']);
    expect(orders.requests).toEqual([]);
  });
});

describe.each(expressVersions)('path normalisation with the protected path served by the app itself (%s)', (_label, express) => {
  let orders: Upstream;
  let app: GatewayApp;
  const adminHits: string[] = [];

  beforeAll(async () => {
    orders = await startUpstream({ name: 'orders' });
    app = await gatewayApp(
      { routes: [{ path: '/api/orders', upstream: orders.url }] },
      {
        express,
        after: (server) =>
          server.use('/admin', (req, res) => {
            adminHits.push(req.originalUrl);
            res.json({ from: 'monolith-admin' });
          }),
      },
    );
  });
  afterAll(async () => {
    await app.close();
    await orders.close();
  });
  beforeEach(() => {
    orders.requests.length = 0;
    adminHits.length = 0;
  });

  it.each(['/api/orders/../admin', '/api/orders/%2e%2e/admin', '/api/orders/%2E%2E/admin', '/api/orders%2fadmin', '/api/orders/..%2fadmin'])(
    'rejects %s with 400 and neither forwards it nor lets the in-app admin handler see it',
    async (path) => {
      const res = await rawRequest(app.port, { path });
      expect(res.status).toBe(400);
      expect(res.headers['content-type']).toContain('application/problem+json');
      expect(JSON.parse(res.body)).toMatchObject({ status: 400, code: 'ERR_BAD_PATH', requestId: res.headers['x-request-id'] });
      expect(orders.requests).toEqual([]);
      expect(adminHits).toEqual([]);
    },
  );

  it('still serves the in-app admin handler on its own path', async () => {
    const res = await rawRequest(app.port, { path: '/admin/users' });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ from: 'monolith-admin' });
    expect(adminHits).toEqual(['/admin/users']);
    expect(orders.requests).toEqual([]);
  });
});
