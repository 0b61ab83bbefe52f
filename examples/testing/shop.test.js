/**
 * A complete supertest suite for the shop example (examples/shop): the monolith with frontdoor's gateway at
 * its edge, tested against fake orders-service instances from frontdoor-gateway/testing. docs/testing.md
 * walks through it; the project's CI runs it, so the walk-through cannot rot.
 *
 *   npx jest --config examples/testing/jest.config.js     (after `npm run build`)
 */
'use strict';
/* global describe, it, expect, beforeAll, afterEach, afterAll */

const request = require('supertest');
const {
  startUpstream, hmacSecret, signToken, isProblem, expectForwarded, expectNotForwarded, closeAll,
} = require('frontdoor-gateway/testing');
const { createMonolith } = require('../shop/monolith');

const ORDER = { userId: 1, items: [{ productId: 'p-1', quantity: 2 }] };
// As a client sends it: a 20-digit number that a parse and re-serialise on the way would change.
const ORDER_TEXT = '{"userId":1,"items":[{"productId":"p-1","quantity":2}],"ref":12345678901234567890}';

describe('the shop behind its gateway', () => {
  let a; // orders service, instance a
  let b; // orders service, instance b
  let app;
  const secret = hmacSecret();
  const token = (sub, scope) => signToken({ sub, scope }, { secret });
  /** The instance that answered, from the x-upstream header the kit's upstreams send. */
  const instance = (res) => ({ a, b })[res.headers['x-upstream']];

  beforeAll(async () => {
    // Two fake instances: real HTTP servers on ephemeral ports that record what they receive.
    a = await startUpstream({ name: 'a' });
    b = await startUpstream({ name: 'b' });
    app = createMonolith({ ordersTargets: [a.url, b.url], jwtSecret: secret, accessLog: false, report: () => {} });
  });
  // Between tests: no failure, no canned reply, nothing recorded.
  afterEach(() => Promise.all([a.reset(), b.reset()]));
  afterAll(async () => {
    await app.locals.gateway.close();
    await closeAll();
  });

  it('routes /api/orders to the two instances in turn, and the rest to the monolith', async () => {
    const first = await request(app).get('/api/orders').expect(200);
    const second = await request(app).get('/api/orders').expect(200);
    expect([first.headers['x-upstream'], second.headers['x-upstream']].sort()).toEqual(['a', 'b']);
    expectForwarded(a, { method: 'GET', path: '/api/orders', headers: { 'x-request-id': true } });
    expectForwarded(b, { method: 'GET', path: '/api/orders' });

    const users = await request(app).get('/api/users').expect(200);
    expect(users.body.servedBy).toBe('monolith');
    expectNotForwarded(a, { path: '/api/users' });
    expectNotForwarded(b, { path: '/api/users' });
  });

  it('refuses an order without a token: 401, and nothing reaches the service', async () => {
    const res = await request(app).post('/api/orders').send(ORDER);
    isProblem(res, { status: 401, code: 'ERR_AUTH_MISSING' });
    expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    expectNotForwarded(a);
    expectNotForwarded(b);
  });

  it('refuses an order from a token without the orders:write scope: 403', async () => {
    const res = await request(app).post('/api/orders').set('authorization', `Bearer ${await token('bob', 'orders:read')}`).send(ORDER);
    isProblem(res, { status: 403, code: 'ERR_FORBIDDEN_SCOPE' });
    expectNotForwarded(a);
    expectNotForwarded(b);
  });

  it("forwards alice's order as sent, byte for byte, with her consumer id", async () => {
    a.reply(201, { id: 'a-1' }, { location: '/api/orders/a-1' });
    b.reply(201, { id: 'b-1' }, { location: '/api/orders/b-1' });
    const res = await request(app)
      .post('/api/orders')
      .set('authorization', `Bearer ${await token('alice', 'orders:write')}`)
      .set('content-type', 'application/json')
      .send(ORDER_TEXT)
      .expect(201);
    expect(res.headers.location).toMatch(/^\/api\/orders\/[ab]-1$/);
    expectForwarded(instance(res), {
      method: 'POST',
      path: '/api/orders',
      headers: { 'x-consumer-id': 'alice', 'content-type': 'application/json' },
      body: ORDER_TEXT, // the exact bytes: a string is compared as text
    });
  });

  it("refuses a consumer's 6th order within the minute: 429, while others still order", async () => {
    const carol = await token('carol', 'orders:write');
    for (let i = 1; i <= 5; i += 1) {
      await request(app).post('/api/orders').set('authorization', `Bearer ${carol}`).send(ORDER).expect(200);
    }
    const sixth = await request(app).post('/api/orders').set('authorization', `Bearer ${carol}`).send(ORDER);
    isProblem(sixth, { status: 429, code: 'ERR_RATE_LIMITED' });
    expect(Number(sixth.headers['retry-after'])).toBeGreaterThan(0);
    expect(a.requests.length + b.requests.length).toBe(5);

    await request(app).post('/api/orders').set('authorization', `Bearer ${await token('dave', 'orders:write')}`).send(ORDER).expect(200);
  });

  // Last: it leaves instance a ejected for the cooldown (5 s).
  it('answers 502 with the request id when both instances are down, then fails over to the one that is back', async () => {
    await a.fail('refuse');
    await b.fail('refuse');
    const down = await request(app).get('/api/orders').set('x-request-id', 'checkout-42');
    const problem = isProblem(down, { status: 502, code: 'ERR_UPSTREAM_UNAVAILABLE', requestId: 'checkout-42' });
    expect(problem.requestId).toBe(down.headers['x-request-id']);

    await b.recover();
    for (let i = 0; i < 4; i += 1) {
      const res = await request(app).get('/api/orders').expect(200);
      expect(res.headers['x-upstream']).toBe('b');
    }
    // Two refused connections in a row ejected a: gw.routes() shows the targets' health as it is now.
    const [route] = app.locals.gateway.routes().filter((r) => r.name === 'orders-read');
    expect(route.targets.map((t) => [t.url, t.state])).toEqual([[a.url, 'ejected'], [b.url, 'healthy']]);
  });
});
