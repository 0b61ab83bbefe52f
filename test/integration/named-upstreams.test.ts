/**
 * Named upstreams (adoption issue, item 4): routes naming one of the gateway's `upstreams` share its pool,
 * so a target ejected through one route gets no traffic from the others; names are checked at construction.
 */
import { ConfigError, gateway } from '../../index';
import { rawRequest } from '../helpers/app';
import { gatewayApp } from '../helpers/gateway-app';
import { closedPort, startUpstream, Upstream } from '../helpers/upstream';

describe('named upstreams', () => {
  let alive: Upstream;
  beforeAll(async () => {
    alive = await startUpstream({ name: 'alive' });
  });
  afterAll(() => alive.close());

  it('shares one pool and one health state between the routes that name it', async () => {
    const deadUrl = `http://127.0.0.1:${await closedPort()}`;
    const app = await gatewayApp({
      upstreams: { orders: { targets: [deadUrl, alive.url], retries: 0, health: { passive: { failures: 1, cooldown: '1m' } } } },
      routes: [
        { path: '/api/orders', methods: ['GET'], upstream: 'orders' },
        { path: '/api/orders', methods: ['POST'], upstream: 'orders' },
      ],
    });
    const ejected: unknown[] = [];
    app.gw.events.on('upstream.ejected', (event) => ejected.push(event));
    try {
      // GETs until the dead target has failed once through the GET route (round-robin: within two requests).
      const gets: number[] = [];
      for (let i = 0; i < 2; i++) gets.push((await rawRequest(app.port, { path: '/api/orders/1' })).status);
      expect(gets.sort()).toEqual([200, 502]);
      // The gateway's event channel reports it once, with every route on the shared pool.
      expect(ejected).toEqual([{ target: deadUrl, cooldownMs: 60_000, routes: ['/api/orders', '/api/orders'] }]);
      // The POST route uses the same pool: the ejected target gets none of its requests.
      const before = alive.requests.length;
      const posts: number[] = [];
      for (let i = 0; i < 4; i++) posts.push((await rawRequest(app.port, { method: 'POST', path: '/api/orders', headers: { 'content-type': 'text/plain' }, body: `p${i}` })).status);
      expect(posts).toEqual([200, 200, 200, 200]);
      expect(alive.requests.length - before).toBe(4);
    } finally {
      await app.close();
    }
  });

  it('refuses a route naming an upstream that does not exist, suggesting the closest name', () => {
    expect(() => gateway({ upstreams: { orders: 'http://127.0.0.1:9' }, routes: [{ path: '/a', upstream: 'ordrs' }] })).toThrow(/"routes\[0\]\.upstream" names the upstream "ordrs".*Did you mean "orders"\?/);
    expect(() => gateway({ routes: [{ path: '/a', upstream: 'localhost:4001' }] })).toThrow(/"routes\[0\]\.upstream\.target" must use http:\/\/ or https:\/\//);
    expect(() => gateway({ routes: [{ path: '/a', upstream: 'orders' }] })).toThrow(/names the upstream "orders".*none defined.*A URL needs its scheme/);
    expect(() => gateway({ routes: [{ path: '/a', upstream: 'x' }] })).toThrow(ConfigError);
  });

  it('checks every named upstream at construction, used or not', () => {
    expect(() => gateway({ upstreams: { orders: { targets: ['http://127.0.0.1:9'], retrys: 1 } as never }, routes: [] })).toThrow(/"upstreams\.orders\.retrys".*Did you mean "upstreams\.orders\.retries"/);
    expect(() => gateway({ upstreams: { '1x': 'http://127.0.0.1:9' }, routes: [] })).toThrow(/"upstreams\.1x"/);
    expect(() => gateway({ upstreams: { orders: { target: 'http://127.0.0.1:9', timeout: 'soon' } }, routes: [] })).toThrow(/"upstreams\.orders\.timeout"/);
  });
});
