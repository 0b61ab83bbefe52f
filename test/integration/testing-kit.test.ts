/**
 * frontdoor-gateway/testing, used the way an app's suite uses it: real upstreams that record and fail on
 * demand, tokens and a rotating JWKS endpoint the gateway verifies, API keys its own rules accept, and
 * assertions whose failures say what arrived. Imported from the entry point the package publishes.
 */
import { createHash } from 'node:crypto';
import express from 'express';
import request from 'supertest';
import { gateway } from '../../index';
import type { Gateway, GatewayOptions } from '../../index';
import {
  apiKey,
  apiKeyDigest,
  closeAll,
  closedPort,
  createKeyPair,
  expectForwarded,
  expectNotForwarded,
  FrontdoorAssertionError,
  hmacSecret,
  isProblem,
  signToken,
  startJwks,
  startUpstream,
} from '../../testing';
import type { Upstream } from '../../testing';
import { matchers } from '../../lib/testing/jest';

/** Gateways built by a test, closed after it. */
const gateways: Gateway[] = [];
function appWith(options: GatewayOptions): express.Express {
  const gw = gateway(options);
  gateways.push(gw);
  const app = express();
  app.use(gw);
  return app;
}

/** The message of what `fn` throws (it must throw a FrontdoorAssertionError). */
function failureOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FrontdoorAssertionError);
    return (err as Error).message;
  }
  throw new Error('expected the assertion to fail');
}

afterEach(async () => {
  await Promise.all(gateways.splice(0).map((gw) => gw.close()));
});
afterAll(closeAll);

