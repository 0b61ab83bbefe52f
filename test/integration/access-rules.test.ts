import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import request from 'supertest';
import { authenticate, authorize, ConfigError, gateway, getConsumer, ipFilter } from '../../index';
import { ExpressFactory, expressVersions, listen } from '../helpers/app';
import { GatewayApp, gatewayApp } from '../helpers/gateway-app';
import { expectProblem } from '../helpers/problem';
import { startUpstream, Upstream } from '../helpers/upstream';
import { hmacSecret, signHmac } from '../helpers/tokens';

const API_KEY = 'access-rules-key-0123456789';

describe.each(expressVersions)('authorize() (%s)', (_label, express) => {
  const secret = hmacSecret();
  const jwt = { secret, algorithms: ['HS256' as const] };
  let app: GatewayApp;
  let upstream: Upstream;
  const token = (claims: Record<string, unknown>) => signHmac({ sub: 'user-1', ...claims }, secret);

  beforeAll(async () => {
    upstream = await startUpstream({ name: 'orders' });
    const ok = (req: http.IncomingMessage, res: { json(body: unknown): void }) => res.json({ ok: true, id: getConsumer(req)?.id });
    const auth = authenticate({ jwt, apiKey: { keys: { [API_KEY]: { id: 'key-consumer', scopes: ['orders:read'], tier: 'free' } } } });
    app = await gatewayApp(
      { routes: [{ path: '/gw/orders', upstream: upstream.url, auth: { jwt }, authorize: { scopes: ['orders:write'] } }] },
      {
        express,
        before: (server) => {
          server.get('/write', auth, authorize({ scopes: ['orders:read', 'orders:write'] }), ok);
          server.get('/gold', auth, authorize({ tiers: ['gold', 'platinum'] }), ok);
          server.get('/own/:id', auth, authorize((consumer, req) => req.url === `/own/${consumer.id}`), ok);
          server.get('/throws', auth, authorize(() => { throw new Error('rule bug'); }), ok);
          server.get('/no-auth', authorize({ scopes: ['orders:read'] }), ok);
        },
      },
    );
  });
  afterAll(async () => {
    await app.close();
    await upstream.close();
  });

  it('all listed scopes are required; missing ones → 403 ERR_FORBIDDEN_SCOPE with an insufficient_scope challenge', async () => {
    await request(app.url).get('/write').set('Authorization', `Bearer ${await token({ scope: 'orders:read orders:write' })}`).expect(200);
    const res = await request(app.url).get('/write').set('Authorization', `Bearer ${await token({ scope: 'orders:read' })}`);
    expectProblem(res, 403, 'ERR_FORBIDDEN_SCOPE', { requestId: false });
    expect(res.headers['www-authenticate']).toBe('Bearer error="insufficient_scope", scope="orders:read orders:write"');
    expect(res.body.detail).toContain('orders:write');
  });

  it('scopes from an scp array count too', async () => {
    await request(app.url).get('/write').set('Authorization', `Bearer ${await token({ scp: ['orders:read', 'orders:write'] })}`).expect(200);
  });

  it('an API-key consumer lacking a scope gets 403 without a Bearer challenge', async () => {
    const res = await request(app.url).get('/write').set('X-Api-Key', API_KEY);
    expectProblem(res, 403, 'ERR_FORBIDDEN_SCOPE', { requestId: false });
    expect(res.headers['www-authenticate']).toBeUndefined();
  });

  it('tiers: only the listed tiers pass; another tier or none → 403 ERR_FORBIDDEN', async () => {
    expect((await request(app.url).get('/gold').set('Authorization', `Bearer ${await token({ tier: 'gold' })}`).expect(200)).body.id).toBe('user-1');
    expectProblem(await request(app.url).get('/gold').set('Authorization', `Bearer ${await token({ tier: 'free' })}`), 403, 'ERR_FORBIDDEN', { requestId: false });
    expectProblem(await request(app.url).get('/gold').set('Authorization', `Bearer ${await token({})}`), 403, 'ERR_FORBIDDEN', { requestId: false });
    expectProblem(await request(app.url).get('/gold').set('X-Api-Key', API_KEY), 403, 'ERR_FORBIDDEN', { requestId: false });
  });

  it('a predicate decides with the consumer and the request', async () => {
    const bearer = `Bearer ${await token({})}`;
    await request(app.url).get('/own/user-1').set('Authorization', bearer).expect(200);
    expectProblem(await request(app.url).get('/own/user-2').set('Authorization', bearer), 403, 'ERR_FORBIDDEN', { requestId: false });
  });

  it('a predicate that throws fails closed (500), never lets the request through', async () => {
    const res = await request(app.url).get('/throws').set('Authorization', `Bearer ${await token({})}`);
    expect(res.status).toBe(500);
    expect(res.body.ok).toBeUndefined();
    expect(res.text).not.toContain('rule bug');
  });

  it('without an authenticated consumer → 401 ERR_AUTH_MISSING', async () => {
    const res = await request(app.url).get('/no-auth');
    expectProblem(res, 401, 'ERR_AUTH_MISSING', { requestId: false });
    expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
  });

  it('as a gateway route option: refused requests never reach the upstream', async () => {
    const before = upstream.requests.length;
    expectProblem(await request(app.url).get('/gw/orders').set('Authorization', `Bearer ${await token({ scope: 'orders:read' })}`), 403, 'ERR_FORBIDDEN_SCOPE', { requestId: false });
    expectProblem(await request(app.url).get('/gw/orders'), 401, 'ERR_AUTH_MISSING', { requestId: false });
    expect(upstream.requests.length).toBe(before);
    await request(app.url).get('/gw/orders').set('Authorization', `Bearer ${await token({ scope: 'orders:write' })}`).expect(200);
    expect(upstream.requests.length).toBe(before + 1);
  });

  it('a route with authorize but no auth is a ConfigError naming the option', () => {
    expect(() => gateway({ routes: [{ path: '/x', upstream: upstream.url, authorize: { scopes: ['a'] } }] })).toThrow(ConfigError);
    expect(() => gateway({ routes: [{ path: '/x', upstream: upstream.url, authorize: { scopes: ['a'] } }] })).toThrow(/routes\[0\]\.authorize/);
  });
});

