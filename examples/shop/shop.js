/**
 * Starts the whole shop on 127.0.0.1: two orders-service instances that can be stopped and started
 * again, and the monolith with its gateway. Used by start.js for both the interactive and the smoke mode.
 */
'use strict';

const http = require('node:http');
const { createMonolith } = require('./monolith');
const { createOrdersService } = require('./orders-service');

const HOST = '127.0.0.1';

/** Starts `app` on HOST:port; resolves with the listening server. */
function listen(app, port) {
  return new Promise((resolve, reject) => {
    const server = http.createServer(app);
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
function createInstance(name, port) {
  const instance = {
    name,
    port,
    server: null,
    get running() { return instance.server !== null; },
    get url() { return `http://${HOST}:${instance.port}`; },
    async start() {
      if (instance.server) return false;
      // A fresh app each time: a restarted instance comes back with an empty in-memory store, like a
      // restarted process would.
      instance.server = await listen(createOrdersService({ instance: name }), instance.port);
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
 * @param {{ port: number, portA: number, portB: number, jwtSecret: string, accessLog?: boolean | object,
 *   report?: (line: string) => void }} settings ports (0 for any free one) and the monolith's options
 */
async function startShop({ port, portA, portB, ...monolithOptions }) {
  const instances = { a: createInstance('a', portA), b: createInstance('b', portB) };
  let monolithServer = null;
  let app = null;
  try {
    await instances.a.start();
    await instances.b.start();
    app = createMonolith({ ordersTargets: [instances.a.url, instances.b.url], ...monolithOptions });
    monolithServer = await listen(app, port);
  } catch (err) {
    await Promise.all([instances.a.stop(), instances.b.stop()]);
    if (app) await app.locals.gateway.close();
    throw err;
  }
  return {
    instances,
    url: `http://${HOST}:${monolithServer.address().port}`,
    async close() {
      await Promise.all([closeServer(monolithServer), instances.a.stop(), instances.b.stop()]);
      await app.locals.gateway.close();
    },
  };
}

module.exports = { startShop };
