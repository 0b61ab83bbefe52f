/**
 * `node examples/shop/start.js --smoke --step <step>`: starts the shop at one step of the migration guide
 * (docs/migration.md) on ephemeral ports and checks for real what the guide says happens at that step (`--step all`:
 * every step before done, one after the other): who
 * answers, what the shadow report shows before and after the fix, the cutover's share and stickiness,
 * fallback to the monolith with both service instances stopped. (`--step done`, the default, is smoke.js.)
 * Prints one PASS/FAIL line per check and a summary last; exits 0 or 1. Nothing else goes to stdout.
 */
'use strict';

const { startShop } = require('./shop');
const { checker, request, describe, expect, sleep } = require('./smoke');
const { cutoverPercent } = require('./steps');
const { demoTokens, jwtSecret } = require('./tokens');

const ORDER = '{"userId": 1, "items": [{"productId": "p-1", "quantity": 2}]}';
/** Readers for the cutover checks: one sid cookie each. */
const READERS = 200;

/** GET with a cookie; resolves like request(). */
function read(url, sid) {
  return request('GET', url, { headers: sid ? { cookie: `sid=${sid}` } : {} });
}

/** The orders-read route's report once `count` copies have an outcome (the comparison ends after the client's answer). */
async function settledReport(shop, count) {
  const deadline = Date.now() + 3000;
  for (;;) {
    const report = shop.gateway.shadowReport('orders-read');
    const { match, mismatch, candidateError, skipped } = report.outcomes;
    if (match + mismatch + candidateError + skipped >= count || Date.now() > deadline) return report;
    await sleep(20);
  }
}

/** The three reads the guide's shadow steps make; each must come from the monolith. */
async function threeReads(base) {
  for (const path of ['/api/orders/1001', '/api/orders/1002', '/api/orders']) {
    const res = await request('GET', `${base}${path}`);
    expect(res.status === 200 && res.json && res.json.servedBy === 'monolith', `${path}: expected 200 from the monolith, got ${describe(res)}`);
  }
}

