/**` has been extracted to the orders service
 * and is proxied there, load-balanced over its instances, with the edge policies the service no longer
 * has to implement itself: a JWT with the `orders:write` scope to create an order, a per-consumer rate
 * limit on writes, metrics and access logs. Everything else (`/api/users`, `/api/catalog`, the home
 * page, even 404s) falls through to the monolith's own handlers exactly as before.
 */
/**
 * The monolith: an existing Express app that is being taken apart one route at a time (strangler fig).
 * frontdoor's gateway is mounted at its edge. `/api/orders/**` is moving out to the orders service, step by
 * step (steps.js, docs/migration.md): shadowed, cut over by percentage with fallback, then proxied for good,
 * load-balanced over its instances, with the edge policies the service no longer has to implement itself:
 * a JWT with the `orders:write` scope to create an order, a per-consumer rate limit on writes, metrics and
 * access logs. `GET /api/order-summary/:id` is a new endpoint the gateway answers by aggregation: the order
 * from the service, its customer and product names from the monolith. Everything else (`/api/users`,
 * `/api/catalog`, the home page, even 404s) falls through to the monolith's own handlers exactly as before.
 */
'use strict';

const express = require('express');
const { dashboard, gateway, metricsHandler, problemHandler, shadowReportHandler } = require('frontdoor-gateway');
const { createDatabase } = require('./database');
const { legacyOrders } = require('./legacy-orders');
const { STEP_NAMES, cutoverPercent, hasLegacyOrders, ordersRoutes } = require('./steps');

const USERS = [
  { id: 1, name: 'Ada Lovelace', email: 'ada@example.com' },
  { id: 2, name: 'Grace Hopper', email: 'grace@example.com' },
];

/** Who serves the orders endpoints at a step, for the home page. */
function ordersServedBy(step) {
  const percent = cutoverPercent(step);
  if (step === 'monolith') return 'in-process (the monolith\'s legacy orders handler)';
  if (step === 'shadow' || step === 'fixed') return 'in-process (legacy handler); GETs copied to the orders service and compared';
  if (percent !== undefined) return `orders service for ${percent} %, else the legacy handler (which also catches failures)`;
  return 'orders service, via the gateway';
}

/** The endpoints listed on the home page. */
function endpoints(step) {
  const orders = ordersServedBy(step);
  return [
    ['GET', '/api/users', 'in-process (monolith)'],
    ['GET', '/api/users/:id', 'in-process (monolith)'],
    ['GET', '/api/catalog', 'in-process (monolith)'],
    ['GET', '/api/orders', orders],
    ['GET', '/api/orders/:id', orders],
    ['POST', '/api/orders', `${orders} (JWT with scope orders:write, 5 a minute per consumer)`],
    ['GET', '/api/order-summary/:id', 'the gateway: the order from the orders service, its customer and product names from the monolith'],
    ['GET', '/admin/shadow', 'the shadow report (JSON)'],
    ['GET', '/_frontdoor', 'the migration dashboard (user ops; its password is printed at start)'],
    ['GET', '/metrics', 'the gateway\'s Prometheus metrics'],
  ];
}

/**
 * `GET /api/order-summary/:id`: what an order page needs in one request. The order comes from the orders
 * service; once it is in, its customer from the monolith's `/api/users/:id`; the product names from the
 * monolith's catalog, in parallel with the order. Customer and catalog are optional: without them the
 * summary still answers (`null`, names missing, `Partial-Response` naming the call).
 */
function orderSummaryRoute() {
  return {
    path: '/api/order-summary/:id',
    name: 'order-summary',
    methods: ['GET'],
    aggregate: {
      calls: {
        order: { upstream: 'orders', path: '/api/orders/{params.id}' },
        customer: { upstream: 'monolith', path: '/api/users/{order.order.userId}', after: ['order'], optional: true },
        catalog: { upstream: 'monolith', path: '/api/catalog', optional: true },
      },
      deadline: '2s',
      shape({ order, customer, catalog }, { errors }) {
        const names = new Map((catalog?.products ?? []).map((product) => [product.id, product.name]));
        return {
          id: order.order.id,
          status: order.order.status,
          total: order.order.total,
          customer: customer ? { name: customer.user.name, email: customer.user.email } : null,
          items: order.order.items.map((item) => ({ ...item, name: names.get(item.productId) ?? null })),
          ...(errors.length > 0 ? { errors } : {}),
        };
      },
    },
  };
}

/**
 * Creates the monolith with the gateway in front of its own routes.
 *
 * @param {object} options
 * @param {string[]} options.ordersTargets URLs of the orders service instances,
 *   e.g. `['http://127.0.0.1:4001', 'http://127.0.0.1:4002']`.
 * @param {string} options.jwtSecret The HMAC secret (at least 32 bytes) that tokens for POST /api/orders are signed with.
 * @param {string} [options.step] The migration step (steps.js): `'monolith'`, `'shadow'`, `'fixed'`, `'cutover-5'`,
 *   `'cutover-50'`, `'cutover-100'` or `'done'` (default: the migration finished).
 * @param {object} [options.db] The shop's database (database.js), shared with the orders service; a fresh one by default.
 * @param {string} [options.selfUrl] The monolith's own URL (`http://127.0.0.1:3000`): the order summary's calls to
 *   its users and catalog go there. Without it, `/api/order-summary/:id` is not served.
 * @param {boolean | object} [options.accessLog] The gateway's `accessLog` option: `true` (default) writes pino
 *   JSON lines to stdout; `{ logger }` writes them to your own pino logger.
 * @param {string} [options.dashboardPassword] The password of the migration dashboard at /_frontdoor (user `ops`).
 *   Without it the dashboard is not mounted.
 * @param {(line: string) => void} [options.report] Where the ejection and recovery lines go (default console.log).
 * @returns {import('express').Express} The app. Its gateway is `app.locals.gateway`: close it on
 *   shutdown (`await app.locals.gateway.close()` frees pooled sockets and timers).
 */
