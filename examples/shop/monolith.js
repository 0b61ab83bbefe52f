/**
 * The monolith: an existing Express app that is being taken apart one route at a time (strangler fig).
 * frontdoor's gateway is mounted at its edge. `/api/orders/**` has been extracted to the orders service
 * and is proxied there, load-balanced over its instances, with the edge policies the service no longer
 * has to implement itself: a JWT with the `orders:write` scope to create an order, a per-consumer rate
 * limit on writes, metrics and access logs. Everything else (`/api/users`, `/api/catalog`, the home
 * page, even 404s) falls through to the monolith's own handlers exactly as before.
 */
'use strict';

const express = require('express');
const { gateway, metricsHandler, problemHandler } = require('frontdoor-gateway');

const USERS = [
  { id: 1, name: 'Ada Lovelace', email: 'ada@example.com' },
  { id: 2, name: 'Grace Hopper', email: 'grace@example.com' },
];

const PRODUCTS = [
  { id: 'p-1', name: 'Mechanical keyboard', price: 89.0 },
  { id: 'p-2', name: 'USB-C cable', price: 9.5 },
  { id: 'p-3', name: 'Standing desk', price: 420.0 },
];

/** The endpoints listed on the home page. */
const ENDPOINTS = [
  ['GET', '/api/users', 'in-process (monolith)'],
  ['GET', '/api/users/:id', 'in-process (monolith)'],
  ['GET', '/api/catalog', 'in-process (monolith)'],
  ['GET', '/api/orders', 'orders service, via the gateway'],
  ['GET', '/api/orders/:id', 'orders service, via the gateway'],
  ['POST', '/api/orders', 'orders service, via the gateway (JWT with scope orders:write, 5 a minute per consumer)'],
  ['GET', '/metrics', 'the gateway\'s Prometheus metrics'],
];

/**
 * Creates the monolith with the gateway in front of its own routes.
 *
 * @param {object} options
 * @param {string[]} options.ordersTargets URLs of the orders service instances,
 *   e.g. `['http://127.0.0.1:4001', 'http://127.0.0.1:4002']`.
 * @param {string} options.jwtSecret The HMAC secret (at least 32 bytes) that tokens for POST /api/orders are signed with.
 * @param {boolean | object} [options.accessLog] The gateway's `accessLog` option: `true` (default) writes pino
 *   JSON lines to stdout; `{ logger }` writes them to your own pino logger.
 * @param {(line: string) => void} [options.report] Where the ejection and recovery lines go (default console.log).
 * @returns {import('express').Express} The app. Its gateway is `app.locals.gateway`: close it on
 *   shutdown (`await app.locals.gateway.close()` frees pooled sockets and timers).
 */
function createMonolith({ ordersTargets, jwtSecret, accessLog = true, report = console.log }) {
  if (!Array.isArray(ordersTargets) || ordersTargets.length === 0) {
    throw new TypeError("createMonolith: \"ordersTargets\" must list the orders service URLs, e.g. ['http://127.0.0.1:4001']");
  }

  const app = express();
  app.disable('x-powered-by');

  // The gateway goes FIRST: before the body parser, so a proxied body is streamed to the service byte
  // for byte (a parsed and re-serialised body would lose a 20-digit number or break a signature), and
  // before the monolith's own routes, so what matches a route is proxied and everything else calls
  // next() and reaches the handlers below.
  const gw = gateway({
    metrics: true,     // request counts, latencies and upstream health, served by /metrics below
    accessLog,         // one JSON line per proxied request (method, route, status, consumer, upstream)
    upstreams: {
      // Declared once, shared by both routes: one health state, one pool of keep-alive connections.
      orders: {
        targets: ordersTargets,                               // round-robin over the instances
        retries: 1,                                           // a refused connection is retried on the other instance
        health: { passive: { failures: 2, cooldown: '5s' } }, // 2 failures in a row: out for 5s
      },
    },
    routes: [
      // Reads stay public, as they were when the monolith served them: extracting a service should not
      // break the clients that already read orders.
      { path: '/api/orders', name: 'orders-read', methods: ['GET'], upstream: 'orders' },
      // Writes are where the edge earns its keep: a valid token, the right scope, and a budget per consumer
      // (per token subject, not per IP: a company behind one NAT is not one bucket).
      {
        path: '/api/orders',
        name: 'orders-write',
        methods: ['POST'],
        upstream: 'orders',
        auth: { jwt: { secret: jwtSecret, algorithms: ['HS256'] } },
        authorize: { scopes: ['orders:write'] },
        rateLimit: { key: 'consumer', limit: 5, window: '1m' },
      },
    ],
  });
  app.use(gw);
  app.locals.gateway = gw;

  // An operator wants to know when an instance drops out of rotation and when it is back.
  gw.events.on('upstream.ejected', ({ target, cooldownMs, routes }) => {
    report(`upstream ${target} ejected for ${cooldownMs / 1000}s (routes ${routes.join(', ')})`);
  });
  gw.events.on('upstream.recovered', ({ target }) => {
    report(`upstream ${target} recovered: back in rotation`);
  });

  // The monolith's own handlers still get parsed JSON; the gateway above never sees this parser.
  app.use(express.json());

  // Prometheus scrape endpoint. Served here, next to the app, for the demo; in production keep it off the
  // public port (a separate listener or a network rule).
  app.get('/metrics', metricsHandler());

  app.get('/', (req, res) => {
    const rows = ENDPOINTS.map(([method, path, servedBy]) => {
      const link = method === 'GET' && !path.includes(':') ? `<a href="${path}">${path}</a>` : path;
      return `<tr><td>${method}</td><td>${link}</td><td>${servedBy}</td></tr>`;
    }).join('\n');
    res.type('html').send(`<!doctype html>
<title>frontdoor shop example</title>
<h1>Shop monolith</h1>
<p>frontdoor sends <code>/api/orders/**</code> to the extracted orders service; everything else is still served here.</p>
<table>
<tr><th>method</th><th>path</th><th>served by</th></tr>
${rows}
</table>`);
  });

  app.get('/api/users', (req, res) => {
    res.json({ users: USERS, servedBy: 'monolith' });
  });

  app.get('/api/users/:id', (req, res) => {
    const user = USERS.find((candidate) => String(candidate.id) === req.params.id);
    if (!user) {
      res.status(404).json({ error: 'user not found', id: req.params.id, servedBy: 'monolith' });
      return;
    }
    res.json({ user, servedBy: 'monolith' });
  });

  app.get('/api/catalog', (req, res) => {
    res.json({ products: PRODUCTS, servedBy: 'monolith' });
  });

  // The legacy orders handler, left in place on purpose: the gateway is mounted above and owns
  // GET /api/orders/**, so this never runs any more. Removing the gateway's "orders-read" route is the
  // rollback: this handler then serves orders again, with no redeploy of anything else. Delete it once
  // the orders service has proven itself.
  app.get('/api/orders', (req, res) => {
    res.json({ orders: [], servedBy: 'monolith (legacy orders handler)' });
  });

  // Nothing matched, neither a gateway route nor a monolith route.
  app.use((req, res) => {
    res.status(404).json({ error: 'not found', path: req.path, servedBy: 'monolith' });
  });

  // Malformed JSON rejected by the monolith's express.json() answered as problem+json. (Bodies for
  // /api/orders never get here: the gateway streamed them to the orders service.)
  app.use(problemHandler());

  return app;
}

module.exports = { createMonolith };
