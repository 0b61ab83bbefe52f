/**
 * aggregate(): one request, several real upstream calls, one JSON answer. Calls run in parallel (total ≈ the
 * slowest), dependent calls read earlier results, optional calls degrade to null with `errors` and a
 * Partial-Response header, required ones fail the request (502/504 naming the call), outstanding calls are
 * aborted once the answer is decided, values can never change which resource a call reaches, only JSON is
 * accepted, and the in-flight bound answers 503. Alone and as a gateway route with JWT auth.
 */
import http from 'node:http';
import express from 'express';
import { propagation, SpanKind, trace as otelTrace } from '@opentelemetry/api';
import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-node';
import { authenticate, gateway, MetricsRegistry } from '../../index';
import type { Gateway, GatewayOptions } from '../../index';
import { aggregate } from '../../middleware/aggregate';
import type { AggregateMiddleware, AggregateOptions } from '../../middleware/aggregate';
import { listen, rawRequest, RunningApp } from '../helpers/app';
import { expectProblem } from '../helpers/problem';
import { hmacSecret, signHmac } from '../helpers/tokens';
import { closedPort, startUpstream, Upstream } from '../helpers/upstream';
import { sleep, waitFor } from '../helpers/wait';

const secret = hmacSecret();
const jwt = { secret, algorithms: ['HS256' as const] };

type Mode = 'ok' | '500' | '404' | 'html' | 'garbage' | 'big' | 'bigStreamed' | 'cut' | 'proto' | 'empty';

let services: Upstream; // users, orders and recommendations: JSON by path
let slow: Upstream; // answers after ?ms= (default 2000); records the requests whose connection closed first
let flaky: Upstream; // answers as `flakyMode` says
let flakyMode: Mode = 'ok';
const aborted: string[] = [];

const json = (res: http.ServerResponse, status: number, value: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value));
};

beforeAll(async () => {
  services = await startUpstream({
    name: 'services',
    handler: (req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      const users = /^\/users\/([^/]+)$/.exec(url.pathname);
      if (users) return json(res, 200, { id: decodeURIComponent(users[1]), name: `User ${decodeURIComponent(users[1])}`, segment: users[1] === 'hacker' ? '../admin' : 'gold', level: 3 });
      if (url.pathname === '/orders') return json(res, 200, { user: url.searchParams.get('user'), limit: url.searchParams.get('limit'), items: [{ id: 'o-1' }] });
      const recs = /^\/for\/([^/]+)$/.exec(url.pathname);
      if (recs) return json(res, 200, { segment: decodeURIComponent(recs[1]), items: ['r-1', 'r-2'] });
      json(res, 404, { error: 'not found', path: url.pathname });
    },
  });
  slow = await startUpstream({
    name: 'slow',
    handler: (req, res) => {
      const ms = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('ms') ?? 2000);
      const timer = setTimeout(() => json(res, 200, { slow: true, ms }), ms);
      res.on('close', () => {
        clearTimeout(timer);
        if (!res.writableFinished) aborted.push(req.url ?? '');
      });
    },
  });
  flaky = await startUpstream({
    name: 'flaky',
    handler: (_req, res) => {
      switch (flakyMode) {
        case '500':
          return json(res, 500, { error: 'boom' });
        case '404':
          return json(res, 404, { error: 'nope' });
        case 'html':
          res.writeHead(200, { 'content-type': 'text/html' });
          return res.end('<html>maintenance</html>');
        case 'garbage':
          res.writeHead(200, { 'content-type': 'application/json' });
          return res.end('{"not json');
        case 'big': {
          const body = JSON.stringify({ blob: 'x'.repeat(2 * 1024 * 1024) });
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
          return res.end(body);
        }
        case 'bigStreamed':
          // No Content-Length: the limit is found while reading.
          res.writeHead(200, { 'content-type': 'application/json' });
          res.write('{"blob":"');
          res.write('x'.repeat(600 * 1024));
          res.write('x'.repeat(600 * 1024));
          return res.end('"}');
        case 'cut':
          // Headers and half a body, then the connection dies.
          res.writeHead(200, { 'content-type': 'application/json' });
          res.write('{"half":');
          setTimeout(() => res.socket?.destroy(), 20);
          return;
        case 'proto':
          res.writeHead(200, { 'content-type': 'application/json' });
          return res.end('{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"safe":1}');
        case 'empty':
          res.writeHead(204);
          return res.end();
        default:
          return json(res, 200, { flaky: 'fine' });
      }
    },
  });
});

