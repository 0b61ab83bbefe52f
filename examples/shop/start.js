/**
 * Runs the shop example: two instances of the extracted orders service and the monolith with
 * frontdoor's gateway in front of it, all on 127.0.0.1. Prints the URLs and curl commands that show
 * routing, fall-through, load balancing, a JWT-protected write with a scope, a per-consumer rate limit,
 * metrics, access logs and fail-over; `stop a` / `start a` on stdin (or SIGUSR2) take instance a down
 * and bring it back, and the gateway prints a line when it ejects the instance and when it recovers.
 *
 *   node examples/shop/start.js                 interactive (what `npm start` runs)
 *   node examples/shop/start.js --step shadow   at a step of the migration guide (steps.js, docs/migration.md):
 *                                               monolith, shadow, fixed, cutover-5, cutover-50, cutover-100, done (default)
 *   node examples/shop/start.js --smoke         ephemeral ports, real requests, PASS/FAIL, exit 0 or 1 (smoke.js)
 *   node examples/shop/start.js --smoke --step cutover-50   the checks of that step (smoke-steps.js); --step all:
 *                                               of every step before done, one after the other
 *
 * Environment: PORT (monolith, default 3000), ORDERS_PORT_A (4001), ORDERS_PORT_B (4002),
 * JWT_SECRET (default: 32 random bytes, new on every start), DASHBOARD_PASSWORD (default: random, new on every start).
 */
'use strict';

const { randomBytes } = require('node:crypto');
const readline = require('node:readline');
const { startShop } = require('./shop');
const { STEPS, STEP_NAMES, cutoverPercent } = require('./steps');
const { demoTokens, jwtSecret } = require('./tokens');

/** The step named by `--step <name>` or `--step=<name>` (default `done`), or exits with the list of steps. */
function stepFromArgs(argv) {
  const index = argv.findIndex((arg) => arg === '--step' || arg.startsWith('--step='));
  if (index === -1) return 'done';
  const step = argv[index] === '--step' ? argv[index + 1] : argv[index].slice('--step='.length);
  if (step === 'all' && argv.includes('--smoke')) return step;
  if (!STEP_NAMES.includes(step)) {
    console.error(`--step must be one of:\n${STEP_NAMES.map((name) => `  ${name.padEnd(12)} ${STEPS[name]}`).join('\n')}`);
    process.exit(1);
  }
  return step;
}

