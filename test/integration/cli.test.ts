/**
 * The `frontdoor` CLI through child processes, as CI runs it: `node bin/frontdoor.js …` on the built dist
 * (npm test's pretest builds it). Exit codes, what goes to stdout and to stderr, file:line:column for every
 * mistake, environment references, the route table as text and JSON, and no secret in any output.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startUpstream } from '../helpers/upstream';

const root = path.join(__dirname, '..', '..');
const bin = path.join(root, 'bin', 'frontdoor.js');
const SECRET = 'cli-test-secret-value-that-is-32-bytes-long';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI with only the variables given (plus PATH), so the test's own environment cannot leak in. */
function frontdoor(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 10_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
  });
}

let dir: string;
const file = (name: string) => path.join(dir, name);

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'frontdoor-cli-'));
  await writeFile(
    file('valid.yaml'),
    `# yaml-language-server: $schema=../node_modules/frontdoor-gateway/dist/schema.json
upstreams:
  orders:
    targets: ['http://10.0.0.5:4001', { url: 'http://10.0.0.6:4001', weight: 5 }]
authSchemes:
  partners:
    jwt: { secret: '\${env:JWT_SECRET}', algorithms: [HS256] }
routes:
  - path: /api/orders
    name: orders
    methods: [GET, POST]
    host: api.example.com
    upstream: orders
    auth: partners
    authorize: { scopes: ['orders:read'] }
    rateLimit: { limit: 100, window: 1m }
  - path: /api/users
    upstream: 'http://127.0.0.1:4002/\${env:USERS_PATH:-users}'
    auth: { apiKey: { keys: { 'an-api-key-long-enough-0001': { id: acme }, 'an-api-key-long-enough-0002': { id: beta } } } }
    rateLimit: { key: consumer, limit: 10, window: 10s }
    headers: { request: { set: { X-Service-Token: '\${env:SERVICE_TOKEN}' } } }
`,
  );
  // Line numbers matter: the mistakes are on lines 4, 6 and 9.
  await writeFile(
    file('mistakes.yaml'),
    `routes:
  - path: /api/orders
    upstream:
      timeout: 10
      targets: ['http://127.0.0.1:4001']
  - path: /api/users
    upstrem: 'http://127.0.0.1:4002'
  - path: /x
    methods: GET
    upstream: 'http://127.0.0.1:4003'
`,
  );
  await writeFile(file('valid.json'), JSON.stringify({ routes: [{ path: '/a', upstream: 'http://127.0.0.1:4001' }] }));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const env = { JWT_SECRET: SECRET, SERVICE_TOKEN: 'service-token-from-the-environment' };

