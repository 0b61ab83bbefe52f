/**
 * The published package: `npm pack` of the built dist (`npm test` builds it first; the pack skips the
 * `prepack` rebuild so no other suite sees dist disappear mid-run) produces a tarball that works
 * for CommonJS `require`, ES module `import` and TypeScript consumers, ships the type declarations and
 * the ESM entry, and no tests. The tarball is unpacked into `<repo>/.tmp/pack-consumer/node_modules`
 * so its dependencies resolve from the repo's own node_modules (no network).
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
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
        "const heavy = ['@opentelemetry/sdk-trace', '@opentelemetry/exporter-trace-otlp-proto', '@opentelemetry/sdk-metrics', '@opentelemetry/exporter-prometheus', 'ioredis', 'jose', 'passport-jwt', 'pino', 'yaml', 'zod', 'fast-xml-parser', '@grpc/grpc-js', '@grpc/proto-loader'];",
        "const loaded = () => heavy.filter((name) => Object.keys(require.cache).some((file) => file.includes(`/node_modules/${name}/`)));",
        "const atImport = loaded();",
        "f.accessLog();",
        "console.log(JSON.stringify({ atImport, afterAccessLog: loaded() }));",
      ].join('\n'),
    ]);
    expect(result.atImport).toEqual([]);
    // zod checks every middleware's options, so it loads with the first one built.
    expect(result.afterAccessLog).toEqual(['pino', 'zod']);
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

  describe('frontdoor-gateway/testing', () => {
    const jestEntry = Boolean((JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8')) as { exports: Record<string, unknown> }).exports['./testing/jest']);

    it('is in the tarball with its declarations and ESM entry', () => {
      expect(tarballFiles).toEqual(expect.arrayContaining(['dist/testing.js', 'dist/testing.d.ts', 'dist/testing.mjs']));
    });

    it('works with require(): a real upstream, a signed token, the assertions; no test framework and no jose at import', async () => {
      const result = await nodeJson([
        '-e',
        [
          "const t = require('frontdoor-gateway/testing');",
          "const loaded = (names) => names.filter((name) => Object.keys(require.cache).some((file) => file.includes(`/node_modules/${name}/`)));",
          "const atImport = loaded(['jose', 'jest', 'expect', '@jest/globals', 'supertest', 'zod', 'pino']);",
          '(async () => {',
          "  const up = await t.startUpstream({ name: 'orders' });",
          "  const token = await t.signToken({ sub: 'alice' }, { secret: t.hmacSecret() });",
          "  await fetch(up.url + '/api/orders?x=1', { headers: { authorization: 'Bearer ' + token } });",
          "  const seen = t.expectForwarded(up, { path: '/api/orders', headers: { authorization: /^Bearer / } });",
          '  let message = "";',
          "  try { t.expectForwarded(up, { path: '/nowhere' }); } catch (err) { message = err.name + ': ' + err.message.split('\\n')[0]; }",
          '  await t.closeAll();',
          "  console.log(JSON.stringify({ atImport, path: seen.path, key: t.apiKey().length >= 16, message, resolved: require.resolve('frontdoor-gateway/testing') }));",
          '})().catch((err) => { console.error(err); process.exit(1); });',
        ].join('\n'),
      ]);
      expect(result).toMatchObject({ atImport: [], path: '/api/orders', key: true });
      expect(result.message).toMatch(/^FrontdoorAssertionError: expectForwarded: no request received by http:\/\/127\.0\.0\.1:\d+ matched \{ path: '\/nowhere' \}/);
      expect(result.resolved).toBe(path.join(installed, 'dist', 'testing.js'));
    });

    it('works with import, exporting the same names and the same instances as require()', async () => {
      const result = await nodeJson([
        '--input-type=module',
        '-e',
        [
          "import { startUpstream, closeAll, isProblem } from 'frontdoor-gateway/testing';",
          "import * as esm from 'frontdoor-gateway/testing';",
          "import { createRequire } from 'node:module';",
          'const cjs = createRequire(import.meta.url)("frontdoor-gateway/testing");',
          "const names = Object.keys(cjs).filter((n) => n !== '__esModule');",
          'const missing = names.filter((n) => !(n in esm));',
          'const up = await startUpstream();',
          'const status = (await fetch(up.url)).status;',
          'await cjs.closeAll();', // one registry for both: the ESM-started upstream is closed through require()
          'const refused = await fetch(up.url).then(() => false, () => true);',
          'console.log(JSON.stringify({ names: names.length, missing, same: startUpstream === cjs.startUpstream && closeAll === cjs.closeAll && isProblem === cjs.isProblem, status, refused, resolved: import.meta.resolve("frontdoor-gateway/testing") }));',
        ].join('\n'),
      ]);
      expect(result).toMatchObject({ missing: [], same: true, status: 200, refused: true });
      expect(result.names).toBeGreaterThan(10);
      expect(result.resolved).toBe(`file://${path.join(installed, 'dist', 'testing.mjs')}`);
    });

    // The matchers' subpath, once package.json exports it ("./testing/jest" → dist/lib/testing/jest.js).
    (jestEntry ? it : it.skip)('frontdoor-gateway/testing/jest registers its matchers on the global expect', async () => {
      const result = await nodeJson([
        '-e',
        [
          'let names = [];',
          'globalThis.expect = { extend: (matchers) => { names = Object.keys(matchers); } };',
          "const { matchers } = require('frontdoor-gateway/testing/jest');",
          "const res = { status: 401, headers: { 'content-type': 'application/problem+json' }, body: { status: 401, code: 'ERR_AUTH_MISSING' } };",
          "console.log(JSON.stringify({ names, pass: matchers.toBeProblem(res, { status: 401, code: 'ERR_AUTH_MISSING' }).pass, fail: matchers.toBeProblem(res, { status: 403 }).message() }));",
        ].join('\n'),
      ]);
      expect(result).toMatchObject({ names: ['toBeProblem', 'toHaveBeenForwarded'], pass: true });
      expect(result.fail).toContain('status: expected 403, got 401');
    });

    it('type-checks in a TypeScript consumer', async () => {
      await writeFile(
        path.join(consumer, 'testing-consumer.mts'),
        [
          "import { startUpstream, signToken, startJwks, apiKey, isProblem, expectForwarded, closeAll } from 'frontdoor-gateway/testing';",
          "import type { Upstream, ReceivedRequest, ProblemBody, Jwks } from 'frontdoor-gateway/testing';",
          'const up: Upstream = await startUpstream((_req, res) => res.end());',
          "await up.fail('status:503', { times: 1 });",
          "await up.fail('slow:500ms');",
          "up.reply(201, { id: 1 }, { location: '/orders/1' });",
          "const token: string = await signToken({ sub: 'alice' }, { secret: 'x'.repeat(32), expiresIn: '5m' });",
          "const idp: Jwks = await startJwks({ algorithm: 'ES256' });",
          'const rotated: string = (await idp.rotate()).kid;',
          "const problem: ProblemBody = isProblem({ status: 401, headers: {}, body: {} }, { status: 401, code: 'ERR_AUTH_MISSING' });",
          "const seen: ReceivedRequest = expectForwarded(up, { path: '/x', headers: { authorization: false } });",
          'export const values = [token, rotated, problem.code, seen.path, apiKey()];',
          'await closeAll();',
          '// @ts-expect-error an unknown failure mode is a type error',
          "await up.fail('explode');",
          // With the matchers' subpath exported, its types extend jest's expect.
          ...(jestEntry ? ["import 'frontdoor-gateway/testing/jest';", "expect(up).toHaveBeenForwarded({ path: '/x' });", "expect(problem).not.toBeProblem({ code: 'ERR_RATE_LIMITED' });"] : []),
          '',
        ].join('\n'),
      );
      await writeFile(
        path.join(consumer, 'tsconfig.testing.json'),
        JSON.stringify({ compilerOptions: { module: 'node16', moduleResolution: 'node16', target: 'es2022', strict: true, noEmit: true, types: jestEntry ? ['node', 'jest'] : ['node'] }, files: ['testing-consumer.mts'] }),
      );
      const tsc = path.join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
      await expect(run(process.execPath, [tsc, '-p', path.join(consumer, 'tsconfig.testing.json')], { cwd: consumer, timeout: 60_000 })).resolves.toBeDefined();
    }, 60_000);
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
