/**
 * grpcBridge() and the route option `grpc` against a real grpc-js server (test/fixtures/grpc): HTTP → RPC mapping
 * by annotations, `methods` and the fallback; path, query and body filling; the proto3 JSON mapping; status
 * mapping; deadlines and cancellation; server streams as NDJSON and SSE; metadata both ways; TLS; health.
 */
import express from 'express';
import http from 'node:http';
import request from 'supertest';
import { ConfigError } from '../../lib/errors';
import { grpcBridge } from '../../middleware/grpc-bridge';
import type { GrpcBridgeMiddleware, GrpcBridgeOptions } from '../../middleware/grpc-bridge';
import { listen, RunningApp } from '../helpers/app';
import { createTestPki, opensslAvailable } from '../helpers/certs';
import { GatewayApp, gatewayApp } from '../helpers/gateway-app';
import { expectProblem } from '../helpers/problem';
import { hmacSecret, signHmac } from '../helpers/tokens';
import { waitFor } from '../helpers/wait';
import { INVENTORY_PROTO, InventoryServer, startInventoryServer } from '../fixtures/grpc/inventory-server';

jest.setTimeout(15_000);

/** An Express app with the bridge mounted alone at /api. */
async function bridgeApp(options: Partial<GrpcBridgeOptions> & { target: string }): Promise<RunningApp & { bridge: GrpcBridgeMiddleware }> {
  const bridge = grpcBridge({ protos: [INVENTORY_PROTO], stripPath: true, ...options });
  const app = express();
  app.use('/api', bridge);
  const running = await listen(app);
  return { ...running, bridge, close: async () => { await bridge.close(); await running.close(); } };
}

