/**
 * Retries (idempotent requests only) and the mapping of upstream faults to problem+json answers:
 * refused → 502, reset → 502, response timeout → 504, nothing healthy → 503. After every fault the
 * gateway keeps serving; `onError: 'next'` hands errors to the app instead.
 */
import type { ErrorRequestHandler } from 'express';
import { proxy } from '../../index';
import { expressVersions, listen, rawRequest } from '../helpers/app';
import { GatewayApp, gatewayApp } from '../helpers/gateway-app';
import { expectProblem } from '../helpers/problem';
import { closedPort, RawUpstream, startResettingUpstream, startSlowUpstream, startUpstream, Upstream } from '../helpers/upstream';
import { sleep } from '../helpers/wait';

const json = (value: unknown) => ({ headers: { 'content-type': 'application/json' }, body: JSON.stringify(value) });

describe.each(expressVersions)('retries (%s)', (_label, express) => {
  let alive: Upstream;
  let deadUrl: string;
  const cleanup: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    alive = await startUpstream({ name: 'alive' });
    deadUrl = `http://127.0.0.1:${await closedPort()}`;
  });
  afterAll(async () => {
    await alive.close();
  });
  afterEach(async () => {
    for (const close of cleanup.splice(0).reverse()) await close();
  });

  /** Mounts a proxy to [dead, alive] on /api, optionally behind express.json(). */
  async function setup(options: { retries?: number; bodyParser?: boolean }) {
    // A high failure threshold keeps the dead target in rotation for the whole test.
    const p = proxy({ targets: [deadUrl, alive.url], retries: options.retries, health: { passive: { failures: 1000 } } });
    const app = express();
    if (options.bodyParser) app.use(express.json());
    app.use('/api', p);
    const running = await listen(app);
    cleanup.push(() => p.close(), () => running.close());
    return { p, dead: p.pool.targets[0], running };
  }

  it('a GET whose first target refuses is retried on the other target and succeeds', async () => {
    const { dead, running } = await setup({});
    const before = alive.requests.length;
    for (let i = 0; i < 6; i++) {
      const res = await rawRequest(running.port, { path: `/api/items/${i}` });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body)).toMatchObject({ upstream: 'alive', url: `/api/items/${i}` });
    }
    // Round-robin sent half of them to the dead target first: those were retried.
    expect(dead.failures).toBe(3);
    expect(alive.requests.length - before).toBe(6);
  });

  it('a PUT with a parsed JSON body is retried with the same body', async () => {
    const { dead, running } = await setup({ bodyParser: true });
    for (let i = 0; i < 4; i++) {
      const res = await rawRequest(running.port, { method: 'PUT', path: `/api/items/${i}`, ...json({ n: i }) });
      expect(res.status).toBe(200);
      expect(JSON.parse(JSON.parse(res.body).body)).toEqual({ n: i });
    }
    expect(dead.failures).toBe(2);
  });

  it.each([
    ['streamed', false],
    ['parsed by express.json()', true],
  ])('a POST (%s body) whose connection was refused is sent to the other target, once: nothing had reached the upstream', async (_kind, bodyParser) => {
    // As nginx and Envoy do (adoption issue, item 5): a refused connection carried no byte of the request, so
    // any method is retried; a POST that reached an upstream (reset, timeout) is never re-sent (tests below).
    const { dead, running } = await setup({ bodyParser });
    const received = () => alive.requests.filter((r) => r.method === 'POST').map((r) => JSON.parse(r.body.toString('utf8')).id as string);
    const before = received().length;
    const sent: string[] = [];
    for (let i = 0; i < 6; i++) {
      const id = `order-${bodyParser ? 'p' : 's'}-${i}`;
      sent.push(id);
      const res = await rawRequest(running.port, { method: 'POST', path: '/api/orders', ...json({ id }) });
      expect(res.status).toBe(200);
    }
    // Half the POSTs went to the dead target first (round-robin); each reached the live one exactly once, body intact.
    expect(dead.failures).toBe(3);
    expect(received().slice(before)).toEqual(sent);
  });

  it('a POST is not sent again with retries: 0', async () => {
    const { dead, running } = await setup({ retries: 0 });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await rawRequest(running.port, { method: 'POST', path: '/api/orders', ...json({ id: `r0-${i}` }) })).status);
    expect(statuses.sort()).toEqual([200, 200, 502, 502]);
    expect(dead.failures).toBe(2);
  });

  it('retries: 0 → a GET sent to the refusing target fails with 502', async () => {
    const { dead, running } = await setup({ retries: 0 });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await rawRequest(running.port, { path: '/api/x' });
      statuses.push(res.status);
      if (res.status !== 200) expectProblem(res, 502, 'ERR_UPSTREAM_UNAVAILABLE');
    }
    expect(statuses.filter((s) => s === 502)).toHaveLength(2);
    expect(statuses.filter((s) => s === 200)).toHaveLength(2);
    expect(dead.failures).toBe(2);
  });
});

