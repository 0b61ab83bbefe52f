/**
 * shadow(): an in-process monolith (Express handlers behind the gateway) answers; a real candidate service that
 * differs from it on purpose in some fields gets a copy of each request, and the report tallies the comparisons.
 * The client only ever sees the primary's answer and never waits for the candidate.
 */
import { randomUUID } from 'node:crypto';
import express from 'express';
import pino from 'pino';
import { gateway, MetricsRegistry } from '../../index';
import type { Gateway } from '../../index';
import { shadow, shadowReportHandler } from '../../middleware/shadow';
import type { ShadowControl, ShadowOptions, ShadowReport } from '../../middleware/shadow';
import { listen, rawRequest, RunningApp } from '../helpers/app';
import { captureStream } from '../helpers/logs';
import { sleep, waitFor } from '../helpers/wait';
import { startUpstream, Upstream } from '../helpers/upstream';

/** The old code: an order as the monolith serves it. `updatedAt` and item ids change on every call. */
function monolithOrder(id: number) {
  return {
    id,
    status: 'open',
    total: id * 10,
    updatedAt: `${new Date().toISOString()}-${Math.random()}`,
    customer: { email: `c${id}@example.com` },
    items: [{ id: randomUUID(), sku: 'A', qty: id }],
  };
}

/** The monolith's own handlers, mounted after the gateway (and on the secondary, a second copy of the old code). */
function mountMonolith(app: express.Express): void {
  app.get('/api/orders/export.csv', (_req, res) => void res.type('text/csv').send('id,total\n1,10\n'));
  app.get('/api/orders/:id', (req, res) => void res.set('x-served-by', 'monolith').json(monolithOrder(Number(req.params.id))));
  app.post('/api/orders', express.json({ limit: '1mb' }), (req, res) => void res.status(201).set('x-served-by', 'monolith').json({ created: true, received: JSON.stringify(req.body).length }));
}

/** The new service: the same API, with on-purpose differences (order 3's total, order 4's email, the CSV). */
function candidateHandler(control: { delayMs: number }) {
  return (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse, body: Buffer) => {
    const answer = () => {
      const match = /^\/api\/orders\/(\d+)/.exec(req.url ?? '');
      res.setHeader('x-served-by', 'candidate');
      if (req.url === '/api/orders/export.csv') {
        res.writeHead(200, { 'content-type': 'text/csv' });
        return res.end('id,total\n1,11\n');
      }
      if (req.method === 'POST') {
        res.writeHead(201, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ created: true, received: body.length }));
      }
      if (!match) {
        res.writeHead(404, { 'content-type': 'application/json' });
        return res.end('{}');
      }
      const order = monolithOrder(Number(match[1]));
      if (order.id === 3) order.total = 31;
      if (order.id === 4) order.customer.email = 'changed@example.com';
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(order));
    };
    // A hanging candidate's timer must not keep jest alive once its sockets are gone.
    if (control.delayMs > 0) setTimeout(answer, control.delayMs).unref();
    else answer();
  };
}

interface Booted {
  app: RunningApp;
  gw: Gateway;
  report(): ShadowReport;
  close(): Promise<void>;
}

/** A monolith with the gateway mounted first; the route `orders` shadows to the candidate. */
async function boot(options: ShadowOptions, route: Record<string, unknown> = {}): Promise<Booted> {
  const gw = gateway({ routes: [{ path: '/api/orders', name: 'orders', shadow: options, ...route }] });
  const server = express();
  server.use(gw);
  mountMonolith(server);
  const app = await listen(server);
  return {
    app,
    gw,
    report: () => gw.control<ShadowControl>('orders', 'shadow')!.report(),
    close: async () => {
      await gw.close();
      await app.close();
    },
  };
}

const get = (app: RunningApp, path: string, headers: Record<string, string> = {}) => fetch(`${app.url}${path}`, { headers });
const compared = (report: ShadowReport) => report.outcomes.match + report.outcomes.mismatch + report.outcomes.candidateError + report.outcomes.skipped;

