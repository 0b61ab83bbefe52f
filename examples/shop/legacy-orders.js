/**
 * The monolith's own orders code: the handlers the orders service replaces. Mounted below the gateway, it
 * answers whatever the gateway hands to the app: every orders request before the migration, the primary
 * answers while the service is shadowed, the share a cutover leaves to the monolith, and what fallback
 * catches. Step 4 of the migration (`--step done`) deletes it: the shop then no longer mounts it.
 */
'use strict';

const express = require('express');
const { orderItems } = require('./database');

/** What the monolith has always answered: the order with its total, quantities included. */
function withTotal(order) {
  const total = order.items.reduce((sum, item) => sum + item.price * item.quantity, 0);
  return { ...order, total: Math.round(total * 100) / 100 };
}

/**
 * The legacy handlers: `GET /api/orders`, `GET /api/orders/:id`, `POST /api/orders` (after the monolith's
 * express.json()). Every answer says `"servedBy": "monolith"`.
 *
 * @param {ReturnType<import('./database').createDatabase>} db
 * @returns {import('express').Router}
 */
function legacyOrders(db) {
  const router = express.Router();

  router.get('/api/orders', (req, res) => {
    res.json({ orders: [...db.orders.values()].map(withTotal), servedBy: 'monolith' });
  });

  router.get('/api/orders/:id', (req, res) => {
    const order = db.orders.get(req.params.id);
    if (!order) {
      res.status(404).json({ error: 'order not found', id: req.params.id, servedBy: 'monolith' });
      return;
    }
    res.json({ order: withTotal(order), servedBy: 'monolith' });
  });

  router.post('/api/orders', (req, res) => {
    const checked = orderItems(db, req.body);
    if (checked.error) {
      res.status(400).json({ error: checked.error, servedBy: 'monolith' });
      return;
    }
    const order = { id: db.newId('m'), userId: req.body.userId, items: checked.items, status: 'received' };
    db.orders.set(order.id, order);
    res.status(201).location(`/api/orders/${order.id}`).json({ order: withTotal(order), servedBy: 'monolith' });
  });

  return router;
}

module.exports = { legacyOrders };
