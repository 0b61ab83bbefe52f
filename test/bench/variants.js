/**
 * The benchmark's rows, as data. Each row names how the load reaches the upstream:
 * - `gateway: false` sends autocannon straight to the upstream (no gateway process);
 * - otherwise `build(upstreamUrl, services)` runs inside the gateway child (test/bench/gateway.js) and returns
 *   `{ app, close }`: an Express app answering the row's request by forwarding it to the upstream, and a
 *   function releasing what the app holds (pooled sockets, timers). It may also return `stats()`, whose result
 *   run.js fetches after the measured run and hands to the row's `verifyStats`.
 * - `needs: ['redis']` / `['otlp']` / `['grpc']`: run.js starts a redis-server (skipping the row when none is
 *   installed), points the OTLP exporter at a span sink in the upstream child, or starts the gRPC upstream in that
 *   child (grpc-upstream.js); `services` holds `{ redisUrl, otlpUrl, grpcTarget }`.
 *
 * What a row sends, and what it must get back (all optional; the defaults are the GET rows'):
 * - `request`: `{ method, path, headers, body }` (default `GET /api/orders/42`), or an array of them: a "screen",
 *   which every autocannon connection sends one after the other, in order. A screen row's unit is the screen:
 *   its throughput is screens/s and its latency a screen's (the sum of its requests' response times).
 * - `versus`: the row this one stands in for (the aggregate's sequential screen): the interleaved mode compares the
 *   two directly when both run.
 * - `unit`: what one unit of throughput is called (`'req'`, or `'screen'` for a request standing for a screen).
 * - `expect(res)`: checks a probe's answer `{ status, headers, body }` before any load; returns what is wrong, or
 *   nothing. Default: 200 with the upstream's 223-byte body. A failed check stops the run: no row measures 404s.
 * - `prime`: requests sent before the probe (to fill a cache, for instance). Default 0.
 * - `upstreamPerRequest`: `[min, max]` requests the upstream must receive per request the client completes
 *   (default `[1, 1]`); counted over the measured run, with slack for requests cut off when a load period ends.
 *   Outside it, the row is marked `(!)` and the run exits 1.
 * - `verifyStats(stats, { requests })`: checks what the row's `stats()` returned after the run, likewise.
 * - `optional: true`: when the row's build throws at start-up (a feature this build does not have yet), the row is
 *   skipped with the reason instead of failing the run.
 *
 * To add a row (rate limit, tracing on/off, …), append an entry here; run.js and gateway.js need no change.
 * `BENCH_ONLY=name,name` runs a subset.
 *
 * `BENCH_BASELINE_DIST=/path/to/dist` (another build of frontdoor, e.g. an older commit's in a git worktree)
 * adds, for every `frontdoor-*` row, a row `<name>@baseline` that builds the same app with that dist loaded
 * instead of ../../dist: `BENCH_ONLY=frontdoor-gateway@baseline,frontdoor-gateway BENCH_INTERLEAVE=20`.
 * `BENCH_DIST=/path/to/dist` replaces ../../dist itself (a build of this checkout kept apart from the shared one).
 */
'use strict';

const http = require('node:http');
const path = require('node:path');
const { isDeepStrictEqual } = require('node:util');
const { ORDER_JSON, XML_LINES, XML_REQUEST_JSON, ITEM_JSON } = require('./payloads');
const { PROTO: INVENTORY_PROTO } = require('./grpc-upstream');

/** The path the GET rows request; the upstream checks it arrives unchanged. */
const REQUEST_PATH = '/api/orders/42';
/** The paths the aggregate and sequential rows request, each answered with the 223-byte body (`?delay=ms` allowed). */
const PART_PATHS = ['/api/parts/a', '/api/parts/b', '/api/parts/c'];
/** The XML upstream's path: POST an XML order there, get the XML order document back. */
const XML_PATH = '/api/xml-orders/42';
/** The grpc rows' path: GetItem { id: "42" } through the bridge, or the same JSON from the HTTP upstream. */
const ITEM_PATH = '/v1/items/42';

/** The row the ratios are computed against. */
const BASELINE = 'hpm-keepalive';

/** The plain route the feature rows (rate limit, observability) are compared with. */
const PLAIN_ROUTE = 'frontdoor-gateway';

