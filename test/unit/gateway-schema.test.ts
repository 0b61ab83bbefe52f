/**
 * The gateway-wide schema is composed from the features' own schemas (the pipeline issue's "one schema per
 * middleware"): every registered feature declares one, the composed schema agrees with gateway() on what is a
 * valid table, and its JSON Schema lists every route option so editors can complete them.
 */
import { ConfigError, gateway } from '../../index';
import type { GatewayOptions } from '../../index';
import { parseOptions } from '../../lib/schema';
import { GATEWAY_FEATURES, ROUTE_FEATURES } from '../../middleware/features';
import { gatewayJsonSchema, gatewaySchema } from '../../middleware/gateway-schema';

const SECRET = 'a-test-secret-that-is-long-enough-for-hs256';
const UPSTREAM = 'http://127.0.0.1:9';

/** Tables gateway() accepts, using every kind of value the router and the features take. */
const VALID: GatewayOptions[] = [
  { routes: [] },
  { routes: [{ path: '/a', upstream: UPSTREAM }] },
  {
    upstreams: { orders: { targets: [UPSTREAM, 'http://127.0.0.1:10'], health: { passive: { failures: 2, cooldown: '10s' } } } },
    authSchemes: { partners: { jwt: { secret: SECRET, algorithms: ['HS256'] } } },
    metrics: true,
    trace: { clientAttributes: false },
    accessLog: false,
    onError: 'next',
    caseSensitive: true,
    routes: [
      { name: 'orders', path: '/api/orders/:id', methods: ['GET', 'POST'], host: ['api.example.com', '*.example.com'], upstream: 'orders', auth: 'partners', authorize: { scopes: ['orders:read'] }, rateLimit: { limit: 10, window: '1m' }, stripPath: true, ws: true, rewrite: { '^/x': '/y' } },
      { path: '/admin', app: true, ipFilter: { allow: ['10.0.0.0/8'] }, cors: { origin: 'https://shop.example.com' }, headers: { response: { remove: ['server'] } } },
      { path: '/legacy', upstream: { target: UPSTREAM, timeout: 2000, retries: 0 }, auth: { apiKey: { keys: { ['k'.repeat(32)]: { id: 'acme' } } } }, authorize: { allow: () => true }, preserveHost: true, xForwarded: false },
    ],
  },
];

/** Tables with one mistake each, and the option path both must name. */
const INVALID: Array<[string, unknown]> = [
  ['routes[0].upstrem', { routes: [{ path: '/a', upstrem: UPSTREAM }] }],
  ['routes[0].upstream.timeout', { routes: [{ path: '/a', upstream: { target: UPSTREAM, timeout: 'soon' } }] }],
  ['routes[0].rateLimit.limt', { routes: [{ path: '/a', upstream: UPSTREAM, rateLimit: { limt: 1 } }] }],
  ['metrics.consumerLabels', { routes: [], metrics: { consumerLabels: true } }],
  ['routs', { routs: [] }],
];

function issuePaths(run: () => unknown): string[] {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues.map((issue) => issue.path);
  }
  return [];
}

describe('the gateway schema, composed from the features', () => {
  it('has a schema for every registered feature', () => {
    const missing = [...ROUTE_FEATURES, ...GATEWAY_FEATURES].filter((feature) => typeof feature.schemas !== 'function').map((feature) => feature.option);
    expect(missing).toEqual([]);
  });

  it.each(VALID.map((table, index) => [index, table] as const))('accepts table #%i, as gateway() does', async (_index, table) => {
    expect(() => parseOptions(gatewaySchema(), table)).not.toThrow();
    await gateway(table).close();
  });

  it.each(INVALID)('names %s, as gateway() does', (path, table) => {
    expect(issuePaths(() => parseOptions(gatewaySchema(), table))).toContain(path);
    expect(issuePaths(() => gateway(table as GatewayOptions))).toContain(path);
  });

  it('gives a JSON Schema listing every route and gateway option', () => {
    const schema = gatewayJsonSchema() as { properties: Record<string, { items?: { properties: Record<string, unknown>; additionalProperties: unknown } }> };
    const routeOptions = Object.keys(schema.properties.routes.items?.properties ?? {});
    for (const feature of ROUTE_FEATURES) expect(routeOptions).toEqual(expect.arrayContaining([feature.option, ...(feature.reads ?? [])]));
    expect(schema.properties.routes.items?.additionalProperties).toBe(false);
    expect(Object.keys(schema.properties)).toEqual(expect.arrayContaining(['routes', ...GATEWAY_FEATURES.map((feature) => feature.option), 'upstreams', 'authSchemes']));
    // Durations are strings or numbers in a file ('30s'), as the input side of the schema says.
    expect(JSON.stringify(schema)).toContain('"timeout"');
  });
});
