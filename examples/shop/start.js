/**
 * Runs the shop example: two instances of the extracted orders service and the monolith with
 * frontdoor's gateway in front of it, all on 127.0.0.1. Prints the URLs and curl commands that show
 * routing, fall-through, load balancing and fail-over; `stop a` / `start a` on stdin (or SIGUSR2)
 * take instance a down and bring it back.
 *
 *   node examples/shop/start.js           interactive (what `npm start` runs)
 *   node examples/shop/start.js --smoke   ephemeral ports, a few real requests, PASS/FAIL, exit 0 or 1
 *
 * Environment: PORT (monolith, default 3000), ORDERS_PORT_A (4001), ORDERS_PORT_B (4002).
 */
'use strict';

const http = require('node:http');
const readline = require('node:readline');
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

/** Reads a port from the environment, or exits with a message naming the variable. */
function portFromEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`${name} must be a port number (0-65535), got "${raw}"`);
    process.exit(1);
  }
  return port;
}

/** Starts both instances and the monolith. Closes whatever did start if one of them fails. */
async function startAll({ port, portA, portB }) {
  const instances = { a: createInstance('a', portA), b: createInstance('b', portB) };
  let monolithServer = null;
  let app = null;
  try {
    await instances.a.start();
    await instances.b.start();
    app = createMonolith({ ordersTargets: [instances.a.url, instances.b.url] });
    monolithServer = await listen(app, port);
  } catch (err) {
    await Promise.all([instances.a.stop(), instances.b.stop()]);
    if (app) await app.locals.gateway.close();
    throw err;
  }
  const shop = {
    instances,
    url: `http://${HOST}:${monolithServer.address().port}`,
    async close() {
      await Promise.all([closeServer(monolithServer), instances.a.stop(), instances.b.stop()]);
      await app.locals.gateway.close();
    },
  };
  return shop;
}

// --- interactive mode -------------------------------------------------------------------------

