/**
 * `node examples/shop/start.js --smoke`: starts the shop on ephemeral ports and checks for real what the
 * printed curl commands show: routing and fall-through, balancing, the JWT-protected write and its scope,
 * the per-consumer rate limit, bodies forwarded byte for byte, access logs, /metrics, and fail-over with
 * the ejection and recovery lines. Prints one PASS/FAIL line per check and a summary last; exits 0 or 1.
 * The integration test reads exactly those lines, so nothing else is written to stdout.
 */
'use strict';

const crypto = require('node:crypto');
const http = require('node:http');
const pino = require('pino'); // installed with frontdoor-gateway; a user's app brings its own
const { startShop } = require('./shop');
const { demoTokens, jwtSecret, signToken } = require('./tokens');

/** One HTTP request on a fresh connection; resolves with status, headers, the text and the parsed JSON body. */
function request(method, url, { body, token, headers: extra = {}, timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const headers = { ...extra };
    if (body !== undefined) Object.assign(headers, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    if (token) headers.authorization = `Bearer ${token}`;
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
    req.end(body);
  });
}

function describe(res) {
  const text = res.text.length > 200 ? `${res.text.slice(0, 200)}…` : res.text;
  return `${res.status} ${text}`;
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

function expectProblem(res, status, code) {
  expect(res.status === status, `expected ${status}, got ${describe(res)}`);
  expect(String(res.headers['content-type']).startsWith('application/problem+json'), `expected application/problem+json, got ${res.headers['content-type']}`);
  expect(res.json && res.json.code === code, `expected code ${code}, got ${describe(res)}`);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The 20-digit number and the spaces would not survive a parse and re-serialisation on the way. */
const ORDER = '{"userId": 1, "items": [{"productId": "p-1", "quantity": 2}], "ref": 12345678901234567890}';

/** A PASS/FAIL line per check; `results` collects the outcomes for the summary. */
function checker(results) {
  return async function check(name, fn) {
    try {
      await fn();
      results.push(true);
      console.log(`PASS  ${name}`);
    } catch (err) {
      results.push(false);
      console.log(`FAIL  ${name}: ${err && err.message ? err.message : err}`);
    }
  };
}

async function runSmoke() {
  const results = [];
  const check = checker(results);

  const watchdog = setTimeout(() => {
    console.log('FAIL  smoke run did not finish within 30s');
    process.exit(1);
  }, 30_000);
  watchdog.unref();

  // stdout carries the PASS/FAIL lines, so the access log goes to memory (where a check reads it) and the
  // ejection and recovery lines to a list.
  const accessLog = [];
  const reports = [];
  const secret = jwtSecret();
  const tokens = demoTokens(secret);
  // A second writer: the limit is per consumer, so alice using up hers leaves carol's untouched.
  tokens.carol = signToken(secret, { sub: 'carol', scope: 'orders:write' });
  tokens.dave = signToken(secret, { sub: 'dave', scope: 'orders:write' });

  let shop;
  try {
    shop = await startShop({
      port: 0, portA: 0, portB: 0,
      jwtSecret: secret,
      dashboardPassword: 'smoke-dashboard-password',
      accessLog: { logger: pino({}, { write: (line) => accessLog.push(line) }) },
      report: (line) => reports.push(line),
    });
  } catch (err) {
    console.log(`FAIL  start the example: ${err && err.message ? err.message : err}`);
    process.exit(1);
  }
  const base = shop.url;
  const { a, b } = shop.instances;
  const postOrder = (token) => request('POST', `${base}/api/orders`, { body: ORDER, token });
  const metrics = async () => {
    const res = await request('GET', `${base}/metrics`);
    expect(res.status === 200, `GET /metrics: expected 200, got ${res.status}`);
    return res.text;
  };
  const healthy = (text, instance) =>
    new RegExp(`^frontdoor_upstream_healthy\\{frontdoor_upstream="${instance.url}/?"[^}]*\\} (\\d)$`, 'm').exec(text)?.[1];

  await check('GET /api/orders twice is load-balanced over both instances', async () => {
    const first = await request('GET', `${base}/api/orders`);
    const second = await request('GET', `${base}/api/orders`);
    for (const res of [first, second]) {
      expect(res.status === 200, `expected 200, got ${describe(res)}`);
      expect(res.json && ['a', 'b'].includes(res.json.servedBy), `expected servedBy a or b, got ${describe(res)}`);
      expect(res.headers['x-served-by'] === `orders-${res.json.servedBy}`, `X-Served-By is ${res.headers['x-served-by']}`);
    }
    expect(first.json.servedBy !== second.json.servedBy, `both answers came from instance ${first.json.servedBy}`);
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

  await check('malformed JSON for a monolith route is 400 problem+json (its express.json() runs after the gateway)', async () => {
    const res = await request('POST', `${base}/api/users`, { body: '{"userId":' });
    expect(res.status === 400, `expected 400, got ${describe(res)}`);
    expect(String(res.headers['content-type']).startsWith('application/problem+json'), `expected application/problem+json, got ${res.headers['content-type']}`);
  });

  await check('POST /api/orders without a token is 401 ERR_AUTH_MISSING with a Bearer challenge', async () => {
    const res = await postOrder(undefined);
    expectProblem(res, 401, 'ERR_AUTH_MISSING');
    expect(/^Bearer\b/.test(String(res.headers['www-authenticate'])), `WWW-Authenticate is ${res.headers['www-authenticate']}`);
  });

  await check('POST /api/orders with bob\'s token (scope orders:read) is 403 ERR_FORBIDDEN_SCOPE', async () => {
    expectProblem(await postOrder(tokens.bob), 403, 'ERR_FORBIDDEN_SCOPE');
  });

  await check('POST /api/orders with alice\'s token is 201, the body forwarded byte for byte (20-digit number)', async () => {
    const res = await postOrder(tokens.alice);
    expect(res.status === 201 && res.json && res.json.order, `expected 201 with the order, got ${describe(res)}`);
    const sent = crypto.createHash('sha256').update(ORDER).digest('hex');
    expect(res.headers['x-received-body-sha256'] === sent,
      `the service received other bytes than were sent (sha256 ${res.headers['x-received-body-sha256']}, sent ${sent})`);
  });

  await check('alice\'s 6th POST within the minute is 429 with RateLimit and Retry-After; carol is not limited', async () => {
    for (let n = 2; n <= 5; n++) {
      const res = await postOrder(tokens.alice);
      expect(res.status === 201, `POST ${n}: expected 201, got ${describe(res)}`);
    }
    const sixth = await postOrder(tokens.alice);
    expectProblem(sixth, 429, 'ERR_RATE_LIMITED');
    for (const header of ['ratelimit', 'ratelimit-policy', 'retry-after']) {
      expect(sixth.headers[header] !== undefined, `the 429 has no ${header} header`);
    }
    const carol = await postOrder(tokens.carol);
    expect(carol.status === 201, `carol: expected 201, got ${describe(carol)}`);
  });

  await check('the access log has a line per proxied request, with route, consumer and status, and no token', async () => {
    const lines = accessLog.map((line) => JSON.parse(line));
    const created = lines.find((line) => line.method === 'POST' && line.route === 'orders-write' && line.consumer === 'alice' && line.status === 201);
    expect(created && typeof created.upstream === 'string', `no line for alice's 201 with its upstream among ${lines.length} lines`);
    expect(lines.some((line) => line.status === 429 && line.error === 'ERR_RATE_LIMITED'), 'no line for the 429');
    expect(!accessLog.some((line) => line.includes(tokens.alice)), 'a line contains a token');
  });

  await check('/metrics counts requests per route and shows both targets healthy', async () => {
    const text = await metrics();
    const count = /^http_server_request_duration_seconds_count\{[^}]*http_route="orders-write"[^}]*http_response_status_class="2xx"[^}]*\} (\d+)$/m.exec(text);
    expect(count && Number(count[1]) >= 6, `no request count for orders-write 2xx (>= 6): ${count ? count[0] : 'missing'}`);
    expect(/^frontdoor_rate_limit_rejections_total\{[^}]*http_route="orders-write"[^}]*\} 1$/m.test(text), 'no rate-limit rejection counted for orders-write');
    expect(healthy(text, a) === '1' && healthy(text, b) === '1', `frontdoor_upstream_healthy: a ${healthy(text, a)}, b ${healthy(text, b)}`);
  });

  await check('the migration dashboard at /_frontdoor shows every route with its stage, and asks for credentials', async () => {
    const anonymous = await request('GET', `${base}/_frontdoor/state.json`);
    expect(anonymous.status === 401, `GET /_frontdoor/state.json without credentials: expected 401, got ${anonymous.status}`);
    const basic = `Basic ${Buffer.from('ops:smoke-dashboard-password').toString('base64')}`;
    const res = await request('GET', `${base}/_frontdoor/state.json`, { headers: { authorization: basic } });
    expect(res.status === 200 && res.json, `GET /_frontdoor/state.json: expected 200 JSON, got ${res.status}`);
    const stages = Object.fromEntries((res.json.routes ?? []).map((route) => [route.name, route.stage]));
    expect(stages['orders-read'] === 'service' && stages['orders-write'] === 'service', `dashboard stages: ${JSON.stringify(stages)}`);
  });

  await check('GET /api/order-summary/1001 aggregates the order (service), its customer and product names (monolith)', async () => {
    const res = await request('GET', `${base}/api/order-summary/1001`);
    expect(res.status === 200 && res.json, `expected 200, got ${describe(res)}`);
    expect(res.json.total === 178 && res.json.customer && res.json.customer.name === 'Ada Lovelace', `got ${describe(res)}`);
    expect(res.json.items[0].name === 'Mechanical keyboard' && res.headers['partial-response'] === undefined, `got ${describe(res)}`);
  });

  await check('an order summary whose customer is unknown is partial: customer null, Partial-Response: customer', async () => {
    const posted = await request('POST', `${base}/api/orders`, { body: '{"userId":99,"items":[{"productId":"p-2","quantity":1}]}', token: tokens.dave });
    expect(posted.status === 201, `POST: expected 201, got ${describe(posted)}`);
    const res = await request('GET', `${base}/api/order-summary/${encodeURIComponent(posted.json.order.id)}`);
    expect(res.status === 200 && res.json && res.json.customer === null && res.headers['partial-response'] === 'customer', `got ${describe(res)}`);
    expect(res.json.errors && res.json.errors[0].call === 'customer' && res.json.errors[0].status === 404, `errors: ${JSON.stringify(res.json.errors)}`);
  });

  await check('an order summary of an unknown order is 502 problem+json naming the call "order"', async () => {
    const res = await request('GET', `${base}/api/order-summary/nope`);
    expectProblem(res, 502, 'ERR_AGGREGATE_CALL_FAILED');
    expect(res.json.call === 'order', `got ${describe(res)}`);
  });

  await a.stop();
  let created;
  await check('with a stopped, POSTs are 201 from b: a refused connection is retried (nothing reached a)', async () => {
    for (let i = 0; i < 2; i++) {
      const res = await postOrder(tokens.carol);
      expect(res.status === 201 && res.json && res.json.servedBy === 'b', `POST ${i + 1}: expected 201 from b, got ${describe(res)}`);
      created = res.json.order;
    }
    // Round-robin sends one of the two to a first: the refusal is counted, and the client never saw it.
    const refused = new RegExp(`^frontdoor_upstream_errors_total\\{frontdoor_upstream="${a.url}/?"[^}]*http_route="orders-write"[^}]*error_type="ECONNREFUSED"[^}]*\\} \\d+$`, 'm');
    expect(refused.test(await metrics()), 'no POST found a refusing connections (frontdoor_upstream_errors_total)');
  });

  await check('GET /api/orders/:id finds the order just created on b', async () => {
    expect(created, 'no order was created');
    const res = await request('GET', `${base}/api/orders/${encodeURIComponent(created.id)}`);
    expect(res.status === 200 && res.json && res.json.order && res.json.order.id === created.id, `expected the order ${created.id}, got ${describe(res)}`);
  });

  await check('with a stopped, GET /api/orders is still 200, always from b', async () => {
    for (let i = 0; i < 4; i++) {
      const res = await request('GET', `${base}/api/orders`);
      expect(res.status === 200 && res.json && res.json.servedBy === 'b', `request ${i + 1}: expected 200 from b, got ${describe(res)}`);
    }
  });

  await check('a is ejected: the ejection line is printed and /metrics shows a unhealthy', async () => {
    const line = reports.find((report) => report.startsWith(`upstream ${a.url}`) && report.includes('ejected for 5s'));
    expect(line, `no ejection line for ${a.url}; lines: ${JSON.stringify(reports)}`);
    expect(line.includes('orders-read') && line.includes('orders-write'), `the line does not name both routes: ${line}`);
    const text = await metrics();
    expect(healthy(text, a) === '0' && healthy(text, b) === '1', `frontdoor_upstream_healthy: a ${healthy(text, a)}, b ${healthy(text, b)}`);
  });

  await a.start();
  await check('a restarted: after the 5s cooldown a trial request succeeds, the recovery line is printed, a serves again', async () => {
    const deadline = Date.now() + 9000;
    let servedByA = false;
    while (!servedByA && Date.now() < deadline) {
      const res = await request('GET', `${base}/api/orders`);
      expect(res.status === 200, `expected 200, got ${describe(res)}`);
      servedByA = res.json.servedBy === 'a';
      if (!servedByA) await sleep(250);
    }
    expect(servedByA, 'a served nothing within 9s of its restart');
    expect(reports.some((report) => report.startsWith(`upstream ${a.url}`) && report.includes('recovered')), `no recovery line; lines: ${JSON.stringify(reports)}`);
  });

  await a.stop();
  await b.stop();
  await check('with both instances stopped, GET /api/orders is 502 problem+json: the legacy handler is deleted, nothing falls back', async () => {
    expectProblem(await request('GET', `${base}/api/orders/1001`), 502, 'ERR_UPSTREAM_UNAVAILABLE');
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

module.exports = { runSmoke, checker, request, describe, expect, expectProblem, sleep };
