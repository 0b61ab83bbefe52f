/**
 * transformBody(): functions and the declarative helpers (pick, omit, rename, set) shape JSON bodies both
 * ways against a real JSON upstream; everything else passes through untouched and streamed; an answer that
 * cannot be transformed (throwing function, invalid JSON, over the limit) is a 502, never the untransformed
 * answer; client mistakes are 400/413/415; prototype keys pollute nothing.
 */
import http from 'node:http';
import { gzipSync } from 'node:zlib';
import express from 'express';
import { ConfigError, gateway, proxy } from '../../index';
import type { Gateway, ProxyMiddleware } from '../../index';
import { transformBody } from '../../middleware/transform-body';
import type { TransformContext } from '../../middleware/transform-body';
import { listen, rawRequest, RunningApp } from '../helpers/app';
import { expectProblem } from '../helpers/problem';
import { hmacSecret, signHmac } from '../helpers/tokens';
import { startUpstream, Upstream } from '../helpers/upstream';
import { settle } from '../helpers/wait';

const secret = hmacSecret();

const ORDER = {
  id: 7,
  customer: { id: 'c-1', email: 'a@example.com' },
  internal: { cost: 12.5 },
  items: [
    { sku: 'A', qty: 1, supplierId: 's-1' },
    { sku: 'B', qty: 2, supplierId: 's-2' },
  ],
};

