/**
 * The benchmark's rows, as data. Each row names how the load reaches the upstream:
 * - `gateway: false` sends autocannon straight to the upstream (no gateway process);
 * - otherwise `build(upstreamUrl, services)` runs inside the gateway child (test/bench/gateway.js) and returns
 *   `{ app, close }`: an Express app answering GET /api/orders/42 by forwarding it to the upstream, and a
 *   function releasing what the app holds (pooled sockets, timers).
 * - `needs: ['redis']` / `['otlp']`: run.js starts a redis-server (skipping the row when none is installed)
 *   or points the OTLP exporter at a span sink in the upstream child; `services` holds `{ redisUrl, otlpUrl }`.
 *
 * To add a row (rate limit, tracing on/off, …), append an entry here; run.js and gateway.js need no change.
 * `BENCH_ONLY=name,name` runs a subset.
 *
 * `BENCH_BASELINE_DIST=/path/to/dist` (another build of frontdoor, e.g. an older commit's in a git worktree)
 * adds, for every `frontdoor-*` row, a row `<name>@baseline` that builds the same app with that dist loaded
 * instead of ../../dist: `BENCH_ONLY=frontdoor-gateway@baseline,frontdoor-gateway BENCH_INTERLEAVE=20`.
 */
'use strict';

const http = require('node:http');
const path = require('node:path');

/** The path every row requests; the upstream checks it arrives unchanged. */
const REQUEST_PATH = '/api/orders/42';

/** The row the ratios are computed against. */
const BASELINE = 'hpm-keepalive';

/** The plain route the feature rows (rate limit, observability) are compared with. */
const PLAIN_ROUTE = 'frontdoor-gateway';

function express() {
  return require('express')();
}

const OWN_DIST = path.join(__dirname, '..', '..', 'dist');
/** The dist/ that frontdoor() loads; a `@baseline` row swaps it while its build() runs (see the end). */
let dist = OWN_DIST;

function frontdoor() {
  return require(path.join(dist, 'index.js'));
}

/**
 * An Express app with one gateway() built from `options`; with `telemetry`, the OpenTelemetry SDK is started
 * first, by default with every request sampled (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, set by run.js, points the
 * default exporter at the span sink, as users get it).
 */
function routeApp(options, { telemetry = false, sampleRatio = 1 } = {}) {
  const { gateway, setupTelemetry } = frontdoor();
  const sdk = telemetry ? setupTelemetry({ sampleRatio }) : undefined;
  const gw = gateway(options);
  const app = express();
  app.use(gw);
  return { app, close: async () => { await gw.close(); if (sdk) await sdk.shutdown(); } };
}

/** A pino logger writing synchronously (as pino's default stdout does) to /dev/null. */
function nullLogger() {
  const pino = require('pino');
  return pino(pino.destination({ dest: '/dev/null', sync: true }));
}

