/**
 * Target health with real upstreams: passive ejection (refused connections, 5xx), the growing cooldown
 * and its single trial request, recovery of a restarted upstream, 503 when nothing is left, and active
 * health checks.
 */
import type { ServerResponse } from 'node:http';
import { proxy } from '../../index';
import type { UpstreamTarget } from '../../index';
import { expressVersions, ExpressFactory, listen, rawRequest, RunningApp } from '../helpers/app';
import { closedPort, echo, startUpstream, Upstream } from '../helpers/upstream';
import { sleep, waitFor } from '../helpers/wait';

type Proxy = ReturnType<typeof proxy>;

/** Waits until the target's cooldown is over. */
async function cooldownOver(target: UpstreamTarget): Promise<void> {
  await sleep(Math.max(0, target.ejectedUntil - Date.now()) + 15);
}

async function mount(express: ExpressFactory, p: Proxy): Promise<RunningApp> {
  const app = express();
  app.use('/api', p);
  app.get('/alive', (_req, res) => {
    res.send('ok');
  });
  return listen(app);
}

/** Sends `count` sequential GETs; returns the x-upstream of each reply with its status. */
async function sequential(port: number, count: number, path = '/api/x'): Promise<Array<{ status: number; upstream: string | undefined }>> {
  const replies = [];
  for (let i = 0; i < count; i++) {
    const res = await rawRequest(port, { path });
    replies.push({ status: res.status, upstream: res.headers['x-upstream'] as string | undefined });
  }
  return replies;
}

function eventsOf(p: Proxy) {
  const events: Array<{ type: 'eject' | 'recover'; href: string; cooldown?: number }> = [];
  p.pool.on('eject', (target, cooldown) => events.push({ type: 'eject', href: target.href, cooldown }));
  p.pool.on('recover', (target) => events.push({ type: 'recover', href: target.href }));
  return events;
}