function createMonolith({ ordersTargets, jwtSecret, step = 'done', db = createDatabase(), selfUrl, accessLog = true, dashboardPassword, report = console.log }) {
  if (!Array.isArray(ordersTargets) || ordersTargets.length === 0) {
    throw new TypeError("createMonolith: \"ordersTargets\" must list the orders service URLs, e.g. ['http://127.0.0.1:4001']");
  }
  if (!STEP_NAMES.includes(step)) throw new TypeError(`createMonolith: unknown step ${JSON.stringify(step)}; the steps are: ${STEP_NAMES.join(', ')}`);

  const app = express();
  app.disable('x-powered-by');

  // Writes are where the edge earns its keep, at every step: a valid token, the right scope, and a budget
  // per consumer (per token subject, not per IP: a company behind one NAT is not one bucket). Reads stay
  // public, as they always were: moving them to a service should not break the clients that read orders.
  const writePolicies = {
    auth: { jwt: { secret: jwtSecret, algorithms: ['HS256'] } },
    authorize: { scopes: ['orders:write'] },
    rateLimit: { key: 'consumer', limit: 5, window: '1m' },
  };

  // The gateway goes FIRST: before the body parser, so a proxied body is streamed to the service byte
  // for byte (a parsed and re-serialised body would lose a 20-digit number or break a signature), and
  // before the monolith's own routes, so what matches a route is proxied and everything else calls
  // next() and reaches the handlers below.
  const gw = gateway({
    metrics: true,     // request counts, latencies and upstream health, served by /metrics below
    accessLog,         // one JSON line per proxied request (method, route, status, consumer, upstream)
    dashboard: true,   // 15 minutes of each route's traffic, for the migration dashboard at /_frontdoor
    upstreams: {
      // Declared once, shared by the routes: one health state, one pool of keep-alive connections.
      orders: {
        targets: ordersTargets,                               // round-robin over the instances
        retries: 1,                                           // a refused connection is retried on the other instance
        health: { passive: { failures: 2, cooldown: '5s' } }, // 2 failures in a row: out for 5s
      },
      // The monolith itself, for the order summary's calls to its users and catalog (no route matches
      // those paths, so they fall through to its handlers below, over HTTP like any client's).
      ...(selfUrl ? { monolith: { target: selfUrl, timeout: '1s' } } : {}),
    },
    routes: [
      ...ordersRoutes(step, { ordersTargets, writePolicies }),
      ...(selfUrl ? [orderSummaryRoute()] : []),
    ],
  });
  app.use(gw);
  app.locals.gateway = gw;
  app.locals.step = step;

  // The migration dashboard (docs/dashboard.md): every route's stage, rates, errors, shadow differences and target
  // health, live; its cutover form moves traffic at once. An operator's page: keep it off the public port in production.
  if (dashboardPassword) {
    app.use('/_frontdoor', dashboard({ gateway: gw, auth: { username: 'ops', password: dashboardPassword }, allowChanges: true, title: 'Shop' }));
  }

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
  // What the shadow found (docs/shadow.md): tallies, the fields that differ, samples. `?route=orders-read` for
  // one route. An operator's page like /metrics: keep it off the public port in production.
  app.get('/admin/shadow', shadowReportHandler(gw));

  app.get('/', (req, res) => {
    const rows = endpoints(step).map(([method, path, servedBy]) => {
      const link = method === 'GET' && !path.includes(':') ? `<a href="${path}">${path}</a>` : path;
      return `<tr><td>${method}</td><td>${link}</td><td>${servedBy}</td></tr>`;
    }).join('\n');
    res.type('html').send(`<!doctype html>
<title>frontdoor shop example</title>
<h1>Shop monolith</h1>
<p>Migration step <code>${step}</code>: frontdoor moves <code>/api/orders/**</code> to the extracted orders service; everything else is still served here.</p>
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
    res.json({ products: db.products, servedBy: 'monolith' });
  });

  // The monolith's own orders code. It answers whatever the gateway leaves to the app: everything before
  // the migration, every client while the service is only shadowed, the share a cutover keeps here, and what
  // fallback catches. Step 4 deletes it (in your monolith: the file and this line); until then, removing
  // the gateway's orders routes, or `gw.setCutover('orders-read', 0)`, is the rollback.
  if (hasLegacyOrders(step)) app.use(legacyOrders(db));

  // Nothing matched, neither a gateway route nor a monolith route.
  app.use((req, res) => {
    res.status(404).json({ error: 'not found', path: req.path, servedBy: 'monolith' });
  });

  // Malformed JSON rejected by the monolith's express.json() answered as problem+json. (Bodies the gateway
  // proxied to the orders service never get here: it streamed them.)
  app.use(problemHandler());

  return app;
}

module.exports = { createMonolith };
