/**
 * The orders service: the piece extracted from the monolith. A small Express app of its own that the
 * monolith's gateway sends `/api/orders/**` to. start.js runs two instances of it so load balancing
 * and fail-over are visible: every response says which instance served it, in the body (`servedBy`)
 * and in the `X-Served-By` header.
 *
 * Orders live in memory, one store per instance. That is fine for a demo, and it makes the point that
 * a real extracted service needs its own shared database: an order created on instance a is not seen
 * by instance b.
 */
'use strict';

const crypto = require('node:crypto');
const express = require('express');

/** Orders every instance starts with, so `GET /api/orders/1001` answers on any instance. */
const SEED_ORDERS = [
  { id: '1001', userId: 1, items: [{ productId: 'p-1', quantity: 2 }], status: 'shipped' },
  { id: '1002', userId: 2, items: [{ productId: 'p-3', quantity: 1 }], status: 'processing' },
];

/**
 * Creates one instance of the orders service.
 *
 * @param {{ instance: string }} options `instance` names this copy (`'a'`, `'b'`) in every response.
 * @returns {import('express').Express}
 */
function createOrdersService({ instance }) {
  if (typeof instance !== 'string' || instance === '') {
    throw new TypeError('createOrdersService: "instance" must be a non-empty string, e.g. { instance: \'a\' }');
  }
  const orders = new Map(SEED_ORDERS.map((order) => [order.id, { ...order, items: order.items.map((item) => ({ ...item })) }]));
  let nextNumber = 1;

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
    res.json({ orders: [...orders.values()], servedBy: instance });
  });

  app.get('/api/orders/:id', (req, res) => {
    const order = orders.get(req.params.id);
    if (!order) {
      res.status(404).json({ error: 'order not found', id: req.params.id, servedBy: instance });
      return;
    }
    res.json({ order, servedBy: instance });
  });

  app.post('/api/orders', (req, res) => {
    const { userId, items } = req.body ?? {};
    const itemsValid = Array.isArray(items) && items.length > 0 &&
      items.every((item) => item && typeof item.productId === 'string' && Number.isInteger(item.quantity) && item.quantity > 0);
    if (!Number.isInteger(userId) || !itemsValid) {
      res.status(400).json({
        error: 'expected a JSON body like {"userId": 1, "items": [{"productId": "p-1", "quantity": 2}]}',
        servedBy: instance,
      });
      return;
    }
    // Ids carry the instance name: each instance has its own store, so plain numbers would collide.
    const order = { id: `${instance}-${nextNumber++}`, userId, items, status: 'received' };
    orders.set(order.id, order);
    res.status(201).location(`/api/orders/${order.id}`).json({ order, servedBy: instance });
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