describe('transformBody()', () => {
  let upstream: Upstream;
  let app: RunningApp;
  let gw: Gateway;
  let alone: ProxyMiddleware;
  /** Ends the streamed text answer the upstream holds open. */
  let releaseText: () => void = () => undefined;
  const contexts: TransformContext[] = [];

  beforeAll(async () => {
    upstream = await startUpstream({
      handler: (req, res, body) => {
        const url = req.url ?? '';
        const json = (status: number, value: unknown, headers: Record<string, string> = {}) => {
          res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', etag: '"v1"', ...headers });
          res.end(typeof value === 'string' || Buffer.isBuffer(value) ? value : JSON.stringify(value));
        };
        if (url.endsWith('/order')) return json(200, ORDER);
        if (url.endsWith('/missing')) return json(404, { error: 'no such order', internal: { cost: 1 } });
        if (url.endsWith('/bad-json')) return json(200, '{"id": 7, ');
        if (url.endsWith('/big')) return json(200, { id: 7, padding: 'x'.repeat(500) });
        if (url.endsWith('/gzip')) return json(200, gzipSync(JSON.stringify(ORDER)), { 'content-encoding': 'gzip' });
        if (url.endsWith('/text')) {
          res.writeHead(200, { 'content-type': 'text/plain', 'internal-cost': '12.5' });
          res.write('first part;');
          releaseText = () => res.end('internal.cost stays');
          return;
        }
        // Everything else: what the upstream received.
        const type = String(req.headers['content-type'] ?? '');
        json(200, { type, length: Number(req.headers['content-length'] ?? -1), body: type.includes('json') && body.length ? JSON.parse(body.toString('utf8')) : body.toString('utf8') });
      },
    });
    gw = gateway({
      routes: [
        {
          path: '/fn/users/:id',
          name: 'users',
          upstream: upstream.url,
          auth: { jwt: { secret, algorithms: ['HS256'] } },
          transformBody: {
            request: (body, ctx) => {
              contexts.push(ctx);
              return { ...(body as object), placedBy: ctx.consumer?.id, userId: ctx.params.id, method: ctx.req.method };
            },
            response: async (body, ctx) => ({ data: body, requestId: ctx.requestId, route: ctx.route, status: ctx.response?.status }),
          },
        },
        {
          path: '/shape',
          upstream: upstream.url,
          transformBody: {
            request: { pick: ['name', 'customer.id', 'items[*].sku', 'items[*].qty'], rename: { 'customer.id': 'customerId' }, set: { source: 'gateway', 'meta.tags': ['a'] } },
            response: { omit: ['internal', 'items[*].supplierId', 'customer.email'], rename: { 'items[*].sku': 'items[*].code' }, set: { 'meta.via': 'frontdoor' } },
          },
        },
        { path: '/throw', upstream: upstream.url, transformBody: { response: () => { throw new Error('boom: a detail for the operator only'); } } },
        { path: '/small', upstream: upstream.url, transformBody: { limit: 200, request: { omit: ['x'] }, response: { omit: ['internal'] } } },
        { path: '/pollute', upstream: upstream.url, transformBody: { request: (body) => Object.assign({}, body), response: (body) => Object.assign({}, body) } },
        { path: '/in-place', upstream: upstream.url, transformBody: { request: (body) => void delete (body as Record<string, unknown>).secret } },
      ],
    });
    alone = proxy({ target: upstream.url });
    const server = express();
    server.use(gw);
    server.use('/alone', transformBody({ request: { set: { alone: true } }, response: { omit: ['internal', 'items'] } }), alone);
    server.use('/parsed', express.json(), transformBody({ request: { omit: ['secret'], set: { parsed: true } } }), alone);
    app = await listen(server);
  });
  afterAll(async () => {
    releaseText();
    await app.close();
    await gw.close();
    await alone.close();
    await upstream.close();
  });

  const send = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    rawRequest(app.port, { method: 'POST', path, headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const get = (path: string, headers: Record<string, string> = {}) => rawRequest(app.port, { path, headers });
  const lastReceived = () => upstream.requests[upstream.requests.length - 1];

  describe('functions', () => {
    it('shape both ways, with the consumer, request id, route, params and request in ctx', async () => {
      const token = await signHmac({ sub: 'alice' }, secret);
      const res = await send('/fn/users/42/echo', { item: 'A' }, { authorization: `Bearer ${token}` });
      expect(res.status).toBe(200);
      const answer = JSON.parse(res.body);
      expect(answer.data.body).toEqual({ item: 'A', placedBy: 'alice', userId: '42', method: 'POST' });
      expect(answer.data.length).toBe(Buffer.byteLength(JSON.stringify(answer.data.body)));
      expect(answer).toMatchObject({ requestId: res.headers['x-request-id'], route: 'users', status: 200 });
      expect(Number(res.headers['content-length'])).toBe(Buffer.byteLength(res.body));
      const ctx = contexts[contexts.length - 1];
      expect(ctx).toMatchObject({ consumer: { id: 'alice' }, requestId: res.headers['x-request-id'], route: 'users', params: { id: '42' } });
      expect(ctx.req.url).toBeDefined();
    });

    it('may change the body in place and return nothing', async () => {
      const res = await send('/in-place', { keep: 1, secret: 'x' });
      expect(JSON.parse(res.body).body).toEqual({ keep: 1 });
    });

    it('a response function that throws is a 502 and a logged error, and the gateway keeps serving', async () => {
      const logged = jest.spyOn(console, 'error').mockImplementation(() => undefined);
      try {
        const res = await get('/throw/order');
        const problem = expectProblem(res, 502, 'ERR_TRANSFORM_FAILED');
        expect(res.body).not.toContain('boom');
        expect(res.body).not.toContain('12.5');
        expect(logged).toHaveBeenCalled();
        expect(logged.mock.calls.flat().map(String).join(' ')).toContain('boom: a detail for the operator only');
        expect(String(logged.mock.calls[0][0])).toContain(String(problem.requestId));
      } finally {
        logged.mockRestore();
      }
      expect((await get('/shape/order')).status).toBe(200);
    });
  });

  describe('declarative helpers', () => {
    it('pick, rename and set the request body', async () => {
      await send('/shape', { name: 'n', customer: { id: 'c-9', email: 'x@example.com' }, items: [{ sku: 'A', qty: 1, price: 3 }], debug: true });
      expect(JSON.parse(lastReceived().body.toString('utf8'))).toEqual({ name: 'n', customerId: 'c-9', customer: {}, items: [{ sku: 'A', qty: 1 }], source: 'gateway', meta: { tags: ['a'] } });
      expect(Number(lastReceived().headers['content-length'])).toBe(lastReceived().body.length);
    });

    it('omit, rename and set in the answer, with Content-Length recomputed and the upstream ETag dropped', async () => {
      const res = await get('/shape/order');
      expect(JSON.parse(res.body)).toEqual({ id: 7, customer: { id: 'c-1' }, items: [{ qty: 1, code: 'A' }, { qty: 2, code: 'B' }], meta: { via: 'frontdoor' } });
      expect(Number(res.headers['content-length'])).toBe(Buffer.byteLength(res.body));
      expect(res.headers['content-type']).toContain('application/json');
      expect(res.headers.etag).toBeUndefined();
    });

    it('decode a compressed answer to transform it, and send it uncompressed', async () => {
      const res = await get('/shape/gzip', { 'accept-encoding': 'gzip' });
      expect(res.headers['content-encoding']).toBeUndefined();
      expect(JSON.parse(res.body).internal).toBeUndefined();
      expect(JSON.parse(res.body).items).toEqual([{ qty: 1, code: 'A' }, { qty: 2, code: 'B' }]);
    });

    it('leave error answers as the upstream sent them', async () => {
      const res = await get('/shape/missing');
      expect(res.status).toBe(404);
      expect(JSON.parse(res.body)).toEqual({ error: 'no such order', internal: { cost: 1 } });
    });

    it('work alone, in front of proxy()', async () => {
      const res = await send('/alone', { a: 1 });
      expect(JSON.parse(res.body).body).toEqual({ a: 1, alone: true });
      const answer = await get('/alone/order');
      expect(JSON.parse(answer.body)).toEqual({ id: 7, customer: ORDER.customer });
    });

    it('shape a body that express.json() already consumed', async () => {
      const res = await send('/parsed', { keep: 1, secret: 's' });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body).body).toEqual({ keep: 1, parsed: true });
    });
  });

  describe('what is not JSON', () => {
    it('passes a non-JSON request body through untouched', async () => {
      const res = await rawRequest(app.port, { method: 'POST', path: '/shape', headers: { 'content-type': 'text/plain' }, body: 'name=n&debug=true' });
      expect(JSON.parse(res.body)).toMatchObject({ type: 'text/plain', body: 'name=n&debug=true' });
    });

    it('streams a non-JSON answer through untouched, without waiting for its end', async () => {
      const received: string[] = [];
      let ended = false;
      const status = await new Promise<number>((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port: app.port, path: '/shape/text', agent: false }, (res) => {
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => received.push(chunk));
          res.on('end', () => (ended = true));
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
      });
      expect(status).toBe(200);
      await settle();
      expect(received.join('')).toBe('first part;');
      expect(ended).toBe(false);
      releaseText();
      await new Promise<void>((resolve) => {
        const wait = setInterval(() => ended && (clearInterval(wait), resolve()), 5);
      });
      expect(received.join('')).toBe('first part;internal.cost stays');
    });
  });

  describe('failures', () => {
    it('malformed JSON from the client is a 400, and nothing reaches the upstream', async () => {
      const before = upstream.requests.length;
      expectProblem(await send('/shape', '{"name": '), 400, 'ERR_BAD_REQUEST_BODY');
      await settle();
      expect(upstream.requests.length).toBe(before);
    });

    it('a request body over the limit is a 413, and a compressed one a 415', async () => {
      expectProblem(await send('/small', { x: 'y'.repeat(300) }), 413, 'ERR_BODY_TOO_LARGE');
      expectProblem(await send('/small', gzipSync('{"x":1}').toString('latin1'), { 'content-encoding': 'gzip' }), 415, 'ERR_UNSUPPORTED_MEDIA_TYPE');
    });

    it('an answer over the limit is a 502, never the untransformed answer', async () => {
      const res = await get('/small/big');
      expectProblem(res, 502, 'ERR_UPSTREAM_BAD_RESPONSE');
      expect(res.body).not.toContain('padding');
    });

    it('invalid JSON from the upstream, declared as JSON, is a 502', async () => {
      expectProblem(await get('/shape/bad-json'), 502, 'ERR_UPSTREAM_BAD_RESPONSE');
    });
  });

  describe('prototype pollution', () => {
    afterEach(() => {
      delete (Object.prototype as Record<string, unknown>).polluted;
    });

    it('a __proto__ key in a body reaches no function as a prototype, either way', async () => {
      const res = await send('/pollute', '{"a":1,"__proto__":{"polluted":true},"nested":{"\\u005f_proto__":{"polluted":true}}}');
      expect(res.status).toBe(200);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      const received = lastReceived().body.toString('utf8');
      expect(received).not.toContain('polluted');
      expect(JSON.parse(received)).toEqual({ a: 1, nested: {} });
    });

    it.each([
      [{ omit: ['__proto__.polluted'] }],
      [{ set: { 'constructor.prototype.polluted': true } }],
      [{ rename: { a: 'prototype' } }],
      [{ pick: ['items[*].__proto__'] }],
    ])('a path through a prototype key fails at construction: %j', (shaping) => {
      expect(() => transformBody({ request: shaping })).toThrow(ConfigError);
      expect(() => transformBody({ request: shaping })).toThrow(/cannot be used in a path/);
    });
  });

  describe('construction', () => {
    it.each([
      [{}, /"request" or "response" is needed/],
      [{ response: { omitt: ['a'] } }, /Did you mean "response.omit"/],
      [{ response: { rename: { 'items[*].a': 'b' } } }, /as many \[\*\]/],
      [{ response: { omit: ['a..b'] } }, /"response.omit\[0\]" is not a valid path/],
      [{ request: 'pick' }, /"request" must be a function/],
      [{ request: { set: { a: () => 1 } } }, /"request.set.a" must be a JSON value/],
      [{ response: { omit: ['a'] }, limit: 'lots' }, /"limit" must be a size/],
    ])('refuses %j', (options, message) => {
      expect(() => transformBody(options as never)).toThrow(ConfigError);
      expect(() => transformBody(options as never)).toThrow(message);
    });

    it('names the route option in a gateway, and refuses onError there', () => {
      expect(() => gateway({ routes: [{ path: '/a', upstream: 'http://127.0.0.1:1', transformBody: { response: { omit: ['a.'] } } }] })).toThrow(/"routes\[0\]\.transformBody\.response\.omit\[0\]" is not a valid path/);
      expect(() => gateway({ routes: [{ path: '/a', upstream: 'http://127.0.0.1:1', transformBody: { response: { omit: ['a'] }, onError: 'next' } }] })).toThrow(/"routes\[0\]\.transformBody\.onError" cannot be set inside a route/);
    });
  });
});