afterAll(async () => {
  await Promise.all([services.close(), slow.close(), flaky.close()]);
});

beforeEach(() => {
  flakyMode = 'ok';
  aborted.length = 0;
});

/** What each test starts, closed after it. */
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** `app.get(path, …before, aggregate(options))` on a real Express app. */
async function alone(options: AggregateOptions, path = '/home', before: express.RequestHandler[] = []): Promise<RunningApp> {
  const middleware: AggregateMiddleware = aggregate(options);
  const server = express();
  server.get(path, ...before, middleware);
  const app = await listen(server);
  cleanups.push(async () => {
    await app.close();
    await middleware.close();
  });
  return app;
}

async function withGateway(options: GatewayOptions): Promise<RunningApp & { gw: Gateway }> {
  const gw = gateway(options);
  const server = express();
  server.use(gw);
  const app = await listen(server);
  cleanups.push(async () => {
    await app.close();
    await gw.close();
  });
  return { ...app, gw };
}

async function get(app: RunningApp, path: string, headers: Record<string, string> = {}) {
  const res = await rawRequest(app.port, { path, headers });
  const body = res.headers['content-type']?.includes('json') ? JSON.parse(res.body) : res.body;
  return { ...res, body };
}

const lastRequestTo = (upstream: Upstream, prefix: string) => [...upstream.requests].reverse().find((request) => request.url.startsWith(prefix));