/** The commands that show what a migration step does, with the real URL. */
function stepGuide(step, base) {
  const next = STEP_NAMES[STEP_NAMES.indexOf(step) + 1];
  const lines = [`Migration step "${step}": ${STEPS[step]}`, ''];
  const served = `curl -s ${base}/api/orders/1001`;
  if (step === 'monolith') {
    lines.push('  # the monolith\'s legacy handler answers: "servedBy":"monolith", total 178 (2 x 89)', `  ${served}`);
  } else if (step === 'shadow' || step === 'fixed') {
    lines.push(
      '  # the monolith still answers every client; each GET is copied to the orders service and the answers compared',
      `  ${served}; curl -s ${base}/api/orders/1002; curl -s ${base}/api/orders`,
      step === 'shadow'
        ? '  # the report: mismatches in body.servedBy (always) and body.order.total (orders with a quantity above 1)'
        : '  # the report: servedBy is ignored, release 2 computes totals as the monolith does: every copy matches',
      `  curl -s '${base}/admin/shadow?route=orders-read'`,
    );
  } else if (cutoverPercent(step) !== undefined) {
    lines.push(
      `  # ${cutoverPercent(step)} % of readers (by their sid cookie) get the service ("servedBy":"a" or "b"), the rest the monolith`,
      `  for i in $(seq 1 20); do curl -s -b sid=user-$i ${base}/api/orders/1001 | grep -o '"servedBy":"[a-z]*"'; done | sort | uniq -c`,
      '  # the split as the gateway counts it',
      `  curl -s ${base}/metrics | grep ^frontdoor_cutover`,
      '  # stop both instances ("stop a", "stop b"): every read is answered by the monolith, marked by a header',
      `  curl -si ${base}/api/orders/1001 | grep -iE '^x-frontdoor-fallback|servedBy'`,
      '  # change the share at runtime, without a restart: type "cutover 50" (calls gw.setCutover)',
    );
  } else {
    lines.push('  # the service answers; the monolith has no orders handler any more', `  ${served}`);
  }
  lines.push(
    '',
    '  # one request, three calls: the order (service), its customer and the product names (monolith)',
    `  curl -s ${base}/api/order-summary/1001`,
  );
  if (next) lines.push('', `  Next step: npm start -- --step ${next}`);
  return lines.join('\n');
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

// --- interactive mode -------------------------------------------------------------------------

async function runInteractive(step) {
  const settings = {
    step,
    port: portFromEnv('PORT', 3000),
    portA: portFromEnv('ORDERS_PORT_A', 4001),
    portB: portFromEnv('ORDERS_PORT_B', 4002),
    jwtSecret: jwtSecret(),
    dashboardPassword: process.env.DASHBOARD_PASSWORD || randomBytes(12).toString('base64url'),
    accessLog: true, // pino JSON lines on stdout, between the lines this script prints
    report: (line) => console.log(`>> ${line}`),
  };
  let shop;
  try {
    shop = await startShop(settings);
  } catch (err) {
    if (err && err.code === 'EADDRINUSE') {
      console.error(`Port ${err.port} is already in use. Choose others with PORT, ORDERS_PORT_A and ORDERS_PORT_B, e.g.\n` +
        '  PORT=3100 ORDERS_PORT_A=4101 ORDERS_PORT_B=4102 npm start');
    } else if (err && err.code === 'ERR_CONFIG') {
      console.error(err.message); // names the option, e.g. a JWT_SECRET shorter than 32 bytes: the stack adds nothing
    } else {
      console.error(err);
    }
    process.exit(1);
  }

  const { instances } = shop;
  const base = shop.url;
  const writesToService = step === 'done' || cutoverPercent(step) !== undefined;
  const interactive = Boolean(process.stdin.isTTY);
  const tokens = demoTokens(settings.jwtSecret);
  // The 20-digit number would come out rounded if anything parsed and re-serialised the body on the way.
  const body = '{"userId":1,"items":[{"productId":"p-1","quantity":2}],"ref":12345678901234567890}';
  const post = (token) => `curl -i -X POST ${base}/api/orders${token ? ` -H 'authorization: Bearer ${token}'` : ''} -H 'content-type: application/json' -d '${body}'`;
  const loop = `for i in 1 2 3 4 5 6; do curl -s -o /dev/null -D - -X POST ${base}/api/orders -H 'authorization: Bearer ${tokens.alice}' ` +
    `-H 'content-type: application/json' -d '${body}' | grep -iE '^(HTTP|ratelimit|retry-after)'; done`;
  console.log(`
frontdoor shop example: a monolith handing /api/orders to an extracted service, step by step

  monolith + gateway           ${base}
  orders service, instance a   ${instances.a.url}
  orders service, instance b   ${instances.b.url}
  JWT secret (HS256)           ${process.env.JWT_SECRET ? 'from JWT_SECRET' : 'random, new on every start (set JWT_SECRET to choose it)'}
  demo tokens, valid 1 hour    alice: scope orders:write; bob: scope orders:read
  access log                   one JSON line per proxied request, on this terminal
  shadow report                ${base}/admin/shadow
  migration dashboard          ${base}/_frontdoor   (user ops, password ${settings.dashboardPassword})

${stepGuide(step, base)}

Try it:
${step === 'done'
    ? `  # routed by the gateway to the orders service (reads are public); run it twice: "servedBy" alternates a, b
  curl -i ${base}/api/orders`
    : `  # reads are public at every step; who answers depends on the step (see above)
  curl -i ${base}/api/orders`}

  # served in-process by the monolith (no route matches, so the gateway calls next())
  curl ${base}/api/users

  # neither a gateway route nor a monolith handler: the monolith's own 404
  curl -i ${base}/api/nothing-here

  # creating an order needs a token: 401 problem+json (ERR_AUTH_MISSING) with a WWW-Authenticate challenge
  ${post()}

  # bob's token is valid but lacks the orders:write scope: 403 problem+json (ERR_FORBIDDEN_SCOPE)
  ${post(tokens.bob)}

${writesToService
    ? `  # alice's token has it: 201 Created. From the service, X-Received-Body-Sha256 is the digest of the bytes it got:
  # the same as  printf '%s' '${body}' | sha256sum`
    : '  # alice\'s token has it: 201 Created, by the monolith\'s legacy handler (the gateway checked token, scope and limit)'}
  ${post(tokens.alice)}

  # alice may create 5 orders a minute (counted per consumer, not per IP). The POST above counted too,
  # so this loop gets 201 until her 5 are used, then 429 with RateLimit and Retry-After headers
  ${loop}

  # Prometheus metrics: requests per route, method and status class; 1 or 0 per target for upstream health
  curl -s ${base}/metrics | grep -E '^http_server_request_duration_seconds_count|^frontdoor_(upstream_healthy|rate_limit)'

Fail-over:
  ${interactive ? `Type "stop a" + Enter (or: kill -USR2 ${process.pid})` : `Run kill -USR2 ${process.pid}`} to stop instance a, then run this a few times:
  curl ${base}/api/orders
  Every answer of the orders service now comes from b. A request that finds a refusing connections is
  retried on b (a POST too: nothing reached a). After 2 failures in a row the gateway ejects a for 5s and prints
  ">> upstream … ejected" here. ${interactive ? '"start a" restarts it' : 'The same kill again restarts it'}; after the cooldown one trial request goes
  to a, and ">> upstream … recovered" is printed.
${interactive ? `  Commands: stop a|b, start a|b, status, ${cutoverPercent(step) !== undefined ? 'cutover <percent>, ' : ''}help, quit.\n` : ''}  Ctrl+C stops everything.
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

  // Moves reads and writes together, as the steps do; a real migration may move them apart.
  function setCutover(value) {
    if (!/^\d+(\.\d+)?$/.test(value)) {
      console.log('usage: cutover <percent>, e.g. cutover 50');
      return;
    }
    try {
      for (const route of ['orders-read', 'orders-write']) shop.gateway.setCutover(route, Number(value));
      console.log(`cutover: ${Number(value)} % of orders requests now go to the service`);
    } catch (err) {
      console.error(`could not change the cutover: ${err.message}`);
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
      } else if (command === 'cutover' && cutoverPercent(step) !== undefined) {
        setCutover(name);
      } else if (command === 'quit' || command === 'exit') {
        shutdown('quit');
      } else {
        console.log(`commands: stop a|b, start a|b, status, ${cutoverPercent(step) !== undefined ? 'cutover <percent>, ' : ''}help, quit`);
      }
    });
  }
}

const step = stepFromArgs(process.argv.slice(2));
if (process.argv.includes('--smoke')) {
  const steps = step === 'all' ? STEP_NAMES.filter((name) => name !== 'done') : [step];
  const smoke = step === 'done' ? require('./smoke').runSmoke() : require('./smoke-steps').runStepSmoke(steps);
  smoke.catch((err) => {
    console.log(`FAIL  smoke run crashed: ${err && err.stack ? err.stack : err}`);
    process.exit(1);
  });
} else {
  runInteractive(step).catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