const variants = [
  {
    name: 'direct',
    description: 'autocannon straight to the upstream (no gateway)',
    gateway: false,
  },
  {
    name: 'hpm-default',
    description: 'express 5 + http-proxy-middleware 3, default agent (a new upstream connection per request)',
    build(upstream) {
      const { createProxyMiddleware } = require('http-proxy-middleware');
      const app = express();
      // The documented v3 mount: Express strips '/api/orders' from req.url, the target puts it back.
      app.use('/api/orders', createProxyMiddleware({ target: `${upstream}/api/orders`, changeOrigin: true }));
      return { app, close: async () => {} };
    },
  },
  {
    name: 'hpm-keepalive',
    description: 'express 5 + http-proxy-middleware 3 with a keep-alive http.Agent (maxSockets 256)',
    build(upstream) {
      const { createProxyMiddleware } = require('http-proxy-middleware');
      const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
      const app = express();
      app.use('/api/orders', createProxyMiddleware({ target: `${upstream}/api/orders`, changeOrigin: true, agent }));
      return { app, close: async () => agent.destroy() };
    },
  },
  {
    name: 'hpm-keepalive-xfwd',
    description: 'the baseline with xfwd: true, so it sets X-Forwarded-For/Proto/Host as frontdoor does',
    build(upstream) {
      const { createProxyMiddleware } = require('http-proxy-middleware');
      const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
      const app = express();
      app.use('/api/orders', createProxyMiddleware({ target: `${upstream}/api/orders`, changeOrigin: true, agent, xfwd: true }));
      return { app, close: async () => agent.destroy() };
    },
  },
  {
    name: 'frontdoor-proxy',
    description: "express 5 + app.use('/api/orders', proxy({ target }))",
    build(upstream) {
      const { proxy } = frontdoor();
      const orders = proxy({ target: upstream });
      const app = express();
      app.use('/api/orders', orders);
      return { app, close: () => orders.close() };
    },
  },
  {
    name: 'frontdoor-gateway',
    description: "express 5 + app.use(gateway({ routes: [{ path: '/api/orders', upstream }] })) before an in-app route",
    build(upstream) {
      const { gateway } = frontdoor();
      const gw = gateway({ routes: [{ path: '/api/orders', upstream }] });
      const app = express();
      app.use(gw);
      // Not benchmarked: shows that requests outside the table still reach the app (checked once before the run).
      app.get('/health', (req, res) => res.json({ ok: true }));
      return { app, close: () => gw.close(), check: { path: '/health', status: 200 } };
    },
  },
  {
    name: 'frontdoor-ratelimit-memory',
    description: 'the gateway route with rateLimit (memory store, a limit never reached)',
    build: (upstream) => routeApp({ routes: [{ path: '/api/orders', upstream, rateLimit: { limit: 1e9, window: '1m' } }] }),
  },
  {
    name: 'frontdoor-ratelimit-redis',
    description: 'the gateway route with rateLimit in Redis (redis-server on the load generator core)',
    needs: ['redis'],
    build: (upstream, { redisUrl }) => routeApp({ routes: [{ path: '/api/orders', upstream, rateLimit: { limit: 1e9, window: '1m', redis: redisUrl } }] }),
  },
  {
    name: 'frontdoor-trace',
    description: 'the gateway route with trace only (every request sampled, OTLP/HTTP export)',
    needs: ['otlp'],
    build: (upstream) => routeApp({ routes: [{ path: '/api/orders', upstream }], trace: true }, { telemetry: true }),
  },
  {
    name: 'frontdoor-trace-unsampled',
    description: 'the gateway route with trace, no request sampled (sampleRatio 0: ids propagated, nothing recorded)',
    needs: ['otlp'],
    build: (upstream) => routeApp({ routes: [{ path: '/api/orders', upstream }], trace: true }, { telemetry: true, sampleRatio: 0 }),
  },
  {
    name: 'frontdoor-metrics',
    description: 'the gateway route with metrics only',
    build: (upstream) => routeApp({ routes: [{ path: '/api/orders', upstream }], metrics: true }),
  },
  {
    name: 'frontdoor-accesslog',
    description: 'the gateway route with access logs only (pino to /dev/null)',
    build: (upstream) => routeApp({ routes: [{ path: '/api/orders', upstream }], accessLog: { logger: nullLogger() } }),
  },
  {
    name: 'frontdoor-observed',
    description: 'the gateway route with trace (every request sampled, OTLP/HTTP export), metrics and access logs (pino to /dev/null)',
    needs: ['otlp'],
    build: (upstream) => routeApp({ routes: [{ path: '/api/orders', upstream }], trace: true, metrics: true, accessLog: { logger: nullLogger() } }, { telemetry: true }),
  },
];

const BASELINE_SUFFIX = '@baseline';
const baselineDist = process.env.BENCH_BASELINE_DIST ? path.resolve(process.env.BENCH_BASELINE_DIST) : undefined;
if (baselineDist) {
  try {
    require.resolve(path.join(baselineDist, 'index.js'));
  } catch {
    throw new Error(`BENCH_BASELINE_DIST: no index.js in ${baselineDist} (build that checkout first)`);
  }
  // build() runs once per gateway child, synchronously: every frontdoor() call inside it loads the other dist.
  for (const row of variants.filter((v) => v.name.startsWith('frontdoor-'))) {
    variants.push({
      ...row,
      name: row.name + BASELINE_SUFFIX,
      description: `${row.description}; frontdoor from ${baselineDist}`,
      build(...args) {
        dist = baselineDist;
        try { return row.build(...args); } finally { dist = OWN_DIST; }
      },
    });
  }
}

module.exports = { variants, BASELINE, PLAIN_ROUTE, REQUEST_PATH, BASELINE_SUFFIX, baselineDist };
