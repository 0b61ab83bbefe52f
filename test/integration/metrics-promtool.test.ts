/**
 * The whole /metrics exposition, after real traffic through every instrument a gateway has, checked by
 * Prometheus's own `promtool check metrics` (parser and naming lint) and against the OpenTelemetry-to-Prometheus
 * name mapping: unit suffix from the instrument's unit (`_seconds`), `_total` on counters only. Dashboards and
 * alerts written for other OpenTelemetry-instrumented services look for exactly these names.
 *
 * The mapping's unit table, beyond the units the gateway's own instruments use, is checked without promtool.
 *
 * Where promtool is not installed its check skips with a warning (the name checks still run), unless
 * REQUIRE_PROMTOOL=1 (CI), where it fails.
 * Debian's `prometheus` package ships it (/usr/bin/promtool).
 */
import { spawn, spawnSync } from 'node:child_process';
import express from 'express';
import { gateway, MetricsRegistry, metricsHandler } from '../../index';
import type { Gateway, GatewayOptions } from '../../index';
import { prometheusName, prometheusUnit } from '../../middleware/metrics';
import { listen, rawRequest, RunningApp } from '../helpers/app';
import { closedPort, startUpstream, Upstream } from '../helpers/upstream';
import { waitFor } from '../helpers/wait';

const promtoolAvailable = spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0;

/** `it`, or a skip with a warning, or a failure under REQUIRE_PROMTOOL=1 (the pattern of test/helpers/redis.ts). */
function itWithPromtool(name: string, body: () => Promise<void>): void {
  if (promtoolAvailable) return it(name, body);
  if (process.env.REQUIRE_PROMTOOL === '1') {
    it(name, () => {
      throw new Error('promtool is not installed but REQUIRE_PROMTOOL=1: install it (apt-get install prometheus).');
    });
    return;
  }
  console.warn(`SKIPPED "${name}": promtool is not installed (apt-get install prometheus to run it).`);
  it.skip(name, body);
}

/** Runs `promtool check metrics` on `text` (stdin); its exit code and everything it printed. */
function promtoolCheck(text: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    const timer = setTimeout(() => child.kill(), 10_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output: output.trim() });
    });
    child.stdin.end(text);
  });
}

/** `# TYPE` lines: family name → type. */
function families(text: string): Map<string, string> {
  return new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]));
}

/** Every family the gateway exposes, with its Prometheus type: the names dashboards and alerts query. */
const EXPECTED_FAMILIES: Record<string, string> = {
  target_info: 'gauge',
  http_server_request_duration_seconds: 'histogram',
  http_server_active_requests: 'gauge',
  frontdoor_upstream_duration_seconds: 'histogram',
  frontdoor_upstream_errors_total: 'counter',
  frontdoor_upstream_healthy: 'gauge',
  frontdoor_rate_limit_rejections_total: 'counter',
  frontdoor_errors_total: 'counter',
  frontdoor_config_reloads_total: 'counter',
  frontdoor_cache_lookups_total: 'counter',
  frontdoor_fallbacks_total: 'counter',
  frontdoor_cutover_requests_total: 'counter',
  frontdoor_shadow_comparisons_total: 'counter',
  frontdoor_shadow_candidate_duration_seconds: 'histogram',
};