describe.each(expressVersions)('upstream faults as problem+json (%s)', (_label, express) => {
  let healthy: Upstream;
  let resetA: RawUpstream;
  let resetB: RawUpstream;
  let slowA: Upstream;
  let slowB: Upstream;
  let app: GatewayApp;

  beforeAll(async () => {
    healthy = await startUpstream({ name: 'healthy' });
    resetA = await startResettingUpstream();
    resetB = await startResettingUpstream();
    slowA = await startSlowUpstream('slowA', 2000);
    slowB = await startSlowUpstream('slowB', 2000);
    const refused = `http://127.0.0.1:${await closedPort()}`;
    const gone = `http://127.0.0.1:${await closedPort()}`;
    const noPassive = { passive: false as const };
    app = await gatewayApp(
      {
        routes: [
          { path: '/ok', upstream: healthy.url },
          { path: '/refused', upstream: { target: refused, health: noPassive } },
          { path: '/reset', upstream: { targets: [resetA.url, resetB.url], retries: 1, health: noPassive } },
          { path: '/slow', upstream: { targets: [slowA.url, slowB.url], timeout: 200, health: noPassive } },
          { path: '/gone', upstream: { target: gone, health: { passive: { failures: 1, cooldown: '30s' } } } },
        ],
      },
      { express },
    );
  });
  afterAll(async () => {
    await app.close();
    await Promise.all([healthy.close(), resetA.close(), resetB.close(), slowA.close(), slowB.close()]);
  });

  /** The gateway is alive and serving after a fault. */
  async function stillServing(): Promise<void> {
    const res = await rawRequest(app.port, { path: '/ok/ping' });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ upstream: 'healthy', url: '/ok/ping' });
  }

  it('connection refused → 502 ERR_UPSTREAM_UNAVAILABLE', async () => {
    expectProblem(await rawRequest(app.port, { path: '/refused/x' }), 502, 'ERR_UPSTREAM_UNAVAILABLE');
    expectProblem(await rawRequest(app.port, { method: 'POST', path: '/refused/x', ...json({ a: 1 }) }), 502, 'ERR_UPSTREAM_UNAVAILABLE');
    await stillServing();
  });

  it('an upstream that closes the connection without answering → 502 ERR_UPSTREAM_RESET; a POST is sent once', async () => {
    const before = resetA.connections + resetB.connections;
    const res = await rawRequest(app.port, { method: 'POST', path: '/reset/orders', ...json({ id: 1 }) });
    expectProblem(res, 502, 'ERR_UPSTREAM_RESET');
    expect(resetA.connections + resetB.connections - before).toBe(1);
    await stillServing();
  });

  it('a GET reset by every target → 502 ERR_UPSTREAM_RESET once its retries are exhausted', async () => {
    const a = resetA.connections;
    const b = resetB.connections;
    const res = await rawRequest(app.port, { path: '/reset/items' });
    expectProblem(res, 502, 'ERR_UPSTREAM_RESET');
    // retries: 1 → the other target was tried too, each exactly once.
    expect(resetA.connections - a).toBe(1);
    expect(resetB.connections - b).toBe(1);
    await stillServing();
  });

  it('an upstream slower than `timeout` → 504 ERR_UPSTREAM_TIMEOUT; a timed-out POST is not re-sent', async () => {
    const before = slowA.requests.length + slowB.requests.length;
    const res = await rawRequest(app.port, { method: 'POST', path: '/slow/orders', ...json({ id: 7 }) });
    expectProblem(res, 504, 'ERR_UPSTREAM_TIMEOUT');
    // The upstream got it once; give a retry the time it would need to show up.
    await sleep(100);
    expect(slowA.requests.length + slowB.requests.length - before).toBe(1);
    await stillServing();
  });

  it('a GET that times out is answered 504 too', async () => {
    expectProblem(await rawRequest(app.port, { path: '/slow/items' }), 504, 'ERR_UPSTREAM_TIMEOUT');
    await stillServing();
  });

  it('no healthy target → 503 ERR_NO_HEALTHY_UPSTREAM with Retry-After', async () => {
    expectProblem(await rawRequest(app.port, { path: '/gone/x' }), 502, 'ERR_UPSTREAM_UNAVAILABLE');
    const res = await rawRequest(app.port, { path: '/gone/x' });
    expectProblem(res, 503, 'ERR_NO_HEALTHY_UPSTREAM');
    expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(29);
    expect(Number(res.headers['retry-after'])).toBeLessThanOrEqual(30);
    await stillServing();
  });

  it('reuses a valid client X-Request-Id in the problem body', async () => {
    const res = await rawRequest(app.port, { path: '/refused/x', headers: { 'x-request-id': 'trace-abc.123' } });
    expectProblem(res, 502, 'ERR_UPSTREAM_UNAVAILABLE');
    expect(res.headers['x-request-id']).toBe('trace-abc.123');
  });
});

