/**
 * The gateway's route table on real Express 4 and 5 apps: longest prefix wins, method and host
 * filters fall back to shorter routes and then to the app, rewrites and stripPath shape the forwarded
 * path, a gateway mounted under a path keeps that path, the matched route is recorded in the request
 * context, configuration mistakes are ConfigErrors naming the option, and a YAML config loaded with
 * loadConfig() runs end to end.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { NextFunction, Request, Response } from 'express';
import request from 'supertest';
import { ConfigError, gateway, getContext, GatewayError, loadConfig } from '../../index';
import type { GatewayOptions } from '../../index';
import { expressVersions, listen, rawRequest, RunningApp } from '../helpers/app';
import { configError as thrownConfigError } from '../helpers/config';
import { GatewayApp, gatewayApp } from '../helpers/gateway-app';
import { closedPort, startUpstream, Upstream } from '../helpers/upstream';

describe.each(expressVersions)('route table matching (%s)', (_label, express) => {
  let a: Upstream;
  let b: Upstream;
  let c: Upstream;
  let app: GatewayApp;
  const rewriteCalls: string[] = [];

  beforeAll(async () => {
    a = await startUpstream({ name: 'A' });
    b = await startUpstream({ name: 'B' });
    c = await startUpstream({ name: 'C' });
    app = await gatewayApp(
      {
        routes: [
          // Listed shortest first on purpose: order must not matter.
          { path: '/api', upstream: a.url },
          { path: '/api/orders', upstream: b.url },
          { path: '/catalog', upstream: c.url, methods: ['GET'] },
          { path: '/catalog/admin', upstream: b.url, methods: ['post'] },
          { path: '/shop', upstream: a.url, host: 'orders.example.com' },
          { path: '/shop', upstream: b.url, host: '*.shop.test' },
          { path: '/v2/orders', upstream: b.url, rewrite: { '^/v2/orders': '/internal/orders' } },
          {
            path: '/fn',
            upstream: c.url,
            rewrite: (forwarded, req) => {
              rewriteCalls.push(`${req.method} ${forwarded}`);
              return forwarded.replace(/^\/fn/, '/rewritten-by-function');
            },
          },
          { path: '/stripped', upstream: c.url, stripPath: true },
        ],
      },
      {
        express,
        after: (server) =>
          server.use((req: Request, res: Response) => {
            res.json({ from: 'app', method: req.method, path: req.path });
          }),
      },
    );
  });
  afterAll(async () => {
    await app.close();
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  it('longest prefix wins whatever the declaration order', async () => {
    expect((await request(app.url).get('/api/orders/1').expect(200)).body).toMatchObject({ upstream: 'B', url: '/api/orders/1' });
    expect((await request(app.url).get('/api/orders').expect(200)).body).toMatchObject({ upstream: 'B', url: '/api/orders' });
    expect((await request(app.url).get('/api/users').expect(200)).body).toMatchObject({ upstream: 'A', url: '/api/users' });
    expect((await request(app.url).get('/api').expect(200)).body).toMatchObject({ upstream: 'A', url: '/api' });
    // Segment-aware: /api/ordersX belongs to /api, not /api/orders.
    expect((await request(app.url).get('/api/ordersX').expect(200)).body).toMatchObject({ upstream: 'A', url: '/api/ordersX' });
  });

  it('matches case-insensitively by default', async () => {
    expect((await request(app.url).get('/API/Orders/1').expect(200)).body).toMatchObject({ upstream: 'B' });
  });

  it('methods filter: GET route also takes HEAD; other methods fall through to the app', async () => {
    const before = c.requests.length;
    expect((await request(app.url).get('/catalog/1').expect(200)).body).toMatchObject({ upstream: 'C', method: 'GET' });
    const head = await request(app.url).head('/catalog/1').expect(200);
    expect(head.headers['x-upstream']).toBe('C');
    expect(c.requests.slice(before).map((r) => r.method)).toEqual(['GET', 'HEAD']);
    const post = await request(app.url).post('/catalog/1').send({ a: 1 }).expect(200);
    expect(post.body).toEqual({ from: 'app', method: 'POST', path: '/catalog/1' });
    expect(c.requests.length).toBe(before + 2);
  });

  it('methods filter: a non-matching method falls back to a shorter route', async () => {
    // POST /catalog/admin → the POST-only route (methods are case-insensitive in config).
    expect((await request(app.url).post('/catalog/admin').send({}).expect(200)).body).toMatchObject({ upstream: 'B', method: 'POST' });
    // GET /catalog/admin → not the POST route; the shorter GET route /catalog takes it.
    expect((await request(app.url).get('/catalog/admin').expect(200)).body).toMatchObject({ upstream: 'C', url: '/catalog/admin' });
    // DELETE fits neither → the app.
    expect((await request(app.url).delete('/catalog/admin').expect(200)).body).toMatchObject({ from: 'app', method: 'DELETE' });
  });

  it('host filter: exact and wildcard hosts, port ignored; other hosts fall through', async () => {
    const exact = await rawRequest(app.port, { path: '/shop/cart', headers: { host: 'orders.example.com' } });
    expect(JSON.parse(exact.body)).toMatchObject({ upstream: 'A', url: '/shop/cart' });
    const exactWithPort = await rawRequest(app.port, { path: '/shop/cart', headers: { host: 'Orders.Example.com:8443' } });
    expect(JSON.parse(exactWithPort.body)).toMatchObject({ upstream: 'A' });
    const wildcard = await rawRequest(app.port, { path: '/shop/cart', headers: { host: 'eu.shop.test' } });
    expect(JSON.parse(wildcard.body)).toMatchObject({ upstream: 'B', url: '/shop/cart' });
    const deepWildcard = await rawRequest(app.port, { path: '/shop/cart', headers: { host: 'a.b.shop.test' } });
    expect(JSON.parse(deepWildcard.body)).toMatchObject({ upstream: 'B' });
    // '*.shop.test' needs a subdomain: the bare domain is not matched.
    const bare = await rawRequest(app.port, { path: '/shop/cart', headers: { host: 'shop.test' } });
    expect(JSON.parse(bare.body)).toMatchObject({ from: 'app' });
    const other = await rawRequest(app.port, { path: '/shop/cart', headers: { host: 'evil.example.com' } });
    expect(JSON.parse(other.body)).toMatchObject({ from: 'app' });
    const suffixTrick = await rawRequest(app.port, { path: '/shop/cart', headers: { host: 'notshop.test' } });
    expect(JSON.parse(suffixTrick.body)).toMatchObject({ from: 'app' });
  });

  it('rewrite map: the upstream sees the rewritten path with the query', async () => {
    const res = await request(app.url).get('/v2/orders/7?x=1').expect(200);
    expect(res.body).toMatchObject({ upstream: 'B', url: '/internal/orders/7?x=1' });
  });

  it('rewrite function: gets the normalised path with query and the request, its result is forwarded', async () => {
    rewriteCalls.length = 0;
    const res = await rawRequest(app.port, { method: 'PUT', path: '/fn//items/%61bc?q=2' });
    expect(res.status).toBe(200);
    expect(rewriteCalls).toEqual(['PUT /fn/items/abc?q=2']);
    expect(JSON.parse(res.body)).toMatchObject({ upstream: 'C', method: 'PUT', url: '/rewritten-by-function/items/abc?q=2' });
  });

  it('stripPath: forwards the path without the route prefix ("/" for the prefix itself)', async () => {
    expect((await request(app.url).get('/stripped/a/b?c=d').expect(200)).body).toMatchObject({ upstream: 'C', url: '/a/b?c=d' });
    expect((await request(app.url).get('/stripped?c=d').expect(200)).body).toMatchObject({ upstream: 'C', url: '/?c=d' });
  });
});

describe.each(expressVersions)('gateway mounted under a path (%s)', (_label, express) => {
  let up: Upstream;
  let app: RunningApp;
  let keep: ReturnType<typeof gateway>;
  let strip: ReturnType<typeof gateway>;

  beforeAll(async () => {
    up = await startUpstream({ name: 'orders' });
    const server = express();
    keep = gateway({ routes: [{ path: '/orders', upstream: up.url }] });
    strip = gateway({ routes: [{ path: '/orders', upstream: up.url, stripPath: true }] });
    server.use('/edge', keep);
    server.use('/edge-strip', strip);
    server.use((req: Request, res: Response) => {
      res.status(404).json({ from: 'app', path: req.originalUrl });
    });
    app = await listen(server);
  });
  afterAll(async () => {
    await keep.close();
    await strip.close();
    await app.close();
    await up.close();
  });

  it('matches routes relative to the mount path and forwards the full path', async () => {
    expect((await request(app.url).get('/edge/orders/7?x=1').expect(200)).body).toMatchObject({ url: '/edge/orders/7?x=1' });
  });

  it('with stripPath forwards only what follows the route prefix', async () => {
    expect((await request(app.url).get('/edge-strip/orders/7?x=1').expect(200)).body).toMatchObject({ url: '/7?x=1' });
  });

  it('does not match the route outside the mount path', async () => {
    const before = up.requests.length;
    expect((await request(app.url).get('/orders/7').expect(404)).body).toEqual({ from: 'app', path: '/orders/7' });
    expect(up.requests.length).toBe(before);
  });
});

describe.each(expressVersions)('the matched route in the request context (%s)', (_label, express) => {
  let up: Upstream;
  let app: GatewayApp;

  beforeAll(async () => {
    up = await startUpstream({ name: 'up' });
    const down = await closedPort();
    app = await gatewayApp(
      {
        onError: 'next',
        routes: [
          { path: '/named', name: 'orders-service', upstream: `http://127.0.0.1:${down}` },
          { path: '/unnamed', upstream: `http://127.0.0.1:${down}` },
          { path: '/get-only', name: 'reads', upstream: up.url, methods: ['GET'] },
        ],
      },
      {
        express,
        after: (server) => {
          server.use((req: Request, res: Response) => {
            res.status(404).json({ fellThrough: true, route: getContext(req).route ?? null });
          });
          server.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
            res.status(599).json({
              route: getContext(req).route ?? null,
              code: err instanceof GatewayError ? err.code : 'not a GatewayError',
              status: err instanceof GatewayError ? err.status : 0,
            });
          });
        },
      },
    );
  });
  afterAll(async () => {
    await app.close();
    await up.close();
  });

  it('is the route name, seen by an app error handler after onError: "next"', async () => {
    const res = await request(app.url).get('/named/1').expect(599);
    expect(res.body).toEqual({ route: 'orders-service', code: 'ERR_UPSTREAM_UNAVAILABLE', status: 502 });
  });

  it('defaults to the route path when the route has no name', async () => {
    const res = await request(app.url).get('/unnamed/1').expect(599);
    expect(res.body).toEqual({ route: '/unnamed', code: 'ERR_UPSTREAM_UNAVAILABLE', status: 502 });
  });

  it('is unset for a request no route matched', async () => {
    const res = await request(app.url).post('/get-only/1').expect(404);
    expect(res.body).toEqual({ fellThrough: true, route: null });
  });
});

describe('construction-time configuration errors', () => {
  const target = 'http://127.0.0.1:1';

  /** Builds a gateway expected to throw; closes it if it unexpectedly does not. */
  const configError = (options: unknown): ConfigError =>
    thrownConfigError(() => gateway(options as GatewayOptions), { accepted: (gw) => void gw.close(), message: 'gateway() accepted an invalid configuration' });

  it('names an unknown route key and suggests the intended one', () => {
    const err = configError({ routes: [{ path: '/api', upstream: target, methds: ['GET'] }] });
    expect(err.message).toContain('routes[0].methds');
    expect(err.message).toContain('Did you mean "routes[0].methods"');
  });

  it('names an unknown upstream key with its full path and a suggestion', () => {
    const err = configError({ routes: [{ path: '/a', upstream: target }, { path: '/api', upstream: { targts: [target] } }] });
    expect(err.message).toContain('routes[1].upstream.targts');
    expect(err.message).toContain('Did you mean "routes[1].upstream.targets"');
  });

  it('names an unknown gateway key', () => {
    const err = configError({ rotues: [] });
    expect(err.message).toContain('rotues');
    expect(err.message).toContain('Did you mean "routes"');
  });

  it('reports a missing upstream', () => {
    const err = configError({ routes: [{ path: '/api' }] });
    expect(err.message).toContain('routes[0].upstream');
  });

  it('reports an upstream object without target or targets', () => {
    const err = configError({ routes: [{ path: '/api', upstream: { timeout: '1s' } }] });
    expect(err.message).toContain('routes[0].upstream.target');
  });

  it('reports a path without a leading slash', () => {
    const err = configError({ routes: [{ path: 'api/orders', upstream: target }] });
    expect(err.message).toContain('routes[0].path');
    expect(err.message).toContain('"api/orders"');
  });

  it('reports a bad duration, naming the option', () => {
    const err = configError({ routes: [{ path: '/api', upstream: { target, timeout: 'soon' } }] });
    expect(err.message).toContain('routes[0].upstream.timeout');
    expect(err.message).toContain('"soon"');
  });

  it('reports an invalid target URL, naming the option and the value', () => {
    const invalid = configError({ routes: [{ path: '/api', upstream: 'not a url' }] });
    expect(invalid.message).toContain('routes[0].upstream.target');
    expect(invalid.message).toContain('not a url');
    const ftp = configError({ routes: [{ path: '/x', upstream: target }, { path: '/api', upstream: { targets: [target, 'ftp://127.0.0.1:21'] } }] });
    expect(ftp.message).toContain('routes[1].upstream.targets[1]');
  });

  it('reports bad methods and hosts', () => {
    expect(configError({ routes: [{ path: '/api', upstream: target, methods: [] }] }).message).toContain('routes[0].methods');
    expect(configError({ routes: [{ path: '/api', upstream: target, host: 'bad host!' }] }).message).toContain('routes[0].host');
  });

  it('rejects duplicate routes (same path, methods and host)', () => {
    const err = configError({
      routes: [
        { path: '/api/orders', name: 'first', upstream: target, methods: ['GET', 'POST'] },
        { path: '/api/orders/', name: 'second', upstream: target, methods: ['post', 'get'] },
      ],
    });
    expect(err.message).toContain('first');
    expect(err.message).toContain('second');
  });

  it('accepts routes on the same path that differ by methods or host', async () => {
    const gw = gateway({
      routes: [
        { path: '/api', upstream: target, methods: ['GET'] },
        { path: '/api', upstream: target, methods: ['POST'] },
        { path: '/api', upstream: target, host: 'a.example.com' },
        { path: '/api', upstream: target },
      ],
    });
    await gw.close();
  });
});