describe('the /metrics exposition after traffic through every instrument', () => {
  let upstream: Upstream;
  let deadUrl: string;
  let registry: MetricsRegistry;
  let gw: Gateway;
  let app: RunningApp;
  let exposition: string;

  const routes = (): GatewayOptions['routes'] => [
    { name: 'orders', path: '/api/orders', upstream: upstream.url },
    { name: 'catalog', path: '/api/catalog', upstream: upstream.url, cache: { ttl: '30s' } },
    { name: 'down', path: '/api/down', upstream: { target: deadUrl, retries: 0 } },
    { name: 'limited', path: '/api/limited', upstream: upstream.url, rateLimit: { limit: 1, window: '1m' } },
    { name: 'legacy', path: '/api/legacy', upstream: { target: deadUrl, retries: 0 }, fallback: true },
    { name: 'moving', path: '/api/moving', upstream: upstream.url, cutover: 100 },
    { name: 'shadowed', path: '/api/shadowed', shadow: { candidate: upstream.url } },
  ];

  beforeAll(async () => {
    upstream = await startUpstream({
      name: 'json',
      handler: (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=30' });
        res.end('{"ok":true}');
      },
    });
    deadUrl = `http://127.0.0.1:${await closedPort()}`;
    registry = new MetricsRegistry();
    gw = gateway({ metrics: { registry }, routes: routes() });
    const server = express();
    server.get('/metrics', metricsHandler(registry));
    server.use(gw);
    // The monolith: what fallback hands over, and the primary of the shadowed route.
    server.get('/api/legacy/:id', (_req, res) => void res.json({ servedBy: 'monolith' }));
    server.get('/api/shadowed/:id', (_req, res) => void res.json({ ok: true }));
    app = await listen(server);

    await gw.reload({ metrics: { registry }, routes: routes() }); // config reload
    const get = async (path: string, status: number) => {
      const res = await rawRequest(app.port, { path });
      expect({ path, status: res.status, body: res.status === status ? '' : res.body }).toEqual({ path, status, body: '' });
    };
    await get('/api/orders/1', 200);
    await get('/api/catalog/1', 200); // cache MISS
    await get('/api/catalog/1', 200); // cache HIT
    await get('/api/down/1', 502); // upstream error (refused), problem+json
    await get('/api/limited/1', 200);
    await get('/api/limited/1', 429); // rate-limit rejection
    await get('/api/legacy/1', 200); // fallback to the app
    await get('/api/moving/1', 200); // cutover, service side
    await get('/api/shadowed/1', 200); // shadow comparison
    await waitFor(() => gw.shadowReport('shadowed')!.requests === 1);

    // Request metrics are recorded when the response closes, a hair after the client has it: scrape until all are in.
    const deadline = Date.now() + 3_000;
    for (;;) {
      const res = await rawRequest(app.port, { path: '/metrics' });
      exposition = res.body;
      const complete = Object.keys(EXPECTED_FAMILIES).every((name) => families(exposition).has(name)) && /frontdoor_shadow_comparisons\w*\{/.test(exposition);
      if (complete || Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  });

  afterAll(async () => {
    await gw.close();
    await app.close();
    await upstream.close();
  });

  itWithPromtool('passes promtool check metrics without a single lint warning', async () => {
    const { code, output } = await promtoolCheck(exposition);
    expect({ code, output }).toEqual({ code: 0, output: '' });
  });

  it('names every family by the OpenTelemetry-to-Prometheus mapping (unit suffix, _total on counters only)', () => {
    expect(Object.fromEntries(families(exposition))).toEqual(EXPECTED_FAMILIES);
  });

  it('puts the converted unit on the # UNIT line, and the name ends with it (OpenMetrics)', () => {
    const units = [...exposition.matchAll(/^# UNIT (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]);
    expect(units.sort()).toEqual([
      ['frontdoor_shadow_candidate_duration_seconds', 'seconds'],
      ['frontdoor_upstream_duration_seconds', 'seconds'],
      ['http_server_request_duration_seconds', 'seconds'],
    ]);
  });

  it('keeps the samples of a histogram under its family name', () => {
    expect(exposition).toMatch(/^http_server_request_duration_seconds_count\{[^}]*http_route="orders"[^}]*\} 1$/m);
    expect(exposition).toMatch(/^http_server_request_duration_seconds_bucket\{[^}]*le="\+Inf"[^}]*\} \d+$/m);
    expect(exposition).not.toMatch(/^http_server_request_duration_(count|sum|bucket)\{/m);
  });
});

describe('the OpenTelemetry-to-Prometheus name mapping', () => {
  it('spells units in words, drops {annotations}, writes x/y as x_per_y, and makes 1 a ratio on gauges only', () => {
    expect(prometheusUnit('s', 'other')).toBe('seconds');
    expect(prometheusUnit('ms', 'other')).toBe('milliseconds');
    expect(prometheusUnit('By', 'gauge')).toBe('bytes');
    expect(prometheusUnit('By/s', 'other')).toBe('bytes_per_second');
    expect(prometheusUnit('{request}', 'other')).toBe('');
    expect(prometheusUnit('{packet}/s', 'other')).toBe('per_second');
    expect(prometheusUnit('1', 'gauge')).toBe('ratio');
    expect(prometheusUnit('1', 'other')).toBe('');
    expect(prometheusUnit('', 'other')).toBe('');
    expect(prometheusUnit('widgets', 'other')).toBe('widgets');
  });

  it('adds the unit once, after the sanitised name', () => {
    expect(prometheusName('http.server.request.duration', 'seconds')).toBe('http_server_request_duration_seconds');
    expect(prometheusName('process.cpu.time_seconds', 'seconds')).toBe('process_cpu_time_seconds');
    expect(prometheusName('system.memory.utilization', 'ratio')).toBe('system_memory_utilization_ratio');
    expect(prometheusName('frontdoor.upstream.errors', '')).toBe('frontdoor_upstream_errors');
    expect(prometheusName('odd..name-x', '')).toBe('odd_name_x');
  });
});