describe.each(expressVersions)('passive health (%s)', (_label, express) => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const close of cleanup.splice(0).reverse()) await close();
  });

  it('ejects a refusing target after `failures` errors, serves everything from the healthy one, and takes the restarted target back after its cooldown', async () => {
    const deadPort = await closedPort();
    const deadUrl = `http://127.0.0.1:${deadPort}`;
    const healthy = await startUpstream({ name: 'healthy' });
    cleanup.push(() => healthy.close());
    const p = proxy({ targets: [deadUrl, healthy.url], health: { passive: { failures: 2, cooldown: 600 } } });
    cleanup.push(() => p.close());
    const events = eventsOf(p);
    const app = await mount(express, p);
    cleanup.push(() => app.close());
    const dead = p.pool.targets[0];

    // Every request succeeds: attempts on the refusing target are retried on the healthy one.
    const first = await sequential(app.port, 8);
    expect(first.every((r) => r.status === 200 && r.upstream === 'healthy')).toBe(true);
    expect(healthy.requests).toHaveLength(8);
    expect(dead.state).toBe('ejected');
    expect(events).toEqual([{ type: 'eject', href: deadUrl, cooldown: 600 }]);

    // The upstream comes back on the same port, but is left alone until its cooldown is over.
    const revived = await startUpstream({ name: 'revived', port: deadPort });
    cleanup.push(() => revived.close());
    expect(dead.ejectedUntil).toBeGreaterThan(Date.now());
    await sequential(app.port, 4);
    expect(revived.requests).toHaveLength(0);

    // After the cooldown a trial request reaches it; its success makes the target healthy again.
    await cooldownOver(dead);
    const afterCooldown = await sequential(app.port, 2);
    expect(afterCooldown.every((r) => r.status === 200)).toBe(true);
    expect(revived.requests).toHaveLength(1);
    expect(dead.state).toBe('healthy');
    expect(events.at(-1)).toEqual({ type: 'recover', href: deadUrl });

    // Back in the rotation: it gets its share of traffic again.
    const after = await sequential(app.port, 20);
    expect(after.filter((r) => r.upstream === 'revived')).toHaveLength(10);
    expect(after.filter((r) => r.upstream === 'healthy')).toHaveLength(10);
  });

  it('ejects a target that answers 5xx; after the cooldown exactly one trial goes through, and a failed trial doubles the cooldown', async () => {
    const failing = await startUpstream({
      name: 'failing',
      handler: (_req, res) => {
        // Slow enough for concurrent requests to overlap with the trial.
        setTimeout(() => {
          res.writeHead(500, { 'x-upstream': 'failing' });
          res.end('boom');
        }, 80);
      },
    });
    const good = await startUpstream({ name: 'good' });
    cleanup.push(() => failing.close(), () => good.close());
    // A cooldown long enough that ten sequential requests fit in it on a loaded machine (500 ms did not, under CI load).
    const p = proxy({ targets: [failing.url, good.url], health: { passive: { failures: 3, cooldown: 2000, maxCooldown: '1m' } } });
    cleanup.push(() => p.close());
    const events = eventsOf(p);
    const app = await mount(express, p);
    cleanup.push(() => app.close());
    const bad = p.pool.targets[0];

    // A 5xx is the upstream's answer: passed on (not retried), and counted against the target.
    const replies = await sequential(app.port, 6);
    expect(replies.filter((r) => r.status === 500)).toHaveLength(3);
    expect(failing.requests).toHaveLength(3);
    expect(bad.state).toBe('ejected');
    expect(events).toEqual([{ type: 'eject', href: failing.url, cooldown: 2000 }]);

    // Ejected: all traffic goes to the good target.
    const whileEjected = await sequential(app.port, 10);
    expect(whileEjected.every((r) => r.status === 200 && r.upstream === 'good')).toBe(true);
    expect(failing.requests).toHaveLength(3);

    // Cooldown over: of 10 concurrent requests exactly one (the trial) reaches the failing target.
    await cooldownOver(bad);
    const burst = await Promise.all(Array.from({ length: 10 }, () => rawRequest(app.port, { path: '/api/x' })));
    expect(failing.requests).toHaveLength(4);
    expect(burst.filter((r) => r.status === 500)).toHaveLength(1);
    expect(burst.filter((r) => r.status === 200)).toHaveLength(9);

    // The trial failed: ejected again, for twice as long.
    expect(bad.state).toBe('ejected');
    expect(events.map((e) => e.cooldown)).toEqual([2000, 4000]);
    expect(bad.ejectedUntil - Date.now()).toBeGreaterThan(2000);
  });

  it('a burst of concurrent failures from one outage ejects the target once, with the base cooldown', async () => {
    // A backend that fails under load: it holds its requests until the 10th arrives, then answers them all
    // 500 at once, so every failure belongs to a request sent before the ejection however slow the machine.
    // (A 2 s fallback answers whatever arrived, so a miscount fails the assertions below instead of hanging.)
    const held: ServerResponse[] = [];
    const answerAll = () => {
      for (const res of held.splice(0)) {
        res.writeHead(500, { 'x-upstream': 'failing' });
        res.end('boom');
      }
    };
    const fallback = setTimeout(answerAll, 2_000);
    cleanup.push(async () => clearTimeout(fallback));
    const failing = await startUpstream({
      name: 'failing',
      handler: (_req, res) => {
        held.push(res);
        if (held.length === 10) answerAll();
      },
    });
    const good = await startUpstream({ name: 'good' });
    cleanup.push(() => failing.close(), () => good.close());
    const p = proxy({ targets: [failing.url, good.url], health: { passive: { failures: 3, cooldown: 200, maxCooldown: '5m' } } });
    cleanup.push(() => p.close());
    const events = eventsOf(p);
    const app = await mount(express, p);
    cleanup.push(() => app.close());

    // 20 concurrent requests: 10 are in flight to the failing target when its first 500s come back.
    const replies = await Promise.all(Array.from({ length: 20 }, () => rawRequest(app.port, { path: '/api/x' })));
    expect(failing.requests).toHaveLength(10);
    expect(replies.filter((r) => r.status === 500)).toHaveLength(10);
    const bad = p.pool.targets[0];
    expect(bad.state).toBe('ejected');
    // The 4th..10th failures belong to requests sent before the ejection, not to failed trials:
    // one outage is one ejection, with the base cooldown (not 200 ms · 2^7).
    expect(events.filter((e) => e.type === 'eject').map((e) => e.cooldown)).toEqual([200]);
    expect(bad.ejectedUntil - Date.now()).toBeLessThanOrEqual(200);
  });

  it('all targets down → 503 problem+json with Retry-After, and the app keeps serving', async () => {
    const urls = [`http://127.0.0.1:${await closedPort()}`, `http://127.0.0.1:${await closedPort()}`];
    const p = proxy({ targets: urls, health: { passive: { failures: 1, cooldown: '5s' } } });
    cleanup.push(() => p.close());
    const app = await mount(express, p);
    cleanup.push(() => app.close());

    // The first request fails on both (each is ejected after its first failure).
    const first = await rawRequest(app.port, { path: '/api/x' });
    expect(first.status).toBe(502);
    expect(JSON.parse(first.body)).toMatchObject({ status: 502, code: 'ERR_UPSTREAM_UNAVAILABLE' });
    expect(p.pool.targets.map((t) => t.state)).toEqual(['ejected', 'ejected']);

    const res = await rawRequest(app.port, { path: '/api/x' });
    expect(res.status).toBe(503);
    expect(res.headers['content-type']).toContain('application/problem+json');
    const body = JSON.parse(res.body);
    expect(body).toMatchObject({ status: 503, code: 'ERR_NO_HEALTHY_UPSTREAM', requestId: res.headers['x-request-id'] });
    const retryAfter = Number(res.headers['retry-after']);
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter).toBeGreaterThanOrEqual(4);
    expect(retryAfter).toBeLessThanOrEqual(5);

    expect((await rawRequest(app.port, { path: '/alive' })).status).toBe(200);
  });

  it('passive: false never ejects; a refusing target is just retried around', async () => {
    const deadUrl = `http://127.0.0.1:${await closedPort()}`;
    const healthy = await startUpstream({ name: 'healthy' });
    cleanup.push(() => healthy.close());
    const p = proxy({ targets: [deadUrl, healthy.url], health: { passive: false } });
    cleanup.push(() => p.close());
    const app = await mount(express, p);
    cleanup.push(() => app.close());
    const replies = await sequential(app.port, 10);
    expect(replies.every((r) => r.status === 200 && r.upstream === 'healthy')).toBe(true);
    expect(p.pool.targets[0].state).toBe('healthy');
  });
});