describe.each(expressVersions)('loadConfig() from a YAML file (%s)', (_label, express) => {
  let dir: string;
  let orders: Upstream;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'frontdoor-config-'));
    orders = await startUpstream({ name: 'orders' });
  });
  afterAll(async () => {
    await orders.close();
    await rm(dir, { recursive: true, force: true });
  });

  const yaml = [
    '# gateway routes',
    'routes:',
    '  - path: /api/orders',
    '    name: orders',
    '    methods: [GET, POST]',
    '    upstream:',
    '      target: ${ORDERS_URL}',
    '      timeout: 5s',
    '      retries: 1',
    '  - path: /v2/orders',
    '    upstream: "${ORDERS_URL}"',
    '    rewrite:',
    "      '^/v2/orders': /internal/orders",
    '',
  ].join('\n');

  it('substitutes ${VAR} from the given env and returns options that work in gateway() end to end', async () => {
    const file = path.join(dir, 'gateway.yaml');
    await writeFile(file, yaml);
    const options = loadConfig(file, { ORDERS_URL: orders.url });
    expect(options.routes).toHaveLength(2);
    expect(options.routes[0]).toMatchObject({ path: '/api/orders', name: 'orders', upstream: { target: orders.url, timeout: '5s', retries: 1 } });
    expect(options.routes[1].upstream).toBe(orders.url);

    const app = await gatewayApp(options, {
      express,
      after: (server) =>
        server.use((_req: Request, res: Response) => {
          res.status(404).json({ from: 'app' });
        }),
    });
    try {
      expect((await request(app.url).get('/api/orders/7?x=1').expect(200)).body).toMatchObject({ upstream: 'orders', url: '/api/orders/7?x=1' });
      expect((await request(app.url).get('/v2/orders/7?x=1').expect(200)).body).toMatchObject({ upstream: 'orders', url: '/internal/orders/7?x=1' });
      // methods from the file apply: DELETE is not routed.
      expect((await request(app.url).delete('/api/orders/7').expect(404)).body).toEqual({ from: 'app' });
    } finally {
      await app.close();
    }
  });

  it('reads JSON files too', async () => {
    const file = path.join(dir, 'gateway.json');
    await writeFile(file, JSON.stringify({ routes: [{ path: '/api', upstream: '${ORDERS_URL}' }] }));
    expect(loadConfig(file, { ORDERS_URL: orders.url })).toEqual({ routes: [{ path: '/api', upstream: orders.url }] });
  });

  it('a missing environment variable is a ConfigError naming the file and the variable', async () => {
    const file = path.join(dir, 'missing-env.yaml');
    await writeFile(file, yaml);
    expect(() => loadConfig(file, {})).toThrow(ConfigError);
    expect(() => loadConfig(file, {})).toThrow(file);
    expect(() => loadConfig(file, {})).toThrow('ORDERS_URL');
  });

  it('invalid YAML is a ConfigError naming the file', async () => {
    const file = path.join(dir, 'broken.yaml');
    await writeFile(file, 'routes:\n  - path: /api\n    upstream: [unclosed\n');
    expect(() => loadConfig(file, {})).toThrow(ConfigError);
    expect(() => loadConfig(file, {})).toThrow(file);
  });

  it('a missing file is a ConfigError naming the file', () => {
    const file = path.join(dir, 'does-not-exist.yaml');
    expect(() => loadConfig(file, {})).toThrow(ConfigError);
    expect(() => loadConfig(file, {})).toThrow(file);
  });

  it('a loaded config with a mistake fails in gateway() naming the option', async () => {
    const file = path.join(dir, 'typo.yaml');
    await writeFile(file, 'routes:\n  - path: /api\n    upstream:\n      targts: ["${ORDERS_URL}"]\n');
    const options = loadConfig(file, { ORDERS_URL: orders.url });
    expect(() => gateway(options)).toThrow('routes[0].upstream.targts');
  });
});
