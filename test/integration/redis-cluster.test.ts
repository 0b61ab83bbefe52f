/**
 * Shared state on a real Redis Cluster (three masters, three replicas, on loopback ports, started for this file)
 * and through Sentinel: the rate limit stays exact across two gateway instances, through a manual failover and
 * through a master killed (the outage policy answers while the cluster promotes its replica); the cache's keys
 * share one slot per cache, so its scripts and purges work on a cluster. Skipped with a message where
 * redis-server is absent (CI installs it).
 */
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import Redis from 'ioredis';
import request from 'supertest';
import type { GatewayOptions } from '../../index';
import { GatewayApp, gatewayApp } from '../helpers/gateway-app';
import { recordingLogger } from '../helpers/logs';
import { expectProblem } from '../helpers/problem';
import { describeWithRedis } from '../helpers/redis';
import { closedPort, startUpstream, Upstream } from '../helpers/upstream';
import { sleep } from '../helpers/wait';

jest.setTimeout(30_000);

interface Node {
  port: number;
  url: string;
  process: ChildProcess | undefined;
}

const children = new Set<ChildProcess>();
let dir: string;

function startServer(args: string[]): ChildProcess {
  const child = spawn('redis-server', [...args, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--dir', dir], { stdio: process.env.DEBUG_REDIS ? 'inherit' : 'ignore' });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

async function kill(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** Resolves once something accepts connections on the port (probing with ioredis leaves a timer behind on a refusal). */
async function portOpen(port: number, child: ChildProcess, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server on ${port} exited with ${child.exitCode}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** A command on one node, on a connection of its own (closed again). */
async function on<T = unknown>(port: number, ...command: [string, ...Array<string | number>]): Promise<T> {
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await client.connect();
    return (await client.call(...command)) as T;
  } finally {
    client.disconnect();
  }
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** A cluster node on free ports; tried again on other ports when it cannot bind (another process took one meanwhile). */
async function startNode(): Promise<Node> {
  for (let attempt = 1; ; attempt++) {
    const [port, bus] = [await closedPort(), await closedPort()];
    const child = startServer(['--port', String(port), '--cluster-enabled', 'yes', '--cluster-port', String(bus), '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '1000']);
    try {
      await portOpen(port, child);
      return { port, url: `redis://127.0.0.1:${port}`, process: child };
    } catch (err) {
      await kill(child);
      if (attempt === 3) throw err;
    }
  }
}

/** Six cluster nodes; `redis-cli --cluster create` makes three masters with a replica each. */
async function startCluster(): Promise<Node[]> {
  const nodes = await Promise.all(Array.from({ length: 6 }, () => startNode()));
  const created = spawnSync('redis-cli', ['--cluster', 'create', ...nodes.map((node) => `127.0.0.1:${node.port}`), '--cluster-replicas', '1', '--cluster-yes'], { encoding: 'utf8', timeout: 15_000 });
  if (created.status !== 0) throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`);
  for (const node of nodes) await until(async () => /cluster_state:ok/.test(await on<string>(node.port, 'CLUSTER', 'INFO')), 10_000, `cluster ok on ${node.port}`);
  // Every replica in sync, so a failover loses nothing written before it.
  await until(async () => (await Promise.all(nodes.map(async (node) => /role:slave/.test(await on<string>(node.port, 'INFO', 'replication'))))).filter(Boolean).length === 3, 10_000, 'three replicas');
  await until(
    async () => (await Promise.all(nodes.map(async (node) => await on<string>(node.port, 'INFO', 'replication')))).every((info) => !/role:slave/.test(info) || /master_link_status:up/.test(info)),
    10_000,
    'replicas linked',
  );
  return nodes;
}

/** The master holding `key` now, and its replica (waiting until the node asked knows both). */
async function ownerOf(nodes: Node[], key: string): Promise<{ master: Node; replica: Node }> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await ownerNow(nodes, key);
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(100);
    }
  }
}

async function ownerNow(nodes: Node[], key: string): Promise<{ master: Node; replica: Node }> {
  const live = nodes.filter((node) => node.process && node.process.exitCode === null && node.process.signalCode === null);
  const slot = await on<number>(live[0].port, 'CLUSTER', 'KEYSLOT', key);
  const slots = await on<Array<[number, number, ...Array<[string, number, string]>]>>(live[0].port, 'CLUSTER', 'SLOTS');
  const range = slots.find(([from, to]) => slot >= from && slot <= to);
  if (!range) throw new Error(`no node serves slot ${slot}`);
  const [, , masterAddress, replicaAddress] = range;
  const find = (address: [string, number, string] | undefined) => nodes.find((node) => node.port === Number(address?.[1]));
  const master = find(masterAddress);
  const replica = find(replicaAddress);
  if (!master || !replica) throw new Error(`slot ${slot} has no master with a replica: ${JSON.stringify(range)}`);
  return { master, replica };
}

/** The counter key of the route's limit for 127.0.0.1 (as rateLimit names it: frontdoor:rl:<name>:ip:<address>). */
const COUNTER = 'frontdoor:rl:orders:ip:127.0.0.1';

describeWithRedis('shared state on a Redis Cluster (3 masters, 3 replicas)', () => {
  let nodes: Node[];
  let upstream: Upstream;
  const apps: GatewayApp[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'frontdoor-cluster-'));
    [nodes, upstream] = await Promise.all([startCluster(), startUpstream({ name: 'orders' })]);
  });
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.close()));
  });
  afterAll(async () => {
    await Promise.all([...children].map((child) => kill(child)));
    await upstream?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Two gateway instances with their own cluster connections (different seed nodes), one limit of 10 per minute. */
  async function twoInstances(): Promise<[GatewayApp, GatewayApp]> {
    const route = (seed: string) => ({ path: '/api/orders', upstream: upstream.url, rateLimit: { name: 'orders', limit: 10, window: '1m', redis: { cluster: [seed] }, onStoreError: 'deny' as const } });
    const a = await gatewayApp({ routes: [route(nodes[0].url)] });
    const b = await gatewayApp({ routes: [route(nodes[1].url)] });
    apps.push(a, b);
    return [a, b];
  }

  const statuses = async (app: GatewayApp, count: number) => {
    const list: number[] = [];
    for (let i = 0; i < count; i++) list.push((await request(app.url).get('/api/orders/1')).status);
    return list;
  };

  it('counts one budget across two instances, exactly, and keeps it through a manual failover', async () => {
    await on(nodes[0].port, 'DEL', COUNTER).catch(() => undefined);
    const [a, b] = await twoInstances();
    expect(await statuses(a, 3)).toEqual([200, 200, 200]);
    expect(await statuses(b, 3)).toEqual([200, 200, 200]);

    const { replica } = await ownerOf(nodes, COUNTER);
    await on(replica.port, 'CLUSTER', 'FAILOVER');
    await until(async () => (await ownerNow(nodes, COUNTER)).master.port === replica.port, 10_000, 'replica promoted');

    expect(await statuses(a, 2)).toEqual([200, 200]);
    expect(await statuses(b, 2)).toEqual([200, 200]);
    const refused = await request(a.url).get('/api/orders/1');
    expectProblem(refused, 429, 'ERR_RATE_LIMITED');
    expect((await request(b.url).get('/api/orders/1')).status).toBe(429);
    expect(Number(await on(replica.port, 'GET', COUNTER))).toBe(12);
  });

  it('applies the outage policy while a killed master is replaced, then counts on from what was replicated', async () => {
    // A counter of its own: the previous test's is full.
    const key = 'frontdoor:rl:failover:ip:127.0.0.1';
    const logger = recordingLogger();
    const route = (seed: string) => ({ path: '/api/orders', upstream: upstream.url, rateLimit: { name: 'failover', limit: 10, window: '1m', redis: { cluster: [seed] }, onStoreError: 'deny' as const, storeTimeout: 300, logger } });
    const { master, replica } = await ownerOf(nodes, key);
    // Seeds that survive the kill.
    const seeds = nodes.filter((node) => node !== master).map((node) => node.url);
    const first = await gatewayApp({ routes: [route(seeds[0])] });
    const second = await gatewayApp({ routes: [route(seeds[1])] });
    apps.push(first, second);

    expect(await statuses(first, 3)).toEqual([200, 200, 200]);
    expect(await statuses(second, 3)).toEqual([200, 200, 200]);
    // Replication is asynchronous: wait until the replica has the six, as a real failover could lose the last writes.
    expect(await on(master.port, 'WAIT', 1, 2000)).toBe(1);
    await kill(master.process);
    master.process = undefined;

    // While the cluster promotes the replica: 503 (onStoreError: 'deny'), never an uncounted 200.
    const untilCounted = async (app: GatewayApp) => {
      const answers: number[] = [];
      const deadline = Date.now() + 15_000;
      for (;;) {
        const res = await request(app.url).get('/api/orders/1');
        answers.push(res.status);
        if (res.status !== 503) return answers;
        expectProblem(res, 503, 'ERR_RATE_LIMIT_UNAVAILABLE');
        if (Date.now() > deadline) throw new Error(`no answer but 503 for 15 s: ${answers.length} requests`);
        await sleep(100);
      }
    };
    const during = await untilCounted(first);
    expect(during.at(-1)).toBe(200);
    expect(during.filter((status) => status === 503).length).toBeGreaterThan(0);
    expect(/role:master/.test(await on<string>(replica.port, 'INFO', 'replication'))).toBe(true);
    expect((await untilCounted(second)).at(-1)).toBe(200);

    // 8 counted so far: two more, then both refuse.
    expect(await statuses(second, 2)).toEqual([200, 200]);
    expect((await request(first.url).get('/api/orders/1')).status).toBe(429);
    expect((await request(second.url).get('/api/orders/1')).status).toBe(429);
    expect(Number(await on(replica.port, 'GET', key))).toBe(12);
    // The outage was told to the operator, and so was its end.
    expect(logger.warnings.some((line) => /rate limiting \(frontdoor:rl:failover:\) cannot reach Redis/.test(line))).toBe(true);
    expect(logger.warnings.at(-1)).toMatch(/counting in Redis again/);
  });

  it("keeps each cache's keys in one slot: an entry filled through one instance is a hit through the other, and a purge by path prefix or tag empties both", async () => {
    let served = 0;
    const catalog = await startUpstream({
      name: 'catalog',
      handler: (req, res) => {
        served++;
        res.setHeader('cache-control', 'max-age=60');
        res.setHeader('cache-tag', 'products');
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ url: req.url }));
      },
    });
    try {
      const options = (seed: string): GatewayOptions => ({ routes: [{ path: '/api/catalog', upstream: catalog.url, cache: { ttl: '1m', name: 'catalog', redis: { cluster: [seed] } } }] });
      // Seeds still running (the previous test killed a master).
      const [first, second] = nodes.filter((node) => node.process);
      const a = await gatewayApp(options(first.url));
      const b = await gatewayApp(options(second.url));
      apps.push(a, b);
      // One Host for both instances: the host is part of the cache key.
      const xcache = async (app: GatewayApp, path: string) => String((await request(app.url).get(path).set('Host', 'catalog.example')).headers['x-cache']);

      expect(await xcache(a, '/api/catalog/1')).toBe('MISS');
      expect(await xcache(a, '/api/catalog/2')).toBe('MISS');
      expect(await xcache(b, '/api/catalog/1')).toBe('HIT');
      expect(await xcache(b, '/api/catalog/2')).toBe('HIT');
      expect(served).toBe(2);

      // Prefix purge: the path sets are found by SCAN on the node owning the cache's slot.
      expect(await a.gw.cache.invalidate('/api/catalog')).toBe(2);
      expect(await xcache(b, '/api/catalog/1')).toBe('MISS');
      expect(await xcache(a, '/api/catalog/1')).toBe('HIT');
      expect(await b.gw.cache.invalidateTag('products')).toBe(1);
      expect(await xcache(a, '/api/catalog/1')).toBe('MISS');
      expect(served).toBe(4);
    } finally {
      await Promise.all(apps.splice(0).map((app) => app.close()));
      await catalog.close();
    }
  });
});

describeWithRedis('shared state through Redis Sentinel', () => {
  let master: Node;
  let sentinelPort: number;
  let upstream: Upstream;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'frontdoor-sentinel-'));
    const port = await closedPort();
    master = { port, url: `redis://127.0.0.1:${port}`, process: startServer(['--port', String(port)]) };
    sentinelPort = await closedPort();
    const config = path.join(dir, 'sentinel.conf');
    writeFileSync(config, `port ${sentinelPort}\nbind 127.0.0.1\nprotected-mode no\nsentinel monitor frontdoor 127.0.0.1 ${port} 1\n`);
    const sentinel = spawn('redis-server', [config, '--sentinel'], { stdio: 'ignore' });
    children.add(sentinel);
    sentinel.once('exit', () => children.delete(sentinel));
    upstream = await startUpstream({ name: 'orders' });
    await Promise.all([portOpen(port, master.process as ChildProcess), portOpen(sentinelPort, sentinel)]);
    await until(async () => Array.isArray(await on(sentinelPort, 'SENTINEL', 'get-master-addr-by-name', 'frontdoor')), 5000, 'sentinel up');
  });
  afterAll(async () => {
    await Promise.all([...children].map((child) => kill(child)));
    await upstream?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('finds the master through the sentinels and counts there', async () => {
    const app = await gatewayApp({ routes: [{ path: '/api/orders', upstream: upstream.url, rateLimit: { name: 'sentinel', limit: 2, window: '1m', redis: { sentinels: [`127.0.0.1:${sentinelPort}`], name: 'frontdoor' } } }] });
    try {
      expect((await request(app.url).get('/api/orders/1')).status).toBe(200);
      expect((await request(app.url).get('/api/orders/1')).status).toBe(200);
      expectProblem(await request(app.url).get('/api/orders/1'), 429, 'ERR_RATE_LIMITED');
      expect(Number(await on(master.port, 'GET', 'frontdoor:rl:sentinel:ip:127.0.0.1'))).toBe(3);
    } finally {
      await app.close();
    }
  });
});
