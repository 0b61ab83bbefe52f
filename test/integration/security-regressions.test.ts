/**
 * Regression tests for the security fixes of issue 9, on real servers: a real Express app (4 and 5) with
 * the gateway, real upstreams on 127.0.0.1 that record what reached them, real signed JWTs, and raw
 * sockets where a client library would normalise or refuse what an attacker sends.
 *
 * 1. `;` path parameters are refused (Tomcat/Jetty/Spring read `/admin;x/y` as `/admin/y`).
 * 2. A raw `#` in the request target is refused (http-proxy would cut it off).
 * 3. WebSocket upgrades run the route's policies; the most specific route decides an upgrade.
 * 4. Forged identity headers never reach an upstream, with or without authentication.
 * 5. A port in the client address does not make a new client (limits, IP rules, logs).
 * 6. Hop-by-hop headers of an upstream's response are not copied to the client.
 * 7. Upgrade sockets nobody takes are served as plain HTTP and closed, never held open.
 * 8. Access logs redact every credential header an authenticate() scheme reads.
 * 9. A JSON body nested too deeply to re-serialise is a 400, not a 500.
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import pino from 'pino';
import request from 'supertest';
import WebSocket from 'ws';
import { accessLog, proxy } from '../../index';
import { expressVersions, listen, rawRequest, RunningApp } from '../helpers/app';
import { GatewayApp, gatewayApp } from '../helpers/gateway-app';
import { captureStream, linesFor } from '../helpers/logs';
import { expectProblem } from '../helpers/problem';
import { sendRaw } from '../helpers/raw';
import { hmacSecret, signHmac } from '../helpers/tokens';
import { startUpstream, Upstream } from '../helpers/upstream';
import { settle } from '../helpers/wait';
import { closeClient, handshakeRequest as handshake, opened, startWsUpstream, WsUpstream } from '../helpers/websocket';

const FORGED_IDENTITY = { 'X-Consumer-Id': 'admin', 'X-Consumer-Scopes': 'admin:all', 'X-Consumer-Tier': 'enterprise' };

// ---------------------------------------------------------------------------------------------------
// 1. ';' path parameters
// ---------------------------------------------------------------------------------------------------

describe.each(expressVersions)('";" path parameters through gateway() (%s)', (_label, express) => {
  const secret = hmacSecret();
  const jwt = { secret, algorithms: ['HS256' as const] };
  let upstream: Upstream;
  let strict: GatewayApp;
  let lenient: GatewayApp;

  beforeAll(async () => {
    upstream = await startUpstream({ name: 'backend' });
    const routes = [
      { path: '/', upstream: upstream.url },
      { path: '/admin', upstream: upstream.url, auth: { jwt } },
    ];
    strict = await gatewayApp({ routes }, { express });
    lenient = await gatewayApp({ routes, allowSemicolons: true }, { express });
  });
  afterAll(async () => {
    await strict.close();
    await lenient.close();
    await upstream.close();
  });
  beforeEach(() => {
    upstream.requests.length = 0;
  });

  it.each(['/public/..;/admin/x', '/public/%2e%2e;/admin/x', '/admin;jsessionid=0/x', '/admin%3Bx/y'])(
    'refuses %s without a token with 400 ERR_BAD_PATH and forwards nothing (no way around the /admin auth)',
    async (path) => {
      const connections = upstream.connections;
      const res = await rawRequest(strict.port, { path });
      expectProblem(res, 400, 'ERR_BAD_PATH');
      await settle();
      expect(upstream.requests).toEqual([]);
      expect(upstream.connections).toBe(connections);
    },
  );

  it('refuses ";" even with a valid token for the /admin route (400, nothing forwarded)', async () => {
    const token = await signHmac({ sub: 'user-1' }, secret);
    const res = await rawRequest(strict.port, { path: '/admin;jsessionid=0/x', headers: { authorization: `Bearer ${token}` } });
    expectProblem(res, 400, 'ERR_BAD_PATH');
    expect(upstream.requests).toEqual([]);
  });

  it('allowSemicolons: /admin;jsessionid=0/x without a token matches the /admin route: 401, nothing forwarded', async () => {
    const res = await rawRequest(lenient.port, { path: '/admin;jsessionid=0/x' });
    expectProblem(res, 401, 'ERR_AUTH_MISSING');
    expect(upstream.requests).toEqual([]);
  });

  it('allowSemicolons: /admin;jsessionid=0/x with a valid token is forwarded as sent, with the consumer id', async () => {
    const token = await signHmac({ sub: 'user-7' }, secret);
    const res = await rawRequest(lenient.port, { path: '/admin;jsessionid=0/x', headers: { authorization: `Bearer ${token}`, ...FORGED_IDENTITY } });
    expect(res.status).toBe(200);
    expect(upstream.requests).toHaveLength(1);
    expect(upstream.requests[0].url).toBe('/admin;jsessionid=0/x');
    expect(upstream.requests[0].headers['x-consumer-id']).toBe('user-7');
  });

  it.each(['/public/..;/admin/x', '/public/%2e%2e;/admin/x', '/public/.;/admin/x'])('allowSemicolons: the dot segment with parameters %s is still 400, nothing forwarded', async (path) => {
    const res = await rawRequest(lenient.port, { path });
    expectProblem(res, 400, 'ERR_BAD_PATH');
    expect(upstream.requests).toEqual([]);
  });
});

describe.each(expressVersions)('";" path parameters through proxy() alone (%s)', (_label, express) => {
  let upstream: Upstream;
  let strict: RunningApp;
  let lenient: RunningApp;
  let pStrict: ReturnType<typeof proxy>;
  let pLenient: ReturnType<typeof proxy>;

  beforeAll(async () => {
    upstream = await startUpstream({ name: 'backend' });
    pStrict = proxy({ target: upstream.url });
    pLenient = proxy({ target: upstream.url, allowSemicolons: true });
    const strictApp = express();
    strictApp.use('/api', pStrict);
    strict = await listen(strictApp);
    const lenientApp = express();
    lenientApp.use('/api', pLenient);
    lenient = await listen(lenientApp);
  });
  afterAll(async () => {
    await pStrict.close();
    await pLenient.close();
    await strict.close();
    await lenient.close();
    await upstream.close();
  });
  beforeEach(() => {
    upstream.requests.length = 0;
  });

  it.each(['/api/a/..;/b', '/api/a;x=1/b'])('refuses %s with 400 ERR_BAD_PATH by default, forwarding nothing', async (path) => {
    const res = await rawRequest(strict.port, { path });
    expectProblem(res, 400, 'ERR_BAD_PATH');
    expect(upstream.requests).toEqual([]);
  });

  it('proxy({ allowSemicolons: true }) forwards /api/a;x=1/b as sent', async () => {
    const res = await rawRequest(lenient.port, { path: '/api/a;x=1/b' });
    expect(res.status).toBe(200);
    expect(upstream.requests.map((r) => r.url)).toEqual(['/api/a;x=1/b']);
  });

  it('proxy({ allowSemicolons: true }) still refuses /api/a/..;/b', async () => {
    const res = await rawRequest(lenient.port, { path: '/api/a/..;/b' });
    expectProblem(res, 400, 'ERR_BAD_PATH');
    expect(upstream.requests).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------
// 2. Raw '#' in the request target
// ---------------------------------------------------------------------------------------------------

describe.each(expressVersions)('raw "#" in the request target (%s)', (_label, express) => {
  const secret = hmacSecret();
  let upstream: Upstream;
  let app: GatewayApp;

  beforeAll(async () => {
    upstream = await startUpstream({ name: 'backend' });
    app = await gatewayApp(
      {
        routes: [
          { path: '/api', upstream: upstream.url, auth: { jwt: { secret, algorithms: ['HS256'] } } },
          { path: '/api/public', upstream: upstream.url },
        ],
      },
      { express },
    );
  });
  afterAll(async () => {
    await app.close();
    await upstream.close();
  });
  beforeEach(() => {
    upstream.requests.length = 0;
  });

  it.each(['/api/public/..#', '/api/public/..#x', '/api/public/%2e%2e#', '/api/public/.#', '/api/public/x?a=1#frag'])(
    'refuses GET %s (sent raw) with 400 ERR_BAD_PATH and forwards nothing',
    async (target) => {
      const connections = upstream.connections;
      const res = await sendRaw(app.port, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
      expectProblem(res, 400, 'ERR_BAD_PATH');
      await settle();
      expect(upstream.requests).toEqual([]);
      expect(upstream.connections).toBe(connections);
    },
  );

  it('still forwards the public route without a fragment', async () => {
    const res = await sendRaw(app.port, 'GET /api/public/x?a=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    expect(res.status).toBe(200);
    expect(upstream.requests.map((r) => r.url)).toEqual(['/api/public/x?a=1']);
  });
});

// ---------------------------------------------------------------------------------------------------
// 3. WebSocket upgrades run the route's policies
// ---------------------------------------------------------------------------------------------------

describe.each(expressVersions)('WebSocket upgrades run the route policies (%s)', (_label, express) => {
  const secret = hmacSecret();
  const jwt = { secret, algorithms: ['HS256' as const] };
  let ws: WsUpstream;
  let app: GatewayApp;

  beforeAll(async () => {
    ws = await startWsUpstream();
    app = await gatewayApp(
      {
        routes: [
          { path: '/ws', upstream: ws.url, ws: true, auth: { jwt } },
          { path: '/ws-ip', upstream: ws.url, ws: true, ipFilter: { deny: ['127.0.0.1'] } },
          { path: '/ws-limited', upstream: ws.url, ws: true, rateLimit: { limit: 1 } },
          { path: '/ws-scoped', upstream: ws.url, ws: true, auth: { jwt }, authorize: { scopes: ['chat:write'] } },
          // A public ws route on '/', and an authenticated plain route inside it.
          { path: '/', upstream: ws.url, ws: true },
          { path: '/admin', upstream: ws.url, auth: { jwt } },
        ],
      },
      { express, upgrade: true },
    );
  });
  afterAll(async () => {
    await app.close();
    await ws.close();
  });

  it('refuses an upgrade without a token (forged X-Consumer-* sent) with 401 problem+json on the socket, closes it, contacts no upstream', async () => {
    const connections = ws.connections;
    const handshakes = ws.handshakes.length;
    const res = await sendRaw(app.port, handshake('/ws/chat', { 'X-Consumer-Id': 'admin', 'X-Consumer-Scopes': 'admin:all' }));
    expect(res.statusLine).toMatch(/^HTTP\/1\.1 401 /);
    expectProblem(res, 401, 'ERR_AUTH_MISSING');
    expect(res.closed).toBe(true);
    await settle();
    expect(ws.handshakes.length).toBe(handshakes);
    expect(ws.connections).toBe(connections);
  });

  it('proxies an upgrade with a valid token: the upstream handshake carries the token\'s identity, not the forged one', async () => {
    const before = ws.handshakes.length;
    const token = await signHmac({ sub: 'user-42', scope: 'chat:read', tier: 'gold' }, secret);
    const client = new WebSocket(`ws://127.0.0.1:${app.port}/ws/chat`, { headers: { Authorization: `Bearer ${token}`, ...FORGED_IDENTITY } });
    try {
      await opened(client);
      expect(ws.handshakes.length).toBe(before + 1);
      const { headers, url } = ws.handshakes[before];
      expect(url).toBe('/ws/chat');
      expect(headers['x-consumer-id']).toBe('user-42');
      expect(headers['x-consumer-scopes']).toBe('chat:read');
      expect(headers['x-consumer-tier']).toBe('gold');
    } finally {
      await closeClient(client);
    }
  });

  it('a valid token without a tier: the forged X-Consumer-Tier does not survive the upgrade', async () => {
    const before = ws.handshakes.length;
    const token = await signHmac({ sub: 'user-43' }, secret);
    const client = new WebSocket(`ws://127.0.0.1:${app.port}/ws/chat`, { headers: { Authorization: `Bearer ${token}`, ...FORGED_IDENTITY } });
    try {
      await opened(client);
      const { headers } = ws.handshakes[before];
      expect(headers['x-consumer-id']).toBe('user-43');
      expect(headers['x-consumer-scopes']).toBe('');
      expect(headers['x-consumer-tier']).toBeUndefined();
    } finally {
      await closeClient(client);
    }
  });

  it('applies ipFilter to an upgrade: 403 ERR_IP_DENIED on the socket, no upstream contact', async () => {
    const connections = ws.connections;
    const res = await sendRaw(app.port, handshake('/ws-ip/feed'));
    expectProblem(res, 403, 'ERR_IP_DENIED');
    expect(res.closed).toBe(true);
    await settle();
    expect(ws.connections).toBe(connections);
  });

  it('applies rateLimit to upgrades: the first is 101, the second 429 ERR_RATE_LIMITED on the socket', async () => {
    const before = ws.handshakes.length;
    const client = new WebSocket(`ws://127.0.0.1:${app.port}/ws-limited/feed`);
    try {
      await opened(client);
    } finally {
      await closeClient(client);
    }
    const res = await sendRaw(app.port, handshake('/ws-limited/feed'));
    expectProblem(res, 429, 'ERR_RATE_LIMITED');
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    expect(res.closed).toBe(true);
    await settle();
    expect(ws.handshakes.length).toBe(before + 1);
  });

  it('applies authorize to upgrades: a token without the scope is 403 on the socket, one with it is 101', async () => {
    const before = ws.handshakes.length;
    const connections = ws.connections;
    const reader = await signHmac({ sub: 'reader', scope: 'chat:read' }, secret);
    const res = await sendRaw(app.port, handshake('/ws-scoped/feed', { Authorization: `Bearer ${reader}` }));
    expectProblem(res, 403, 'ERR_FORBIDDEN_SCOPE');
    expect(res.closed).toBe(true);
    await settle();
    expect(ws.connections).toBe(connections);

    const writer = await signHmac({ sub: 'writer', scope: 'chat:read chat:write' }, secret);
    const client = new WebSocket(`ws://127.0.0.1:${app.port}/ws-scoped/feed`, { headers: { Authorization: `Bearer ${writer}` } });
    try {
      await opened(client);
      expect(ws.handshakes.length).toBe(before + 1);
      expect(ws.handshakes[before].headers['x-consumer-id']).toBe('writer');
    } finally {
      await closeClient(client);
    }
  });

  it('the public ws route on "/" takes an upgrade for a path it owns (101)', async () => {
    const before = ws.handshakes.length;
    const client = new WebSocket(`ws://127.0.0.1:${app.port}/feed`);
    try {
      await opened(client);
      expect(ws.handshakes[before].url).toBe('/feed');
    } finally {
      await closeClient(client);
    }
  });

  it('an upgrade to /admin/x (most specific route /admin, not ws) is not proxied as an upgrade: served as HTTP, it gets the 401 of /admin', async () => {
    const connections = ws.connections;
    const handshakes = ws.handshakes.length;
    const res = await sendRaw(app.port, handshake('/admin/x', FORGED_IDENTITY));
    expectProblem(res, 401, 'ERR_AUTH_MISSING');
    expect(res.closed).toBe(true);
    await settle();
    expect(ws.handshakes.length).toBe(handshakes);
    expect(ws.connections).toBe(connections);
  });

  it('an upgrade to /admin/x with a valid token reaches the upstream as a plain request (no Upgrade), never as a handshake', async () => {
    const handshakes = ws.handshakes.length;
    const plain = ws.plain.length;
    const token = await signHmac({ sub: 'user-42' }, secret);
    const res = await sendRaw(app.port, handshake('/admin/x', { Authorization: `Bearer ${token}` }));
    expect(res.status).toBe(426); // the upstream's answer to a plain request
    expect(res.body).toBe('websocket only');
    expect(res.closed).toBe(true);
    expect(ws.handshakes.length).toBe(handshakes);
    expect(ws.plain.length).toBe(plain + 1);
    const received = ws.plain[plain];
    expect(received.url).toBe('/admin/x');
    expect(received.headers.upgrade).toBeUndefined();
    expect(received.headers['x-consumer-id']).toBe('user-42');
  });
});

// ---------------------------------------------------------------------------------------------------
// 4. Forged identity on routes without auth
// ---------------------------------------------------------------------------------------------------

describe.each(expressVersions)('forged identity headers on routes without auth (%s)', (_label, express) => {
  const secret = hmacSecret();
  const jwt = { secret, algorithms: ['HS256' as const] };
  let upstream: Upstream;
  let app: GatewayApp;

  beforeAll(async () => {
    upstream = await startUpstream({ name: 'backend' });
    app = await gatewayApp(
      {
        routes: [
          { path: '/api/catalog', upstream: upstream.url },
          { path: '/api/orders', upstream: upstream.url, auth: { jwt } },
          { path: '/api/users', upstream: upstream.url, auth: { jwt, identityHeaders: { id: 'x-user-id' } } },
        ],
      },
      { express },
    );
  });
  afterAll(async () => {
    await app.close();
    await upstream.close();
  });

  it('a public gateway route forwards none of the forged X-Consumer-Id/Scopes/Tier', async () => {
    const before = upstream.requests.length;
    const res = await request(app.url).get('/api/catalog').set(FORGED_IDENTITY);
    expect(res.status).toBe(200);
    expect(upstream.requests.length).toBe(before + 1);
    const headers = upstream.requests[before].headers;
    expect(headers['x-consumer-id']).toBeUndefined();
    expect(headers['x-consumer-scopes']).toBeUndefined();
    expect(headers['x-consumer-tier']).toBeUndefined();
  });

  it('a custom identity header name configured on another route (x-user-id) is stripped on the public route too', async () => {
    const before = upstream.requests.length;
    const res = await request(app.url).get('/api/catalog').set('X-Consumer-Id', 'admin').set('X-User-Id', 'admin');
    expect(res.status).toBe(200);
    const headers = upstream.requests[before].headers;
    expect(headers['x-consumer-id']).toBeUndefined();
    expect(headers['x-user-id']).toBeUndefined();
  });

  it('the authenticated route with the custom name replaces a forged X-User-Id with the token\'s subject', async () => {
    const before = upstream.requests.length;
    const token = await signHmac({ sub: 'user-9' }, secret);
    const res = await request(app.url).get('/api/users/me').set('Authorization', `Bearer ${token}`).set('X-User-Id', 'admin').set('X-Consumer-Id', 'admin');
    expect(res.status).toBe(200);
    const headers = upstream.requests[before].headers;
    expect(headers['x-user-id']).toBe('user-9');
    expect(headers['x-consumer-id']).toBeUndefined();
  });

  it('the authenticated route refuses a request with only forged identity headers (401), forwarding nothing', async () => {
    const before = upstream.requests.length;
    const res = await request(app.url).get('/api/orders').set(FORGED_IDENTITY);
    expect(res.status).toBe(401);
    expect(res.body.code).toBe('ERR_AUTH_MISSING');
    expect(upstream.requests.length).toBe(before);
  });

  it('proxy() used alone (no authenticate anywhere) forwards none of the forged identity headers', async () => {
    const p = proxy({ target: upstream.url });
    const server = express();
    server.use('/api', p);
    const alone = await listen(server);
    try {
      const before = upstream.requests.length;
      const res = await request(alone.url).get('/api/catalog').set(FORGED_IDENTITY);
      expect(res.status).toBe(200);
      const headers = upstream.requests[before].headers;
      expect(headers['x-consumer-id']).toBeUndefined();
      expect(headers['x-consumer-scopes']).toBeUndefined();
      expect(headers['x-consumer-tier']).toBeUndefined();
    } finally {
      await p.close();
      await alone.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------------
// 5. A port in the client address
// ---------------------------------------------------------------------------------------------------

describe.each(expressVersions)('a port in the client address (%s)', (_label, express) => {
  let upstream: Upstream;
  let app: GatewayApp;
  const log = captureStream();

  beforeAll(async () => {
    upstream = await startUpstream({ name: 'backend' });
    app = await gatewayApp(
      {
        accessLog: { logger: pino({}, log.stream) },
        routes: [
          { path: '/limited', upstream: upstream.url, rateLimit: { limit: 3 } },
          { path: '/filtered', upstream: upstream.url, ipFilter: { deny: ['203.0.113.7'] } },
          { path: '/logged', upstream: upstream.url },
        ],
      },
      { express, before: (server) => server.set('trust proxy', 'loopback') },
    );
  });
  afterAll(async () => {
    await app.close();
    await upstream.close();
  });

  it('counts 203.0.113.7:40000 … :40005 as one client: three 200s, then three 429s', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await request(app.url).get('/limited').set('X-Forwarded-For', `203.0.113.7:${40000 + i}`)).status);
    expect(statuses).toEqual([200, 200, 200, 429, 429, 429]);
  });

  it('counts [2001:db8::7]:40000 … :40005 as one client: three 200s, then three 429s', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await request(app.url).get('/limited').set('X-Forwarded-For', `[2001:db8::7]:${40000 + i}`)).status);
    expect(statuses).toEqual([200, 200, 200, 429, 429, 429]);
  });

  it('denies 203.0.113.7:40000 by the ipFilter rule for 203.0.113.7 (403), forwarding nothing; another address passes', async () => {
    const before = upstream.requests.length;
    const denied = await request(app.url).get('/filtered').set('X-Forwarded-For', '203.0.113.7:40000');
    expect(denied.status).toBe(403);
    expect(denied.body.code).toBe('ERR_IP_DENIED');
    expect(upstream.requests.length).toBe(before);
    const allowed = await request(app.url).get('/filtered').set('X-Forwarded-For', '198.51.100.1:40000');
    expect(allowed.status).toBe(200);
    expect(upstream.requests.length).toBe(before + 1);
  });

  it('logs the client address without its port in the access log', async () => {
    const res = await request(app.url).get('/logged').set('X-Forwarded-For', '203.0.113.7:40000').set('X-Request-Id', 'port-in-log');
    expect(res.status).toBe(200);
    const [line] = await linesFor(log, 'port-in-log');
    expect(line).toMatchObject({ ip: '203.0.113.7', status: 200 });
  });
});

// ---------------------------------------------------------------------------------------------------
// 6. Hop-by-hop response headers
// ---------------------------------------------------------------------------------------------------

describe.each(expressVersions)('hop-by-hop headers of an upstream response (%s)', (_label, express) => {
  let upstream: Upstream;
  let app: GatewayApp;

  beforeAll(async () => {
    upstream = await startUpstream({
      name: 'leaky',
      handler: (_req, res) => {
        res.writeHead(200, {
          'content-type': 'text/plain',
          'proxy-authorization': 'Basic abc',
          te: 'trailers',
          expect: '100-continue',
          'keep-alive': 'timeout=5',
          connection: 'x-secret',
          'x-secret': '1',
          'x-kept': '1',
        });
        res.end('ok');
      },
    });
    app = await gatewayApp({ routes: [{ path: '/api', upstream: upstream.url }] }, { express });
  });
  afterAll(async () => {
    await app.close();
    await upstream.close();
  });

  it.each([
    ['a keep-alive client', true],
    ['a Connection: close client', false],
  ])('copies none of Proxy-Authorization, TE, Expect, Keep-Alive, Connection-named X-Secret to %s, and keeps X-Kept', async (_name, keepAlive) => {
    const agent = new http.Agent({ keepAlive });
    try {
      const res = await new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: app.port, path: '/api/x', agent }, (response) => {
          let body = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => (body += chunk));
          response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
        });
        req.on('error', reject);
        req.end();
      });
      expect(res.status).toBe(200);
      expect(res.body).toBe('ok');
      expect(upstream.requests.at(-1)?.url).toBe('/api/x');
      expect(res.headers['proxy-authorization']).toBeUndefined();
      expect(res.headers.te).toBeUndefined();
      expect(res.headers.expect).toBeUndefined();
      expect(res.headers['keep-alive']).toBeUndefined();
      expect(res.headers['x-secret']).toBeUndefined();
      // The client's Connection is the gateway's own, not the upstream's "x-secret".
      expect(res.headers.connection).toBe(keepAlive ? 'keep-alive' : 'close');
      expect(res.headers['x-kept']).toBe('1');
    } finally {
      agent.destroy();
    }
  });
});

// ---------------------------------------------------------------------------------------------------
// 7. Upgrade sockets are never held open
// ---------------------------------------------------------------------------------------------------

const H2C = 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n';

describe.each(expressVersions)('upgrades nobody takes (%s)', (_label, express) => {
  let upstream: Upstream;
  let app: GatewayApp;
  /** What the app's own handlers saw. */
  const monolith: string[] = [];

  beforeAll(async () => {
    upstream = await startUpstream({ name: 'api' });
    app = await gatewayApp(
      { routes: [{ path: '/api', upstream: upstream.url }] },
      {
        express,
        after: (server) => {
          server.get('/anything', (req, res) => {
            monolith.push(`GET ${req.url}`);
            res.send('monolith');
          });
          server.post('/echo', (req, res) => {
            const chunks: Buffer[] = [];
            req.on('data', (chunk: Buffer) => chunks.push(chunk));
            req.on('end', () => {
              const body = Buffer.concat(chunks).toString('latin1');
              monolith.push(`POST ${req.url} ${body}`);
              res.send(`got ${body.length}: ${body}`);
            });
          });
        },
      },
    );
  });
  afterAll(async () => {
    await app.close();
    await upstream.close();
  });
  beforeEach(() => {
    monolith.length = 0;
  });
  afterEach(() => {
    app.server.removeAllListeners('upgrade');
  });

  it('serves an h2c upgrade to an app path as plain HTTP with Connection: close, and the socket closes by itself', async () => {
    app.server.on('upgrade', app.gw.upgrade);
    const started = Date.now();
    const res = await sendRaw(app.port, `GET /anything HTTP/1.1\r\nHost: x\r\n${H2C}\r\n`);
    expect(res.closed).toBe(true);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(res.statusLine).toMatch(/^HTTP\/1\.1 200 /);
    expect(res.headers.connection).toBe('close');
    expect(res.body).toBe('monolith');
    expect(monolith).toEqual(['GET /anything']);
  });

  it('proxies an h2c upgrade to a non-ws gateway route as plain HTTP: the upstream gets no Upgrade, the client its answer', async () => {
    app.server.on('upgrade', app.gw.upgrade);
    const before = upstream.requests.length;
    const res = await sendRaw(app.port, `GET /api/items HTTP/1.1\r\nHost: x\r\n${H2C}\r\n`);
    expect(res.closed).toBe(true);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ upstream: 'api', url: '/api/items' });
    expect(upstream.requests.length).toBe(before + 1);
    const received = upstream.requests[before];
    expect(received.url).toBe('/api/items');
    expect(received.headers.upgrade).toBeUndefined();
    expect(String(received.headers.connection ?? '')).not.toMatch(/upgrade/i);
    expect(received.headers['http2-settings']).toBeUndefined(); // named in Connection: hop-by-hop
    expect(monolith).toEqual([]);
  });

  it('serves a POST with Upgrade: h2c and a 5-byte body sent with the headers, with its body', async () => {
    app.server.on('upgrade', app.gw.upgrade);
    const res = await sendRaw(app.port, `POST /echo HTTP/1.1\r\nHost: x\r\n${H2C}Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello`);
    expect(res.closed).toBe(true);
    expect(res.status).toBe(200);
    expect(res.body).toBe('got 5: hello');
    expect(monolith).toEqual(['POST /echo hello']);
  });

  it('serves a POST with Upgrade: h2c whose 5-byte body arrives after the headers, with its body', async () => {
    app.server.on('upgrade', app.gw.upgrade);
    const res = await sendRaw(app.port, [`POST /echo HTTP/1.1\r\nHost: x\r\n${H2C}Content-Type: text/plain\r\nContent-Length: 5\r\n\r\n`, 'he', 'llo'], { gapMs: 50 });
    expect(res.closed).toBe(true);
    expect(res.status).toBe(200);
    expect(res.body).toBe('got 5: hello');
    expect(monolith).toEqual(['POST /echo hello']);
  });

  it('gw.attach(server, { upgrade }) hands unclaimed upgrades to the function, which answers; detaching removes the listener', async () => {
    const seen: string[] = [];
    const detach = app.gw.attach(app.server, {
      upgrade: (req: http.IncomingMessage, socket: Duplex) => {
        seen.push(req.url ?? '');
        socket.end('HTTP/1.1 418 I\'m a teapot\r\nConnection: close\r\nContent-Length: 6\r\n\r\nteapot');
      },
    });
    try {
      expect(app.server.listenerCount('upgrade')).toBe(1);
      const res = await sendRaw(app.port, `GET /anything HTTP/1.1\r\nHost: x\r\n${H2C}\r\n`);
      expect(res.closed).toBe(true);
      expect(res.status).toBe(418);
      expect(res.body).toBe('teapot');
      expect(seen).toEqual(['/anything']);
      expect(monolith).toEqual([]);
    } finally {
      detach();
    }
    expect(app.server.listenerCount('upgrade')).toBe(0);
  });

  it('gw.attach(server) without options serves unclaimed upgrades as plain HTTP and closes the socket; detaching removes the listener', async () => {
    const detach = app.gw.attach(app.server);
    try {
      const res = await sendRaw(app.port, `GET /anything HTTP/1.1\r\nHost: x\r\n${H2C}\r\n`);
      expect(res.closed).toBe(true);
      expect(res.status).toBe(200);
      expect(res.headers.connection).toBe('close');
      expect(res.body).toBe('monolith');
    } finally {
      detach();
    }
    expect(app.server.listenerCount('upgrade')).toBe(0);
  });

  it('leaves an unclaimed upgrade to another "upgrade" listener registered beside gw.upgrade', async () => {
    const seen: string[] = [];
    app.server.on('upgrade', app.gw.upgrade);
    app.server.on('upgrade', (req: http.IncomingMessage, socket: Duplex) => {
      seen.push(req.url ?? '');
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 5\r\n\r\nother');
    });
    const res = await sendRaw(app.port, `GET /anything HTTP/1.1\r\nHost: x\r\n${H2C}\r\n`);
    expect(res.closed).toBe(true);
    expect(res.status).toBe(404);
    expect(res.body).toBe('other');
    expect(seen).toEqual(['/anything']);
    expect(monolith).toEqual([]); // answered once, by the other listener only
  });
});

