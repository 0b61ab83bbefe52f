/**
 * The published package: `npm pack` of the built dist (`npm test` builds it first; the pack skips the
 * `prepack` rebuild so no other suite sees dist disappear mid-run) produces a tarball that works
 * for CommonJS `require`, ES module `import` and TypeScript consumers, ships the type declarations and
 * the ESM entry, and no tests. The tarball is unpacked into `<repo>/.tmp/pack-consumer/node_modules`
 * so its dependencies resolve from the repo's own node_modules (no network).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const repo = path.resolve(__dirname, '..', '..');
const consumer = path.join(repo, '.tmp', 'pack-consumer');
const installed = path.join(consumer, 'node_modules', 'frontdoor-gateway');

interface PackResult {
  filename: string;
  files: Array<{ path: string }>;
}

/** Runs node in the consumer folder and parses the JSON it prints last. */
async function nodeJson(args: string[]): Promise<Record<string, unknown>> {
  const { stdout } = await run(process.execPath, args, { cwd: consumer, timeout: 30_000 });
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

describe('the packed tarball', () => {
  let packDir: string;
  let tarballFiles: string[];

  beforeAll(async () => {
    if (!existsSync(path.join(repo, 'dist', 'index.js'))) throw new Error('dist/ is missing: run `npm run build` (npm test does) before this suite.');
    packDir = await mkdtemp(path.join(tmpdir(), 'frontdoor-pack-'));
    const { stdout } = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', packDir], {
      cwd: repo,
      timeout: 110_000,
      maxBuffer: 16 * 1024 * 1024,
      env: { ...process.env, npm_config_loglevel: 'error' },
    });
    // Anything npm prints before the JSON document (warnings) is skipped.
    const packed = JSON.parse(stdout.slice(stdout.indexOf('[\n'))) as PackResult[];
    expect(packed).toHaveLength(1);
    tarballFiles = packed[0].files.map((file) => file.path);
    const tarball = path.join(packDir, packed[0].filename);
    expect(existsSync(tarball)).toBe(true);

    await rm(consumer, { recursive: true, force: true });
    await mkdir(installed, { recursive: true });
    await writeFile(path.join(consumer, 'package.json'), JSON.stringify({ name: 'pack-consumer', private: true, version: '0.0.0' }));
    await run('tar', ['-xzf', tarball, '-C', installed, '--strip-components=1']);
  }, 120_000);

  afterAll(async () => {
    await rm(consumer, { recursive: true, force: true });
    if (packDir) await rm(packDir, { recursive: true, force: true });
  });

  it('contains the declarations and both entries, and no tests, sources or scripts', () => {
    expect(tarballFiles).toEqual(expect.arrayContaining(['package.json', 'README.md', 'dist/index.js', 'dist/index.d.ts', 'dist/index.mjs']));
    expect(tarballFiles.filter((file) => file.startsWith('test/') || file.includes('/test/'))).toEqual([]);
    expect(tarballFiles.filter((file) => file.endsWith('.test.ts') || file.endsWith('.test.js'))).toEqual([]);
    // TypeScript sources are compiled, not shipped (declarations only).
    expect(tarballFiles.filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'))).toEqual([]);
    expect(tarballFiles.filter((file) => file.startsWith('examples/') || file.startsWith('scripts/'))).toEqual([]);
    // Every file the package.json entry points name is in the tarball.
    expect(existsSync(path.join(installed, 'dist', 'index.d.ts'))).toBe(true);
    expect(existsSync(path.join(installed, 'dist', 'index.mjs'))).toBe(true);
  });

  it('works with require()', async () => {
    const result = await nodeJson([
      '-e',
      "const f = require('frontdoor-gateway'); console.log(JSON.stringify({ proxy: typeof f.proxy, gateway: typeof f.gateway, loadConfig: typeof f.loadConfig, ConfigError: typeof f.ConfigError, resolved: require.resolve('frontdoor-gateway') }))",
    ]);
    expect(result).toMatchObject({ proxy: 'function', gateway: 'function', loadConfig: 'function', ConfigError: 'function' });
    // Resolved from the unpacked tarball, not from the repo's sources.
    expect(result.resolved).toBe(path.join(installed, 'dist', 'index.js'));
  });

  it('works with import, exporting the same names and the same instances as require()', async () => {
    const result = await nodeJson([
      '--input-type=module',
      '-e',
      [
        "import { proxy, gateway } from 'frontdoor-gateway';",
        "import * as esm from 'frontdoor-gateway';",
        "import { createRequire } from 'node:module';",
        'const cjs = createRequire(import.meta.url)("frontdoor-gateway");',
        "const names = Object.keys(cjs).filter((n) => n !== '__esModule');",
        "const missing = names.filter((n) => !(n in esm));",
        'console.log(JSON.stringify({ proxy: typeof proxy, gateway: typeof gateway, missing, sameProxy: proxy === cjs.proxy, sameGateway: gateway === cjs.gateway, resolved: import.meta.resolve("frontdoor-gateway") }));',
      ].join('\n'),
    ]);
    expect(result).toMatchObject({ proxy: 'function', gateway: 'function', missing: [], sameProxy: true, sameGateway: true });
    expect(result.resolved).toBe(`file://${path.join(installed, 'dist', 'index.mjs')}`);
  });

  it('ships the config file JSON Schema as frontdoor-gateway/schema.json', async () => {
    const result = await nodeJson(['-e', "const s = require('frontdoor-gateway/schema.json'); console.log(JSON.stringify({ type: s.type, routes: Object.keys(s.properties.routes.items.properties) }))"]);
    expect(result).toMatchObject({ type: 'object' });
    expect(result.routes).toEqual(expect.arrayContaining(['path', 'upstream', 'auth', 'rateLimit']));
  });

  it('loads the heavy dependencies only for the features that use them', async () => {
    const result = await nodeJson([
      '-e',
      [
        "const f = require('frontdoor-gateway');",
        "const heavy = ['@opentelemetry/sdk-node', '@opentelemetry/sdk-metrics', '@opentelemetry/exporter-prometheus', 'ioredis', 'jose', 'passport-jwt', 'pino', 'yaml', 'zod', 'fast-xml-parser', '@grpc/grpc-js', '@grpc/proto-loader'];",
        "const loaded = () => heavy.filter((name) => Object.keys(require.cache).some((file) => file.includes(`/node_modules/${name}/`)));",
        "const atImport = loaded();",
        "f.accessLog();",
        "console.log(JSON.stringify({ atImport, afterAccessLog: loaded() }));",
      ].join('\n'),
    ]);
    expect(result.atImport).toEqual([]);
    expect(result.afterAccessLog).toEqual(['pino']);
  });

  it('the installed package proxies a real request (CommonJS consumer)', async () => {
    const script = path.join(consumer, 'smoke.cjs');
    await writeFile(
      script,
      `
const http = require('node:http');
const { proxy } = require('frontdoor-gateway');
const listen = (server) => new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
(async () => {
  const upstream = http.createServer((req, res) => res.end(JSON.stringify({ url: req.url, id: req.headers['x-request-id'] })));
  const upstreamPort = await listen(upstream);
  const p = proxy({ target: 'http://127.0.0.1:' + upstreamPort });
  const front = http.createServer((req, res) => p(req, res));
  const port = await listen(front);
  const res = await fetch('http://127.0.0.1:' + port + '/orders/7?x=1', { headers: { 'x-request-id': 'pack-smoke' } });
  const body = await res.json();
  await p.close();
  front.closeAllConnections();
  await new Promise((resolve) => front.close(resolve));
  upstream.closeAllConnections();
  await new Promise((resolve) => upstream.close(resolve));
  console.log(JSON.stringify({ status: res.status, body }));
})().catch((err) => { console.error(err); process.exit(1); });
`,
    );
    const result = await nodeJson([script]);
    expect(result).toEqual({ status: 200, body: { url: '/orders/7?x=1', id: 'pack-smoke' } });
  });

  it('type-checks in a TypeScript consumer through the "types" export condition', async () => {
    await writeFile(
      path.join(consumer, 'consumer.mts'),
      [
        "import { proxy, gateway, ConfigError } from 'frontdoor-gateway';",
        "import type { GatewayOptions, ProxyMiddleware } from 'frontdoor-gateway';",
        "const options: GatewayOptions = { routes: [{ path: '/api', upstream: { target: 'http://127.0.0.1:1', timeout: '5s' } }] };",
        "const p: ProxyMiddleware = proxy({ target: 'http://127.0.0.1:1' });",
        'const g = gateway(options);',
        'export const closed: Promise<unknown> = Promise.all([p.close(), g.close()]);',
        'export const isConfigError = (e: unknown): boolean => e instanceof ConfigError;',
        '// @ts-expect-error an unknown option is a type error too',
        "proxy({ target: 'http://127.0.0.1:1', targts: [] });",
        '',
      ].join('\n'),
    );
    await writeFile(
      path.join(consumer, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { module: 'node16', moduleResolution: 'node16', target: 'es2022', strict: true, noEmit: true, types: ['node'] }, files: ['consumer.mts'] }),
    );
    const tsc = path.join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
    await expect(run(process.execPath, [tsc, '-p', path.join(consumer, 'tsconfig.json')], { cwd: consumer, timeout: 60_000 })).resolves.toBeDefined();
  }, 60_000);
});
