/**
 * proxy() and gateway() are plain `(req, res, next)` middlewares: they work on a bare connect app
 * (no Express request/response helpers, no `req.baseUrl`, no `trust proxy`). Forwarding, mount-path
 * handling, fallthrough and problem+json errors behave as they do under Express.
 */
import connect from 'connect';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { gateway, proxy } from '../../index';
import { listen, rawRequest, RunningApp } from '../helpers/app';
import { closedPort, startUpstream, Upstream } from '../helpers/upstream';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function local(body: string) {
  return (_req: IncomingMessage, res: ServerResponse) => {
    res.setHeader('content-type', 'text/plain');
    res.end(body);
  };
}

describe('proxy() on a connect app', () => {
  let upstream: Upstream;
  let app: RunningApp;
  let down: number;
  const proxies: Array<ReturnType<typeof proxy>> = [];
  const make = (options: Parameters<typeof proxy>[0]) => {
    const p = proxy(options);
    proxies.push(p);
    return p;
  };

  beforeAll(async () => {
    upstream = await startUpstream({ name: 'orders' });
    down = await closedPort();
    const server = connect();
    server.use('/api/orders', make({ target: upstream.url }));
    server.use('/strip', make({ target: upstream.url, stripPath: true }));
    server.use('/rewrite', make({ target: upstream.url, pathRewrite: { '^/rewrite/v2': '/internal' } }));
    server.use('/dead', make({ target: `http://127.0.0.1:${down}` }));
    server.use('/home', local('connect home'));
    app = await listen(server);
  });
  afterAll(async () => {
    await Promise.all(proxies.map((p) => p.close()));
    await app.close();
    await upstream.close();
  });

  it('forwards method, path, query, headers and body, and relays the response', async () => {
    const res = await rawRequest(app.port, {
      method: 'POST',
      path: '/api/orders?dry=1',
      headers: { 'content-type': 'application/json', 'x-custom': 'kept' },
      body: JSON.stringify({ sku: 'A-1' }),
    });
    expect(res.status).toBe(200);
    expect(res.headers['x-upstream']).toBe('orders');
    const echoed = JSON.parse(res.body);
    expect(echoed).toMatchObject({ method: 'POST', url: '/api/orders?dry=1', body: '{"sku":"A-1"}' });
    expect(echoed.headers['x-custom']).toBe('kept');
    expect(echoed.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(echoed.headers['x-request-id']).toMatch(UUID);
    expect(res.headers['x-request-id']).toBe(echoed.headers['x-request-id']);
  });

  it('keeps the mount path by default: /api/orders/7 reaches the upstream as /api/orders/7', async () => {
    const res = await rawRequest(app.port, { path: '/api/orders/7?expand=items' });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).url).toBe('/api/orders/7?expand=items');
  });

  it('strips the mount path with stripPath: true', async () => {
    const res = await rawRequest(app.port, { path: '/strip/a/b?c=1' });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).url).toBe('/a/b?c=1');
  });

  it('applies pathRewrite to the full forwarded path', async () => {
    const res = await rawRequest(app.port, { path: '/rewrite/v2/items?x=1' });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).url).toBe('/internal/items?x=1');
  });

  it('answers a dead upstream with 502 problem+json', async () => {
    const res = await rawRequest(app.port, { path: '/dead/thing', headers: { 'x-request-id': 'connect-dead-1' } });
    expect(res.status).toBe(502);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['x-request-id']).toBe('connect-dead-1');
    expect(JSON.parse(res.body)).toMatchObject({
      status: 502,
      code: 'ERR_UPSTREAM_UNAVAILABLE',
      instance: '/dead/thing',
      requestId: 'connect-dead-1',
    });
  });

  it('rejects dot segments with 400 problem+json and forwards nothing', async () => {
    const before = upstream.requests.length;
    const res = await rawRequest(app.port, { path: '/api/orders/%2e%2e/admin' });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body)).toMatchObject({ status: 400, code: 'ERR_BAD_PATH' });
    expect(upstream.requests.length).toBe(before);
  });

  it('leaves unmounted paths to the app', async () => {
    const res = await rawRequest(app.port, { path: '/home' });
    expect(res.status).toBe(200);
    expect(res.body).toBe('connect home');
  });
});

describe('gateway() on a connect app', () => {
  let orders: Upstream;
  let users: Upstream;
  let app: RunningApp;
  let gw: ReturnType<typeof gateway>;
  let edge: ReturnType<typeof gateway>;
  let down: number;

  beforeAll(async () => {
    orders = await startUpstream({ name: 'orders' });
    users = await startUpstream({ name: 'users' });
    down = await closedPort();
    const server = connect();
    gw = gateway({
      routes: [
        { path: '/api/orders', upstream: orders.url },
        { path: '/api/users', upstream: users.url, stripPath: true },
        { path: '/api/dead', upstream: `http://127.0.0.1:${down}` },
        { path: '/v2/orders', upstream: orders.url, rewrite: { '^/v2/orders': '/internal/orders' } },
      ],
    });
    edge = gateway({ routes: [{ path: '/orders', upstream: orders.url }] });
    server.use(gw);
    server.use('/edge', edge);
    server.use(local('connect fallback'));
    app = await listen(server);
  });
  afterAll(async () => {
    await gw.close();
    await edge.close();
    await app.close();
    await orders.close();
    await users.close();
  });

  it('forwards matched routes and lets the app answer everything else', async () => {
    const forwarded = await rawRequest(app.port, { path: '/api/orders/7?a=1' });
    expect(forwarded.status).toBe(200);
    expect(JSON.parse(forwarded.body)).toMatchObject({ upstream: 'orders', url: '/api/orders/7?a=1' });
    const before = orders.requests.length + users.requests.length;
    const fallback = await rawRequest(app.port, { path: '/api/ordersX' });
    expect(fallback.status).toBe(200);
    expect(fallback.body).toBe('connect fallback');
    expect(orders.requests.length + users.requests.length).toBe(before);
  });

  it('honours stripPath and rewrite', async () => {
    const stripped = await rawRequest(app.port, { path: '/api/users/42?x=1' });
    expect(JSON.parse(stripped.body)).toMatchObject({ upstream: 'users', url: '/42?x=1' });
    const rewritten = await rawRequest(app.port, { path: '/v2/orders/7?x=1' });
    expect(JSON.parse(rewritten.body)).toMatchObject({ upstream: 'orders', url: '/internal/orders/7?x=1' });
  });

  it('answers a dead upstream with 502 problem+json', async () => {
    const res = await rawRequest(app.port, { path: '/api/dead/1' });
    expect(res.status).toBe(502);
    expect(res.headers['content-type']).toContain('application/problem+json');
    const problem = JSON.parse(res.body);
    expect(problem).toMatchObject({ status: 502, code: 'ERR_UPSTREAM_UNAVAILABLE', instance: '/api/dead/1' });
    expect(problem.requestId).toBe(res.headers['x-request-id']);
  });

  it('forwards the full path including the mount path when mounted under one', async () => {
    const res = await rawRequest(app.port, { path: '/edge/orders/9?y=2' });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ upstream: 'orders', url: '/edge/orders/9?y=2' });
  });
});
