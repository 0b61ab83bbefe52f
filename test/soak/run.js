/**
 * `npm run soak`: an endurance run on loopback. Two gateway instances (gateway.js) share a real redis-server,
 * in front of one upstream that flaps on a schedule (upstream.js: refuses, hangs, resets); a paced mix of
 * anonymous, JWT, API-key, rate-limited, cached, upload and WebSocket traffic (load.js) runs against both, and
 * Redis is killed halfway and restarted a few seconds later (schedule.js). Every 10 s it prints, per gateway,
 * RSS and heap (after a full GC), the event-loop delay p99, open sockets and handles, and the answers by class.
 * At the end it checks (checks.js): memory growth after the warm-up < 10 %, no failure the fault schedule does
 * not explain, no unhandled error, sockets and handles back to their baseline once the load stops; exit code 1
 * naming the failed check. Results: .tmp/soak-results.json; the children's logs: .tmp/soak-logs/.
 *
 * Environment:
 *   SOAK_MINUTES   length of the load, fractional allowed (default 10); the whole run ends by itself, with a
 *                  hard stop at the length plus 3 minutes that kills every child
 *   SOAK_RATE      requests started per second over both gateways (default 250), at most 32 in flight, plus
 *                  3 WebSocket echo sessions at any time
 *   SOAK_NODE      the node executable the gateways run on (`/path/to/node`, or a pinned line of
 *                  scripts/node-lines.js: `24`); this process and the upstream stay on this Node
 *   SOAK_DIST      the build the gateways load (default ./dist), e.g. one built apart with
 *                  `npx tsc -p tsconfig.build.json --outDir .tmp/soak-dist`
 */
'use strict';

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const { askChild, childTracker, freePort, redisPong } = require('../bench/loopback');
const path = require('node:path');
const { plan: makePlan, UPSTREAM_LIMITS, GRACE } = require('./schedule');
const { Load } = require('./load');
const { judge, checks, classOf } = require('./checks');

const ROOT = path.join(__dirname, '..', '..');
const TMP = path.join(ROOT, '.tmp');
const RESULTS_FILE = path.join(TMP, 'soak-results.json');
const LOG_DIR = path.join(TMP, 'soak-logs');
const DIST = process.env.SOAK_DIST ? path.resolve(ROOT, process.env.SOAK_DIST) : path.join(ROOT, 'dist');
const SAMPLE_EVERY_MS = 10_000;
const RATE_LIMIT = { limit: 50, windowMs: 5_000 }; // the /limited route's, in gateway.js

function envNumber(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) {
    console.error(`soak: ${name} must be a positive number, got "${raw}"`);
    process.exit(2);
  }
  return n;
}

const minutes = envNumber('SOAK_MINUTES', 10);
const rate = envNumber('SOAK_RATE', 250);
const plan = makePlan(Math.round(minutes * 60_000));

/** The node the gateways run on: SOAK_NODE as a path, or a line number installed by scripts/node-lines.js. */
function gatewayNode() {
  const wanted = process.env.SOAK_NODE;
  if (!wanted) return process.execPath;
  if (/^\d+$/.test(wanted)) return path.join(require('../../scripts/node-lines').install(wanted), 'node');
  return path.resolve(wanted);
}

// ---------------------------------------------------------------------------------------------------------
// Children: tracked so that they are killed whatever happens.

const { track, killAll } = childTracker('soak');

/** A log file for a child's stdout and stderr (the gateways log Redis outages there). */
function logFile(name) {
  fs.mkdirSync(LOG_DIR, { recursive: true });
  return fs.openSync(path.join(LOG_DIR, `${name}.log`), 'w');
}

function startNodeChild(name, node, script, nodeArgs = []) {
  const log = logFile(name);
  const child = spawn(node, [...nodeArgs, path.join(__dirname, script)], {
    stdio: ['ignore', log, log, 'ipc'],
    env: { ...process.env, SOAK_DIST: DIST },
  });
  fs.closeSync(log);
  child.soakName = name;
  return track(child);
}