describe('aggregate() alone', () => {
  it('answers { <call>: result } from parallel calls, in declaration order', async () => {
    const app = await alone({
      calls: {
        profile: { url: `${services.url}/users/{query.user}` },
        orders: { url: `${services.url}/orders?user={query.user}&limit={query.limit}` },
      },
    });
    const res = await get(app, '/home?user=alice&limit=5');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toContain('application/json');
    expect(res.headers['partial-response']).toBeUndefined();
    expect(res.body).toEqual({ profile: { id: 'alice', name: 'User alice', segment: 'gold', level: 3 }, orders: { user: 'alice', limit: '5', items: [{ id: 'o-1' }] } });
    expect(Object.keys(res.body)).toEqual(['profile', 'orders']);
  });

  it('reads Express’s route parameters alone, decoded and encoded again', async () => {
    const app = await alone({ calls: { profile: { url: `${services.url}/users/{params.id}` } } }, '/home/:id');
    const before = services.requests.length;
    const res = await get(app, '/home/a%2Fb');
    expect(res.status).toBe(200);
    expect(res.body.profile.id).toBe('a/b');
    expect(services.requests.slice(before).map((request) => request.url)).toEqual(['/users/a%2Fb']);
  });

  it('takes about as long as the slowest call, not the sum', async () => {
    const app = await alone({
      calls: {
        a: { url: `${slow.url}/a?ms=300` },
        b: { url: `${slow.url}/b?ms=300` },
        c: { url: `${slow.url}/c?ms=300` },
      },
    });
    const started = performance.now();
    const res = await get(app, '/home');
    const elapsed = performance.now() - started;
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ a: { slow: true, ms: 300 }, b: { slow: true, ms: 300 }, c: { slow: true, ms: 300 } });
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(750); // the sum would be 900
  });

  it('starts a call with `after` once its dependency answered, with the dependency’s field encoded in its URL', async () => {
    const app = await alone({
      calls: {
        profile: { url: `${services.url}/users/{query.user}` },
        recs: { url: `${services.url}/for/{profile.segment}?level={profile.level}`, after: ['profile'] },
      },
    });
    const res = await get(app, '/home?user=bob');
    expect(res.status).toBe(200);
    expect(res.body.recs).toEqual({ segment: 'gold', items: ['r-1', 'r-2'] });
    expect(lastRequestTo(services, '/for/')?.url).toBe('/for/gold?level=3');

    // A hostile value in a result is a value too: it stays inside its segment.
    const hostile = await get(app, '/home?user=hacker');
    expect(hostile.status).toBe(200);
    expect(lastRequestTo(services, '/for/')?.url).toBe('/for/..%2Fadmin?level=3');
    expect(hostile.body.recs.segment).toBe('../admin');
  });

  describe('encoding', () => {
    const calls = () => ({ profile: { url: `${services.url}/users/{query.id}/x?limit={query.limit}` } });

    it.each([
      ['../admin', '/users/..%2Fadmin/x?limit=1'],
      ['a/b?x=1', '/users/a%2Fb%3Fx%3D1/x?limit=1'],
      ['a#frag', '/users/a%23frag/x?limit=1'],
      ['%2e%2e', '/users/%252e%252e/x?limit=1'],
    ])('keeps %j inside its path segment', async (value, expected) => {
      const app = await alone({ calls: calls() });
      const before = services.requests.length;
      await get(app, `/home?id=${encodeURIComponent(value)}&limit=1`);
      expect(services.requests.slice(before).map((request) => request.url)).toEqual([expected]);
    });

    it('keeps a query value inside its value: & and = cannot add parameters', async () => {
      const app = await alone({ calls: calls() });
      const before = services.requests.length;
      await get(app, `/home?id=7&limit=${encodeURIComponent('1&admin=true')}`);
      expect(services.requests.slice(before).map((request) => request.url)).toEqual(['/users/7/x?limit=1%26admin%3Dtrue']);
    });

    it.each(['..', '.'])('refuses a value that would be the dot segment %j: the call fails, nothing is sent', async (value) => {
      const app = await alone({ calls: calls() });
      const before = services.requests.length;
      const res = await get(app, `/home?id=${value}&limit=1`);
      const problem = expectProblem(res, 502, 'ERR_AGGREGATE_CALL_FAILED', { requestId: false });
      expect(problem.call).toBe('profile');
      expect(problem.detail).toContain('{query.id}');
      expect(services.requests.length).toBe(before);
    });

    it('fails a call whose value is missing, with the reason', async () => {
      const app = await alone({ calls: { profile: { url: `${services.url}/users/{query.id}` }, extra: { url: `${services.url}/users/{query.other}`, optional: true } } });
      const res = await get(app, '/home?id=7');
      expect(res.status).toBe(200);
      expect(res.body.extra).toBeNull();
      expect(res.body.errors).toEqual([{ call: 'extra', code: 'ERR_AGGREGATE_CALL_FAILED', detail: '{query.other} has no value' }]);
      expect(res.headers['partial-response']).toBe('extra');
    });
  });

  describe('optional and required calls', () => {
    it('gives null, an errors entry and Partial-Response for a failing optional call', async () => {
      flakyMode = '500';
      const app = await alone({ calls: { profile: { url: `${services.url}/users/u1` }, flaky: { url: `${flaky.url}/x`, optional: true } } });
      const res = await get(app, '/home');
      expect(res.status).toBe(200);
      expect(res.headers['partial-response']).toBe('flaky');
      expect(res.body.profile.id).toBe('u1');
      expect(res.body.flaky).toBeNull();
      expect(res.body.errors).toEqual([{ call: 'flaky', code: 'ERR_AGGREGATE_CALL_FAILED', status: 500, detail: 'answered 500' }]);
    });

    it('fails the request with 502 naming a failing required call, and aborts the calls still running', async () => {
      flakyMode = '404';
      const app = await alone({ calls: { flaky: { url: `${flaky.url}/x` }, late: { url: `${slow.url}/late?ms=3000` } } });
      const started = performance.now();
      const res = await get(app, '/home');
      expect(performance.now() - started).toBeLessThan(1500);
      const problem = expectProblem(res, 502, 'ERR_AGGREGATE_CALL_FAILED', { requestId: false });
      expect(problem).toMatchObject({ call: 'flaky', detail: 'The call "flaky" answered 404.' });
      // The slow upstream sees its request closed long before it would have answered.
      await waitFor(() => aborted.includes('/late?ms=3000'), 1000);
    });

    it('treats an unreachable required call as a 502 naming it', async () => {
      const app = await alone({ calls: { gone: { url: 'http://127.0.0.1:9/x', retries: 0 } } });
      const problem = expectProblem(await get(app, '/home'), 502, 'ERR_AGGREGATE_CALL_FAILED', { requestId: false });
      expect(problem.call).toBe('gone');
    });
  });

  describe('timeouts', () => {
    it('an optional call past its own timeout gives null with ERR_UPSTREAM_TIMEOUT, and its upstream sees the abort', async () => {
      const app = await alone({ calls: { profile: { url: `${services.url}/users/u1` }, slow: { url: `${slow.url}/t?ms=2000`, optional: true, timeout: '150ms' } } });
      const started = performance.now();
      const res = await get(app, '/home');
      expect(performance.now() - started).toBeLessThan(1000);
      expect(res.status).toBe(200);
      expect(res.body.slow).toBeNull();
      expect(res.body.errors).toEqual([{ call: 'slow', code: 'ERR_UPSTREAM_TIMEOUT', detail: 'did not answer in time' }]);
      await waitFor(() => aborted.includes('/t?ms=2000'), 1000);
    });

    it('a required call past its own timeout is a 504 naming it', async () => {
      const app = await alone({ calls: { slow: { url: `${slow.url}/t?ms=2000`, timeout: 150 } } });
      const problem = expectProblem(await get(app, '/home'), 504, 'ERR_AGGREGATE_TIMEOUT', { requestId: false });
      expect(problem).toMatchObject({ call: 'slow', detail: 'The call "slow" did not answer in time.' });
    });

    it('the deadline ends the aggregation: a required call still running is a 504', async () => {
      const app = await alone({ calls: { fast: { url: `${services.url}/users/u1` }, slow: { url: `${slow.url}/d?ms=3000` } }, deadline: '200ms' });
      const started = performance.now();
      const problem = expectProblem(await get(app, '/home'), 504, 'ERR_AGGREGATE_TIMEOUT', { requestId: false });
      expect(performance.now() - started).toBeLessThan(1000);
      expect(problem).toMatchObject({ call: 'slow', detail: 'The call "slow" did not answer before the deadline.' });
      await waitFor(() => aborted.includes('/d?ms=3000'), 1000);
    });

    it('the deadline turns optional calls still running (or waiting) into null', async () => {
      const app = await alone({
        calls: {
          fast: { url: `${services.url}/users/u1` },
          slow: { url: `${slow.url}/d?ms=3000`, optional: true },
          after: { url: `${services.url}/for/{slow.ms}`, after: ['slow'], optional: true },
        },
        deadline: '200ms',
      });
      const res = await get(app, '/home');
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ fast: { id: 'u1' }, slow: null, after: null });
      expect(res.body.errors).toEqual([
        { call: 'slow', code: 'ERR_AGGREGATE_TIMEOUT', detail: 'did not answer before the deadline' },
        { call: 'after', code: 'ERR_AGGREGATE_TIMEOUT', detail: 'did not answer before the deadline' },
      ]);
      expect(res.headers['partial-response']).toBe('slow, after');
    });
  });

  describe('answers that are not usable', () => {
    it.each([
      ['html', 'ERR_UPSTREAM_BAD_RESPONSE', 'answered with a body that is not JSON'],
      ['garbage', 'ERR_UPSTREAM_BAD_RESPONSE', 'answered with malformed JSON'],
    ] as const)('a %s answer is a failure of the call', async (mode, code, detail) => {
      flakyMode = mode;
      const optional = await alone({ calls: { flaky: { url: `${flaky.url}/x`, optional: true } } });
      const res = await get(optional, '/home');
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ flaky: null, errors: [{ call: 'flaky', code, status: 200, detail }] });
      const required = await alone({ calls: { flaky: { url: `${flaky.url}/x` } } });
      expectProblem(await get(required, '/home'), 502, 'ERR_AGGREGATE_CALL_FAILED', { requestId: false });
    });

    it.each(['big', 'bigStreamed'] as const)('an answer over maxBytes is a failure of the call (default 1 MB): %s', async (mode) => {
      flakyMode = mode;
      const app = await alone({ calls: { flaky: { url: `${flaky.url}/x`, optional: true } } });
      const res = await get(app, '/home');
      expect(res.body.errors[0]).toMatchObject({ call: 'flaky', code: 'ERR_UPSTREAM_BAD_RESPONSE' });
      expect(res.body.errors[0].detail).toContain('1048576 bytes');
    });

    it('an answer cut off mid-body is a failure of the call, not a hang', async () => {
      flakyMode = 'cut';
      const app = await alone({ calls: { flaky: { url: `${flaky.url}/x`, optional: true } } });
      const res = await get(app, '/home');
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ flaky: null, errors: [{ call: 'flaky', code: 'ERR_UPSTREAM_RESET', detail: 'the upstream closed the connection before answering' }] });
    });

    it('a 204 is a null result, not a failure', async () => {
      flakyMode = 'empty';
      const app = await alone({ calls: { flaky: { url: `${flaky.url}/x` } } });
      const res = await get(app, '/home');
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ flaky: null });
    });

    it('drops __proto__, constructor and prototype keys, so merging a result cannot pollute prototypes', async () => {
      flakyMode = 'proto';
      const app = await alone({
        calls: { flaky: { url: `${flaky.url}/x` } },
        shape: (results) => Object.assign({}, results.flaky as object, { merged: true }),
      });
      const res = await get(app, '/home');
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ safe: 1, merged: true });
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    });
  });

  describe('shape', () => {
    it('tailors the answer from the results and ctx (errors, consumer, request)', async () => {
      flakyMode = '500';
      const app = await alone({
        calls: { profile: { url: `${services.url}/users/u1` }, flaky: { url: `${flaky.url}/x`, optional: true } },
        shape: async (results, ctx) => ({ name: (results.profile as { name: string }).name, flaky: results.flaky ?? 'n/a', failed: ctx.errors.map((error) => error.call), path: ctx.req.url }),
      });
      const res = await get(app, '/home');
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ name: 'User u1', flaky: 'n/a', failed: ['flaky'], path: '/home' });
      expect(res.headers['partial-response']).toBe('flaky');
    });

    it('a throwing shape is a 502 ERR_TRANSFORM_FAILED, logged, and the server keeps serving', async () => {
      const logged = jest.spyOn(console, 'error').mockImplementation(() => undefined);
      try {
        const app = await alone({
          calls: { profile: { url: `${services.url}/users/u1` } },
          shape: () => {
            throw new Error('shape bug: results.profile.address is undefined');
          },
        });
        const problem = expectProblem(await get(app, '/home'), 502, 'ERR_TRANSFORM_FAILED', { requestId: false });
        expect(JSON.stringify(problem)).not.toContain('shape bug');
        expect(logged).toHaveBeenCalled();
        expect(logged.mock.calls.flat().some((arg) => arg instanceof Error && arg.message.includes('shape bug'))).toBe(true);
        expectProblem(await get(app, '/home'), 502, 'ERR_TRANSFORM_FAILED', { requestId: false });
      } finally {
        logged.mockRestore();
      }
    });
  });

  it('answers 503 ERR_OVERLOADED with Retry-After past maxInFlight, and takes requests again once one finishes', async () => {
    const app = await alone({ calls: { slow: { url: `${slow.url}/busy?ms=300` } }, maxInFlight: 1 });
    const first = get(app, '/home');
    await sleep(50);
    const second = await get(app, '/home');
    expectProblem(second, 503, 'ERR_OVERLOADED', { requestId: false });
    expect(second.headers['retry-after']).toBe('1');
    expect((await first).status).toBe(200);
    expect((await get(app, '/home')).status).toBe(200);
  });

  it('aborts its calls when the client goes away', async () => {
    const app = await alone({ calls: { slow: { url: `${slow.url}/gone?ms=3000` } } });
    const request = http.request({ host: '127.0.0.1', port: app.port, path: '/home', agent: false });
    request.on('error', () => undefined);
    request.end();
    await waitFor(() => slow.requests.some((received) => received.url === '/gone?ms=3000'));
    request.destroy();
    await waitFor(() => aborted.includes('/gone?ms=3000'), 1000);
  });

  it('forwards the request id, never the client’s Cookie and Authorization unless a call forwards them', async () => {
    const app = await alone({
      calls: {
        plain: { url: `${services.url}/users/plain` },
        withAuth: { url: `${services.url}/users/auth`, forward: ['authorization', 'accept-language'] },
      },
    });
    const res = await get(app, '/home', { 'x-request-id': 'agg-req-1', authorization: 'Bearer abc', cookie: 'session=s3cr3t', 'accept-language': 'fr', 'x-consumer-id': 'forged' });
    expect(res.status).toBe(200);
    const plain = lastRequestTo(services, '/users/plain')!.headers;
    expect(plain['x-request-id']).toBe('agg-req-1');
    expect(plain.accept).toBe('application/json');
    expect(plain.authorization).toBeUndefined();
    expect(plain.cookie).toBeUndefined();
    expect(plain['accept-language']).toBeUndefined();
    expect(plain['x-consumer-id']).toBeUndefined();
    expect(plain['x-forwarded-for']).toBe('127.0.0.1');
    const withAuth = lastRequestTo(services, '/users/auth')!.headers;
    expect(withAuth.authorization).toBe('Bearer abc');
    expect(withAuth['accept-language']).toBe('fr');
    expect(withAuth.cookie).toBeUndefined();
  });

  it('works behind authenticate(): {consumer.id} and the identity headers', async () => {
    const app = await alone(
      { calls: { profile: { url: `${services.url}/users/{consumer.id}` }, orders: { url: `${services.url}/orders?user={consumer.id}&limit={consumer.tier}` } } },
      '/home',
      [authenticate({ jwt }) as express.RequestHandler],
    );
    expect((await get(app, '/home')).status).toBe(401);
    const token = await signHmac({ sub: 'carol', tier: 'gold' }, secret);
    const res = await get(app, '/home', { authorization: `Bearer ${token}` });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ profile: { id: 'carol' }, orders: { user: 'carol', limit: 'gold' } });
    const received = lastRequestTo(services, '/users/carol')!.headers;
    expect(received['x-consumer-id']).toBe('carol');
    expect(received.authorization).toBeUndefined();
  });
});