describe('grpcBridge() alone', () => {
  let server: InventoryServer;
  let app: RunningApp & { bridge: GrpcBridgeMiddleware };

  beforeAll(async () => {
    server = await startInventoryServer();
    app = await bridgeApp({ target: server.address, health: { passive: false }, methods: { 'GET /pings/:id': 'Ping', 'POST /pings': 'Ping' }, forwardHeaders: ['accept-language'], responseHeaders: ['x-total-count', 'x-trailer-note'] });
  });
  afterAll(async () => {
    await app.close();
    await server.close();
  });
  beforeEach(() => {
    server.calls.length = 0;
    server.cancelled.length = 0;
  });

  const lastCall = () => server.calls[server.calls.length - 1];

  it('maps GET /v1/items/{id} to GetItem and prints the answer by the proto3 JSON mapping', async () => {
    const res = await request(app.url).get('/api/v1/items/42').expect(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(lastCall()).toMatchObject({ method: 'GetItem', request: { id: '42' } });
    expect(res.body).toEqual({
      id: '42',
      displayName: 'Item 42',
      quantity: '9007199254740993',
      color: 'GREEN',
      tags: ['a', 'b'],
      updatedAt: '2024-05-01T10:00:00.500Z',
      price: 9.5,
      blob: Buffer.from('hi').toString('base64'),
      counts: { apples: 3 },
      rating: 4,
      attributes: { size: 'L', fresh: true, weight: 1.5 },
      shelfLife: '90s',
      big: '18446744073709551615',
      supplier: 'acme',
      dims: { width: 2, height: 3 },
      palette: ['RED', 'GREEN'],
      mask: 'displayName,price',
      extra: null,
    });
  });

  it('fills path, query (repeated, enum, nested, int64) and leaves the rest at defaults', async () => {
    await request(app.url).get('/api/v1/shelves/s1/items?page_size=10&tags=x&tags=y&color=RED&minDims.width=3&after=9223372036854775807&utm_source=mail').expect(200);
    expect(lastCall()).toMatchObject({ method: 'ListItems', request: { shelf: 's1', page_size: 10, tags: ['x', 'y'], color: 'RED', min_dims: { width: 3 }, after: '9223372036854775807' } });
  });

  it('takes the body as one field (body: "item") next to path and query fields', async () => {
    const res = await request(app.url)
      .post('/api/v1/shelves/s2/items?validate_only=true')
      .send({ displayName: 'Pear', quantity: '12345678901234567', color: 'RED', updatedAt: '2024-05-01T12:00:00+02:00', shelfLife: '1.5s', rating: 5, attributes: { a: [1, 'two', null] }, blob: 'aGk=' })
      .expect(200);
    expect(lastCall().request).toMatchObject({
      shelf: 's2',
      validate_only: true,
      item: { display_name: 'Pear', quantity: '12345678901234567', color: 'RED', updated_at: { seconds: '1714557600', nanos: 0 }, shelf_life: { seconds: '1', nanos: 500000000 }, rating: { value: 5 } },
    });
    expect(res.body).toMatchObject({ id: 'new', displayName: 'Pear', quantity: '12345678901234567', updatedAt: '2024-05-01T10:00:00Z', shelfLife: '1.500s', attributes: { a: [1, 'two', null] }, blob: 'aGk=' });
  });

  it('PATCH and its additional PUT binding set a nested path field into the body field', async () => {
    await request(app.url).patch('/api/v1/items/i9').send({ displayName: 'Nine', id: 'ignored' }).expect(200);
    expect(lastCall()).toMatchObject({ method: 'UpdateItem', request: { item: { id: 'i9', display_name: 'Nine' } } });
    await request(app.url).put('/api/v1/items/i10').send({ display_name: 'Ten' }).expect(200);
    expect(lastCall()).toMatchObject({ method: 'UpdateItem', request: { item: { id: 'i10', display_name: 'Ten' } } });
  });

  it('body: "*" takes the whole message; a custom verb and multi-segment variables match', async () => {
    const res = await request(app.url).post('/api/v1/items:replace').send({ id: 'r', big: 18446744073709551615n.toString(), palette: ['RED', 2], maybe: 0 }).expect(200);
    expect(res.body).toMatchObject({ id: 'r', big: '18446744073709551615', palette: ['RED', 'GREEN'], maybe: 0 });
    const named = await request(app.url).get('/api/v1/shelves/s1/items/i2').expect(200);
    expect(named.body.id).toBe('shelves/s1/items/i2');
    const deep = await request(app.url).get('/api/v1/files/a/b%20c/d.txt').expect(200);
    expect(deep.body).toEqual({ path: 'a/b c/d.txt' });
  });

  it('response_body answers one field of the response', async () => {
    const res = await request(app.url).get('/api/v1/items/7/count').expect(200);
    expect(res.body).toBe('12');
  });

  it('the fallback POST /<package.Service>/<Method> reaches an RPC without annotations', async () => {
    const res = await request(app.url).post('/api/shop.v1.Inventory/Echo').send({ id: 'e', quantity: 5 }).expect(200);
    expect(res.body).toMatchObject({ id: 'e', quantity: '5' });
  });

  it('an explicit `methods` mapping binds GET with path params and POST with the body', async () => {
    const got = await request(app.url).get('/api/pings/p1?note=hello').expect(200);
    expect(got.body).toEqual({ id: 'p1', note: 'hello', method: 'Ping' });
    const posted = await request(app.url).post('/api/pings').send({ id: 'p2', note: 'body' }).expect(200);
    expect(posted.body).toEqual({ id: 'p2', note: 'body', method: 'Ping' });
  });

  it('answers 404 for an unmapped path, with Allow when only the method is wrong', async () => {
    expectProblem(await request(app.url).get('/api/v2/nothing'), 404, 'ERR_GRPC_NO_METHOD', { requestId: false });
    const wrong = await request(app.url).delete('/api/v1/items/1');
    expectProblem(wrong, 404, 'ERR_GRPC_NO_METHOD', { requestId: false });
    expect(wrong.headers.allow).toContain('GET');
    expect(server.calls).toHaveLength(0);
  });

  describe('requests that do not fit are 400 before any call', () => {
    it.each([
      ['malformed JSON', (r: request.Test) => r.set('content-type', 'application/json').send('{"id": '), 'ERR_BAD_REQUEST_BODY', /not valid JSON/],
      ['an unknown field', (r: request.Test) => r.send({ id: 'x', colour: 'RED' }), 'ERR_GRPC_INVALID_ARGUMENT', /"colour" is not a field of shop.v1.Item/],
      ['an unknown enum name', (r: request.Test) => r.send({ color: 'PURPLE' }), 'ERR_GRPC_INVALID_ARGUMENT', /"color" must be one of/],
      ['an int64 out of range', (r: request.Test) => r.send({ quantity: '9223372036854775808' }), 'ERR_GRPC_INVALID_ARGUMENT', /"quantity" must be an integer/],
      ['a string where a message belongs', (r: request.Test) => r.send({ dims: 'big' }), 'ERR_GRPC_INVALID_ARGUMENT', /"dims" must be a JSON object/],
      ['a bad timestamp', (r: request.Test) => r.send({ updatedAt: '2024-02-30T00:00:00Z' }), 'ERR_GRPC_INVALID_ARGUMENT', /"updatedAt"/],
      ['two members of a oneof', (r: request.Test) => r.send({ supplier: 'a', maker: 'b' }), 'ERR_GRPC_INVALID_ARGUMENT', /oneof source/],
      ['a JSON array as the message', (r: request.Test) => r.send([1, 2]), 'ERR_GRPC_INVALID_ARGUMENT', /must be a JSON object/],
    ])('%s', async (_label, send, code, detail) => {
      const res = await send(request(app.url).post('/api/v1/items:replace'));
      const body = expectProblem(res, 400, code, { requestId: false });
      expect(body.detail).toMatch(detail);
      expect(server.calls).toHaveLength(0);
    });

    it('a path or query value of the wrong type', async () => {
      expectProblem(await request(app.url).get('/api/v1/shelves/s/items?page_size=ten'), 400, 'ERR_GRPC_INVALID_ARGUMENT', { requestId: false });
      expectProblem(await request(app.url).get('/api/v1/shelves/s/items?page_size=1&page_size=2'), 400, 'ERR_GRPC_INVALID_ARGUMENT', { requestId: false });
      expect(server.calls).toHaveLength(0);
    });

    it('a body that is not JSON is 415', async () => {
      expectProblem(await request(app.url).post('/api/v1/items:replace').set('content-type', 'text/plain').send('id=1'), 415, 'ERR_UNSUPPORTED_MEDIA_TYPE', { requestId: false });
    });
  });

  describe('gRPC statuses as problem+json, as grpc-gateway maps them', () => {
    it.each([
      [1, 499, 'ERR_GRPC_CANCELLED'],
      [2, 500, 'ERR_GRPC_INTERNAL'],
      [3, 400, 'ERR_GRPC_INVALID_ARGUMENT'],
      [4, 504, 'ERR_UPSTREAM_TIMEOUT'],
      [5, 404, 'ERR_GRPC_NOT_FOUND'],
      [6, 409, 'ERR_GRPC_CONFLICT'],
      [7, 403, 'ERR_GRPC_PERMISSION_DENIED'],
      [8, 429, 'ERR_GRPC_RESOURCE_EXHAUSTED'],
      [9, 400, 'ERR_GRPC_INVALID_ARGUMENT'],
      [10, 409, 'ERR_GRPC_CONFLICT'],
      [11, 400, 'ERR_GRPC_INVALID_ARGUMENT'],
      [12, 501, 'ERR_GRPC_UNIMPLEMENTED'],
      [13, 500, 'ERR_GRPC_INTERNAL'],
      [14, 503, 'ERR_GRPC_UNAVAILABLE'],
      [15, 500, 'ERR_GRPC_INTERNAL'],
      [16, 401, 'ERR_GRPC_UNAUTHENTICATED'],
    ])('code %i → %i %s, with the status message', async (grpcCode, status, code) => {
      const res = await request(app.url).post('/api/v1/fail').send({ code: grpcCode, message: `failed with ${grpcCode}` });
      const body = expectProblem(res, status, code, { requestId: false });
      expect(body).toMatchObject({ detail: `failed with ${grpcCode}`, grpcCode });
      expect(body.grpcDetails).toBeUndefined();
    });

    it('NOT_FOUND from a GET', async () => {
      const body = expectProblem(await request(app.url).get('/api/v1/items/missing'), 404, 'ERR_GRPC_NOT_FOUND', { requestId: false });
      expect(body).toMatchObject({ detail: 'item missing not found', grpcStatus: 'NOT_FOUND' });
    });
  });

  it('metadata both ways: request id, forwarded headers; listed response metadata and trailers as headers', async () => {
    const res = await request(app.url).get('/api/v1/meta').set('x-request-id', 'req-meta-1').set('accept-language', 'fr').set('x-secret', 'no').expect(200);
    expect(res.body.metadata).toMatchObject({ 'x-request-id': 'req-meta-1', 'accept-language': 'fr' });
    expect(res.body.metadata['x-secret']).toBeUndefined();
    expect(res.headers['x-total-count']).toBe('42');
    expect(res.headers['x-trailer-note']).toBe('done');
  });

  it('streams a server-streaming RPC as NDJSON', async () => {
    const res = await request(app.url).get('/api/v1/items:watch?count=3').buffer(true).parse((r, done) => {
      let text = '';
      r.on('data', (chunk: Buffer) => (text += chunk));
      r.on('end', () => done(null, text));
    }).expect(200);
    expect(res.headers['content-type']).toMatch(/^application\/x-ndjson/);
    const lines = (res.body as string).trim().split('\n').map((line) => JSON.parse(line));
    expect(lines).toEqual([0, 1, 2].map((n) => ({ result: expect.objectContaining({ id: `w${n}`, quantity: String(n) }) })));
  });

  it('streams as Server-Sent Events when the client asks for text/event-stream; a failure mid-stream is the last event', async () => {
    const res = await request(app.url).get('/api/v1/items:watch?count=2&failAfter=true').set('accept', 'text/event-stream').buffer(true).parse((r, done) => {
      let text = '';
      r.on('data', (chunk: Buffer) => (text += chunk));
      r.on('end', () => done(null, text));
    }).expect(200);
    expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
    const events = (res.body as string).trim().split('\n\n');
    expect(events).toHaveLength(3);
    expect(JSON.parse(events[0].replace(/^data: /, ''))).toMatchObject({ id: 'w0' });
    expect(events[2]).toMatch(/^event: error\ndata: /);
    expect(JSON.parse(events[2].split('data: ')[1])).toMatchObject({ status: 500, code: 'ERR_GRPC_INTERNAL', detail: 'watch broke' });
  });

  it('a client that disconnects cancels the call: the service sees it cancelled', async () => {
    await new Promise<void>((resolve) => {
      const req = http.get(`${app.url}/api/v1/items:watch?count=1000&intervalMs=20`, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => undefined);
    });
    await waitFor(() => server.cancelled.includes('WatchItems'));
    server.cancelled.length = 0;
    const slow = http.get(`${app.url}/api/v1/slow?delayMs=5000`);
    slow.on('error', () => undefined);
    await waitFor(() => server.calls.some((call) => call.method === 'Slow'));
    slow.destroy();
    await waitFor(() => server.cancelled.includes('Slow'));
  });
});

describe('grpcBridge() deadlines, details and defaults', () => {
  let server: InventoryServer;
  let app: RunningApp & { bridge: GrpcBridgeMiddleware };

  beforeAll(async () => {
    server = await startInventoryServer();
    app = await bridgeApp({ target: server.address, timeout: '200ms', errorDetails: true, emitDefaults: false });
  });
  afterAll(async () => {
    await app.close();
    await server.close();
  });

  it('a call past the route timeout is a 504, and the service sees it cancelled', async () => {
    const started = Date.now();
    const body = expectProblem(await request(app.url).get('/api/v1/slow?delayMs=3000'), 504, 'ERR_UPSTREAM_TIMEOUT', { requestId: false });
    expect(body.grpcStatus).toBe('DEADLINE_EXCEEDED');
    expect(Date.now() - started).toBeLessThan(2000);
    await waitFor(() => server.cancelled.includes('Slow'));
  });

  it('errorDetails: the google.rpc.Status details reach the problem as JSON', async () => {
    const body = expectProblem(await request(app.url).post('/api/v1/fail').send({ code: 3, message: 'with details' }), 400, 'ERR_GRPC_INVALID_ARGUMENT', { requestId: false });
    expect(body.grpcDetails).toEqual([{ '@type': 'type.googleapis.com/shop.v1.Dimensions', width: 7 }]);
  });

  it('emitDefaults: false leaves default-valued fields out', async () => {
    const res = await request(app.url).post('/api/shop.v1.Inventory/Echo').send({ id: 'e', quantity: '0', tags: [] }).expect(200);
    expect(res.body).toEqual({ id: 'e' });
  });
});

describe('grpcBridge() construction', () => {
  it.each([
    [{ target: 'http://localhost:50051' }, /must be a gRPC address "host:port"/],
    [{ target: 'localhost:1', protos: ['/nope/missing.proto'] }, /cannot be read/],
    [{ target: 'localhost:1', service: 'shop.v1.Nope' }, /names "shop.v1.Nope", which the protos do not declare/],
    [{ target: 'localhost:1', methods: { 'GET /x/:id': 'GetIt' } }, /names the RPC "GetIt".*Did you mean "GetItem"/],
    [{ target: 'localhost:1', methods: { 'GET /x/:nope': 'GetItem' } }, /cannot bind GET \/x\/\{nope\}.*has no field nope/],
    [{ target: 'localhost:1', timeot: '1s' }, /unsupported option "timeot". Did you mean "timeout"/],
    [{ target: 'localhost:1', forwardHeaders: ['grpc-timeout'] }, /gRPC reserves/],
  ])('refuses %j', (options, message) => {
    const full = { protos: [INVENTORY_PROTO], ...options } as GrpcBridgeOptions;
    expect(() => grpcBridge(full)).toThrow(ConfigError);
    expect(() => grpcBridge(full)).toThrow(message);
  });
});

describe('the route option grpc', () => {
  const secret = hmacSecret();
  let server: InventoryServer;
  let app: GatewayApp;

  beforeAll(async () => {
    server = await startInventoryServer();
    app = await gatewayApp({
      trace: true,
      routes: [
        { path: '/inventory', stripPath: true, auth: { jwt: { secret, algorithms: ['HS256'] } }, grpc: { target: server.address, protos: [INVENTORY_PROTO], service: 'shop.v1.Inventory' } },
        { path: '/v1', grpc: { target: server.address, protos: INVENTORY_PROTO, unboundMethods: false } },
      ],
    });
  });
  afterAll(async () => {
    await app.close();
    await server.close();
  });

  it('runs the route policies first: no token is a 401 and no call', async () => {
    server.calls.length = 0;
    expectProblem(await request(app.url).get('/inventory/v1/items/1'), 401, 'ERR_AUTH_MISSING');
    expect(server.calls).toHaveLength(0);
  });

  it('with a valid JWT, calls the RPC with the consumer identity, request id and trace context as metadata', async () => {
    const token = await signHmac({ sub: 'user-7', scope: 'inventory:read' }, secret);
    const res = await request(app.url).get('/inventory/v1/meta').set('authorization', `Bearer ${token}`).set('x-request-id', 'req-gw-1').expect(200);
    expect(res.body.metadata).toMatchObject({ 'x-consumer-id': 'user-7', 'x-request-id': 'req-gw-1' });
    expect(res.body.metadata.authorization).toBeUndefined();
    expect(res.headers['x-request-id']).toBe('req-gw-1');
  });

  it('a route without stripPath matches the annotations on the full path; its errors carry the request id', async () => {
    await request(app.url).get('/v1/items/5').expect(200);
    expectProblem(await request(app.url).get('/v1/items/missing'), 404, 'ERR_GRPC_NOT_FOUND');
    // unboundMethods: false — the fallback path is not bound on this route.
    expectProblem(await request(app.url).post('/v1/shop.v1.Inventory/Echo').send({}), 404, 'ERR_GRPC_NO_METHOD');
  });

  it('refuses grpc next to upstream, and stripPath inside grpc', () => {
    const { gateway } = jest.requireActual('../../index') as typeof import('../../index');
    expect(() => gateway({ routes: [{ path: '/x', upstream: 'http://127.0.0.1:1', grpc: { target: server.address, protos: INVENTORY_PROTO } }] })).toThrow(ConfigError);
    expect(() => gateway({ routes: [{ path: '/x', grpc: { target: server.address, protos: INVENTORY_PROTO, stripPath: true } }] })).toThrow(/belongs to the route/);
  });
});

describe('target health', () => {
  it('UNAVAILABLE targets are ejected by passive health; the next request is a 503 with Retry-After', async () => {
    const app = await bridgeApp({ target: '127.0.0.1:1', health: { passive: { failures: 2, cooldown: '30s' } }, timeout: '2s' });
    try {
      expectProblem(await request(app.url).get('/api/v1/items/1'), 503, 'ERR_GRPC_UNAVAILABLE', { requestId: false });
      expectProblem(await request(app.url).get('/api/v1/items/1'), 503, 'ERR_GRPC_UNAVAILABLE', { requestId: false });
      expect(app.bridge.pool.targets[0].state).toBe('ejected');
      const res = await request(app.url).get('/api/v1/items/1');
      expectProblem(res, 503, 'ERR_NO_HEALTHY_UPSTREAM', { requestId: false });
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    } finally {
      await app.close();
    }
  });

  it('active grpc.health.v1 checks take a NOT_SERVING target out and put it back', async () => {
    const server = await startInventoryServer();
    const app = await bridgeApp({ target: server.address, health: { active: { interval: '100ms', timeout: '1s' } } });
    try {
      await request(app.url).get('/api/v1/items/1').expect(200);
      server.setServing(false);
      await waitFor(() => app.bridge.pool.targets[0].activeDown);
      expectProblem(await request(app.url).get('/api/v1/items/1'), 503, 'ERR_NO_HEALTHY_UPSTREAM', { requestId: false });
      server.setServing(true);
      await waitFor(() => !app.bridge.pool.targets[0].activeDown);
      await request(app.url).get('/api/v1/items/1').expect(200);
    } finally {
      await app.close();
      await server.close();
    }
  });
});

(opensslAvailable ? describe : describe.skip)('TLS and mTLS to the target', () => {
  const pki = opensslAvailable ? createTestPki() : undefined;
  afterAll(() => pki?.cleanup());

  it('calls a TLS service with a private CA and a client certificate', async () => {
    const server = await startInventoryServer({ tls: { ...pki!.server, clientCa: pki!.ca } });
    const client = pki!.client('gateway');
    const app = await bridgeApp({ target: `localhost:${server.port}`, tls: { ca: pki!.ca, cert: client.cert, key: client.key } });
    const untrusted = await bridgeApp({ target: `localhost:${server.port}`, tls: { ca: pki!.otherCa }, timeout: '2s' });
    try {
      const res = await request(app.url).get('/api/v1/items/tls').expect(200);
      expect(res.body.id).toBe('tls');
      expectProblem(await request(untrusted.url).get('/api/v1/items/tls'), 503, 'ERR_GRPC_UNAVAILABLE', { requestId: false });
    } finally {
      await app.close();
      await untrusted.close();
      await server.close();
    }
  });
});