function express() {
  return require('express')();
}

const OWN_DIST = process.env.BENCH_DIST ? path.resolve(process.env.BENCH_DIST) : path.join(__dirname, '..', '..', 'dist');
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
  return { app, gw, close: async () => { await gw.close(); if (sdk) await sdk.shutdown(); } };
}

/** What is wrong with an answer that should be the upstream's 223-byte order, if anything. */
function orderAnswer(res) {
  if (res.status !== 200 || !res.body.equals(ORDER_JSON)) return `answered ${res.status} with ${res.body.length} bytes, expected 200 with the upstream's 223-byte order`;
  return undefined;
}

/** What is wrong with an answer that should be the item's 409 bytes of JSON (the bridge's, or its HTTP twin's). */
function itemAnswer(res) {
  if (res.status !== 200 || res.headers['content-type'] !== 'application/json; charset=utf-8' || !res.body.equals(ITEM_JSON)) {
    return `answered ${res.status} ${res.headers['content-type']} with ${res.body.length} bytes: ${res.body.toString('utf8').slice(0, 200)}; expected 200 application/json; charset=utf-8 with the item's ${ITEM_JSON.length} bytes`;
  }
  return undefined;
}

function jsonOf(res) {
  if (!/^application\/json\b/.test(res.headers['content-type'] || '')) return undefined;
  try { return JSON.parse(res.body.toString('utf8')); } catch { return undefined; }
}

const ORDER = JSON.parse(ORDER_JSON.toString('utf8'));
const ORDER_HEADERS = { 'Content-Type': 'application/json', 'Content-Length': String(ORDER_JSON.length) };

/** `aggregate: { calls: { a, b, c } }` over PART_PATHS, each waiting `delay` ms at the upstream. */
function aggregateRow(name, delay, versus) {
  const query = delay ? `?delay=${delay}` : '';
  return {
    name,
    versus,
    description: `GET /api/screen/42 answered by aggregate: { calls: { a, b, c } }: three parallel upstream GETs${delay ? ` (each answered after ${delay} ms)` : ''} of 223 bytes, one JSON answer of the three; the unit is a screen`,
    request: { method: 'GET', path: '/api/screen/42' },
    expect(res) {
      const body = jsonOf(res);
      if (res.status !== 200 || !body) return `answered ${res.status} ${res.headers['content-type']} with ${res.body.length} bytes, expected 200 JSON`;
      if (res.headers['partial-response'] || body.errors) return `answered a partial aggregate: ${res.headers['partial-response'] || JSON.stringify(body.errors)}`;
      if (!['a', 'b', 'c'].every((call) => isDeepStrictEqual(body[call], ORDER)) || Object.keys(body).length !== 3) return `answered ${res.body.toString('utf8').slice(0, 120)}…, expected { a, b, c } with the upstream's order each`;
      return undefined;
    },
    upstreamPerRequest: [3, 3],
    unit: 'screen',
    build: (upstream) =>
      routeApp({ routes: [{ path: '/api/screen', methods: ['GET'], aggregate: { calls: { a: { url: upstream + PART_PATHS[0] + query }, b: { url: upstream + PART_PATHS[1] + query }, c: { url: upstream + PART_PATHS[2] + query } } } }] }),
  };
}

/** The same three GETs, made one after the other by the client through three plain routes. */
function sequentialRow(name, delay) {
  const query = delay ? `?delay=${delay}` : '';
  return {
    name,
    description: `the three GETs of the aggregate row${delay ? ` (each answered after ${delay} ms)` : ''} made one after the other by each client connection, through three plain routes; the unit is a screen of three requests`,
    request: PART_PATHS.map((p) => ({ method: 'GET', path: p + query })),
    expect: orderAnswer,
    build: (upstream) => routeApp({ routes: PART_PATHS.map((p) => ({ path: p, upstream })) }),
  };
}

/** The plain route with a cutover of `percent`, and the app's own handler answering the same 223 bytes. */
function cutoverRow(percent) {
  return {
    name: `frontdoor-cutover-${percent}`,
    description: `the plain route with cutover: { percent: ${percent} }: ${percent} % of the requests to the upstream, the others to the app's own handler (res.end of the same 223 bytes)`,
    expect: orderAnswer,
    upstreamPerRequest: percent === 100 ? [1, 1] : [percent / 100 - 0.05, percent / 100 + 0.05],
    build(upstream) {
      const routed = routeApp({ routes: [{ path: '/api/orders', upstream, cutover: { percent } }] });
      routed.app.get(REQUEST_PATH, (req, res) => {
        res.writeHead(200, ORDER_HEADERS);
        res.end(ORDER_JSON);
      });
      return routed;
    },
  };
}