describe('the route option aggregate', () => {
  it('replaces upstream in a route with JWT auth, a named upstream, and the identity headers on every call', async () => {
    const app = await withGateway({
      upstreams: { users: services.url },
      routes: [
        {
          path: '/api/home/:section',
          methods: ['GET'],
          auth: { jwt },
          aggregate: {
            calls: {
              profile: { upstream: 'users', path: '/users/{consumer.id}' },
              orders: { upstream: { target: services.url, timeout: '1s' }, path: '/orders?user={consumer.id}&limit={params.section}', optional: true },
              recs: { url: `${services.url}/for/{profile.segment}`, after: ['profile'], optional: true },
            },
            deadline: '2s',
            shape: (results, ctx) => ({ name: (results.profile as { name: string }).name, orders: results.orders ?? [], recs: results.recs ?? [], consumer: ctx.consumer?.id }),
          },
        },
      ],
    });
    expectProblem(await get(app, '/api/home/top'), 401, 'ERR_AUTH_MISSING');
    const token = await signHmac({ sub: 'dave', scope: 'home:read' }, secret);
    const res = await get(app, '/api/home/top', { authorization: `Bearer ${token}`, cookie: 'session=1' });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ name: 'User dave', orders: { user: 'dave', limit: 'top', items: [{ id: 'o-1' }] }, recs: { segment: 'gold', items: ['r-1', 'r-2'] }, consumer: 'dave' });
    for (const prefix of ['/users/dave', '/orders?user=dave', '/for/gold']) {
      const received = lastRequestTo(services, prefix)!.headers;
      expect(received['x-consumer-id']).toBe('dave');
      expect(received['x-consumer-scopes']).toBe('home:read');
      expect(received['x-request-id']).toBe(res.headers['x-request-id']);
      expect(received.authorization).toBeUndefined();
      expect(received.cookie).toBeUndefined();
    }
  });

  it('answers a failing required call as the gateway’s problem+json with the request id', async () => {
    flakyMode = '500';
    const app = await withGateway({ routes: [{ path: '/home', aggregate: { calls: { flaky: { url: `${flaky.url}/x` } } } }] });
    const problem = expectProblem(await get(app, '/home'), 502, 'ERR_AGGREGATE_CALL_FAILED');
    expect(problem.call).toBe('flaky');
  });

  it('counts aggregations in flight per gateway, across its routes', async () => {
    const app = await withGateway({
      routes: [
        { path: '/slow', aggregate: { calls: { slow: { url: `${slow.url}/busy?ms=300` } }, maxInFlight: 1 } },
        { path: '/fast', aggregate: { calls: { profile: { url: `${services.url}/users/u1` } }, maxInFlight: 1 } },
      ],
    });
    const first = get(app, '/slow');
    await sleep(50);
    const refused = await get(app, '/fast');
    expectProblem(refused, 503, 'ERR_OVERLOADED');
    expect(refused.headers['retry-after']).toBe('1');
    expect((await first).status).toBe(200);
    expect((await get(app, '/fast')).status).toBe(200);
  });

  it('reports every call to metrics()', async () => {
    const registry = new MetricsRegistry();
    const app = await withGateway({
      metrics: { registry },
      routes: [{ path: '/home', name: 'home', aggregate: { calls: { a: { url: `${services.url}/users/a` }, b: { url: `${slow.url}/m?ms=10` } } } }],
    });
    expect((await get(app, '/home')).status).toBe(200);
    const text = await registry.exposition();
    const count = (target: string) => Number(new RegExp(`frontdoor_upstream_duration_seconds_count\\{[^}]*frontdoor_upstream="${target.replace(/[.]/g, '\\.')}"[^}]*\\} (\\d+)`).exec(text)?.[1] ?? 0);
    expect(count(services.url)).toBe(1);
    expect(count(slow.url)).toBe(1);
  });

  it('goes through the shared pool: a refused target is retried on the next one, and keep-alive sockets are reused', async () => {
    const app = await withGateway({
      upstreams: { users: { targets: [`http://127.0.0.1:${await closedPort()}`, services.url], health: { passive: { failures: 1 } } } },
      routes: [{ path: '/home', aggregate: { calls: { a: { upstream: 'users', path: '/users/a' }, b: { upstream: 'users', path: '/users/b' } } } }],
    });
    const before = services.connections;
    for (let i = 0; i < 5; i++) {
      const res = await get(app, '/home');
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ a: { id: 'a' }, b: { id: 'b' } });
    }
    // Two calls at a time need two sockets; the next requests reuse them.
    expect(services.connections - before).toBeLessThanOrEqual(2);
  });

  it('passes its answer through the route’s response filters (headers)', async () => {
    const app = await withGateway({ routes: [{ path: '/home', headers: { response: { set: { 'cache-control': 'private, max-age=5' } } }, aggregate: { calls: { a: { url: `${services.url}/users/a` } } } }] });
    const res = await get(app, '/home');
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('private, max-age=5');
    expect(res.body).toEqual({ a: expect.objectContaining({ id: 'a' }) });
  });

  it('refuses a route with both upstream and aggregate, and configuration mistakes with their option path', () => {
    expect(() => gateway({ routes: [{ path: '/x', upstream: services.url, aggregate: { calls: { a: { url: services.url } } } }] })).toThrow(/more than one final handler/);
    expect(() => gateway({ routes: [{ path: '/x', aggregate: { calls: { a: { upstream: 'userz', path: '/' } } } }], upstreams: { users: services.url } })).toThrow(/routes\[0\]\.aggregate\.calls\.a\.upstream.*Did you mean "users"/);
    expect(() => gateway({ routes: [{ path: '/x', aggregate: { calls: { a: { url: services.url } }, onError: 'next' } }] })).toThrow(/routes\[0\]\.aggregate\.onError/);
  });

  it('records a CLIENT span per call under the request’s SERVER span', async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    provider.register();
    cleanups.push(async () => {
      await provider.shutdown();
      otelTrace.disable();
      propagation.disable();
    });
    const app = await withGateway({ trace: true, routes: [{ path: '/home', name: 'home', aggregate: { calls: { a: { url: `${services.url}/users/a` }, b: { url: `${services.url}/for/{a.segment}`, after: ['a'] } } } }] });
    const res = await get(app, '/home', { 'x-request-id': 'traced-agg' });
    expect(res.status).toBe(200);
    await waitFor(() => exporter.getFinishedSpans().some((span) => span.kind === SpanKind.SERVER));
    const spans = exporter.getFinishedSpans();
    const server = spans.find((span) => span.kind === SpanKind.SERVER)!;
    const clients = spans.filter((span) => span.kind === SpanKind.CLIENT);
    expect(clients.map((span) => span.attributes['frontdoor.aggregate.call']).sort()).toEqual(['a', 'b']);
    for (const client of clients) {
      expect(client.spanContext().traceId).toBe(server.spanContext().traceId);
      expect(client.parentSpanContext?.spanId ?? (client as unknown as { parentSpanId?: string }).parentSpanId).toBe(server.spanContext().spanId);
    }
    const events = server.events.filter((event) => event.name === 'frontdoor.aggregate.call');
    expect(events.map((event) => event.attributes?.['frontdoor.aggregate.outcome'])).toEqual(['ok', 'ok']);
    // Each call got the traceparent of its own CLIENT span.
    const received = lastRequestTo(services, '/for/gold')!.headers.traceparent as string;
    expect(received.split('-')[2]).toBe(clients.find((span) => span.attributes['frontdoor.aggregate.call'] === 'b')!.spanContext().spanId);
  });
});