/** Sends `msg` (unless null) and resolves with the child's next message of type `type`; a failed build or an error rejects. */
function ask(child, msg, type, timeoutMs = 10_000) {
  return askChild(child, msg, type, { name: child.soakName, timeoutMs, failOn: ['build-failed', 'error'] });
}

// ---------------------------------------------------------------------------------------------------------
// Redis: a throwaway redis-server on a free loopback port, killed with SIGKILL halfway, restarted on that port.

class Redis {
  constructor(port) {
    this.port = port;
    this.url = `redis://127.0.0.1:${port}`;
    this.child = undefined;
  }

  async start() {
    const log = logFile('redis');
    this.child = track(spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], { stdio: ['ignore', log, log] }));
    fs.closeSync(log);
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline) {
      if (await redisPong(this.port)) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`redis-server did not answer on port ${this.port} within 5 s`);
  }

  kill() {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      child.once('exit', resolve);
      child.kill('SIGKILL');
    });
  }
}

// ---------------------------------------------------------------------------------------------------------

const mb = (bytes) => (bytes / 1048576).toFixed(1);
const seconds = (ms) => `${(ms / 1000).toFixed(0).padStart(4)}s`;

/** JWTs and an API key from the kit's own testing helpers (frontdoor-gateway/testing), in the build under test. */
async function credentials(runMs) {
  const { createKeyPair, signToken, apiKey, apiKeyDigest } = require(path.join(DIST, 'testing.js'));
  const pair = await createKeyPair('RS256');
  const other = await createKeyPair('RS256');
  const life = Math.ceil(runMs / 1000) + 600;
  const valid = await Promise.all(Array.from({ length: 8 }, (_, i) => signToken({ sub: `user-${i}`, scope: 'orders:read' }, { privateKey: pair.privateKey, expiresIn: life })));
  const impostor = await signToken({ sub: 'user-0', scope: 'orders:read' }, { privateKey: other.privateKey, expiresIn: life });
  // The claims of a valid token under another key's signature: well-formed, wrongly signed.
  const forged = `${valid[0].split('.').slice(0, 2).join('.')}.${impostor.split('.')[2]}`;
  const expired = await signToken({ sub: 'user-9' }, { privateKey: pair.privateKey, expiresIn: -60 });
  const key = apiKey({ prefix: 'fdk_soak_' });
  return { tokens: { valid, forged, expired }, apiKey: key, jwtPublicPem: pair.publicPem, apiKeyDigest: apiKeyDigest(key) };
}