describe.each(expressVersions)("onError: 'next' (%s)", (_label, express) => {
  it('proxy() hands the error to the app error handler with its status', async () => {
    const dead = `http://127.0.0.1:${await closedPort()}`;
    const p = proxy({ target: dead, onError: 'next', retries: 0 });
    const app = express();
    app.use('/api', p);
    const handler: ErrorRequestHandler = (err, _req, res, _next) => {
      res.status(418).json({ seenStatus: err.status, seenCode: err.code, handledBy: 'app' });
    };
    app.use(handler);
    const running = await listen(app);
    try {
      const res = await rawRequest(running.port, { path: '/api/x' });
      expect(res.status).toBe(418);
      expect(JSON.parse(res.body)).toEqual({ seenStatus: 502, seenCode: 'ERR_UPSTREAM_UNAVAILABLE', handledBy: 'app' });
    } finally {
      await p.close();
      await running.close();
    }
  });

  it('gateway() hands upstream errors to the app error handler with their status', async () => {
    const dead = `http://127.0.0.1:${await closedPort()}`;
    const slow = await startSlowUpstream('slow', 2000);
    const handler: ErrorRequestHandler = (err, _req, res, _next) => {
      res.status(418).json({ seenStatus: err.status, seenCode: err.code });
    };
    const running = await gatewayApp(
      {
        onError: 'next',
        routes: [
          { path: '/dead', upstream: dead },
          { path: '/slow', upstream: { target: slow.url, timeout: 100 } },
        ],
      },
      { express, after: (app) => app.use(handler) },
    );
    try {
      expect(JSON.parse((await rawRequest(running.port, { path: '/dead/x' })).body)).toEqual({ seenStatus: 502, seenCode: 'ERR_UPSTREAM_UNAVAILABLE' });
      expect(JSON.parse((await rawRequest(running.port, { path: '/slow/x' })).body)).toEqual({ seenStatus: 504, seenCode: 'ERR_UPSTREAM_TIMEOUT' });
    } finally {
      await running.close();
      await slow.close();
    }
  });
});
