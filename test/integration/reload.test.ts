/**
 * Hot reload (configuration-as-code issue): gw.reload() and gateway.fromFile(…, { watch: true }) swap the
 * route table without a restart. Requests in flight finish on the old table, what only the old table held is
 * closed once they did, parts whose options did not change survive (rate-limit counters, pools and their
 * health), an invalid table keeps the old one serving, and the route's policies hold on the new table.
 */
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigError, gateway } from '../../index';
import type { Gateway, GatewayOptions } from '../../index';
import { listen, rawRequest, RunningApp } from '../helpers/app';
import { recordingLogger } from '../helpers/logs';
import { signHmac } from '../helpers/tokens';
import { startSlowUpstream, startUpstream, Upstream } from '../helpers/upstream';
import express from 'express';

const SECRET = 'reload-test-secret-that-is-long-enough';

/** Polls an (async) condition every 20 ms until it holds or `timeoutMs` passed. */
async function until(condition: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition()) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
}

/** Open TCP connections to an upstream (the gateway's pooled keep-alive sockets). */
function openConnections(upstream: Upstream): Promise<number> {
  return new Promise((resolve, reject) => upstream.server.getConnections((err, count) => (err ? reject(err) : resolve(count))));
}

async function serve(gw: Gateway): Promise<RunningApp> {
  const app = express();
  app.use(gw);
  app.use((_req, res) => {
    res.status(404).json({ from: 'app' });
  });
  return listen(app);
}