async function runInteractive() {
  const settings = {
    port: portFromEnv('PORT', 3000),
    portA: portFromEnv('ORDERS_PORT_A', 4001),
    portB: portFromEnv('ORDERS_PORT_B', 4002),
  };
  let shop;
  try {
    shop = await startAll(settings);
  } catch (err) {
    if (err && err.code === 'EADDRINUSE') {
      console.error(`Port ${err.port} is already in use. Choose others with PORT, ORDERS_PORT_A and ORDERS_PORT_B, e.g.\n` +
        '  PORT=3100 ORDERS_PORT_A=4101 ORDERS_PORT_B=4102 npm start');
    } else {
      console.error(err);
    }
    process.exit(1);
  }

  const { instances } = shop;
  const base = shop.url;
  const interactive = Boolean(process.stdin.isTTY);
  const body = '{"userId":1,"items":[{"productId":"p-1","quantity":2}]}';
  console.log(`
frontdoor shop example: a monolith that has handed /api/orders to an extracted service

  monolith + gateway           ${base}
  orders service, instance a   ${instances.a.url}
  orders service, instance b   ${instances.b.url}

Try it:
  # routed by the gateway to the orders service; run it twice: "servedBy" alternates a, b
  curl -i ${base}/api/orders

  # served in-process by the monolith (no route matches, so the gateway calls next())
  curl ${base}/api/users

  # neither a gateway route nor a monolith handler: the monolith's own 404
  curl -i ${base}/api/nothing-here

  # a JSON body forwarded to the orders service: 201 Created
  curl -i -X POST ${base}/api/orders -H 'content-type: application/json' -d '${body}'

Fail-over:
  ${interactive ? 'Type "stop a" + Enter' : 'Send SIGUSR2'} (or: kill -USR2 ${process.pid}) to stop instance a, then curl
  ${base}/api/orders again: every answer now comes from b. A refused GET is retried on
  the other instance, and after 2 failures in a row a is out of rotation for 5s; then one trial
  request checks whether it is back. ${interactive ? '"start a" restarts it (SIGUSR2 toggles).' : 'SIGUSR2 again restarts it.'}
${interactive ? '  Commands: stop a|b, start a|b, status, help, quit.\n' : ''}  Ctrl+C stops everything.
`);

  async function setRunning(name, running) {
    const instance = instances[name];
    try {
      const changed = running ? await instance.start() : await instance.stop();
      const state = running ? 'running' : 'stopped';
      console.log(changed ? `instance ${name} ${state} (${instance.url})` : `instance ${name} is already ${state}`);
    } catch (err) {
      console.error(`could not ${running ? 'start' : 'stop'} instance ${name}: ${err.message}`);
    }
  }

  function printStatus() {
    for (const instance of Object.values(instances)) {
      console.log(`instance ${instance.name}: ${instance.running ? 'running' : 'stopped'} (${instance.url})`);
    }
  }

  let rl = null;
  let shuttingDown = false;
  async function shutdown(signal) {
    if (shuttingDown) {
      process.exit(1); // a second Ctrl+C: do not wait any longer
    }
    shuttingDown = true;
    console.log(`\n${signal}: closing the monolith, the gateway and the orders instances`);
    if (rl) rl.close();
    const forced = setTimeout(() => {
      console.error('did not close within 5s, exiting anyway');
      process.exit(1);
    }, 5000);
    forced.unref();
    await shop.close();
    process.exit(0);
  }

  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  if (process.platform !== 'win32') {
    process.on('SIGUSR2', () => setRunning('a', !instances.a.running));
  }

  // Commands on stdin only when a person is at a terminal: under a pipe, CI or nohup, skip it.
  // terminal: false leaves Ctrl+C to the terminal, so it arrives as a real SIGINT.
  if (interactive) {
    rl = readline.createInterface({ input: process.stdin, terminal: false });
    rl.on('line', (line) => {
      const [command = '', name = ''] = line.trim().toLowerCase().split(/\s+/);
      if (command === '') return;
      if ((command === 'stop' || command === 'start') && (name === 'a' || name === 'b')) {
        setRunning(name, command === 'start');
      } else if (command === 'status') {
        printStatus();
      } else if (command === 'quit' || command === 'exit') {
        shutdown('quit');
      } else {
        console.log('commands: stop a|b, start a|b, status, help, quit');
      }
    });
  }
}

// --- smoke mode -------------------------------------------------------------------------------