describe.each(expressVersions)('active health checks (%s)', (_label, express) => {
  let flaky: Upstream;
  let steady: Upstream;
  let flakyHealthy = false;
  let p: Proxy;
  let app: RunningApp;

  beforeAll(async () => {
    const answerHealth = (name: string, isHealthy: () => boolean) => {
      const fallback = echo(name);
      return (req: Parameters<typeof fallback>[0], res: Parameters<typeof fallback>[1], body: Buffer) => {
        if (req.url === '/health') {
          res.writeHead(isHealthy() ? 200 : 503);
          res.end();
        } else fallback(req, res, body);
      };
    };
    flaky = await startUpstream({ name: 'flaky', handler: answerHealth('flaky', () => flakyHealthy) });
    steady = await startUpstream({ name: 'steady', handler: answerHealth('steady', () => true) });
    p = proxy({ targets: [flaky.url, steady.url], health: { active: { path: '/health', interval: 100 } } });
    app = await mount(express, p);
  });
  afterAll(async () => {
    await p.close();
    await app.close();
    await Promise.all([flaky.close(), steady.close()]);
  });

  const trafficTo = (upstream: Upstream) => upstream.requests.filter((r) => r.url !== '/health').length;
  const checksOf = (upstream: Upstream) => upstream.requests.filter((r) => r.method === 'GET' && r.url === '/health').length;

  it('a target whose /health answers 503 gets no traffic, then gets traffic again once /health answers 200', async () => {
    await waitFor(() => p.pool.targets[0].activeDown);
    const down = await sequential(app.port, 10);
    expect(down.every((r) => r.status === 200 && r.upstream === 'steady')).toBe(true);
    expect(trafficTo(flaky)).toBe(0);
    // Passive state is untouched: the target is out only because of the check.
    expect(p.pool.targets[0].state).toBe('healthy');

    flakyHealthy = true;
    await waitFor(() => !p.pool.targets[0].activeDown);
    const up = await sequential(app.port, 10);
    expect(up.filter((r) => r.upstream === 'flaky')).toHaveLength(5);
    expect(trafficTo(flaky)).toBe(5);
  });

  it('checks each target repeatedly at the interval, on a fresh connection each time', async () => {
    const checks = checksOf(steady);
    const connections = steady.connections;
    // Two more checks at a 100 ms interval; waited for rather than slept on, so a loaded machine cannot fail it.
    await waitFor(() => checksOf(steady) - checks >= 2, 3_000);
    const more = checksOf(steady) - checks;
    expect(more).toBeGreaterThanOrEqual(2);
    expect(steady.connections - connections).toBeGreaterThanOrEqual(more);
  });

  it('close() stops the checks', async () => {
    const lonely = await startUpstream({ name: 'lonely' });
    try {
      const own = proxy({ target: lonely.url, health: { active: { path: '/health', interval: 100 } } });
      const checks = () => lonely.requests.filter((r) => r.url === '/health').length;
      await waitFor(() => checks() >= 2);
      await own.close();
      await sleep(50); // a check already on the wire may still land
      const afterClose = checks();
      await sleep(400);
      expect(checks()).toBe(afterClose);
    } finally {
      await lonely.close();
    }
  });
});