describe('shadow', () => {
  const delay = { delayMs: 0 };
  let candidate: Upstream;
  let secondary: RunningApp;

  beforeAll(async () => {
    candidate = await startUpstream({ handler: candidateHandler(delay), name: 'candidate' });
    const old = express();
    mountMonolith(old);
    secondary = await listen(old);
  });
  afterAll(async () => {
    await candidate.close();
    await secondary.close();
  });
  beforeEach(() => {
    delay.delayMs = 0;
    candidate.requests.length = 0;
  });

  it('counts matches and mismatches, with ignore rules, and samples the differing fields', async () => {
    const shop = await boot({ candidate: candidate.url, compare: { ignore: ['updatedAt', 'items[*].id'] } });
    try {
      for (const id of [1, 2, 3, 3]) {
        const res = await get(shop.app, `/api/orders/${id}`);
        expect(res.status).toBe(200);
        await res.arrayBuffer();
      }
      await waitFor(() => compared(shop.report()) === 4);
      const report = shop.report();
      expect(report).toMatchObject({ route: 'orders', candidate: [candidate.url], requests: 4, outcomes: { match: 2, mismatch: 2, candidateError: 0, skipped: 0 } });
      expect(report.fields).toEqual([{ path: 'body.total', count: 2 }]);
      expect(report.samples).toHaveLength(2);
      expect(report.samples[0]).toMatchObject({ method: 'GET', path: '/api/orders/3', outcome: 'mismatch', status: { primary: 200, candidate: 200 }, differences: [{ path: 'body.total', kind: 'value', primary: 30, candidate: 31 }] });
    } finally {
      await shop.close();
    }
  });

  it('without ignore rules, learns the noise from a secondary and leaves it out', async () => {
    const shop = await boot({ candidate: candidate.url, secondary: secondary.url });
    try {
      for (const id of [1, 2, 3]) await (await get(shop.app, `/api/orders/${id}`)).arrayBuffer();
      await waitFor(() => compared(shop.report()) === 3);
      const report = shop.report();
      expect(report.outcomes).toEqual({ match: 2, mismatch: 1, candidateError: 0, skipped: 0 });
      expect(report.samples[0].differences).toEqual([{ path: 'body.total', kind: 'value', primary: 30, candidate: 31 }]);
      expect(report.noise.fields.map((field) => field.path).sort()).toEqual(['body.items[*].id', 'body.updatedAt']);
      expect(report.noise.ignoredDifferences).toBe(6);
      expect(report.secondary).toEqual([secondary.url]);
    } finally {
      await shop.close();
    }
  });

  it('sends the client only the primary answer, and the candidate the request id and no forged identity', async () => {
    const shop = await boot({ candidate: candidate.url });
    try {
      const res = await get(shop.app, '/api/orders/3', { 'x-consumer-id': 'forged', 'x-request-id': 'req-shadow-1' });
      expect(res.headers.get('x-served-by')).toBe('monolith');
      expect(((await res.json()) as { total: number }).total).toBe(30);
      await waitFor(() => candidate.requests.length === 1);
      const copy = candidate.requests[0];
      expect(copy).toMatchObject({ method: 'GET', url: '/api/orders/3' });
      expect(copy.headers['x-request-id']).toBe('req-shadow-1');
      expect(copy.headers['x-frontdoor-shadow']).toBe('candidate');
      expect(copy.headers['x-consumer-id']).toBeUndefined();
    } finally {
      await shop.close();
    }
  });

  it('does not make the client wait for a candidate that hangs, and reports its timeout', async () => {
    delay.delayMs = 5_000;
    const shop = await boot({ candidate: candidate.url, timeout: '500ms' });
    try {
      const startedAt = Date.now();
      const res = await get(shop.app, '/api/orders/1');
      await res.arrayBuffer();
      expect(res.status).toBe(200);
      expect(Date.now() - startedAt).toBeLessThan(300);
      await waitFor(() => shop.report().outcomes.candidateError === 1);
      expect(shop.report().candidateErrors).toEqual({ ERR_UPSTREAM_TIMEOUT: 1 });
      expect(shop.report().samples[0]).toMatchObject({ outcome: 'candidateError', error: 'ERR_UPSTREAM_TIMEOUT', status: { primary: 200 } });
    } finally {
      await shop.close();
    }
  });

  it('does not copy unsafe methods unless the route says the candidate is side-effect free', async () => {
    const safeOnly = await boot({ candidate: candidate.url });
    try {
      const res = await fetch(`${safeOnly.app.url}/api/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"sku":"A"}' });
      expect(res.status).toBe(201);
      await res.arrayBuffer();
      await sleep(100);
      expect(candidate.requests).toHaveLength(0);
      expect(safeOnly.report().notShadowed).toEqual({ method: 1, sampling: 0 });
    } finally {
      await safeOnly.close();
    }
    const unsafe = await boot({ candidate: candidate.url, unsafe: true });
    try {
      const res = await fetch(`${unsafe.app.url}/api/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"sku":"A"}' });
      expect(await res.json()).toEqual({ created: true, received: 11 });
      await waitFor(() => compared(unsafe.report()) === 1);
      expect(candidate.requests[0].body.toString()).toBe('{"sku":"A"}');
      expect(candidate.requests[0].headers['content-type']).toBe('application/json');
      expect(unsafe.report().outcomes.match).toBe(1);
    } finally {
      await unsafe.close();
    }
  });

  it('skips the copy of a body over the tee limit, declared or chunked, and the primary still gets all of it', async () => {
    const shop = await boot({ candidate: candidate.url, unsafe: true, maxRequestBody: '1kb' });
    try {
      const big = JSON.stringify({ note: 'x'.repeat(5_000) });
      const declared = await rawRequest(shop.app.port, { method: 'POST', path: '/api/orders', headers: { 'content-type': 'application/json', 'content-length': String(big.length) }, body: big });
      expect(JSON.parse(declared.body)).toEqual({ created: true, received: big.length });
      const chunked = await rawRequest(shop.app.port, { method: 'POST', path: '/api/orders', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, body: big });
      expect(JSON.parse(chunked.body)).toEqual({ created: true, received: big.length });
      await waitFor(() => compared(shop.report()) === 2);
      expect(shop.report().skipped.requestTooLarge).toBe(2);
      expect(candidate.requests).toHaveLength(0);
    } finally {
      await shop.close();
    }
  });

  it('copies only the share of requests given by percent', async () => {
    const none = await boot({ candidate: candidate.url, percent: 0 });
    try {
      for (let i = 0; i < 5; i++) await (await get(none.app, '/api/orders/1')).arrayBuffer();
      expect(none.report().notShadowed.sampling).toBe(5);
    } finally {
      await none.close();
    }
    const half = await boot({ candidate: candidate.url, percent: 50, compare: { ignore: ['updatedAt', 'items[*].id'] } });
    try {
      for (let i = 0; i < 100; i++) await (await get(half.app, '/api/orders/1')).arrayBuffer();
      const chosen = 100 - half.report().notShadowed.sampling;
      await waitFor(() => half.report().outcomes.match === chosen);
      expect(chosen).toBeGreaterThan(25);
      expect(chosen).toBeLessThan(75);
      expect(candidate.requests).toHaveLength(chosen);
    } finally {
      await half.close();
    }
  });

  it('skips copies past the concurrency cap and counts them', async () => {
    delay.delayMs = 5_000;
    const shop = await boot({ candidate: candidate.url, maxConcurrent: 2, timeout: '3s' });
    try {
      await Promise.all([1, 2].map(async (id) => (await get(shop.app, `/api/orders/${id}`)).arrayBuffer()));
      await waitFor(() => candidate.requests.length === 2);
      for (const id of [3, 4, 5]) {
        const res = await get(shop.app, `/api/orders/${id}`);
        expect(res.status).toBe(200);
        await res.arrayBuffer();
      }
      expect(shop.report().skipped.concurrency).toBe(3);
      expect(shop.report().outcomes.skipped).toBe(3);
      await sleep(50);
      expect(candidate.requests).toHaveLength(2);
    } finally {
      await shop.close();
    }
  });

  it('compares bodies that are not JSON by bytes', async () => {
    const shop = await boot({ candidate: candidate.url });
    try {
      await (await get(shop.app, '/api/orders/export.csv')).arrayBuffer();
      await waitFor(() => compared(shop.report()) === 1);
      const [sample] = shop.report().samples;
      expect(sample.differences).toEqual([{ path: 'body', kind: 'value', primary: expect.objectContaining({ bytes: 14, firstDifferenceAt: 12 }), candidate: expect.objectContaining({ bytes: 14, firstDifferenceAt: 12 }) }]);
    } finally {
      await shop.close();
    }
  });

  it('redacts configured fields in samples and log lines, and logs mismatches as structured lines', async () => {
    const capture = captureStream();
    const shop = await boot({ candidate: candidate.url, compare: { ignore: ['updatedAt', 'items[*].id'] }, redact: ['customer.email'], logger: pino(capture.stream) });
    try {
      await (await get(shop.app, '/api/orders/4', { 'x-request-id': 'req-redact' })).arrayBuffer();
      await waitFor(() => compared(shop.report()) === 1);
      expect(shop.report().samples[0].differences).toEqual([{ path: 'body.customer.email', kind: 'value', primary: '[redacted]', candidate: '[redacted]' }]);
      await waitFor(() => capture.lines().length === 1);
      const [line] = capture.lines();
      expect(line).toMatchObject({ level: 40, msg: 'frontdoor shadow: the candidate answered differently', route: 'orders', outcome: 'mismatch', requestId: 'req-redact', path: '/api/orders/4' });
      expect(capture.text()).not.toContain('example.com');
    } finally {
      await shop.close();
    }
  });

  it('shadows a route served by its upstream, copying a streamed body the proxy forwards', async () => {
    const primary = await startUpstream({ handler: candidateHandler({ delayMs: 0 }), name: 'primary' });
    const shop = await boot({ candidate: candidate.url, unsafe: true }, { upstream: primary.url });
    try {
      const body = JSON.stringify({ lines: Array.from({ length: 200 }, (_, i) => ({ sku: `S${i}` })) });
      const res = await rawRequest(shop.app.port, { method: 'POST', path: '/api/orders', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, body });
      expect(res.status).toBe(201);
      expect(res.headers['x-served-by']).toBe('candidate'); // the primary runs the candidate's code here
      await waitFor(() => compared(shop.report()) === 1);
      expect(shop.report().outcomes.match).toBe(1);
      expect(primary.requests[0].body.toString()).toBe(body);
      expect(candidate.requests[0].body.toString()).toBe(body);
    } finally {
      await shop.close();
      await primary.close();
    }
  });

  it('works alone in front of the app, after a body parser, with its report served as JSON', async () => {
    const orders = shadow({ candidate: candidate.url, unsafe: true });
    const server = express();
    server.use(express.json());
    server.get('/admin/shadow', shadowReportHandler(orders));
    server.use('/api/orders', orders);
    mountMonolith(server);
    const app = await listen(server);
    try {
      const res = await fetch(`${app.url}/api/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"sku":"B"}' });
      expect(res.headers.get('x-served-by')).toBe('monolith');
      await res.arrayBuffer();
      await waitFor(() => orders.report().outcomes.match === 1);
      expect(candidate.requests[0].body.toString()).toBe('{"sku":"B"}');
      const served = await fetch(`${app.url}/admin/shadow`);
      expect(served.headers.get('content-type')).toBe('application/json');
      expect(await served.json()).toMatchObject({ requests: 1, outcomes: { match: 1 } });
      orders.reset();
      expect(orders.report().requests).toBe(0);
    } finally {
      await app.close();
      await orders.close();
    }
  });

  it('tells observers each outcome, and keeps the report of an unchanged route across a reload', async () => {
    const options: ShadowOptions = { candidate: candidate.url, compare: { ignore: ['updatedAt', 'items[*].id'] } };
    const shop = await boot(options);
    try {
      const events: unknown[] = [];
      shop.gw.control<ShadowControl>('orders', 'shadow')!.observe((event) => events.push(event));
      await (await get(shop.app, '/api/orders/3')).arrayBuffer();
      await waitFor(() => events.length === 1);
      expect(events[0]).toMatchObject({ route: 'orders', outcome: 'mismatch', candidateMs: expect.any(Number) });
      await shop.gw.reload({ routes: [{ path: '/api/orders', name: 'orders', shadow: options }] });
      expect(shop.report().outcomes.mismatch).toBe(1);
      await shop.gw.reload({ routes: [{ path: '/api/orders', name: 'orders', shadow: { ...options, percent: 50 } }] });
      expect(shop.report().requests).toBe(0);
    } finally {
      await shop.close();
    }
  });

  it('reports through gw.shadowReport() and counts outcomes in the gateway’s metrics', async () => {
    const registry = new MetricsRegistry();
    const gw = gateway({ metrics: { registry }, routes: [{ path: '/api/orders', name: 'orders', shadow: { candidate: candidate.url, compare: { ignore: ['updatedAt', 'items[*].id'] } } }, { path: '/api/plain', app: true }] });
    const server = express();
    server.use(gw);
    mountMonolith(server);
    const app = await listen(server);
    try {
      for (const id of [1, 3]) await (await get(app, `/api/orders/${id}`)).arrayBuffer();
      await waitFor(() => compared(gw.shadowReport('orders')!) === 2);
      expect(gw.shadowReport('orders')?.outcomes).toMatchObject({ match: 1, mismatch: 1 });
      expect(gw.shadowReport().map((report) => report.route)).toEqual(['orders']);
      expect(gw.shadowReport('plain')).toBeUndefined();
      const text = await registry.exposition();
      expect(text).toMatch(/^frontdoor_shadow_comparisons_total\{[^}]*frontdoor_shadow_outcome="match"[^}]*\} 1$/m);
      expect(text).toMatch(/^frontdoor_shadow_comparisons_total\{[^}]*frontdoor_shadow_outcome="mismatch"[^}]*\} 1$/m);
      expect(text).toMatch(/^frontdoor_shadow_candidate_duration_seconds_count\{[^}]*http_route="orders",frontdoor_shadow_outcome="match"[^}]*\} 1$/m);
      expect(text).toMatch(/^frontdoor_shadow_candidate_duration_seconds_count\{[^}]*http_route="orders",frontdoor_shadow_outcome="mismatch"[^}]*\} 1$/m);
    } finally {
      await gw.close();
      await app.close();
    }
  });

  it('refuses bad options at construction, naming the option', () => {
    expect(() => gateway({ routes: [{ path: '/x', shadow: {} as ShadowOptions }] })).toThrow(/routes\[0\]\.shadow\.candidate/);
    expect(() => gateway({ routes: [{ path: '/x', shadow: { candidate: 'http://127.0.0.1:1', compare: { ignore: ['a..b'] } } }] })).toThrow(/routes\[0\]\.shadow\.compare\.ignore" has an invalid path "a\.\.b"/);
    expect(() => shadow({ candidate: 'http://127.0.0.1:1', percent: 150 })).toThrow(/"percent" must be a number from 0 to 100/);
    expect(() => shadow({ candidate: 'ftp://x' })).toThrow(/candidate\.target/);
    expect(() => shadow({ candidate: 'http://127.0.0.1:1', redact: ['__proto__'] })).toThrow(/"redact" has an invalid path/);
  });
});