/** One HTTP request on a fresh connection; resolves with status, headers and the parsed JSON body. */
function request(method, url, { body, rawBody, timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const payload = rawBody !== undefined ? rawBody : body !== undefined ? JSON.stringify(body) : undefined;
    const headers = payload !== undefined
      ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
      : {};
    const req = http.request(url, { method, headers, agent: false, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs}ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

function describe(res) {
  const text = res.text.length > 200 ? `${res.text.slice(0, 200)}…` : res.text;
  return `${res.status} ${text}`;
}

async function runSmoke() {
  const results = [];
  async function check(name, fn) {
    try {
      await fn();
      results.push(true);
      console.log(`PASS  ${name}`);
    } catch (err) {
      results.push(false);
      console.log(`FAIL  ${name}: ${err && err.message ? err.message : err}`);
    }
  }
  function expect(condition, message) {
    if (!condition) throw new Error(message);
  }

  const watchdog = setTimeout(() => {
    console.log('FAIL  smoke run did not finish within 30s');
    process.exit(1);
  }, 30_000);
  watchdog.unref();

  let shop;
  try {
    shop = await startAll({ port: 0, portA: 0, portB: 0 });
  } catch (err) {
    console.log(`FAIL  start the example: ${err && err.message ? err.message : err}`);
    process.exit(1);
  }
  const base = shop.url;

  await check('GET /api/orders twice is load-balanced over both instances', async () => {
    const first = await request('GET', `${base}/api/orders`);
    const second = await request('GET', `${base}/api/orders`);
    for (const res of [first, second]) {
      expect(res.status === 200, `expected 200, got ${describe(res)}`);
      expect(res.json && ['a', 'b'].includes(res.json.servedBy), `expected servedBy a or b, got ${describe(res)}`);
      expect(res.headers['x-served-by'] === `orders-${res.json.servedBy}`, `X-Served-By is ${res.headers['x-served-by']}`);
    }
    expect(first.json.servedBy !== second.json.servedBy,
      `both answers came from instance ${first.json.servedBy}`);
  });

  await check('GET /api/users is served in-process by the monolith', async () => {
    const res = await request('GET', `${base}/api/users`);
    expect(res.status === 200 && res.json && res.json.servedBy === 'monolith', `expected 200 from the monolith, got ${describe(res)}`);
    expect(res.headers['x-served-by'] === undefined, 'an in-process answer should not carry X-Served-By');
  });

  await check('GET /api/nothing-here falls through to the monolith\'s 404', async () => {
    const res = await request('GET', `${base}/api/nothing-here`);
    expect(res.status === 404 && res.json && res.json.servedBy === 'monolith', `expected the monolith's 404, got ${describe(res)}`);
  });

  await check('POST /api/orders with malformed JSON is answered 400 problem+json', async () => {
    const res = await request('POST', `${base}/api/orders`, { rawBody: '{"userId":' });
    expect(res.status === 400, `expected 400, got ${describe(res)}`);
    expect(String(res.headers['content-type']).startsWith('application/problem+json'),
      `expected application/problem+json, got ${res.headers['content-type']}`);
  });

  await shop.instances.a.stop();
  await check('with instance a stopped, GET /api/orders is still 200, always from b', async () => {
    for (let i = 0; i < 4; i++) {
      const res = await request('GET', `${base}/api/orders`);
      expect(res.status === 200 && res.json && res.json.servedBy === 'b', `request ${i + 1}: expected 200 from b, got ${describe(res)}`);
    }
  });

  let created;
  await check('POST /api/orders with a JSON body is 201 Created', async () => {
    const res = await request('POST', `${base}/api/orders`, { body: { userId: 1, items: [{ productId: 'p-1', quantity: 2 }] } });
    expect(res.status === 201, `expected 201, got ${describe(res)}`);
    expect(res.json && res.json.order && res.json.order.userId === 1 && res.json.order.items.length === 1,
      `the body did not arrive intact: ${describe(res)}`);
    created = res.json;
  });

  await check('GET /api/orders/:id finds the order just created', async () => {
    expect(created, 'no order was created');
    const res = await request('GET', `${base}/api/orders/${encodeURIComponent(created.order.id)}`);
    expect(res.status === 200 && res.json && res.json.order && res.json.order.id === created.order.id,
      `expected the order ${created.order.id}, got ${describe(res)}`);
  });

  await shop.close();
  const failed = results.filter((ok) => !ok).length;
  console.log(failed === 0 ? `smoke: all ${results.length} checks passed` : `smoke: ${failed} of ${results.length} checks failed`);
  clearTimeout(watchdog);

  // Everything is closed, so the process should now exit by itself. If it does not, something
  // (a socket, a timer) was left open: report it rather than hide it.
  process.exitCode = failed === 0 ? 0 : 1;
  const leak = setTimeout(() => {
    const open = process.getActiveResourcesInfo().filter((type) => type !== 'Timeout');
    console.log(`FAIL  everything closed: the process is still held open by ${open.join(', ') || 'timers'}`);
    process.exit(1);
  }, 3000);
  leak.unref();
}

if (process.argv.includes('--smoke')) {
  runSmoke().catch((err) => {
    console.log(`FAIL  smoke run crashed: ${err && err.stack ? err.stack : err}`);
    process.exit(1);
  });
} else {
  runInteractive().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
