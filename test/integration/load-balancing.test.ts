/**
 * Load balancing through a real Express app and real upstreams: round-robin, a weighted canary,
 * sticky sessions by header and by cookie, and pooled (kept-alive) upstream connections.
 */
import http from 'node:http';
import type { GatewayOptions } from '../../index';
import { expressVersions, ExpressFactory } from '../helpers/app';
import { GatewayApp, gatewayApp } from '../helpers/gateway-app';
import { startUpstream, Upstream } from '../helpers/upstream';

interface Reply {
  status: number;
  upstream: string | undefined;
}

/** One GET over `agent`; resolves with the status and the `x-upstream` header. */
function get(port: number, path: string, agent: http.Agent, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, agent, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, upstream: res.headers['x-upstream'] as string | undefined }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Sends `total` GETs with at most `concurrency` in flight over one keep-alive agent; counts replies per upstream. */
async function sendMany(port: number, path: string, total: number, concurrency: number): Promise<{ counts: Record<string, number>; statuses: Record<number, number> }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const counts: Record<string, number> = {};
  const statuses: Record<number, number> = {};
  let sent = 0;
  const worker = async () => {
    while (sent < total) {
      sent += 1;
      const reply = await get(port, path, agent);
      statuses[reply.status] = (statuses[reply.status] ?? 0) + 1;
      const name = reply.upstream ?? 'none';
      counts[name] = (counts[name] ?? 0) + 1;
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    agent.destroy();
  }
  return { counts, statuses };
}

/** gatewayApp() with a local /local route behind the gateway. */
function startApp(express: ExpressFactory, options: GatewayOptions): Promise<GatewayApp> {
  return gatewayApp(options, {
    express,
    after: (app) =>
      app.get('/local', (_req, res) => {
        res.send('local');
      }),
  });
}

describe.each(expressVersions)('load balancing (%s)', (_label, express) => {
  let a: Upstream;
  let b: Upstream;
  let c: Upstream;
  let app: GatewayApp;

  beforeAll(async () => {
    [a, b, c] = await Promise.all([startUpstream({ name: 'a' }), startUpstream({ name: 'b' }), startUpstream({ name: 'c' })]);
    app = await startApp(express, {
      routes: [
        { path: '/rr', upstream: { targets: [a.url, b.url, c.url] } },
        { path: '/by-header', upstream: { targets: [a.url, b.url, c.url], sticky: { header: 'X-Session' } } },
        { path: '/by-cookie', upstream: { targets: [a.url, b.url], sticky: { cookie: 'sid' } } },
        { path: '/pooled', upstream: b.url },
      ],
    });
  });
  afterAll(async () => {
    await app.close();
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  it('round-robin spreads 300 requests equally over 3 targets (±1)', async () => {
    const { counts, statuses } = await sendMany(app.port, '/rr/items', 300, 10);
    expect(statuses).toEqual({ 200: 300 });
    expect(Object.keys(counts).sort()).toEqual(['a', 'b', 'c']);
    for (const name of ['a', 'b', 'c']) {
      expect(counts[name]).toBeGreaterThanOrEqual(99);
      expect(counts[name]).toBeLessThanOrEqual(101);
    }
  });

  it('sticky by header: the same key always reaches the same upstream, different keys reach all of them', async () => {
    const agent = new http.Agent({ keepAlive: true });
    try {
      const homes = new Set<string>();
      for (let user = 0; user < 30; user++) {
        const headers = { 'x-session': `user-${user}` };
        const seen = new Set<string | undefined>();
        for (let i = 0; i < 5; i++) {
          const reply = await get(app.port, '/by-header/cart', agent, headers);
          expect(reply.status).toBe(200);
          seen.add(reply.upstream);
        }
        expect(seen.size).toBe(1);
        homes.add([...seen][0]!);
      }
      expect(homes).toEqual(new Set(['a', 'b', 'c']));
    } finally {
      agent.destroy();
    }
  });

  it('sticky by cookie: the same session cookie always reaches the same upstream, different cookies reach both', async () => {
    const agent = new http.Agent({ keepAlive: true });
    try {
      const homes = new Set<string>();
      for (let user = 0; user < 20; user++) {
        const seen = new Set<string | undefined>();
        for (let i = 0; i < 5; i++) {
          // Other cookies around it, in varying order, do not change the key.
          const cookie = i % 2 === 0 ? `sid=s${user}; theme=dark` : `lang=en; sid=s${user}; n=${i}`;
          const reply = await get(app.port, '/by-cookie/cart', agent, { cookie });
          expect(reply.status).toBe(200);
          seen.add(reply.upstream);
        }
        expect(seen.size).toBe(1);
        homes.add([...seen][0]!);
      }
      expect(homes).toEqual(new Set(['a', 'b']));
    } finally {
      agent.destroy();
    }
  });

  it('requests without the sticky key are still balanced', async () => {
    const { counts } = await sendMany(app.port, '/by-cookie/cart', 20, 1);
    expect(counts).toEqual({ a: 10, b: 10 });
  });

  it('keeps upstream connections alive: 200 sequential requests use only a handful of TCP connections', async () => {
    const before = b.connections;
    const { statuses } = await sendMany(app.port, '/pooled/ping', 200, 1);
    expect(statuses).toEqual({ 200: 200 });
    expect(b.connections - before).toBeGreaterThanOrEqual(1);
    expect(b.connections - before).toBeLessThanOrEqual(5);
  });

  it('leaves unmatched paths to the app', async () => {
    const agent = new http.Agent({ keepAlive: false });
    try {
      const reply = await get(app.port, '/local', agent);
      expect(reply).toEqual({ status: 200, upstream: undefined });
    } finally {
      agent.destroy();
    }
  });
});

// 10 000 requests: once, on Express 5, to keep the suite fast.
describe('weighted canary (express 5)', () => {
  const express = expressVersions[0][1];
  let stable: Upstream;
  let canary: Upstream;
  let app: GatewayApp;

  beforeAll(async () => {
    [stable, canary] = await Promise.all([startUpstream({ name: 'stable' }), startUpstream({ name: 'canary' })]);
    app = await startApp(express, {
      routes: [{ path: '/api/catalog', upstream: { targets: [{ url: stable.url, weight: 95 }, { url: canary.url, weight: 5 }] } }],
    });
  });
  afterAll(async () => {
    await app.close();
    await Promise.all([stable.close(), canary.close()]);
  });

  it('weights 95:5 send 95 % / 5 % (±2 points) of 10 000 requests', async () => {
    const total = 10_000;
    const { counts, statuses } = await sendMany(app.port, '/api/catalog/items', total, 20);
    expect(statuses).toEqual({ 200: total });
    expect(counts.stable + counts.canary).toBe(total);
    expect(counts.canary / total).toBeGreaterThanOrEqual(0.03);
    expect(counts.canary / total).toBeLessThanOrEqual(0.07);
    expect(counts.stable / total).toBeGreaterThanOrEqual(0.93);
    // What the upstreams received agrees with what the client saw.
    expect(canary.requests.length).toBe(counts.canary);
    expect(stable.requests.length).toBe(counts.stable);
  }, 60_000); // ~5 s normally; generous for loaded machines and --detectOpenHandles runs
});