/** An app whose only handler is an ipFilter in front of a 200. */
function filtered(express: ExpressFactory, rules: Parameters<typeof ipFilter>[0], trustProxy?: string) {
  const server = express();
  if (trustProxy !== undefined) server.set('trust proxy', trustProxy);
  server.use(ipFilter(rules));
  server.get('/', (req, res) => {
    res.json({ ip: req.ip });
  });
  return server;
}

describe.each(expressVersions)('ipFilter() (%s)', (_label, express) => {
  async function status(rules: Parameters<typeof ipFilter>[0], headers: Record<string, string> = {}, trustProxy?: string) {
    const app = await listen(filtered(express, rules, trustProxy));
    try {
      const res = await request(app.url).get('/').set(headers);
      return res;
    } finally {
      await app.close();
    }
  }

  it('allow: a CIDR that contains 127.0.0.1 passes, one that does not is 403 ERR_IP_DENIED', async () => {
    expect((await status({ allow: ['127.0.0.0/8'] })).status).toBe(200);
    expect((await status({ allow: ['127.0.0.1'] })).status).toBe(200);
    const refused = await status({ allow: ['10.0.0.0/8', '192.168.0.0/16'] });
    expectProblem(refused, 403, 'ERR_IP_DENIED', { requestId: false });
  });

  it('deny: a matching CIDR is refused and deny wins over allow', async () => {
    expectProblem(await status({ deny: ['127.0.0.0/24'] }), 403, 'ERR_IP_DENIED', { requestId: false });
    expectProblem(await status({ allow: ['127.0.0.0/8'], deny: ['127.0.0.1/32'] }), 403, 'ERR_IP_DENIED', { requestId: false });
    expect((await status({ deny: ['10.0.0.0/8'] })).status).toBe(200);
  });

  it('an IPv4-mapped IPv6 rule matches the IPv4 client', async () => {
    expect((await status({ allow: ['::ffff:127.0.0.1'] })).status).toBe(200);
    expectProblem(await status({ deny: ['::ffff:127.0.0.0/104'] }), 403, 'ERR_IP_DENIED', { requestId: false });
  });

  it('with trust proxy loopback the rule sees the X-Forwarded-For client', async () => {
    const allowed = await status({ allow: ['10.1.2.3'] }, { 'X-Forwarded-For': '10.1.2.3' }, 'loopback');
    expect(allowed.status).toBe(200);
    expect(allowed.body.ip).toBe('10.1.2.3');
    expectProblem(await status({ deny: ['10.0.0.0/8'] }, { 'X-Forwarded-For': '10.1.2.3' }, 'loopback'), 403, 'ERR_IP_DENIED', { requestId: false });
  });

  it('without trust proxy X-Forwarded-For is ignored: the rule sees 127.0.0.1', async () => {
    expectProblem(await status({ allow: ['10.1.2.3'] }, { 'X-Forwarded-For': '10.1.2.3' }), 403, 'ERR_IP_DENIED', { requestId: false });
    const denied10 = await status({ deny: ['10.0.0.0/8'] }, { 'X-Forwarded-For': '10.1.2.3' });
    expect(denied10.status).toBe(200);
    expect(denied10.body.ip).toMatch(/^(::ffff:)?127\.0\.0\.1$/);
  });

  it('as a gateway route option, refused requests never reach the upstream', async () => {
    const upstream = await startUpstream();
    const app = await gatewayApp(
      { routes: [{ path: '/admin', upstream: upstream.url, ipFilter: { allow: ['10.0.0.0/8'] } }] },
      { express, before: (server) => server.set('trust proxy', 'loopback') },
    );
    try {
      expectProblem(await request(app.url).get('/admin'), 403, 'ERR_IP_DENIED', { requestId: false });
      expectProblem(await request(app.url).get('/admin').set('X-Forwarded-For', '192.168.1.1'), 403, 'ERR_IP_DENIED', { requestId: false });
      expect(upstream.requests).toHaveLength(0);
      await request(app.url).get('/admin').set('X-Forwarded-For', '10.9.9.9').expect(200);
      expect(upstream.requests).toHaveLength(1);
    } finally {
      await app.close();
      await upstream.close();
    }
  });

  it('IPv6: CIDR rules apply to a client on ::1', async () => {
    const results: Record<string, number> = {};
    for (const [name, rules] of [
      ['allow ::1/128', { allow: ['::1/128'] }],
      ['allow fd00::/8', { allow: ['fd00::/8'] }],
      ['deny ::/64', { deny: ['::/64'] }],
      ['deny 2001:db8::/32', { deny: ['2001:db8::/32'] }],
    ] as const) {
      const server = http.createServer(filtered(express, { allow: rules.allow ? [...rules.allow] : undefined, deny: 'deny' in rules ? [...rules.deny] : undefined }));
      const sockets = new Set<Socket>();
      server.on('connection', (socket: Socket) => {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
      });
      const listening = await new Promise<boolean>((resolve) => {
        server.once('error', () => resolve(false));
        server.listen(0, '::1', () => resolve(true));
      });
      if (!listening) {
        console.warn('access-rules.test.ts: IPv6 ipFilter test SKIPPED — cannot listen on the IPv6 loopback ::1 on this machine.');
        return;
      }
      try {
        const port = (server.address() as AddressInfo).port;
        results[name] = await new Promise<number>((resolve, reject) => {
          http.get({ host: '::1', port, path: '/', agent: false }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          }).on('error', reject);
        });
      } finally {
        for (const socket of sockets) socket.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    }
    expect(results).toEqual({ 'allow ::1/128': 200, 'allow fd00::/8': 403, 'deny ::/64': 403, 'deny 2001:db8::/32': 200 });
  });

  it('invalid rules are ConfigErrors naming the option', () => {
    expect(() => ipFilter({ allow: ['10.0.0.0/33'] })).toThrow(/allow/);
    expect(() => ipFilter({ deny: ['not-an-ip'] })).toThrow(/deny/);
    expect(() => gateway({ routes: [{ path: '/x', upstream: 'http://127.0.0.1:1', ipFilter: { allow: ['nope'] } }] })).toThrow(/routes\[0\]\.ipFilter\.allow/);
  });
});