// ---------------------------------------------------------------------------------------------------
// 8. Access logs redact every credential header
// ---------------------------------------------------------------------------------------------------

describe.each(expressVersions)('access log redaction of custom credential headers (%s)', (_label, express) => {
  const PARTNER_KEY = 'partner-key-7f3a9c1e5b2d4086';
  const BEARER = 'eyJhbGciOiJIUzI1NiJ9.redaction-bearer-payload.sig';
  let upstream: Upstream;
  let app: GatewayApp;
  const log = captureStream();

  beforeAll(async () => {
    upstream = await startUpstream({ name: 'partners' });
    app = await gatewayApp(
      { routes: [{ path: '/partners', upstream: upstream.url, auth: { apiKey: { header: 'x-partner-key', keys: { [PARTNER_KEY]: { id: 'p1' } } } } }] },
      { express, before: (server) => server.use(accessLog({ headers: true, logger: pino({}, log.stream) })) },
    );
  });
  afterAll(async () => {
    await app.close();
    await upstream.close();
  });

  it('logs x-partner-key and authorization as [redacted]; the key appears nowhere in the line', async () => {
    const before = upstream.requests.length;
    const res = await rawRequest(app.port, {
      path: '/partners/catalog',
      headers: { 'x-request-id': 'redact-partner', 'x-partner-key': PARTNER_KEY, authorization: `Bearer ${BEARER}`, 'x-note': 'visible' },
    });
    expect(res.status).toBe(200);
    expect(upstream.requests.length).toBe(before + 1);
    expect(upstream.requests[before].headers['x-consumer-id']).toBe('p1');
    const [line] = await linesFor(log, 'redact-partner');
    expect(line).toBeDefined();
    expect((line.req as { headers: Record<string, string> }).headers).toMatchObject({
      'x-partner-key': '[redacted]',
      authorization: '[redacted]',
      'x-note': 'visible',
    });
    expect(JSON.stringify(line)).not.toContain(PARTNER_KEY);
    expect(log.text()).not.toContain(PARTNER_KEY);
    expect(log.text()).not.toContain(BEARER);
  });

  it('redacts a wrong partner key too (401)', async () => {
    const wrong = 'wrong-partner-key-000000000000';
    const res = await rawRequest(app.port, { path: '/partners/catalog', headers: { 'x-request-id': 'redact-wrong', 'x-partner-key': wrong } });
    expect(res.status).toBe(401);
    const [line] = await linesFor(log, 'redact-wrong');
    expect((line.req as { headers: Record<string, string> }).headers['x-partner-key']).toBe('[redacted]');
    expect(log.text()).not.toContain(wrong);
  });
});

