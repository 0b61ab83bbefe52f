/**
 * The orders service: the piece extracted from the monolith. A small Express app of its own that the
 * monolith's gateway sends `/api/orders/**` to. start.js runs two instances of it so load balancing
 * and fail-over are visible: every response says which instance served it, in the body (`servedBy`)
 * and in the `X-Served-By` header.
 *
 * It reads and writes the shop's database (database.js), the one the monolith's legacy orders handler
 * uses: until the service owns its data, both sides see the same orders.
 *
 * Release 1 has the bug the migration guide's shadow step finds: an order's `total` adds up the item
 * prices and forgets the quantities. Release 2 fixes it (and is what runs once the migration is done).
 */
'use strict';

const crypto = require('node:crypto');
const express = require('express');
const { createDatabase, orderItems } = require('./database');

/** The service's releases: 1 is the first cut, with the total bug; 2 the fix. */
const RELEASES = [1, 2];

/** The order as the service answers it, with its total as the given release computes it. */
function withTotal(order, release) {
  const total = release === 1
    ? order.items.reduce((sum, item) => sum + item.price, 0)                   // the bug: quantities forgotten
    : order.items.reduce((sum, item) => sum + item.price * item.quantity, 0);  // the fix
  return { ...order, total: Math.round(total * 100) / 100 };
}

/**
 * Creates one instance of the orders service.
 *
 * @param {object} options
 * @param {string} options.instance Names this copy (`'a'`, `'b'`) in every response.
 * @param {ReturnType<typeof createDatabase>} [options.db] The shop's database; a fresh one of its own by default.
 * @param {1 | 2} [options.release] Which release runs: 1 has the total bug, 2 (default) the fix.
 * @returns {import('express').Express}
 */
function createOrdersService({ instance, db = createDatabase(), release = 2 }) {
  if (typeof instance !== 'string' || instance === '') {
    throw new TypeError('createOrdersService: "instance" must be a non-empty string, e.g. { instance: \'a\' }');
  }
  if (!RELEASES.includes(release)) throw new TypeError(`createOrdersService: "release" must be 1 or 2, got ${JSON.stringify(release)}`);
  const { orders } = db;

  const app = express();
  app.disable('x-powered-by');
  app.use(function servedBy(req, res, next) {
    res.set('X-Served-By', `orders-${instance}`);
    next();
  });
  // For the demo only: answer with a digest of the body bytes exactly as they arrived, so you (and the
  // smoke check) can compare it with what the client sent and see that the gateway forwarded them
  // untouched, 20-digit numbers and whitespace included.
  app.use(express.json({
    verify(req, res, bytes) {
      res.set('X-Received-Body-Sha256', crypto.createHash('sha256').update(bytes).digest('hex'));
    },
  }));

  app.get('/health', (req, res) => {
    res.json({ status: 'ok', servedBy: instance });
  });

  app.get('/api/orders', (req, res) => {
    res.json({ orders: [...orders.values()].map((order) => withTotal(order, release)), servedBy: instance });
  });

  app.get('/api/orders/:id', (req, res) => {
    const order = orders.get(req.params.id);
    if (!order) {
      res.status(404).json({ error: 'order not found', id: req.params.id, servedBy: instance });
      return;
    }
    res.json({ order: withTotal(order, release), servedBy: instance });
  });

  app.post('/api/orders', (req, res) => {
    const checked = orderItems(db, req.body);
    if (checked.error) {
      res.status(400).json({ error: checked.error, servedBy: instance });
      return;
    }
    // Ids carry the instance name (the monolith's carry "m"): writers never collide, and you see who wrote.
    const order = { id: db.newId(instance), userId: req.body.userId, items: checked.items, status: 'received' };
    orders.set(order.id, order);
    res.status(201).location(`/api/orders/${order.id}`).json({ order: withTotal(order, release), servedBy: instance });
  });

  app.use((req, res) => {
    res.status(404).json({ error: 'not found', path: req.path, servedBy: instance });
  });

  // Malformed JSON (or any other error) as JSON, like every other answer of the service.
  // Express knows an error handler by its four parameters, so `_next` stays although it is unused.
  app.use((err, req, res, _next) => {
    const status = Number.isInteger(err.status) && err.status >= 400 && err.status < 600 ? err.status : 500;
    res.status(status).json({ error: status === 500 ? 'internal error' : err.message, servedBy: instance });
  });

  return app;
}

module.exports = { createOrdersService };
