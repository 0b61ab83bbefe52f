/**
 * The monolith: an existing Express app that is being taken apart one route at a time (strangler fig).
 * frontdoor's gateway is mounted at its edge. `/api/orders/**` has been extracted to the orders service
 * and is proxied there, load-balanced over its instances; everything else (`/api/users`, `/api/catalog`,
 * the home page, even 404s) falls through to the monolith's own handlers exactly as before.
 */
'use strict';

const express = require('express');
const { gateway, problemHandler } = require('frontdoor-gateway');

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
  ['POST', '/api/orders', 'orders service, via the gateway (JSON body)'],
];

/**
 * Creates the monolith with the gateway in front of its own routes.
 *
 * @param {{ ordersTargets: string[] }} options URLs of the orders service instances,
 *   e.g. `['http://127.0.0.1:4001', 'http://127.0.0.1:4002']`.
 * @returns {import('express').Express} The app. Its gateway is `app.locals.gateway`: close it on
 *   shutdown (`await app.locals.gateway.close()` frees pooled sockets and timers).
 */
function createMonolith({ ordersTargets }) {
  if (!Array.isArray(ordersTargets) || ordersTargets.length === 0) {
    throw new TypeError("createMonolith: \"ordersTargets\" must list the orders service URLs, e.g. ['http://127.0.0.1:4001']");
  }

  const app = express();
  app.disable('x-powered-by');

  // The monolith already parsed JSON for its own handlers. frontdoor re-serialises a parsed body
  // with a correct Content-Length when it forwards it, so this keeps working after the gateway is
  // added. (In a new app, mount the gateway before body parsers: bodies are then streamed untouched.)
  app.use(express.json());

  // The gateway goes BEFORE the monolith's own routes: what matches a route is proxied, everything
  // else calls next() and reaches the handlers below.
  const gw = gateway({
    routes: [
      {
        path: '/api/orders',
        upstream: {
          targets: ordersTargets,                           // round-robin over the instances
          retries: 1,                                       // a refused GET is retried on the other instance
          health: { passive: { failures: 2, cooldown: '5s' } }, // 2 failures in a row: out for 5s
        },
      },
    ],
  });
  app.use(gw);
  app.locals.gateway = gw;

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
  // /api/orders/**, so this never runs any more. Removing the gateway route is the rollback: this
  // handler then serves orders again, with no redeploy of anything else. Delete it once the
  // orders service has proven itself.
  app.use('/api/orders', (req, res) => {
    res.json({ orders: [], servedBy: 'monolith (legacy orders handler)' });
  });

  // Nothing matched, neither a gateway route nor a monolith route.
  app.use((req, res) => {
    res.status(404).json({ error: 'not found', path: req.path, servedBy: 'monolith' });
  });

  // Malformed JSON rejected by express.json() (also on /api/orders) answered as problem+json.
  app.use(problemHandler());

  return app;
}

module.exports = { createMonolith };