/** A pino logger writing synchronously (as pino's default stdout does) to /dev/null. */
/** pino to /dev/null; `sync: false` writes as `accessLog: true` does to stdout (pino's default destination). */
function nullLogger({ sync = true } = {}) {
  const pino = require('pino');
  return pino(pino.destination({ dest: '/dev/null', sync }));
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
    name: 'frontdoor-serve',
    description: "frontdoor serve's listener: the same gateway() route straight on node:http (no Express), unmatched requests a 404 problem",
    build(upstream) {
      const { gateway } = frontdoor();
      const { gatewayListener, ServeState } = require(path.join(dist, 'lib', 'serve', 'listener.js'));
      const gw = gateway({ routes: [{ path: '/api/orders', upstream }] });
      const listener = gatewayListener(gw, new ServeState());
      // gateway.js calls app.listen(port, host, callback) and tunes the server it returns.
      const app = { listen: (...args) => http.createServer(listener).listen(...args) };
      return { app, close: () => gw.close(), check: { path: '/nowhere', status: 404 } };
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
    name: 'frontdoor-trace-0.1',
    description: "the gateway route with trace at sampleRatio 0.1, as in the production profile (one new trace in ten recorded and exported over OTLP/HTTP)",
    needs: ['otlp'],
    build: (upstream) => routeApp({ routes: [{ path: '/api/orders', upstream }], trace: true }, { telemetry: true, sampleRatio: 0.1 }),
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
    name: 'frontdoor-accesslog-async',
    description: "the gateway route with access logs only, written as accessLog: true writes them to stdout (pino's default asynchronous destination, here /dev/null)",
    build: (upstream) => routeApp({ routes: [{ path: '/api/orders', upstream }], accessLog: { logger: nullLogger({ sync: false }) } }),
  },
  {
    name: 'frontdoor-observed',
    description: 'the gateway route with trace (every request sampled, OTLP/HTTP export), metrics and access logs (pino to /dev/null)',
    needs: ['otlp'],
    build: (upstream) => routeApp({ routes: [{ path: '/api/orders', upstream }], trace: true, metrics: true, accessLog: { logger: nullLogger() } }, { telemetry: true }),
  },
  {
    name: 'frontdoor-production',
    description: "the production profile: the gateway route with trace at sampleRatio 0.1 (one new trace in ten recorded and exported over OTLP/HTTP), metrics and access logs written as accessLog: true writes them (pino's default asynchronous destination, here /dev/null)",
    needs: ['otlp'],
    build: (upstream) => routeApp({ routes: [{ path: '/api/orders', upstream }], trace: true, metrics: true, accessLog: { logger: nullLogger({ sync: false }) } }, { telemetry: true, sampleRatio: 0.1 }),
  },
  {
    name: 'frontdoor-cache-hit',
    description: "the plain route with cache: { ttl: '1m' } (memory store), filled before the run: every measured request is a hit",
    prime: 1,
    expect: (res) => orderAnswer(res) || (res.headers['x-cache'] !== 'HIT' ? `answered X-Cache: ${res.headers['x-cache']}, expected HIT` : undefined),
    // A refill when the entry expires, once a minute.
    upstreamPerRequest: [0, 0],
    build: (upstream) => routeApp({ routes: [{ path: '/api/orders', upstream, cache: { ttl: '1m' } }] }),
  },
  {
    name: 'frontdoor-xml-bridge',
    description: `a JSON client through xml: { root: 'order', arrays: ['lines.line'] } to an XML upstream: POST a 1.9 KB JSON order (${XML_LINES} lines), the upstream answers a 1.8 KB application/xml order, the client gets it as JSON`,
    request: { method: 'POST', path: XML_PATH, headers: { 'content-type': 'application/json' }, body: XML_REQUEST_JSON },
    expect(res) {
      const body = jsonOf(res);
      if (res.status !== 200 || !body) return `answered ${res.status} ${res.headers['content-type']} with ${res.body.length} bytes: ${res.body.toString('utf8').slice(0, 200)}`;
      const lines = body.lines && body.lines.line;
      if (body['@id'] !== '42' || !Array.isArray(lines) || lines.length !== XML_LINES || lines[0]['@sku'] !== 'SKU-1000' || (lines[0].price && lines[0].price['#text']) !== '9.50') {
        return `answered ${res.body.toString('utf8').slice(0, 160)}…, expected the XML order as JSON with ${XML_LINES} lines`;
      }
      return undefined;
    },
    build: (upstream) => routeApp({ routes: [{ path: '/api/xml-orders', methods: ['POST'], upstream, xml: { root: 'order', arrays: ['lines.line'] } }] }),
  },
  {
    name: 'frontdoor-grpc',
    versus: 'frontdoor-grpc-http-twin',
    description: "REST → gRPC: GET /v1/items/42 through a route { path: '/v1', grpc: { target, protos: [inventory.proto] } }: a unary GetItem to a grpc-js server (on the upstream's core), its Item (int64s, enums, bytes, Timestamp, Struct, a map…) answered as 409 bytes of JSON",
    needs: ['grpc'],
    request: { method: 'GET', path: ITEM_PATH },
    expect: itemAnswer,
    build(upstream, { grpcTarget }) {
      if (!grpcTarget) throw new Error('no gRPC upstream (BENCH_GRPC_TARGET): run.js starts one for rows that need grpc');
      return routeApp({ routes: [{ path: '/v1', grpc: { target: grpcTarget, protos: [INVENTORY_PROTO] } }] });
    },
  },
  {
    name: 'frontdoor-grpc-http-twin',
    description: "frontdoor-grpc's twin: the same GET /v1/items/42 through a plain route { path: '/v1', upstream } to the HTTP upstream, which answers the same 409 bytes of JSON",
    request: { method: 'GET', path: ITEM_PATH },
    expect: itemAnswer,
    build: (upstream) => routeApp({ routes: [{ path: '/v1', upstream }] }),
  },
  aggregateRow('frontdoor-aggregate-3', 0, 'frontdoor-3-sequential'),
  sequentialRow('frontdoor-3-sequential', 0),
  aggregateRow('frontdoor-aggregate-3-delay20', 20, 'frontdoor-3-sequential-delay20'),
  sequentialRow('frontdoor-3-sequential-delay20', 20),
  {
    name: 'frontdoor-shadow',
    description: 'the plain route with shadow: { candidate: the same upstream, maxConcurrent: 64 }: every request copied (64 > 50 connections) and its answer compared',
    optional: true,
    expect: orderAnswer,
    // Two when every copy is sent; a copy skipped (concurrency) makes it less, and verifyStats says how many.
    upstreamPerRequest: [1.5, 2],
    build(upstream) {
      const routed = routeApp({ routes: [{ name: 'orders', path: '/api/orders', upstream, shadow: { candidate: upstream, maxConcurrent: 64 } }] });
      const control = routed.gw.control('orders', 'shadow');
      if (!control || typeof control.report !== 'function') throw new Error('this build has no shadow report (gw.control(route, "shadow"))');
      return {
        ...routed,
        stats() {
          const { requests, outcomes, skipped, candidateErrors, samples } = control.report();
          return { requests, outcomes, skipped, candidateErrors, lastSample: samples[samples.length - 1] };
        },
      };
    },
    verifyStats(stats) {
      const { outcomes } = stats;
      const compared = outcomes.match + outcomes.mismatch + outcomes.candidateError;
      if (outcomes.mismatch > 0) return `${outcomes.mismatch} copies did not match the primary's answer: ${JSON.stringify(stats.lastSample)}`;
      if (compared === 0 || outcomes.candidateError > compared * 0.01) return `${outcomes.candidateError} of ${compared} copies failed: ${JSON.stringify(stats.candidateErrors)}`;
      return undefined;
    },
  },
  cutoverRow(50),
  cutoverRow(100),
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

module.exports = { variants, BASELINE, PLAIN_ROUTE, REQUEST_PATH, PART_PATHS, XML_PATH, ITEM_PATH, BASELINE_SUFFIX, baselineDist };