/** Checks of each step: `check(name, fn)` runs one. */
const STEP_CHECKS = {
  async monolith({ check, base, tokens, shop }) {
    await check('monolith: GET /api/orders/1001 is answered by the legacy handler, total 178', async () => {
      const res = await request('GET', `${base}/api/orders/1001`);
      expect(res.status === 200 && res.json.servedBy === 'monolith' && res.json.order.total === 178, `got ${describe(res)}`);
    });
    await check('monolith: POST /api/orders needs a token at the edge (401), alice\'s is 201 from the monolith', async () => {
      const anonymous = await request('POST', `${base}/api/orders`, { body: ORDER });
      expect(anonymous.status === 401, `without a token: expected 401, got ${describe(anonymous)}`);
      const res = await request('POST', `${base}/api/orders`, { body: ORDER, token: tokens.alice });
      expect(res.status === 201 && res.json.servedBy === 'monolith', `expected 201 from the monolith, got ${describe(res)}`);
    });
    await check('monolith: nothing is shadowed yet (the report lists no route)', async () => {
      const res = await request('GET', `${base}/admin/shadow`);
      expect(res.status === 200 && Array.isArray(res.json) && res.json.length === 0, `got ${describe(res)}`);
      expect(shop.gateway.shadowReport('orders-read') === undefined, 'orders-read has a report');
    });
  },

  async shadow({ check, base, shop }) {
    await check('shadow: clients get the monolith\'s answers', () => threeReads(base));
    await check('shadow: the report shows 3 mismatches, in body.servedBy and the totals, 178 against 89 for order 1001', async () => {
      const report = await settledReport(shop, 3);
      expect(report.outcomes.mismatch === 3 && report.outcomes.match === 0, `outcomes ${JSON.stringify(report.outcomes)}`);
      const fields = Object.fromEntries(report.fields.map((field) => [field.path, field.count]));
      expect(fields['body.servedBy'] === 3 && fields['body.order.total'] === 1 && fields['body.orders[*].total'] === 1,
        `fields ${JSON.stringify(report.fields)}`);
      const sample = report.samples.find((found) => found.path === '/api/orders/1001');
      const total = sample && sample.differences.find((difference) => difference.path === 'body.order.total');
      expect(total && total.primary === 178 && total.candidate === 89, `sample ${JSON.stringify(sample)}`);
    });
    await check('shadow: GET /admin/shadow?route=orders-read serves the same report as JSON', async () => {
      const res = await request('GET', `${base}/admin/shadow?route=orders-read`);
      expect(res.status === 200 && res.json && res.json.route === 'orders-read' && res.json.outcomes.mismatch === 3, `got ${describe(res)}`);
    });
  },

  async fixed({ check, base, shop }) {
    await check('fixed: clients get the monolith\'s answers', () => threeReads(base));
    await check('fixed: servedBy ignored and release 2 deployed, the report shows 3 matches and no differing field', async () => {
      const report = await settledReport(shop, 3);
      expect(report.outcomes.match === 3 && report.outcomes.mismatch === 0, `outcomes ${JSON.stringify(report.outcomes)}; fields ${JSON.stringify(report.fields)}`);
      expect(report.fields.length === 0, `fields ${JSON.stringify(report.fields)}`);
    });
  },

  async cutover({ check, base, tokens, shop, percent }) {
    // The metrics registry is the process's: with --step all it holds earlier steps' counts too, so compare
    // with the counts at the start of the step.
    const metric = async (pattern) => Number(pattern.exec((await request('GET', `${base}/metrics`)).text)?.[1] ?? 0);
    const cutoverCount = (side) => metric(new RegExp(`^frontdoor_cutover_requests_total\\{[^}]*http_route="orders-read"[^}]*frontdoor_cutover_side="${side}"[^}]*\\} (\\d+)$`, 'm'));
    const fallbackCount = () => metric(/^frontdoor_fallbacks_total\{[^}]*http_route="orders-read"[^}]*frontdoor_fallback_trigger="unavailable"[^}]*\} (\d+)$/m);
    const before = { service: await cutoverCount('service'), monolith: await cutoverCount('monolith'), fallbacks: await fallbackCount() };
    const sides = new Map();
    const readAll = async (count) => {
      const found = new Map();
      for (let i = 0; i < count; i++) {
        const res = await read(`${base}/api/orders/1001`, `user-${i}`);
        expect(res.status === 200 && res.json, `reader ${i}: expected 200, got ${describe(res)}`);
        found.set(i, res.json.servedBy === 'monolith' ? 'monolith' : 'service');
      }
      return found;
    };
    await check(`cutover-${percent}: about ${percent} % of ${READERS} readers (sid cookies) get the service, the rest the monolith`, async () => {
      for (const [i, side] of await readAll(READERS)) sides.set(i, side);
      const share = (100 * [...sides.values()].filter((side) => side === 'service').length) / READERS;
      // 200 readers: a share within 5 points (with a sticky key the split is by hash, the same every run).
      expect(Math.abs(share - percent) <= 5, `${share} % went to the service`);
    });
    await check(`cutover-${percent}: a reader stays on the same side, and /metrics counts the split`, async () => {
      const again = await readAll(50);
      for (const [i, side] of again) expect(sides.get(i) === side, `reader ${i} moved from ${sides.get(i)} to ${side}`);
      const counted = { service: (await cutoverCount('service')) - before.service, monolith: (await cutoverCount('monolith')) - before.monolith };
      const service = [...sides.values(), ...again.values()].filter((side) => side === 'service').length;
      expect(counted.service === service && counted.service + counted.monolith === READERS + 50,
        `frontdoor_cutover_requests_total: service ${counted.service}, monolith ${counted.monolith}; expected service ${service} of ${READERS + 50}`);
    });
    if (percent < 100) {
      await check(`cutover-${percent}: gw.setCutover('orders-read', ${percent + 25}) moves readers only from the monolith to the service`, async () => {
        shop.gateway.setCutover('orders-read', percent + 25);
        const after = await readAll(READERS);
        for (const [i, side] of after) expect(!(sides.get(i) === 'service' && side === 'monolith'), `reader ${i} went back to the monolith`);
        const share = (100 * [...after.values()].filter((side) => side === 'service').length) / READERS;
        expect(Math.abs(share - (percent + 25)) <= 5, `${share} % went to the service`);
        shop.gateway.setCutover('orders-read', percent);
      });
    }
    const onService = [...sides].find(([, side]) => side === 'service');
    await shop.instances.a.stop();
    await shop.instances.b.stop();
    await check(`cutover-${percent}: both instances stopped, a reader on the service side gets the monolith's answer with x-frontdoor-fallback`, async () => {
      expect(onService, 'no reader went to the service');
      for (let i = 0; i < 3; i++) { // refused, then no healthy target once both are ejected: fallback each time
        const res = await read(`${base}/api/orders/1001`, `user-${onService[0]}`);
        expect(res.status === 200 && res.json.servedBy === 'monolith' && res.headers['x-frontdoor-fallback'] === 'unavailable', `got ${describe(res)}, x-frontdoor-fallback ${res.headers['x-frontdoor-fallback']}`);
      }
      const fallbacks = (await fallbackCount()) - before.fallbacks;
      expect(fallbacks === 3, `frontdoor_fallbacks_total counted ${fallbacks} unavailable, not 3`);
    });
    if (percent === 100) {
      await check('cutover-100: alice\'s POST, refused by both instances before any byte went out, is created by the monolith', async () => {
        const res = await request('POST', `${base}/api/orders`, { body: ORDER, token: tokens.alice });
        expect(res.status === 201 && res.json.servedBy === 'monolith' && res.headers['x-frontdoor-fallback'] === 'unavailable', `got ${describe(res)}`);
      });
    }
    await shop.instances.a.start();
    await shop.instances.b.start();
  },
};

