import request from 'supertest';
import { proxy } from '../../index';
import { expressVersions, listen, rawRequest } from '../helpers/app';
import { GatewayApp, gatewayApp } from '../helpers/gateway-app';
import { startUpstream, Upstream } from '../helpers/upstream';

describe.each(expressVersions)('routing and fallthrough (%s)', (_label, express) => {
  let upstream: Upstream;
  let app: GatewayApp;

  beforeAll(async () => {
    upstream = await startUpstream({ name: 'orders' });
    app = await gatewayApp(
      { routes: [{ path: '/api/orders', upstream: upstream.url }] },
      {
        express,
        after: (server) =>
          server.get('/api/users', (_req, res) => {
            res.json({ from: 'monolith' });
          }),
      },
    );
  });
  afterAll(async () => {
    await app.close();
    await upstream.close();
  });

  it('forwards a matched route with its path and query, and lets the monolith answer the rest', async () => {
    const forwarded = await request(app.url).get('/api/orders/7?expand=items').expect(200);
    expect(forwarded.body).toMatchObject({ upstream: 'orders', method: 'GET', url: '/api/orders/7?expand=items' });
    const local = await request(app.url).get('/api/users').expect(200);
    expect(local.body).toEqual({ from: 'monolith' });
  });

  it('matches by segment: /api/ordersX is not /api/orders', async () => {
    const before = upstream.requests.length;
    await request(app.url).get('/api/ordersX').expect(404);
    expect(upstream.requests.length).toBe(before);
  });

  it('rejects dot segments with 400 problem+json and forwards nothing', async () => {
    const before = upstream.requests.length;
    const res = await rawRequest(app.port, { path: '/api/orders/../admin' });
    expect(res.status).toBe(400);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(JSON.parse(res.body)).toMatchObject({ status: 400, code: 'ERR_BAD_PATH', requestId: res.headers['x-request-id'] });
    expect(upstream.requests.length).toBe(before);
  });
});

describe('proxy() alone', () => {
  it('keeps the mount path by default and strips it with stripPath', async () => {
    const upstream = await startUpstream();
    const express = expressVersions[0][1];
    const server = express();
    const keep = proxy({ target: upstream.url });
    const strip = proxy({ target: upstream.url, stripPath: true });
    server.use('/keep', keep);
    server.use('/strip', strip);
    const app = await listen(server);
    try {
      expect((await request(app.url).get('/keep/a?b=1')).body.url).toBe('/keep/a?b=1');
      expect((await request(app.url).get('/strip/a?b=1')).body.url).toBe('/a?b=1');
    } finally {
      await keep.close();
      await strip.close();
      await app.close();
      await upstream.close();
    }
  });
});