describe('gw.reload()', () => {
  let blue: Upstream;
  let green: Upstream;
  beforeAll(async () => {
    blue = await startUpstream({ name: 'blue' });
    green = await startUpstream({ name: 'green' });
  });
  afterAll(async () => {
    await blue.close();
    await green.close();
  });

  it('keeps serving across three reloads under a loop of requests, then closes the old pools’ sockets', async () => {
    const tables: GatewayOptions[] = [
      { routes: [{ path: '/api', upstream: blue.url }] },
      { routes: [{ path: '/api', upstream: green.url }] },
      { routes: [{ path: '/api', upstream: blue.url }, { path: '/extra', upstream: green.url }] },
      { routes: [{ path: '/api', upstream: green.url }] },
    ];
    const gw = gateway(tables[0]);
    const app = await serve(gw);
    try {
      // Requests keep flowing (four clients) while the table is swapped three times, each swap after a number of
      // answers rather than a time, so a slow machine changes how long it takes, not what is checked.
      let stop = false;
      const statuses: number[] = [];
      const served = new Set<string>();
      const loop = async () => {
        while (!stop) {
          const res = await rawRequest(app.port, { path: '/api/orders' });
          statuses.push(res.status);
          served.add(String(res.headers['x-upstream']));
        }
      };
      const answered = (count: number) => until(() => statuses.length >= count, 10_000);
      const clients = [loop(), loop(), loop(), loop()];
      let reloads = 0;
      for (const next of tables.slice(1)) {
        await answered(10 * ++reloads);
        await gw.reload(next, { drainTimeout: 2_000 });
      }
      await answered(statuses.length + 10);
      stop = true;
      await Promise.all(clients);
      expect(statuses.length).toBeGreaterThanOrEqual(40);
      expect(statuses.filter((status) => status !== 200)).toEqual([]);
      expect([...served].sort()).toEqual(['blue', 'green']);
      // The last table uses green only: blue's pool (and its keep-alive sockets) was closed once drained.
      await until(async () => (await openConnections(blue)) === 0, 3_000);
      expect(await openConnections(blue)).toBe(0);
      expect(await openConnections(green)).toBeGreaterThan(0);
    } finally {
      await app.close();
      await gw.close();
    }
  });

  it('lets a request in flight finish on the old table', async () => {
    const slow = await startSlowUpstream('slow', 300);
    const gw = gateway({ routes: [{ path: '/api', upstream: slow.url }] });
    const app = await serve(gw);
    try {
      const inFlight = rawRequest(app.port, { path: '/api/slow' });
      await until(() => slow.connections > 0, 2_000);
      await gw.reload({ routes: [{ path: '/api', upstream: blue.url }] });
      const res = await inFlight;
      expect(res.status).toBe(200);
      expect(res.headers['x-upstream']).toBe('slow');
      expect((await rawRequest(app.port, { path: '/api/now' })).headers['x-upstream']).toBe('blue');
    } finally {
      await app.close();
      await gw.close();
      await slow.close();
    }
  });

  it('keeps the old table serving when the new one is invalid, and says why', async () => {
    const gw = gateway({ routes: [{ path: '/api', upstream: blue.url }] });
    const app = await serve(gw);
    try {
      await expect(gw.reload({ routes: [{ path: '/api', upstream: 'blue:80' }, { path: '/b', upstrem: green.url } as never] })).rejects.toThrow(ConfigError);
      expect(gw.lastReloadError?.issues.map((issue) => issue.path)).toEqual(expect.arrayContaining(['routes[1].upstrem']));
      expect((await rawRequest(app.port, { path: '/api/x' })).headers['x-upstream']).toBe('blue');
      await gw.reload({ routes: [{ path: '/api', upstream: green.url }] });
      expect(gw.lastReloadError).toBeUndefined();
    } finally {
      await app.close();
      await gw.close();
    }
  });

  it('keeps a rate-limit counter through a reload that did not change it', async () => {
    const limited = { path: '/api', upstream: blue.url, rateLimit: { limit: 3, window: '1m' } };
    const gw = gateway({ routes: [limited] });
    const app = await serve(gw);
    try {
      expect((await rawRequest(app.port, { path: '/api/1' })).status).toBe(200);
      expect((await rawRequest(app.port, { path: '/api/2' })).status).toBe(200);
      await gw.reload({ routes: [limited, { path: '/other', upstream: green.url }] });
      expect((await rawRequest(app.port, { path: '/api/3' })).status).toBe(200);
      expect((await rawRequest(app.port, { path: '/api/4' })).status).toBe(429);
      // A changed limit is a new counter.
      await gw.reload({ routes: [{ ...limited, rateLimit: { limit: 5, window: '1m' } }] });
      expect((await rawRequest(app.port, { path: '/api/5' })).status).toBe(200);
    } finally {
      await app.close();
      await gw.close();
    }
  });

  it('applies the new table’s policies at once: a route that gains auth refuses requests without a token', async () => {
    const gw = gateway({ routes: [{ path: '/api', upstream: blue.url }] });
    const app = await serve(gw);
    try {
      expect((await rawRequest(app.port, { path: '/api/open' })).status).toBe(200);
      await gw.reload({ routes: [{ path: '/api', upstream: blue.url, auth: { jwt: { secret: SECRET, algorithms: ['HS256'] } } }] });
      expect((await rawRequest(app.port, { path: '/api/open' })).status).toBe(401);
      const token = await signHmac({ sub: 'alice' }, SECRET);
      expect((await rawRequest(app.port, { path: '/api/open', headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
      // A route removed by the reload falls through to the app.
      await gw.reload({ routes: [{ path: '/elsewhere', upstream: blue.url }] });
      expect((await rawRequest(app.port, { path: '/api/open' })).status).toBe(404);
    } finally {
      await app.close();
      await gw.close();
    }
  });
});

describe('gw.reload() of shared parts whose options changed', () => {
  let blue: Upstream;
  let green: Upstream;
  beforeAll(async () => {
    blue = await startUpstream({ name: 'blue' });
    green = await startUpstream({ name: 'green' });
  });
  afterAll(async () => {
    await blue.close();
    await green.close();
  });

  it('rotates a named auth scheme’s secret: tokens of the old secret are refused after the reload', async () => {
    const OLD = 'the-leaked-secret-that-is-long-enough-1';
    const NEW = 'the-rotated-secret-that-is-long-enough-2';
    const table = (secret: string): GatewayOptions => ({ authSchemes: { partners: { jwt: { secret, algorithms: ['HS256'] } } }, routes: [{ path: '/api', upstream: blue.url, auth: 'partners' }] });
    const gw = gateway(table(OLD));
    const app = await serve(gw);
    try {
      const oldToken = await signHmac({ sub: 'p' }, OLD);
      const newToken = await signHmac({ sub: 'p' }, NEW);
      expect((await rawRequest(app.port, { path: '/api/1', headers: { authorization: `Bearer ${oldToken}` } })).status).toBe(200);
      await gw.reload(table(NEW));
      expect((await rawRequest(app.port, { path: '/api/2', headers: { authorization: `Bearer ${oldToken}` } })).status).toBe(401);
      expect((await rawRequest(app.port, { path: '/api/3', headers: { authorization: `Bearer ${newToken}` } })).status).toBe(200);
    } finally {
      await app.close();
      await gw.close();
    }
  });

  it('moves a named upstream to its new targets', async () => {
    const table = (url: string): GatewayOptions => ({ upstreams: { orders: { targets: [url] } }, routes: [{ path: '/api', upstream: 'orders' }] });
    const gw = gateway(table(blue.url));
    const app = await serve(gw);
    try {
      expect((await rawRequest(app.port, { path: '/api/1' })).headers['x-upstream']).toBe('blue');
      await gw.reload(table(green.url));
      expect((await rawRequest(app.port, { path: '/api/2' })).headers['x-upstream']).toBe('green');
    } finally {
      await app.close();
      await gw.close();
    }
  });
});

describe('gateway.fromFile()', () => {
  let dir: string;
  let blue: Upstream;
  let green: Upstream;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'frontdoor-reload-'));
    blue = await startUpstream({ name: 'blue' });
    green = await startUpstream({ name: 'green' });
  });
  afterAll(async () => {
    await blue.close();
    await green.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Writes as editors do: a new file renamed over the old one. */
  async function save(file: string, text: string): Promise<void> {
    await writeFile(`${file}.tmp`, text);
    await rename(`${file}.tmp`, file);
  }

  it('reports every mistake of a file with its line and column, and never prints a secret from the environment', async () => {
    const file = path.join(dir, 'broken.yaml');
    await save(
      file,
      [
        'authSchemes:',
        '  partners:',
        '    jwt:',
        '      secret: ${env:RELOAD_JWT_SECRET}',
        '      algorithms: [HS256]',
        '      audence: shop',
        'routes:',
        '  - path: /api/orders',
        '    upstream:',
        '      target: ${ORDERS_URL}',
        '      timeout: 10',
        '  - path: /b',
        '    upstrem: http://127.0.0.1:9',
        '  - path: /c',
        '    upstream: orders:80',
        '',
      ].join('\n'),
    );
    const env = { RELOAD_JWT_SECRET: 'do-not-print-this-secret', ORDERS_URL: blue.url };
    const error = await gateway.fromFile(file, { env }).then(
      () => undefined,
      (err: unknown) => err as ConfigError,
    );
    expect(error).toBeInstanceOf(ConfigError);
    const where = Object.fromEntries(error!.issues.map((issue) => [issue.path, `${issue.line}:${issue.column}`]));
    expect(where).toEqual({ 'authSchemes.partners.jwt.audence': '6:16', 'routes[0].upstream.timeout': '11:16', 'routes[1].upstrem': '13:14' });
    expect(error!.message).toContain(`${file}:13:14: received an unsupported option "routes[1].upstrem". Did you mean "routes[1].upstream"?`);
    expect(error!.message).toContain(`${file}:11:16: "routes[0].upstream.timeout" needs a unit`);
    expect(error!.message).not.toContain('do-not-print-this-secret');

    // Once the schema is satisfied, the gateway's own checks are located too.
    await save(file, ['routes:', '  - path: /c', '    upstream: orders:80', ''].join('\n'));
    const located = await gateway.fromFile(file, { env }).catch((err: ConfigError) => err);
    expect((located as ConfigError).issues[0]).toMatchObject({ path: 'routes[0].upstream.target', line: 3, column: 15 });
    expect((located as ConfigError).message).toContain('orders:80');
  });

  it('takes a JSON file naming its schema for editors, and locates twin routes', async () => {
    const file = path.join(dir, 'gateway.json');
    await save(file, JSON.stringify({ $schema: './node_modules/frontdoor-gateway/dist/schema.json', routes: [{ path: '/a', upstream: blue.url }] }, null, 2));
    const gw = await gateway.fromFile(file);
    await gw.close();
    await save(file, ['routes:', '  - path: /a', `    upstream: ${blue.url}`, '  - path: /a/', `    upstream: ${blue.url}`, ''].join('\n'));
    const twins = (await gateway.fromFile(file).catch((err: ConfigError) => err)) as ConfigError;
    expect(twins.issues[0]).toMatchObject({ path: 'routes[1].path', line: 4 });
  });

  it('names every missing environment variable, and takes ${env:NAME:-default}', async () => {
    const file = path.join(dir, 'env.yaml');
    await save(file, ['routes:', '  - path: /a', '    upstream: ${env:FD_MISSING_ONE}', '  - path: /b', '    upstream: ${FD_MISSING_TWO}', `  - path: /c`, `    upstream: \${env:FD_MISSING_THREE:-${blue.url}}`, ''].join('\n'));
    const error = (await gateway.fromFile(file, { env: {} }).catch((err: ConfigError) => err)) as ConfigError;
    expect(error.message).toContain('FD_MISSING_ONE');
    expect(error.message).toContain('FD_MISSING_TWO');
    expect(error.message).not.toContain('FD_MISSING_THREE');
    const gw = await gateway.fromFile(file, { env: { FD_MISSING_ONE: blue.url, FD_MISSING_TWO: blue.url } });
    const app = await serve(gw);
    try {
      expect((await rawRequest(app.port, { path: '/c/1' })).headers['x-upstream']).toBe('blue');
    } finally {
      await app.close();
      await gw.close();
    }
  });

  it('with watch, applies a changed file, keeps serving on a broken one, and makes one reload of a burst of writes', async () => {
    const file = path.join(dir, 'gateway.yaml');
    const table = (url: string) => ['routes:', '  - path: /api', `    upstream: ${url}`, ''].join('\n');
    await save(file, table(blue.url));
    const logger = recordingLogger();
    const gw = await gateway.fromFile(file, { watch: true, debounce: 50, logger });
    const app = await serve(gw);
    try {
      expect((await rawRequest(app.port, { path: '/api/1' })).headers['x-upstream']).toBe('blue');

      await save(file, table(green.url));
      await until(async () => (await rawRequest(app.port, { path: '/api/2' })).headers['x-upstream'] === 'green', 3_000);
      expect(gw.reloads).toBe(1);

      await save(file, 'routes:\n  - path: /api\n    upstrem: nowhere\n');
      await until(() => gw.lastReloadError !== undefined, 3_000);
      expect(gw.lastReloadError?.issues[0]).toMatchObject({ path: 'routes[0].upstrem', line: 3 });
      expect((await rawRequest(app.port, { path: '/api/3' })).headers['x-upstream']).toBe('green');
      expect(logger.errors.join('\n')).toContain('was not applied; the previous configuration keeps serving');

      // Five quick writes: one reload once they stop.
      const before = gw.reloads;
      for (let i = 0; i < 5; i++) await save(file, table(i % 2 === 0 ? blue.url : green.url) + `# write ${i}\n`);
      await until(() => gw.reloads > before, 3_000);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(gw.reloads).toBe(before + 1);
      expect(gw.lastReloadError).toBeUndefined();
      expect((await rawRequest(app.port, { path: '/api/4' })).headers['x-upstream']).toBe('blue');
    } finally {
      await app.close();
      await gw.close();
    }
  });
});
