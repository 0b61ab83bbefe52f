/**
 * The strangler-fig helpers that choose between the new service and the monolith (migration issue):
 * fallback() hands what the service drops to the app's own handler, once and never executing a POST twice;
 * cutover() sends a share of requests to the service, sticky per consumer, header or cookie, changeable at
 * runtime. The monolith is an in-process Express handler after the gateway; the service a real upstream.
 */
import http from 'node:http';
import express from 'express';
import { ConfigError, cutover, fallback, gateway, proxy } from '../../index';
import type { Gateway, GatewayOptions } from '../../index';
import { listen, rawRequest, RunningApp } from '../helpers/app';
import { signHmac } from '../helpers/tokens';
import { closedPort, startUpstream, Upstream } from '../helpers/upstream';

const SECRET = 'cutover-test-secret-that-is-long-enough';
const JWT = { jwt: { secret: SECRET, algorithms: ['HS256' as const] } };

interface Monolith {
  app: RunningApp;
  gw: Gateway;
  /** Requests the monolith's own handler answered, with the body it parsed. */
  served: Array<{ method: string; url: string; body: unknown }>;
}

/** The gateway in front of a monolith whose handler answers `{ from: 'monolith' }`. */
async function monolith(options: GatewayOptions): Promise<Monolith> {
  const gw = gateway(options);
  const served: Monolith['served'] = [];
  const app = express();
  app.use(gw);
  app.use(express.json());
  app.use((req, res) => {
    served.push({ method: req.method, url: req.originalUrl, body: req.body });
    res.json({ from: 'monolith' });
  });
  return { app: await listen(app), gw, served };
}

async function stop(running: Monolith): Promise<void> {
  await running.app.close();
  await running.gw.close();
}

/** Sends `count` GETs over keep-alive connections, `concurrency` at a time; returns each answer's `from`. */
async function sides(port: number, count: number, headersOf: (i: number) => Record<string, string> = () => ({}), concurrency = 16): Promise<string[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const results: string[] = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      results[i] = await new Promise<string>((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port, path: `/api/orders/${i}`, headers: headersOf(i), agent }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => resolve((JSON.parse(text) as { from?: string; upstream?: string }).from ?? 'service'));
        });
        req.on('error', reject);
      });
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    agent.destroy();
  }
  return results;
}