describe('startUpstream', () => {
  it('records method, path, query, headers and body as received, and echoes them', async () => {
    const orders = await startUpstream();
    const res = await fetch(`${orders.url}/api/orders?page=2`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-tenant': 'acme' }, body: '{"n":12345678901234567890}' });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ upstream: 'upstream', method: 'POST', url: '/api/orders?page=2', body: '{"n":12345678901234567890}' });
    expect(orders.requests).toHaveLength(1);
    expect(orders.requests[0]).toMatchObject({ method: 'POST', url: '/api/orders?page=2', path: '/api/orders', headers: { 'x-tenant': 'acme' } });
    expect(orders.requests[0].body.toString()).toBe('{"n":12345678901234567890}');
  });

  it('takes a handler, and reply() sets the answer instead', async () => {
    const users = await startUpstream((_req, res) => res.end('from the handler'));
    expect(await (await fetch(users.url)).text()).toBe('from the handler');
    users.reply(201, { id: 7 }, { location: '/users/7' });
    const created = await fetch(users.url);
    expect(created.status).toBe(201);
    expect(created.headers.get('content-type')).toBe('application/json');
    expect(created.headers.get('location')).toBe('/users/7');
    expect(await created.json()).toEqual({ id: 7 });
    users.reply(200, 'plain');
    expect(await (await fetch(users.url)).text()).toBe('plain');
    await users.reset();
    expect(await (await fetch(users.url)).text()).toBe('from the handler');
    expect(users.requests).toHaveLength(1);
  });

  it("fail('status:503', { times }) fails that many requests, then answers again", async () => {
    const up = await startUpstream();
    await up.fail('status:503', { times: 2 });
    expect((await fetch(up.url)).status).toBe(503);
    expect((await fetch(up.url)).status).toBe(503);
    expect((await fetch(up.url)).status).toBe(200);
    expect(up.requests).toHaveLength(3);
  });

  it("fail('reset') drops the connection after reading the request; fail('hang') never answers", async () => {
    const up = await startUpstream();
    await up.fail('reset', { times: 1 });
    await expect(fetch(up.url, { method: 'POST', body: 'x' })).rejects.toThrow();
    expect(up.requests.map((r) => r.body.toString())).toEqual(['x']);
    expect((await fetch(up.url)).status).toBe(200);

    await up.fail('hang');
    await expect(fetch(up.url, { signal: AbortSignal.timeout(300) })).rejects.toThrow(/abort|timeout/i);
    await up.recover();
    expect((await fetch(up.url)).status).toBe(200);
  });

  it("fail('slow:600ms') answers late", async () => {
    const up = await startUpstream();
    await up.fail('slow:600ms', { times: 1 });
    const started = Date.now();
    expect((await fetch(up.url)).status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(580);
    const again = Date.now();
    await fetch(up.url);
    expect(Date.now() - again).toBeLessThan(450);
  });

  it("fail('refuse') stops listening and drops open connections; recover() listens on the same port", async () => {
    const up = await startUpstream();
    const url = up.url;
    await up.fail('refuse');
    await expect(fetch(url)).rejects.toMatchObject({ cause: { code: 'ECONNREFUSED' } });
    await up.recover();
    expect(up.url).toBe(url);
    expect((await fetch(url)).status).toBe(200);
  });

  it('refuses failure modes it does not know, and a count for refusals', async () => {
    const up = await startUpstream();
    await expect(up.fail('refuse', { times: 1 })).rejects.toThrow(/cannot be counted.*recover/);
    await expect(up.fail('explode' as 'reset')).rejects.toThrow(/unknown failure "explode".*'status:503'/);
    await expect(up.fail('reset', { times: 0 })).rejects.toThrow(/"times"/);
    expect(() => up.reply(42)).toThrow(/HTTP status/);
  });

  it('closeAll() closes every server the kit started', async () => {
    const one = await startUpstream();
    const jwks = await startJwks();
    await closeAll();
    await expect(fetch(one.url)).rejects.toMatchObject({ cause: { code: 'ECONNREFUSED' } });
    await expect(fetch(jwks.url)).rejects.toMatchObject({ cause: { code: 'ECONNREFUSED' } });
    await one.close(); // closing twice is harmless
  });
});

describe('a gateway in front of kit upstreams', () => {
  let a: Upstream;
  let b: Upstream;
  beforeEach(async () => {
    a = await startUpstream({ name: 'a' });
    b = await startUpstream({ name: 'b' });
  });

  it('balances over both instances, and fails over when one refuses', async () => {
    const app = appWith({ routes: [{ path: '/api/orders', upstream: { targets: [a.url, b.url], retries: 1 } }] });
    await request(app).get('/api/orders/1').expect(200);
    await request(app).get('/api/orders/2').expect(200);
    expectForwarded(a, { method: 'GET', path: /^\/api\/orders\/\d$/, times: 1 });
    expectForwarded(b, { method: 'GET', path: /^\/api\/orders\/\d$/, times: 1 });

    await a.fail('refuse');
    for (let i = 0; i < 4; i += 1) {
      const res = await request(app).get('/api/orders/9').expect(200);
      expect(res.headers['x-upstream']).toBe('b');
    }
  });

  it('an upstream answering 503 and one resetting reach the client as themselves and as a 502 problem', async () => {
    const app = appWith({ routes: [{ path: '/api', upstream: a.url }] });
    await a.fail('status:503', { times: 1 });
    expect((await request(app).get('/api/x')).status).toBe(503);
    await a.fail('reset', { times: 1 });
    const res = await request(app).post('/api/orders').set('x-request-id', 'kit-reset-1').send({ n: 1 });
    const problem = isProblem(res, { status: 502, code: 'ERR_UPSTREAM_RESET', requestId: 'kit-reset-1' });
    expect(problem.title).toBeTruthy();
    expectForwarded(a, { method: 'POST', path: '/api/orders', headers: { 'x-request-id': 'kit-reset-1' }, body: { n: 1 } });
  });

  it('a hanging upstream is a 504 after the route timeout; a reset GET is retried on the other instance', async () => {
    const app = appWith({ routes: [{ path: '/api', upstream: { targets: [a.url, b.url], timeout: '300ms' } }] });
    await a.fail('hang');
    await b.fail('hang');
    isProblem(await request(app).get('/api/slow'), { status: 504, code: 'ERR_UPSTREAM_TIMEOUT' });
    await a.fail('reset');
    await b.recover();
    for (let i = 0; i < 2; i += 1) expect((await request(app).get('/api/x')).headers['x-upstream']).toBe('b');
    expectForwarded(a, { path: '/api/x' });
  });

  it('a target nothing listens on is a 502 ERR_UPSTREAM_UNAVAILABLE', async () => {
    const app = appWith({ routes: [{ path: '/api', upstream: `http://127.0.0.1:${await closedPort()}` }] });
    isProblem(await request(app).get('/api/x'), { status: 502, code: 'ERR_UPSTREAM_UNAVAILABLE' });
  });
});

describe('tokens and keys the gateway accepts', () => {
  it('signToken with a secret: accepted, expired, and the consumer forwarded', async () => {
    const orders = await startUpstream();
    const secret = hmacSecret();
    const app = appWith({ routes: [{ path: '/api', upstream: orders.url, auth: { jwt: { secret, algorithms: ['HS256'] } } }] });
    const token = await signToken({ sub: 'alice', scope: 'orders:read' }, { secret });
    await request(app).get('/api/orders').set('authorization', `Bearer ${token}`).expect(200);
    expectForwarded(orders, { path: '/api/orders', headers: { 'x-consumer-id': 'alice', authorization: true } });

    const expired = await signToken({ sub: 'alice' }, { secret, expiresIn: '-1m' });
    isProblem(await request(app).get('/api/orders').set('authorization', `Bearer ${expired}`), { status: 401, code: 'ERR_AUTH_TOKEN_EXPIRED' });
    const other = await signToken({ sub: 'alice' }, { secret: hmacSecret() });
    isProblem(await request(app).get('/api/orders').set('authorization', `Bearer ${other}`), { status: 401, code: 'ERR_AUTH_TOKEN_INVALID' });
    expectForwarded(orders, { times: 1 });
  });

  it('signToken with a private key infers the algorithm from the key (PEM, KeyObject or JWK)', async () => {
    const orders = await startUpstream();
    const pair = await createKeyPair('ES256');
    const app = appWith({ routes: [{ path: '/api', upstream: orders.url, auth: { jwt: { secret: pair.publicPem, algorithms: ['ES256'] } } }] });
    const pem = pair.privateKey as import('node:crypto').KeyObject;
    for (const privateKey of [pair.privateKey, pem.export({ type: 'pkcs8', format: 'pem' }) as string, pem.export({ format: 'jwk' }) as never]) {
      const token = await signToken({ sub: 'svc' }, { privateKey, kid: pair.kid });
      expect(JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString())).toEqual({ alg: 'ES256', kid: pair.kid });
      await request(app).get('/api').set('authorization', `Bearer ${token}`).expect(200);
    }
  });

  it('signToken refuses a call it cannot honour', async () => {
    await expect(signToken({ sub: 'x' }, {})).rejects.toThrow(/exactly one of "secret".*"privateKey"/);
    await expect(signToken({ sub: 'x' }, { secret: hmacSecret(), algorithm: 'RS256' })).rejects.toThrow(/needs a "privateKey"/);
    await expect(signToken({ sub: 'x' }, { secret: hmacSecret(), expiresIn: 'soon' })).rejects.toThrow(/"expiresIn"/);
  });

  it('startJwks: tokens verify through the JWKS URL, and rotate() brings a new kid the gateway fetches', async () => {
    const orders = await startUpstream();
    const idp = await startJwks({ algorithm: 'ES256', issuer: 'https://idp.test', audience: 'shop' });
    // The gateway refetches on an unknown kid at most jwksRefetchPerMinute times (default 6: once in 10 s).
    const app = appWith({ routes: [{ path: '/api', upstream: orders.url, auth: { jwt: { jwksUri: idp.url, algorithms: ['ES256'], issuer: 'https://idp.test', audience: 'shop', jwksRefetchPerMinute: 6000 } } }] });
    const before = await idp.sign({ sub: 'alice' });
    await request(app).get('/api').set('authorization', `Bearer ${before}`).expect(200);
    expect(idp.fetches).toBe(1);

    const oldKid = idp.key.kid;
    const next = await idp.rotate();
    await new Promise((resolve) => setTimeout(resolve, 20)); // past the 10 ms refetch cooldown
    expect(next.kid).not.toBe(oldKid);
    expect(idp.keys.map((key) => key.kid)).toEqual([oldKid, next.kid]);
    const after = await idp.sign({ sub: 'bob' });
    await request(app).get('/api').set('authorization', `Bearer ${after}`).expect(200);
    expect(idp.fetches).toBe(2);
    expectForwarded(orders, { headers: { 'x-consumer-id': 'bob' } });
    // Still published, so tokens of the previous key keep working while they expire.
    await request(app).get('/api').set('authorization', `Bearer ${before}`).expect(200);

    await idp.rotate({ keepPrevious: false });
    expect(idp.keys).toHaveLength(1);
    idp.fail('status:503');
    expect((await fetch(idp.url)).status).toBe(503);
    idp.recover();
    expect(((await (await fetch(idp.url)).json()) as { keys: unknown[] }).keys).toHaveLength(1);
  });

  it('apiKey() makes keys authenticate() accepts, as they are and as digests', async () => {
    const orders = await startUpstream();
    const plain = apiKey();
    const hashed = apiKey({ prefix: 'globex_' });
    expect(plain).toMatch(/^fdk_test_[\w-]{43}$/);
    expect(apiKey()).not.toBe(plain);
    expect(apiKeyDigest(hashed)).toBe(`sha256:${createHash('sha256').update(hashed).digest('hex')}`);
    const app = appWith({ routes: [{ path: '/api', upstream: orders.url, auth: { apiKey: { keys: { [plain]: { id: 'acme' }, [apiKeyDigest(hashed)]: { id: 'globex' } } } } }] });
    await request(app).get('/api').set('x-api-key', plain).expect(200);
    await request(app).get('/api').set('x-api-key', hashed).expect(200);
    isProblem(await request(app).get('/api').set('x-api-key', apiKey()), { status: 401, code: 'ERR_AUTH_KEY_INVALID' });
    expectForwarded(orders, { headers: { 'x-consumer-id': 'acme' }, times: 1 });
    expectForwarded(orders, { headers: { 'x-consumer-id': 'globex' }, times: 1 });
    expect(() => apiKey({ prefix: 'sha256:' })).toThrow(/digest/);
  });
});

describe('assertions with readable failures', () => {
  it('isProblem says what differs, with the response', async () => {
    const orders = await startUpstream();
    const app = appWith({ routes: [{ path: '/api', upstream: orders.url, auth: { apiKey: { keys: { [apiKey()]: { id: 'acme' } } } } }] });
    const denied = await request(app).get('/api');
    isProblem(denied, { status: 401, code: 'ERR_AUTH_MISSING' });
    isProblem(denied, { status: 401, requestId: true });

    const wrong = failureOf(() => isProblem(denied, { status: 403, code: 'ERR_FORBIDDEN_SCOPE' }));
    expect(wrong).toContain('status: expected 403, got 401');
    expect(wrong).toContain('body.code: expected "ERR_FORBIDDEN_SCOPE", got \'ERR_AUTH_MISSING\'');
    expect(wrong).toMatch(/Response: 401 application\/problem\+json/);

    const ok = await request(orders.url).get('/');
    const notProblem = failureOf(() => isProblem(ok, { status: 401 }));
    expect(notProblem).toContain('content-type: expected application/problem+json, got "application/json"');
    expect(notProblem).toContain('"upstream":"upstream"');

    const forged = { ...denied, headers: { ...denied.headers, 'x-request-id': 'another-id' } };
    expect(failureOf(() => isProblem(forged, { status: 401 }))).toContain('body.requestId: expected "another-id" (the X-Request-Id header)');
    expect(failureOf(() => isProblem(denied, { requestId: 'mine' }))).toContain('body.requestId: expected "mine"');
    // A plain `{ status, headers, body }` with a text body works too (fetch, raw HTTP).
    isProblem({ status: denied.status, headers: denied.headers, body: denied.text }, { code: 'ERR_AUTH_MISSING' });
  });

  it('expectForwarded lists what the upstream received and why each does not match', async () => {
    const orders = await startUpstream();
    await request(orders.url).get('/api/orders?page=1').set('x-consumer-id', 'bob');
    await request(orders.url).post('/api/orders').send({ n: 1 });
    const message = failureOf(() => expectForwarded(orders, { method: 'POST', path: '/api/orders', headers: { 'x-consumer-id': 'alice' } }));
    expect(message).toBe(
      [
        `expectForwarded: no request received by ${orders.url} matched { method: 'POST', path: '/api/orders', headers: { 'x-consumer-id': 'alice' } }.`,
        'It received 2 requests:',
        '  1. GET /api/orders?page=1',
        '       method: expected POST, got GET',
        '       header x-consumer-id: expected "alice", got "bob"',
        '  2. POST /api/orders',
        '       header x-consumer-id: expected "alice", got none',
      ].join('\n'),
    );
    expect(expectForwarded(orders, { method: 'post', body: { n: 1 } }).path).toBe('/api/orders');
    expect(expectForwarded(orders, { path: '/api/orders?page=1' }).method).toBe('GET');
    expect(failureOf(() => expectForwarded(orders, { path: '/api/orders', times: 1 }))).toMatch(/^expectForwarded: 2 requests \(expected 1\)/);
    expect(failureOf(() => expectForwarded(orders, { body: 'nope' }))).toContain('body: expected "nope", got an empty body');

    const empty = await startUpstream();
    expect(failureOf(() => expectForwarded(empty, { path: '/x' }))).toContain('It received no requests.');
    expectNotForwarded(empty);
    expectNotForwarded(orders, { method: 'DELETE' });
    expect(failureOf(() => expectNotForwarded(orders, { method: 'POST' }))).toMatch(/^expectNotForwarded: 1 request \(expected 0\)/);
  });

  it('the jest matchers make the same checks', async () => {
    expect.extend(matchers);
    const orders = await startUpstream();
    const app = appWith({ routes: [{ path: '/api', upstream: orders.url, auth: { jwt: { secret: hmacSecret(), algorithms: ['HS256'] } } }] });
    const denied = await request(app).get('/api/orders');
    expect(denied).toBeProblem({ status: 401, code: 'ERR_AUTH_MISSING' });
    expect(denied).not.toBeProblem({ status: 403 });
    expect(orders).not.toHaveBeenForwarded();
    await request(orders.url).get('/api/orders');
    expect(orders).toHaveBeenForwarded({ path: '/api/orders' });
    expect(() => expect(orders).toHaveBeenForwarded({ path: '/api/users' })).toThrow(/no request received by .* matched \{ path: '\/api\/users' \}[\s\S]*1\. GET \/api\/orders/);
    expect(() => expect(denied).toBeProblem({ code: 'ERR_RATE_LIMITED' })).toThrow(/body.code: expected "ERR_RATE_LIMITED"/);
  });
});