describe.each(expressVersions)('route cors option (%s)', (_label, express) => {
  const secret = hmacSecret();
  const ORIGIN = 'https://app.example';
  let app: GatewayApp;
  let upstream: Upstream;

  beforeAll(async () => {
    upstream = await startUpstream({ name: 'orders' });
    app = await gatewayApp(
      {
        routes: [
          { path: '/api/orders', upstream: upstream.url, cors: { origin: ORIGIN }, auth: { jwt: { secret, algorithms: ['HS256'] } } },
          { path: '/api/public', upstream: upstream.url, cors: true, ipFilter: { allow: ['127.0.0.1'] } },
        ],
      },
      { express },
    );
  });
  afterAll(async () => {
    await app.close();
    await upstream.close();
  });

  it('answers a preflight 204 with Access-Control-Allow-Origin without credentials, on an auth route, without forwarding', async () => {
    const before = upstream.requests.length;
    const res = await request(app.url)
      .options('/api/orders/7')
      .set('Origin', ORIGIN)
      .set('Access-Control-Request-Method', 'POST')
      .set('Access-Control-Request-Headers', 'authorization, content-type');
    expect(res.status).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe(ORIGIN);
    expect(res.headers['access-control-allow-methods']).toContain('POST');
    expect(res.headers['www-authenticate']).toBeUndefined();
    expect(upstream.requests.length).toBe(before);
  });

  it('an actual request carries the CORS header on 401 too, and on success', async () => {
    const refused = await request(app.url).get('/api/orders/7').set('Origin', ORIGIN);
    expectProblem(refused, 401, 'ERR_AUTH_MISSING', { requestId: false });
    expect(refused.headers['access-control-allow-origin']).toBe(ORIGIN);
    const token = await signHmac({ sub: 'u' }, secret);
    const ok = await request(app.url).get('/api/orders/7').set('Origin', ORIGIN).set('Authorization', `Bearer ${token}`).expect(200);
    expect(ok.headers['access-control-allow-origin']).toBe(ORIGIN);
    expect(ok.body.url).toBe('/api/orders/7');
  });

  it('cors: true allows any origin', async () => {
    const res = await request(app.url).get('/api/public').set('Origin', 'https://other.example').expect(200);
    expect(res.headers['access-control-allow-origin']).toBe('*');
  });
});