describe('fallback', () => {
  let service: Upstream;
  let statusOf: (url: string) => number;
  beforeAll(async () => {
    statusOf = () => 200;
    service = await startUpstream({
      name: 'service',
      handler: (req, res, body) => {
        const status = statusOf(req.url ?? '');
        if (req.url?.includes('slow')) return setTimeout(() => res.end('late'), 1_000);
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ from: 'service', status, body: body.toString() }));
      },
    });
  });
  afterAll(() => service.close());
  beforeEach(() => {
    statusOf = () => 200;
  });

  it('hands the request to the monolith when the service is unreachable, and says so', async () => {
    const down = `http://127.0.0.1:${await closedPort()}`;
    const running = await monolith({ routes: [{ path: '/api/orders', upstream: { target: down, retries: 0 }, fallback: true }] });
    try {
      const res = await rawRequest(running.app.port, { path: '/api/orders/7?x=1' });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body)).toEqual({ from: 'monolith' });
      expect(res.headers['x-frontdoor-fallback']).toBe('unavailable');
      // The monolith sees the request as the client sent it, once.
      expect(running.served).toEqual([{ method: 'GET', url: '/api/orders/7?x=1', body: undefined }]);
    } finally {
      await stop(running);
    }
  });

  it('falls back on a timeout, and on listed statuses only', async () => {
    const running = await monolith({ routes: [{ path: '/api/orders', upstream: { target: service.url, timeout: '150ms', retries: 0 }, fallback: { on: ['timeout', 503, 404] } }] });
    try {
      const slow = await rawRequest(running.app.port, { path: '/api/orders/slow' });
      expect(JSON.parse(slow.body)).toEqual({ from: 'monolith' });
      expect(slow.headers['x-frontdoor-fallback']).toBe('timeout');

      statusOf = () => 503;
      const unavailable = await rawRequest(running.app.port, { path: '/api/orders/1' });
      expect(JSON.parse(unavailable.body)).toEqual({ from: 'monolith' });
      expect(unavailable.headers['x-frontdoor-fallback']).toBe('503');

      statusOf = () => 404;
      expect(JSON.parse((await rawRequest(running.app.port, { path: '/api/orders/2' })).body)).toEqual({ from: 'monolith' });

      // 500 is not listed: the client gets the service's own answer, not a problem and not the monolith's.
      statusOf = () => 500;
      const failed = await rawRequest(running.app.port, { path: '/api/orders/3' });
      expect(failed.status).toBe(500);
      expect(JSON.parse(failed.body)).toMatchObject({ from: 'service' });
      expect(failed.headers['x-frontdoor-fallback']).toBeUndefined();
      expect(running.served.map((request) => request.url)).toEqual(['/api/orders/slow', '/api/orders/1', '/api/orders/2']);
    } finally {
      await stop(running);
    }
  });

  it('never executes a POST twice: a 503 after the body went upstream reaches the client as is', async () => {
    const running = await monolith({ routes: [{ path: '/api/orders', upstream: { target: service.url, retries: 0 }, fallback: { on: ['unavailable', 503] } }] });
    try {
      statusOf = () => 503;
      const before = service.requests.length;
      const res = await rawRequest(running.app.port, { method: 'POST', path: '/api/orders', headers: { 'content-type': 'application/json' }, body: '{"sku":"A"}' });
      expect(res.status).toBe(503);
      expect(JSON.parse(res.body)).toMatchObject({ from: 'service', body: '{"sku":"A"}' });
      expect(service.requests.length - before).toBe(1);
      expect(running.served).toEqual([]);
    } finally {
      await stop(running);
    }
  });

  it('hands a POST whose body never left to the monolith, body intact', async () => {
    const down = `http://127.0.0.1:${await closedPort()}`;
    const running = await monolith({ routes: [{ path: '/api/orders', upstream: { target: down, retries: 0 }, fallback: true }] });
    try {
      const res = await rawRequest(running.app.port, { method: 'POST', path: '/api/orders', headers: { 'content-type': 'application/json' }, body: '{"sku":"A","qty":2}' });
      expect(JSON.parse(res.body)).toEqual({ from: 'monolith' });
      expect(running.served).toEqual([{ method: 'POST', url: '/api/orders', body: { sku: 'A', qty: 2 } }]);
    } finally {
      await stop(running);
    }
  });

  it('falls back when every target is ejected', async () => {
    const down = `http://127.0.0.1:${await closedPort()}`;
    const running = await monolith({ routes: [{ path: '/api/orders', upstream: { target: down, retries: 0, health: { passive: { failures: 1, cooldown: '1m' } } }, fallback: { on: ['unavailable'] } }] });
    try {
      await rawRequest(running.app.port, { path: '/api/orders/1' }); // ejects the only target
      const res = await rawRequest(running.app.port, { path: '/api/orders/2' });
      expect(JSON.parse(res.body)).toEqual({ from: 'monolith' });
      expect(res.headers['x-frontdoor-fallback']).toBe('unavailable');
    } finally {
      await stop(running);
    }
  });

  it('answers a trigger that is not listed with the gateway’s problem', async () => {
    const running = await monolith({ routes: [{ path: '/api/orders', upstream: { target: service.url, timeout: '150ms', retries: 0 }, fallback: { on: [503] } }] });
    try {
      const res = await rawRequest(running.app.port, { path: '/api/orders/slow' });
      expect(res.status).toBe(504);
      expect(res.headers['content-type']).toBe('application/problem+json');
      expect(running.served).toEqual([]);
    } finally {
      await stop(running);
    }
  });

  it('works alone around proxy({ onError: "next" })', async () => {
    const down = `http://127.0.0.1:${await closedPort()}`;
    const orders = proxy({ target: down, retries: 0, onError: 'next' });
    const app = express();
    app.use('/api/orders', fallback({ on: ['unavailable'] }, orders));
    app.use('/api/orders', (_req, res) => res.json({ from: 'monolith' }));
    const running = await listen(app);
    try {
      const res = await rawRequest(running.port, { path: '/api/orders/1' });
      expect(JSON.parse(res.body)).toEqual({ from: 'monolith' });
    } finally {
      await running.close();
      await orders.close();
    }
  });

  it('is refused at construction without an upstream, or with a bad trigger', () => {
    expect(() => gateway({ routes: [{ path: '/a', app: true, fallback: true }] })).toThrow(/"routes\[0\]\.fallback" needs "routes\[0\]\.upstream"/);
    expect(() => gateway({ routes: [{ path: '/a', upstream: service.url, fallback: { on: ['down' as never] } }] })).toThrow(ConfigError);
  });
});

