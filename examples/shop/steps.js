/**
 * The migration steps of docs/migration.md, as configurations of the shop's two orders routes. Each step is
 * what the gateway's table says about `GET /api/orders/**` (orders-read) and `POST /api/orders`
 * (orders-write), which release of the orders service runs, and whether the monolith still has its legacy
 * orders handler. `npm start -- --step shadow` runs one; the default, `done`, is the finished migration.
 */
'use strict';

/**
 * What fallback catches, for the cutover steps: the service unreachable or too slow, or answering 502/503.
 * A POST whose body reached the service is never handed to the monolith, whatever the trigger.
 */
const FALLBACK = { on: ['unavailable', 'timeout', 502, 503] };

/** The steps in order, with the line start.js prints for each. */
const STEPS = {
  monolith: 'before: the monolith serves every orders request itself; the gateway only checks tokens and limits writes',
  shadow: '1. shadow: the monolith answers, the orders service (release 1) gets a copy of each read; GET /admin/shadow shows the differences',
  fixed: '2. fix the mismatches: servedBy ignored (it differs by design), the total bug fixed in the service (release 2); the report matches',
  'cutover-5': '3. cut over: 5 % of reads (sticky per sid cookie) and of writers (sticky per consumer) go to the service, with fallback to the monolith',
  'cutover-50': '3. cut over: 50 % to the service, with fallback to the monolith',
  'cutover-100': '3. cut over: 100 % to the service, with fallback to the monolith (the legacy handler still catches failures)',
  done: '4. done: the monolith\'s orders handler is deleted; the orders routes go to the service only',
};

const STEP_NAMES = Object.keys(STEPS);

/** The cutover percentage of a step, or undefined. */
function cutoverPercent(step) {
  const found = /^cutover-(\d+)$/.exec(step);
  return found ? Number(found[1]) : undefined;
}

/** The orders-service release a step runs: the first one (with the total bug) until the fix is deployed. */
function releaseOf(step) {
  return step === 'shadow' ? 1 : 2;
}

/** Whether the monolith still mounts its legacy orders handler at this step (step 4 deletes it). */
function hasLegacyOrders(step) {
  return step !== 'done';
}

/**
 * The orders routes of the gateway at a step.
 *
 * @param {string} step one of STEP_NAMES
 * @param {{ ordersTargets: string[], writePolicies: object }} context the service's URLs (for the shadow's
 *   candidate) and what every write goes through at the edge (auth, scope, rate limit)
 * @returns {object[]} routes for gateway()
 */
function ordersRoutes(step, { ordersTargets, writePolicies }) {
  if (!STEP_NAMES.includes(step)) throw new TypeError(`unknown step ${JSON.stringify(step)}; the steps are: ${STEP_NAMES.join(', ')}`);
  const read = { path: '/api/orders', name: 'orders-read', methods: ['GET'] };
  const write = { path: '/api/orders', name: 'orders-write', methods: ['POST'], ...writePolicies };
  // Writes get the edge policies at every step; until the service takes them, the monolith answers (app: true).
  const writeToMonolith = { ...write, app: true };
  const percent = cutoverPercent(step);

  if (step === 'monolith') return [writeToMonolith];
  if (step === 'shadow' || step === 'fixed') {
    // No upstream: the monolith's own handler answers every client; the service only gets copies of reads
    // (POST is never copied: the service would create every order a second time).
    const shadow = { candidate: { targets: ordersTargets }, timeout: '2s' };
    // Step 2: servedBy says who answered, so it differs by design: not a bug to fix, a field to ignore.
    if (step === 'fixed') shadow.compare = { ignore: ['servedBy'] };
    return [{ ...read, shadow }, writeToMonolith];
  }
  if (percent !== undefined) {
    return [
      { ...read, upstream: 'orders', cutover: { percent, sticky: { cookie: 'sid' } }, fallback: FALLBACK },
      { ...write, upstream: 'orders', cutover: { percent, sticky: 'consumer' }, fallback: FALLBACK },
    ];
  }
  // done
  return [{ ...read, upstream: 'orders' }, { ...write, upstream: 'orders' }];
}

module.exports = { STEPS, STEP_NAMES, ordersRoutes, releaseOf, hasLegacyOrders, cutoverPercent };