describe('frontdoor check', () => {
  it('exits 0 with one "ok" line on stdout and nothing on stderr for a valid YAML file', async () => {
    const run = await frontdoor(['check', file('valid.yaml')], env);
    expect(run).toEqual({ code: 0, stdout: `ok: ${file('valid.yaml')} is valid (2 routes)\n`, stderr: '' });
  });

  it('reads JSON files too', async () => {
    const run = await frontdoor(['check', file('valid.json')]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/is valid \(1 route\)/);
  });

  it('exits 1 with every mistake on stderr, each as file:line:column, in file order, and nothing on stdout', async () => {
    const run = await frontdoor(['check', file('mistakes.yaml')]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    const lines = run.stderr.trim().split('\n');
    expect(lines).toEqual([
      expect.stringMatching(new RegExp(`^${escape(file('mistakes.yaml'))}:4:\\d+: "routes\\[0\\]\\.upstream\\.timeout" needs a unit in a config file`)),
      expect.stringMatching(new RegExp(`^${escape(file('mistakes.yaml'))}:7:\\d+: .*"routes\\[1\\]\\.upstrem"\\. Did you mean "routes\\[1\\]\\.upstream"\\?`)),
      expect.stringMatching(new RegExp(`^${escape(file('mistakes.yaml'))}:9:\\d+: "routes\\[2\\]\\.methods" must be a list of HTTP methods`)),
      `frontdoor: ${file('mistakes.yaml')} is not valid: 3 mistakes.`,
    ]);
  });

  it('finds the mistakes between options by building the gateway: an unknown upstream name, with a suggestion', async () => {
    await writeFile(file('cross.yaml'), `upstreams:\n  orders: 'http://127.0.0.1:4001'\nroutes:\n  - path: /api/orders\n    upstream: ordrs\n`);
    const run = await frontdoor(['check', file('cross.yaml')]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(new RegExp(`^${escape(file('cross.yaml'))}:5:15: "routes\\[0\\]\\.upstream" names the upstream "ordrs", which is not in "upstreams" \\(orders\\)\\. Did you mean "orders"\\?`));
  });

  it('names every environment variable that is missing, with its line, and never prints the ones that are set', async () => {
    const run = await frontdoor(['check', file('valid.yaml')], { SERVICE_TOKEN: 'service-token-from-the-environment' });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(new RegExp(`${escape(file('valid.yaml'))}:7:\\d+: uses \\$\\{env:JWT_SECRET\\}, but the environment variable JWT_SECRET is not set`));
    expect(run.stderr).not.toContain('USERS_PATH'); // it has a default
    expect(run.stderr + run.stdout).not.toContain('service-token-from-the-environment');
  });

  it('takes variables from --env-file', async () => {
    await writeFile(file('ci.env'), `JWT_SECRET=${SECRET}\nSERVICE_TOKEN=from-the-env-file-token\n`);
    const run = await frontdoor(['check', '--env-file', file('ci.env'), file('valid.yaml')]);
    expect(run).toMatchObject({ code: 0, stderr: '' });
  });

  it('exits 1 on a file it cannot read', async () => {
    const run = await frontdoor(['check', file('missing.yaml')]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/cannot read the gateway config file .*missing\.yaml/);
  });

  it('connects to nothing: no Redis connection, no upstream health check', async () => {
    const redis = net.createServer((socket) => socket.destroy());
    let redisConnections = 0;
    redis.on('connection', () => redisConnections++);
    await new Promise<void>((resolve) => redis.listen(0, '127.0.0.1', resolve));
    const upstream = await startUpstream();
    try {
      const redisUrl = `redis://127.0.0.1:${(redis.address() as AddressInfo).port}`;
      await writeFile(
        file('offline.yaml'),
        `routes:\n  - path: /a\n    upstream: { target: '${upstream.url}', health: { active: { interval: 1s } } }\n    rateLimit: { limit: 5, window: 1m, redis: '${redisUrl}' }\n`,
      );
      const run = await frontdoor(['check', file('offline.yaml')]);
      expect(run).toMatchObject({ code: 0, stderr: '' });
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(redisConnections).toBe(0);
      expect(upstream.connections).toBe(0);
    } finally {
      await new Promise((resolve) => redis.close(resolve));
      await upstream.close();
    }
  });
});

describe('frontdoor routes', () => {
  it('prints the resolved table: methods, host, a named upstream resolved to its targets, the policies in pipeline order', async () => {
    const run = await frontdoor(['routes', file('valid.yaml')], env);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    const [orders, users] = run.stdout.trim().split('\n\n');
    expect(orders.split('\n')[0]).toBe('/api/orders  (orders)  GET HEAD POST  host api.example.com');
    // A limit by IP alone runs in admit, before authentication.
    expect(steps(orders)).toEqual([
      ['rateLimit', 'admit', '100 per 1m by ip'],
      ['auth', 'identify', 'partners: jwt (HS256)'],
      ['authorize', 'permit', 'scopes orders:read'],
      ['upstream', 'final', 'orders → http://10.0.0.5:4001, http://10.0.0.6:4001 (weight 5)'],
    ]);
    // One by consumer runs after it.
    expect(steps(users).map(([option, phase]) => `${option}:${phase}`)).toEqual(['auth:identify', 'rateLimit:limit', 'headers:shapeRequest', 'upstream:final']);
    expect(users).toContain('apiKey (2 keys)');
  });

  it('--json prints the table as data', async () => {
    const run = await frontdoor(['routes', '--json', file('valid.yaml')], env);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    const table = JSON.parse(run.stdout);
    expect(table.file).toBe(file('valid.yaml'));
    expect(table.routes).toHaveLength(2);
    expect(table.routes[0]).toEqual({
      index: 0,
      name: 'orders',
      path: '/api/orders',
      methods: ['GET', 'HEAD', 'POST'],
      hosts: ['api.example.com'],
      stripPath: false,
      upstream: { kind: 'named', name: 'orders', targets: [{ url: 'http://10.0.0.5:4001', weight: 1 }, { url: 'http://10.0.0.6:4001', weight: 5 }] },
      policies: [
        { option: 'rateLimit', phase: 'admit', summary: '100 per 1m by ip' },
        { option: 'auth', phase: 'identify', summary: 'partners: jwt (HS256)' },
        { option: 'authorize', phase: 'permit', summary: 'scopes orders:read' },
      ],
      wrappers: [],
    });
    expect(table.routes[1]).toMatchObject({ methods: null, hosts: null, upstream: { kind: 'url', targets: [{ url: 'http://127.0.0.1:4002/users', weight: 1 }] } });
  });

  it('lists what wraps the final handler after it, innermost first, and the app as the final handler of an app route', async () => {
    await writeFile(
      file('wrappers.yaml'),
      `routes:
  - path: /api/orders
    upstream: 'http://127.0.0.1:4001'
    cutover: { percent: 10, sticky: consumer }
    fallback: { on: [unavailable, 503] }
  - path: /admin
    app: true
    ipFilter: { allow: ['10.0.0.0/8'] }
`,
    );
    const run = await frontdoor(['routes', '--json', file('wrappers.yaml')]);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    const [orders, admin] = JSON.parse(run.stdout).routes;
    expect(orders.wrappers).toEqual([
      { option: 'fallback', summary: 'to the app on unavailable 503' },
      { option: 'cutover', summary: '10% to the upstream, the rest to the app, sticky by consumer' },
    ]);
    expect(admin).toMatchObject({ upstream: { kind: 'app' }, policies: [{ option: 'ipFilter', phase: 'admit', summary: 'allow 10.0.0.0/8' }], wrappers: [] });
  });

  it('never prints a secret: values from the environment are redacted, auth secrets and keys are not shown at all', async () => {
    const run = await frontdoor(['routes', '--json', file('valid.yaml')], { ...env, USERS_PATH: 'users-path-secret' });
    expect(run.code).toBe(0);
    for (const secret of [SECRET, 'service-token-from-the-environment', 'users-path-secret', 'an-api-key-long-enough-0001']) expect(run.stdout).not.toContain(secret);
    expect(JSON.parse(run.stdout).routes[1].upstream.targets[0].url).toBe('http://127.0.0.1:4002/***');
    const text = await frontdoor(['routes', file('valid.yaml')], { ...env, USERS_PATH: 'users-path-secret' });
    for (const secret of [SECRET, 'service-token-from-the-environment', 'users-path-secret', 'an-api-key-long-enough-0001']) expect(text.stdout).not.toContain(secret);
  });

  it('exits 1 with the mistakes, and prints no table, for an invalid file', async () => {
    const run = await frontdoor(['routes', '--json', file('mistakes.yaml')]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/is not valid: 3 mistakes\./);
  });
});

describe('frontdoor itself', () => {
  it('--version prints the package version', async () => {
    const { version } = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8'));
    expect(await frontdoor(['--version'])).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
  });

  it('--help lists the commands; each command has its own', async () => {
    const help = await frontdoor(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Usage: frontdoor/);
    expect(help.stdout).toMatch(/check \[options\] <file>/);
    expect(help.stdout).toMatch(/routes \[options\] <file>/);
    const routes = await frontdoor(['routes', '--help']);
    expect(routes.code).toBe(0);
    expect(routes.stdout).toMatch(/Usage: frontdoor routes \[options\] <file>/);
    expect(routes.stdout).toMatch(/--json/);
  });

  it('a wrong command line is exit 2 with the error on stderr', async () => {
    const unknown = await frontdoor(['chek', 'gateway.yaml']);
    expect(unknown.code).toBe(2);
    expect(unknown.stdout).toBe('');
    expect(unknown.stderr).toMatch(/unknown command 'chek'[\s\S]*Did you mean check\?/);
    const missing = await frontdoor(['check']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/missing required argument 'file'/);
  });

  it('writes no colour escapes, with or without NO_COLOR', async () => {
    const runs = await Promise.all([frontdoor(['routes', file('valid.yaml')], env), frontdoor(['routes', file('valid.yaml')], { ...env, NO_COLOR: '1', FORCE_COLOR: '1' }), frontdoor(['--help'], { FORCE_COLOR: '1' })]);
    for (const run of runs) expect(run.stdout + run.stderr).not.toContain('\u001b[');
  });
});

/** The steps of a route block after the observe ones: [option, phase, summary]. */
function steps(block: string): string[][] {
  return block
    .split('\n')
    .slice(1)
    .map((line) => line.trim().replace(/^\d+\.\s+/, '').split(/\s{2,}/))
    .filter(([, phase]) => phase !== 'observe');
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