/**
 * Runs the checks of the given steps, one after the other, each on a freshly started shop.
 *
 * @param {string[]} steps e.g. `['shadow']`, or every step but done for `--step all`
 */
async function runStepSmoke(steps) {
  const results = [];
  const check = checker(results);
  const limit = 15_000 * steps.length;
  const watchdog = setTimeout(() => {
    console.log(`FAIL  step smoke run did not finish within ${limit / 1000}s`);
    process.exit(1);
  }, limit);
  watchdog.unref();

  for (const step of steps) {
    const secret = jwtSecret();
    let shop;
    try {
      shop = await startShop({ port: 0, portA: 0, portB: 0, step, jwtSecret: secret, accessLog: false, report: () => {} });
    } catch (err) {
      console.log(`FAIL  start the example at step ${step}: ${err && err.message ? err.message : err}`);
      process.exit(1);
    }
    await check(`${step}: GET /api/order-summary/1001 aggregates the order, its customer and the product names`, async () => {
      const res = await request('GET', `${shop.url}/api/order-summary/1001`);
      expect(res.status === 200 && res.json && res.json.customer && res.json.customer.name === 'Ada Lovelace' &&
        res.json.items[0].name === 'Mechanical keyboard', `got ${describe(res)}`);
    });
    const percent = cutoverPercent(step);
    const checks = percent !== undefined ? STEP_CHECKS.cutover : STEP_CHECKS[step];
    await checks({ check, base: shop.url, tokens: demoTokens(secret), shop, percent });
    await shop.close();
  }

  clearTimeout(watchdog);
  const failed = results.filter((ok) => !ok).length;
  const name = steps.join(', ');
  console.log(failed === 0 ? `smoke ${name}: all ${results.length} checks passed` : `smoke ${name}: ${failed} of ${results.length} checks failed`);
  process.exitCode = failed === 0 ? 0 : 1;
}

module.exports = { runStepSmoke };