describe('cutover', () => {
  let service: Upstream;
  beforeAll(async () => {
    service = await startUpstream({ name: 'service' });
  });
  afterAll(() => service.close());

  it('sends the configured share within ±2 % over 10 000 requests', async () => {
    const running = await monolith({ routes: [{ path: '/api/orders', upstream: service.url, cutover: { percent: 30 } }] });
    try {
      const results = await sides(running.app.port, 10_000);
      const share = results.filter((side) => side === 'service').length / results.length;
      expect(share).toBeGreaterThan(0.28);
      expect(share).toBeLessThan(0.32);
    } finally {
      await stop(running);
    }
  }, 60_000);

  it('keeps a consumer on one side, and raising the percentage only moves consumers to the service', async () => {
    const running = await monolith({ routes: [{ name: 'orders', path: '/api/orders', upstream: service.url, auth: JWT, cutover: { percent: 10, sticky: 'consumer' } }] });
    try {
      const tokens = await Promise.all(Array.from({ length: 200 }, (_, i) => signHmac({ sub: `user-${i}` }, SECRET)));
      const headersOf = (i: number) => ({ authorization: `Bearer ${tokens[i % 200]}` });
      const first = await sides(running.app.port, 400, headersOf);
      // Every consumer got the same side both times it came.
      for (let i = 0; i < 200; i++) expect(first[i + 200]).toBe(first[i]);
      running.gw.setCutover('orders', 50);
      const second = await sides(running.app.port, 200, headersOf);
      for (let i = 0; i < 200; i++) if (first[i] === 'service') expect(second[i]).toBe('service');
      const atTen = first.slice(0, 200).filter((side) => side === 'service').length;
      const atFifty = second.filter((side) => side === 'service').length;
      expect(atFifty).toBeGreaterThan(atTen);
      expect(atFifty).toBeGreaterThan(60);
      expect(atFifty).toBeLessThan(140);
    } finally {
      await stop(running);
    }
  });

  it('honours always and never lists, and a header as the sticky key', async () => {
    const running = await monolith({
      routes: [
        { name: 'orders', path: '/api/orders', upstream: service.url, auth: JWT, cutover: { percent: 50, sticky: 'consumer', always: ['pilot'], never: ['legacy-partner'] } },
        { name: 'carts', path: '/api/carts', upstream: service.url, cutover: { percent: 50, sticky: { header: 'x-user-id' } } },
      ],
    });
    try {
      const pilot = await signHmac({ sub: 'pilot' }, SECRET);
      const legacy = await signHmac({ sub: 'legacy-partner' }, SECRET);
      for (let i = 0; i < 10; i++) {
        expect(JSON.parse((await rawRequest(running.app.port, { path: '/api/orders/1', headers: { authorization: `Bearer ${pilot}` } })).body).upstream).toBe('service');
        expect(JSON.parse((await rawRequest(running.app.port, { path: '/api/orders/1', headers: { authorization: `Bearer ${legacy}` } })).body)).toEqual({ from: 'monolith' });
      }
      const sideOf = async (user: string) => JSON.parse((await rawRequest(running.app.port, { path: '/api/carts/1', headers: { 'x-user-id': user } })).body).from ?? 'service';
      for (const user of ['u1', 'u2', 'u3', 'u4', 'u5']) {
        const side = await sideOf(user);
        for (let i = 0; i < 5; i++) expect(await sideOf(user)).toBe(side);
      }
    } finally {
      await stop(running);
    }
  });

  it('changes at runtime with setCutover() and through a reload', async () => {
    const route = { name: 'orders', path: '/api/orders', upstream: service.url, cutover: 0 };
    const running = await monolith({ routes: [route] });
    try {
      expect(new Set(await sides(running.app.port, 50))).toEqual(new Set(['monolith']));
      running.gw.setCutover('orders', 100);
      expect(new Set(await sides(running.app.port, 50))).toEqual(new Set(['service']));
      expect(() => running.gw.setCutover('orders', 101)).toThrow(/"routes\[0\]\.cutover\.percent" must be a number from 0 to 100/);
      expect(() => running.gw.setCutover('nope', 5)).toThrow(/route "nope" has no cutover; routes with one: orders/);
      await running.gw.reload({ routes: [{ ...route, cutover: 0 }] });
      expect(new Set(await sides(running.app.port, 50))).toEqual(new Set(['monolith']));
    } finally {
      await stop(running);
    }
  });

  it('works alone, and needs an upstream as a route option', async () => {
    const orders = proxy({ target: service.url });
    const split = cutover({ percent: 100 }, orders);
    const app = express();
    app.use('/api/orders', split);
    app.use('/api/orders', (_req, res) => res.json({ from: 'monolith' }));
    const running = await listen(app);
    try {
      expect(new Set(await sides(running.port, 20))).toEqual(new Set(['service']));
      split.setPercent(0);
      expect(new Set(await sides(running.port, 20))).toEqual(new Set(['monolith']));
    } finally {
      await running.close();
      await orders.close();
    }
    expect(() => gateway({ routes: [{ path: '/a', app: true, cutover: 5 }] })).toThrow(/"routes\[0\]\.cutover" needs "routes\[0\]\.upstream"/);
  });
});