// ---------------------------------------------------------------------------------------------------
// 9. Deep JSON
// ---------------------------------------------------------------------------------------------------

describe.each(expressVersions)('over-deep JSON body (%s)', (_label, express) => {
  let upstream: Upstream;
  let app: GatewayApp;

  beforeAll(async () => {
    upstream = await startUpstream({ name: 'api' });
    app = await gatewayApp({ routes: [{ path: '/api', upstream: upstream.url }] }, { express, before: (server) => server.use(express.json({ limit: '10mb' })) });
  });
  afterAll(async () => {
    await app.close();
    await upstream.close();
  });

  it('answers a JSON body nested 200000 levels deep with 400 ERR_BAD_REQUEST_BODY (not 500), forwarding nothing; the next request is served', async () => {
    const depth = 200_000;
    const before = upstream.requests.length;
    const res = await rawRequest(app.port, {
      method: 'POST',
      path: '/api/deep',
      headers: { 'content-type': 'application/json' },
      body: '['.repeat(depth) + ']'.repeat(depth),
    });
    expectProblem(res, 400, 'ERR_BAD_REQUEST_BODY');
    expect(upstream.requests.length).toBe(before);

    const next = await rawRequest(app.port, { method: 'POST', path: '/api/shallow', headers: { 'content-type': 'application/json' }, body: '{"a":[1,[2]]}' });
    expect(next.status).toBe(200);
    expect(upstream.requests.length).toBe(before + 1);
    expect(upstream.requests[before].body.toString('utf8')).toBe('{"a":[1,[2]]}');
  });
});
