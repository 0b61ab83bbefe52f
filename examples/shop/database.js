/**
 * The shop's database, in memory: the product prices and the orders. The monolith's legacy orders handler
 * and every orders-service instance read and write the same one (shop.js creates one and hands it to all),
 * as a real extracted service reads the monolith's tables until it owns its data. That is what makes the
 * migration steps comparable: whichever side answers, it answers from the same orders.
 */
'use strict';

/** The catalog. An order item keeps the price it was bought at. */
const PRODUCTS = [
  { id: 'p-1', name: 'Mechanical keyboard', price: 89.0 },
  { id: 'p-2', name: 'USB-C cable', price: 9.5 },
  { id: 'p-3', name: 'Standing desk', price: 420.0 },
];

/** Orders the shop starts with, so `GET /api/orders/1001` answers at once. */
const SEED_ORDERS = [
  { id: '1001', userId: 1, items: [{ productId: 'p-1', quantity: 2, price: 89.0 }], status: 'shipped' },
  { id: '1002', userId: 2, items: [{ productId: 'p-3', quantity: 1, price: 420.0 }], status: 'processing' },
  { id: '1003', userId: 1, items: [{ productId: 'p-2', quantity: 3, price: 9.5 }, { productId: 'p-1', quantity: 1, price: 89.0 }], status: 'received' },
];

/**
 * A fresh database: the catalog and the seed orders (copied, so one database never changes another's).
 *
 * @returns {{ products: typeof PRODUCTS, orders: Map<string, object>, priceOf(productId: string): number | undefined,
 *   newId(prefix: string): string }}
 */
function createDatabase() {
  const orders = new Map(SEED_ORDERS.map((order) => [order.id, { ...order, items: order.items.map((item) => ({ ...item })) }]));
  const counters = new Map();
  return {
    products: PRODUCTS,
    orders,
    /** A new order id, `a-1`, `m-2`…: each writer has its prefix, so two writers never pick the same id. */
    newId(prefix) {
      const number = (counters.get(prefix) ?? 0) + 1;
      counters.set(prefix, number);
      return `${prefix}-${number}`;
    },
    priceOf(productId) {
      return PRODUCTS.find((product) => product.id === productId)?.price;
    },
  };
}

/**
 * Checks a new order's body; returns its items with their prices, or an error message.
 *
 * @returns {{ items: object[] } | { error: string }}
 */
function orderItems(db, body) {
  const { userId, items } = body ?? {};
  const itemsValid = Array.isArray(items) && items.length > 0 &&
    items.every((item) => item && typeof item.productId === 'string' && Number.isInteger(item.quantity) && item.quantity > 0);
  if (!Number.isInteger(userId) || !itemsValid) {
    return { error: 'expected a JSON body like {"userId": 1, "items": [{"productId": "p-1", "quantity": 2}]}' };
  }
  const unknown = items.find((item) => db.priceOf(item.productId) === undefined);
  if (unknown) return { error: `unknown product ${JSON.stringify(unknown.productId)}` };
  return { items: items.map(({ productId, quantity }) => ({ productId, quantity, price: db.priceOf(productId) })) };
}

module.exports = { createDatabase, orderItems, PRODUCTS };
