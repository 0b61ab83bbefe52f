/**
 * Starts the whole shop on 127.0.0.1: two orders-service instances that can be stopped and started
 * again, and the monolith with its gateway, all on one database, at one migration step (steps.js). Used by
 * start.js for both the interactive and the smoke mode.
 */
'use strict';

const http = require('node:http');
const { createMonolith } = require('./monolith');
const { createDatabase } = require('./database');
const { createOrdersService } = require('./orders-service');
const { releaseOf } = require('./steps');

const HOST = '127.0.0.1';

/** Starts `app` (or, without one, a server whose handler comes later) on HOST:port; resolves with the listening server. */
function listen(app, port) {
  return new Promise((resolve, reject) => {
    const server = app ? http.createServer(app) : http.createServer();
    server.once('error', reject);
    server.listen(port, HOST, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

/** Stops accepting connections and drops the open ones, so a stopped instance is really gone. */
function closeServer(server) {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/**
 * One orders-service instance that can be stopped and started again on the same port.
 * With port 0 the first start picks a free port, which later restarts reuse.
 */
function createInstance(name, port, serviceOptions) {
  const instance = {
    name,
    port,
    release: serviceOptions.release,
    server: null,
    get running() { return instance.server !== null; },
    get url() { return `http://${HOST}:${instance.port}`; },
    async start() {
      if (instance.server) return false;
      // A fresh app each time, as a restarted process would be; the orders are in the shared database.
      instance.server = await listen(createOrdersService({ instance: name, ...serviceOptions }), instance.port);
      instance.port = instance.server.address().port;
      return true;
    },
    async stop() {
      if (!instance.server) return false;
      const server = instance.server;
      instance.server = null;
      await closeServer(server);
      return true;
    },
  };
  return instance;
}

/**
 * Starts both instances and the monolith. Closes whatever did start if one of them fails.
 *
 * @param {{ port: number, portA: number, portB: number, step?: string, jwtSecret: string,
 *   accessLog?: boolean | object, report?: (line: string) => void }} settings ports (0 for any free one),
 *   the migration step (default `'done'`), and the monolith's other options
 */
async function startShop({ port, portA, portB, step = 'done', ...monolithOptions }) {
  // One database for the monolith's legacy handler and both instances: whichever answers, the orders agree.
  const db = createDatabase();
  const release = releaseOf(step);
  const instances = { a: createInstance('a', portA, { db, release }), b: createInstance('b', portB, { db, release }) };
  let monolithServer = null;
  let app = null;
  try {
    await instances.a.start();
    await instances.b.start();
    // Listening first: the monolith's own URL is known before its app is built (the order summary calls it).
    monolithServer = await listen(null, port);
    const url = `http://${HOST}:${monolithServer.address().port}`;
    app = createMonolith({ ordersTargets: [instances.a.url, instances.b.url], step, db, selfUrl: url, ...monolithOptions });
    monolithServer.on('request', app);
  } catch (err) {
    await Promise.all([instances.a.stop(), instances.b.stop(), monolithServer && closeServer(monolithServer)]);
    if (app) await app.locals.gateway.close();
    throw err;
  }
  return {
    instances,
    step,
    url: `http://${HOST}:${monolithServer.address().port}`,
    /** The monolith's gateway: `shop.gateway.shadowReport()`, `shop.gateway.setCutover('orders-read', 50)`. */
    gateway: app.locals.gateway,
    async close() {
      await Promise.all([closeServer(monolithServer), instances.a.stop(), instances.b.stop()]);
      await app.locals.gateway.close();
    },
  };
}

module.exports = { startShop };
