/**
 * Route paths written the Express way (adoption issue, item 3): `:name` segments match one non-empty
 * segment and expose its value, a trailing `/*` means the prefix, any other pattern character fails at
 * construction with the supported forms, and a route path repeating the mount path is warned about.
 */
import express from 'express';
import type { IncomingMessage } from 'node:http';
import { ConfigError, gateway, getContext } from '../../index';
import type { RouteOptions } from '../../index';
import { listen, rawRequest } from '../helpers/app';
import { GatewayApp, gatewayApp } from '../helpers/gateway-app';
import { startUpstream, Upstream } from '../helpers/upstream';

describe('Express-style route paths', () => {
  let upstream: Upstream;
  let app: GatewayApp;
  const seenParams: Array<Record<string, string> | undefined> = [];

  beforeAll(async () => {
    upstream = await startUpstream();
    const routes: RouteOptions[] = [
      { path: '/api/orders/*', upstream: upstream.url, name: 'orders' },
      {
        path: '/api/users/:id/orders',
        upstream: upstream.url,
        name: 'user-orders',
        // A rewrite function sees the parameters on the context.
        rewrite: (path: string, req: IncomingMessage) => {
          seenParams.push(getContext(req).params);
          return path;
        },
      },
      { path: '/api/users/me/orders', upstream: upstream.url, name: 'my-orders' },
    ];
    app = await gatewayApp({ routes }, { after: (server) => server.use((req, res) => res.status(404).json({ monolith: req.url })) });
  });
  afterAll(async () => {
    await app.close();
    await upstream.close();
  });

  async function routeOf(path: string): Promise<string> {
    const res = await rawRequest(app.port, { path });
    return res.status === 404 ? 'monolith' : String(upstream.requests[upstream.requests.length - 1].url);
  }

  it('reads a trailing /* as the prefix it means', async () => {
    expect(await routeOf('/api/orders/7')).toBe('/api/orders/7');
    expect(await routeOf('/api/orders')).toBe('/api/orders');
    expect(await routeOf('/api/ordersX')).toBe('monolith');
  });

  it('matches :name segments, one non-empty segment each, and exposes their decoded values', async () => {
    seenParams.length = 0;
    expect(await routeOf('/api/users/7/orders')).toBe('/api/users/7/orders');
    expect(await routeOf('/API/Users/Ab%20c/Orders/9?x=1')).toBe('/API/Users/Ab%20c/Orders/9?x=1');
    expect(seenParams).toEqual([{ id: '7' }, { id: 'Ab c' }]);
    expect(await routeOf('/api/users/7')).toBe('monolith');
    expect(await routeOf('/api/users//orders')).toBe('monolith'); // collapses to /api/users/orders: no segment for :id
  });

  it('prefers a literal segment to a parameter at the same depth', async () => {
    seenParams.length = 0;
    await routeOf('/api/users/me/orders');
    expect(seenParams).toEqual([]); // my-orders took it, not user-orders
  });

  it.each([
    ['/api/(orders|users)', '"("'],
    ['/api/*/orders', '"*"'],
    ['/api/orders/:id?', ':id?'],
    ['/api/:', '":"'],
    ['/api/:id/:id', 'twice'],
  ])('refuses %s at construction, showing the supported forms', (path, mention) => {
    let thrown: unknown;
    try {
      gateway({ routes: [{ path, upstream: 'http://127.0.0.1:9' }] });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect((thrown as Error).message).toContain('"routes[0].path"');
    expect((thrown as Error).message).toContain(mention);
    if (mention !== 'twice') expect((thrown as Error).message).toContain(`'/api/users/:id/orders'`);
  });

  it('refuses two routes with the same shape, whatever their parameter names', () => {
    expect(() => gateway({ routes: [{ path: '/u/:id', upstream: 'http://127.0.0.1:9' }, { path: '/u/:uid', upstream: 'http://127.0.0.1:9' }] })).toThrow(/same path/);
  });

  it('warns once when a route path starts with the mount path it is relative to', async () => {
    const warnings: string[] = [];
    const spy = jest.spyOn(console, 'warn').mockImplementation((message: unknown) => {
      warnings.push(String(message));
    });
    const mounted = gateway({ routes: [{ path: '/api/orders', upstream: upstream.url }, { path: '/users', upstream: upstream.url }] });
    const server = express();
    server.use('/api', mounted);
    const mountedApp = await listen(server);
    try {
      await rawRequest(mountedApp.port, { path: '/api/users/1' });
      await rawRequest(mountedApp.port, { path: '/api/users/2' });
      expect(upstream.requests[upstream.requests.length - 1].url).toBe('/api/users/2');
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain('route "/api/orders" starts with the gateway\'s mount path "/api"');
      expect(warnings[0]).toContain('"/orders"');
    } finally {
      spy.mockRestore();
      await mountedApp.close();
      await mounted.close();
    }
  });
});