async function main() {
  if (spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status !== 0) {
    console.error('soak: redis-server is not installed (apt-get install redis-server).');
    process.exit(2);
  }
  if (!fs.existsSync(path.join(DIST, 'index.js'))) {
    console.error(`soak: no build at ${DIST} (npm run build, or SOAK_DIST=<dir>).`);
    process.exit(2);
  }
  const hardStop = setTimeout(() => {
    console.error('soak: FAILED: hard timeout, killing every child');
    killAll();
    process.exit(1);
  }, plan.durationMs + 180_000);
  hardStop.unref();

  const node = gatewayNode();
  const gatewayVersion = spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim();
  const failures = [];

  const redis = new Redis(await freePort());
  await redis.start();
  const upstream = startNodeChild('upstream', process.execPath, 'upstream.js');
  const { port: upstreamPort } = await ask(upstream, null, 'listening');
  upstream.on('message', (m) => { if (m && m.type === 'error') failures.push(`upstream: ${m.message}`); });

  const creds = await credentials(plan.durationMs);
  const config = { upstreamPort, redisUrl: redis.url, jwtPublicPem: creds.jwtPublicPem, apiKeyDigest: creds.apiKeyDigest };
  const gateways = [];
  for (let i = 0; i < 2; i++) {
    const name = `gw${i + 1}`;
    // The young generation at one fixed size on every line: V8 grows it on its own (to 64 MB on Node 24, empty
    // after a full GC), a step in RSS that is sizing, not objects kept, and would read as growth.
    const child = startNodeChild(name, node, 'gateway.js', ['--expose-gc', '--min-semi-space-size=16', '--max-semi-space-size=16']);
    const g = { name, child, samples: [], port: 0, exitedEarly: undefined, baseline: undefined, end: undefined, last: undefined };
    child.on('exit', (code, signal) => { if (!g.closing) g.exitedEarly = signal || `code ${code}`; });
    g.port = (await ask(child, { cmd: 'start', config }, 'listening', 20_000)).port;
    gateways.push(g);
  }

  console.log(`soak: ${minutes} min on loopback, gateways on Node ${gatewayVersion} (${node}), orchestrator and upstream on ${process.version}`);
  console.log(`soak: build ${path.relative(ROOT, DIST) || '.'}, ${rate} requests/s + 3 WebSocket sessions, redis-server on ${redis.port}, upstream on ${upstreamPort}, gateways on ${gateways.map((g) => g.port).join(' and ')}`);
  console.log(`soak: flaps every ${plan.cycle / 1000} s (refuse, hang, reset, ${plan.flapLength / 1000} s each), Redis down at ${plan.redis.start / 1000}–${plan.redis.end / 1000} s, warm-up ${plan.warmup / 1000} s`);

  let t0 = Date.now();
  const now = () => Date.now() - t0;
  const results = [];
  const interval = gateways.map(() => ({}));
  let recording = false;
  const load = new Load({
    ports: gateways.map((g) => g.port),
    tokens: creds.tokens,
    apiKey: creds.apiKey,
    rate,
    maxInFlight: 32,
    wsSessions: 3,
    now,
    onResult: (r) => {
      if (!recording) return;
      results.push(r);
      const cls = classOf(r.label);
      interval[r.gw][cls] = (interval[r.gw][cls] || 0) + 1;
    },
  });

  const sample = (g, detail = false) => ask(g.child, { cmd: 'sample', detail }, 'sample');
  /** Samples every gateway until two samples in a row agree (baseline), or until `done(g, s)` (end), within `maxMs`. */
  async function settle(maxMs, done) {
    await load.stop();
    load.destroyAgents();
    const started = Date.now();
    await ask(upstream, { cmd: 'close-idle' }, 'closed-idle');
    const last = new Map();
    const settled = new Map();
    while (settled.size < gateways.length && Date.now() - started < maxMs) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      for (const g of gateways) {
        if (settled.has(g)) continue;
        const s = await sample(g);
        const prev = last.get(g);
        last.set(g, s);
        if (done ? done(g, s) : prev && prev.sockets === s.sockets && prev.handles === s.handles) settled.set(g, Date.now() - started);
      }
    }
    return gateways.map((g) => ({ sample: last.get(g), ms: settled.get(g) ?? Date.now() - started }));
  }

  // Prime: every kind of request once on each gateway, which must get its normal answer; then the baseline.
  for (let gw = 0; gw < gateways.length; gw++) {
    for (const kind of load.kinds) {
      const r = await load.request(kind, gw, 1);
      if (r.verdict !== 'ok') throw new Error(`setup: ${kind.name} on ${gateways[gw].name} got ${r.label}`);
    }
    for (const withoutToken of [false, true]) {
      const r = await load.wsSession(gw, withoutToken);
      if (r.verdict !== 'ok') throw new Error(`setup: WebSocket ${withoutToken ? 'without token' : 'echo'} on ${gateways[gw].name} got ${r.label}`);
    }
  }
  for (const [i, b] of (await settle(10_000)).entries()) gateways[i].baseline = b.sample;
  console.log(`soak: baseline ${gateways.map((g) => `${g.name} sockets ${g.baseline.sockets}, handles ${g.baseline.handles}, RSS ${mb(g.baseline.memory.rss)} MB, heap ${mb(g.baseline.memory.heapUsed)} MB`).join('; ')}`);

  // The run.
  t0 = Date.now();
  recording = true;
  const windows = [];
  const timers = [];
  const at = (ms, fn) => timers.push(setTimeout(fn, ms));
  let upstreamMode = 'ok';
  let redisDown = false;
  for (const flap of plan.flaps) {
    let window;
    at(flap.start, () => {
      window = { mode: flap.mode, start: now(), end: Infinity };
      windows.push(window);
      upstreamMode = flap.mode;
      upstream.send({ cmd: 'mode', mode: flap.mode });
    });
    at(flap.end, () => {
      upstreamMode = 'ok';
      ask(upstream, { cmd: 'mode', mode: 'ok' }, 'mode').then(() => { window.end = now(); }, (err) => failures.push(`upstream: ${err.message}`));
    });
  }
  at(plan.redis.start, () => {
    const window = { mode: 'redis', start: now(), end: Infinity };
    windows.push(window);
    redisDown = true;
    redis.kill().then(() => new Promise((resolve) => setTimeout(resolve, plan.redis.end - now())))
      .then(() => redis.start())
      .then(() => { window.end = now(); redisDown = false; }, (err) => failures.push(`redis restart: ${err.message}`));
  });

  load.start();
  let sampling = Promise.resolve();
  const sampler = setInterval(() => {
    const t = Math.round(now() / 1000) * 1000;
    const state = `${upstreamMode === 'ok' ? '' : ` upstream:${upstreamMode}`}${redisDown ? ' redis:down' : ''}`;
    sampling = Promise.all(gateways.map(async (g, i) => {
      const s = { t, ...(await sample(g)), statuses: interval[i] };
      interval[i] = {};
      g.samples.push(s);
      g.last = s;
      return s;
    })).then((samples) => {
      samples.forEach((s, i) => {
        const statuses = Object.entries(s.statuses).sort().map(([cls, n]) => `${cls} ${n}`).join(', ');
        if (s.stuck.count) console.log(`[${seconds(t)}] ${gateways[i].name} ${s.stuck.count} requests open > 3 s: ${JSON.stringify(s.stuck.examples)}`);
        console.log(`[${seconds(t)}] ${gateways[i].name} RSS ${mb(s.memory.rss)} MB, heap ${mb(s.memory.heapUsed)} MB, ELD p99 ${s.loop.p99.toFixed(1)} ms, sockets ${s.sockets} (in ${s.byPeer.in}, upstream ${s.byPeer.upstream}, redis ${s.byPeer.redis}), handles ${s.handles} | ${statuses || 'no answers'}${i === 0 ? state : ''}`);
      });
    }, (err) => failures.push(`sample: ${err.message}`));
  }, SAMPLE_EVERY_MS);
  await new Promise((resolve) => setTimeout(resolve, plan.durationMs + 200));
  clearInterval(sampler);
  for (const timer of timers) clearTimeout(timer);
  await sampling;

  // Stop the load, then wait for the gateways' sockets and handles to come back to their baseline.
  const ends = await settle(30_000, (g, s) => s.sockets <= g.baseline.sockets && s.handles <= g.baseline.handles);
  recording = false;
  for (const [i, e] of ends.entries()) {
    const g = gateways[i];
    // Whatever is still open past the baseline: described, so the report says which path left it.
    if (e.sample.sockets > g.baseline.sockets) e.sample = await sample(g, true);
    gateways[i].end = e.sample;
    gateways[i].endSettleMs = e.ms;
    gateways[i].last = e.sample;
  }
  const upstreamStats = await ask(upstream, { cmd: 'stats' }, 'stats');

  for (const g of gateways) {
    g.closing = true;
    await ask(g.child, { cmd: 'close' }, 'closed').catch(() => g.child.kill('SIGKILL'));
  }
  upstream.kill('SIGKILL');
  await redis.kill();

  for (const w of windows) if (w.end === Infinity) w.end = plan.durationMs;
  const verdicts = judge(results, windows);
  const limited = verdicts.byKind['rate-limited'] || {};
  const rateLimit = { ...RATE_LIMIT, passed: limited['200'] || 0, sent: Object.values(limited).reduce((a, b) => a + b, 0) };
  const list = checks({
    gateways,
    verdicts,
    load: { rate, started: load.started, deferred: load.deferred, wsSessions: results.filter((r) => r.kind.startsWith('ws')).length },
    rateLimit,
    plan,
  });
  for (const f of failures) list.push({ name: 'run infrastructure', ok: false, detail: f });

  console.log('\nsoak: answers by phase');
  for (const [phase, counts] of Object.entries(verdicts.byPhase)) {
    console.log(`  ${phase.padEnd(15)} ${Object.entries(counts).sort().map(([cls, n]) => `${cls} ${n}`).join(', ')}`);
  }
  console.log('soak: answers by kind');
  for (const [kind, labels] of Object.entries(verdicts.byKind)) {
    console.log(`  ${kind.padEnd(18)} ${Object.entries(labels).sort((a, b) => b[1] - a[1]).map(([label, n]) => `${label} ${n}`).join(', ')}`);
  }
  console.log(`soak: upstream saw ${upstreamStats.requests} requests, ${upstreamStats.upgrades} upgrades, ${upstreamStats.uploads} uploads; held ${upstreamStats.held}, reset ${upstreamStats.resetBefore} before and ${upstreamStats.resetMidBody} mid-body, ${upstreamStats.refusedPeriods} refusal periods`);
  console.log('soak: checks');
  for (const c of list) console.log(`  ${c.ok ? 'ok    ' : 'FAILED'} ${c.name}: ${c.detail}`);

  const post = (g) => g.samples.filter((s) => s.t >= plan.warmup);
  const summary = gateways.map((g) => {
    const loops = post(g).map((s) => s.loop.p99);
    return {
      name: g.name,
      baseline: g.baseline,
      end: g.end,
      endSettleMs: g.endSettleMs,
      eldP99: loops.length ? { min: Math.min(...loops), max: Math.max(...loops) } : null,
      samples: g.samples,
    };
  });
  fs.mkdirSync(TMP, { recursive: true });
  fs.writeFileSync(RESULTS_FILE, `${JSON.stringify({
    date: new Date().toISOString(),
    node: { gateways: gatewayVersion, orchestrator: process.version },
    settings: { minutes, rate, maxInFlight: 32, wsSessions: 3, dist: DIST, upstreamLimits: UPSTREAM_LIMITS, grace: GRACE, rateLimit: RATE_LIMIT },
    plan,
    windows,
    gateways: summary,
    byPhase: verdicts.byPhase,
    byKind: verdicts.byKind,
    explainedBy: verdicts.explainedBy,
    unexpected: verdicts.unexpected.slice(0, 200),
    unexplained: verdicts.unexplained.slice(0, 200),
    upstream: upstreamStats,
    checks: list,
    ok: list.every((c) => c.ok),
  }, null, 2)}\n`);
  console.log(`soak: results in ${path.relative(ROOT, RESULTS_FILE)}, logs in ${path.relative(ROOT, LOG_DIR)}/`);
  const failed = list.filter((c) => !c.ok);
  if (failed.length) {
    console.error(`soak: FAILED: ${failed.map((c) => c.name).join(', ')}`);
    process.exitCode = 1;
  } else console.log('soak: passed');
}

main().catch((err) => {
  console.error(`soak: FAILED: ${err && err.stack ? err.stack : err}`);
  killAll();
  process.exit(1);
});
