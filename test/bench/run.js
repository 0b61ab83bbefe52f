/**
 * `npm run bench`: measures what a gateway row costs next to a bare Express + http-proxy-middleware, on
 * loopback only. One upstream child (upstream.js), one gateway child per row (gateway.js, rows in
 * variants.js), autocannon in this process. The gateway is pinned to core 0, the upstream and this process
 * to core 1 (when `taskset` works). Each row: a warm-up, then a measured run; the upstream's connection
 * counter and the gateway's peak RSS are reset between the two.
 *
 * Environment:
 *   BENCH_DURATION     measured seconds per row (default 10)
 *   BENCH_WARMUP       warm-up seconds per row (default 2)
 *   BENCH_CONNECTIONS  autocannon connections (default 50)
 *   BENCH_ROUNDS       run the whole table this many times (default 1), every other round in reverse order;
 *                      the table shows per-row medians and the range of the per-round ratios
 *   BENCH_ONLY         comma-separated row names to run (default: all)
 *   BENCH_WAIT_QUIET   before each row, wait up to this many seconds for the machine to be idle (< 5 % busy
 *                      over 1 s) — for shared machines (default 0: do not wait)
 *   BENCH_CPU_PROF     comma-separated row names whose gateway runs under `node --cpu-prof` (profiles in
 *                      .tmp/bench-prof/; summarise with `node test/bench/profile-top.js <file>`)
 *   BENCH_INTERLEAVE   instead of the table, compare the BENCH_ONLY rows (the first is the reference) in this
 *                      many alternating slices of BENCH_SLICE seconds (default 2) each: every row's gateway
 *                      runs at once, and the load moves from one to the next, so a drift of the machine's speed
 *                      hits them all alike (for shared and virtual machines, where rows run minutes apart
 *                      differ by more than a feature costs)
 *   BENCH_DIST         the build the rows load instead of ./dist (e.g. one built apart with
 *                      `npx tsc -p tsconfig.build.json --outDir .tmp/bench-dist`, so a shared dist/ is left alone)
 *   BENCH_RATE         send this many requests per second in all (autocannon's overallRate) instead of as many as
 *                      the gateway takes: every row then handles the same load, so "gw µs/unit" (the gateway's CPU
 *                      per request) compares rows at equal batching — what a signal costs, on a machine too noisy
 *                      for throughput ratios. Pick a rate every row sustains (the table's units/s shows it did)
 *   BENCH_NODE         the Node.js that runs the gateway rows (the upstream and autocannon stay on this process's):
 *                      a path to a `node` executable, or a pinned line (22, 24) installed from its npm package into
 *                      the cache scripts/node-lines.js uses, e.g. BENCH_NODE=24 npm run bench. Every table names it.
 *   BENCH_BASELINE_DIST another build's dist/ directory (e.g. an older commit built in a git worktree): adds a row
 *                      `<row>@baseline` for every `frontdoor-*` row, the same app with frontdoor loaded from there,
 *                      e.g. BENCH_BASELINE_DIST=../wt-base/dist BENCH_ONLY=frontdoor-gateway@baseline,frontdoor-gateway
 *                      BENCH_INTERLEAVE=20 (a row using an option that build does not know fails at start-up)
 *
 * Every row's answers are checked before it is loaded (variants.js: `expect`), and after it the upstream's request
 * count per client request (`upstreamPerRequest`), non-2xx answers, requests the upstream did not expect and the
 * row's own `verifyStats`: any of those prints "FAILED" and makes the exit code 1.
 *
 * Prints a table and writes the same results to .tmp/bench-results.json. Exit code 0 on success.
 */
'use strict';

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const autocannon = require('autocannon');
const { askChild, childTracker, freePort, redisPong } = require('./loopback');
const { variants, BASELINE, PLAIN_ROUTE, REQUEST_PATH, BASELINE_SUFFIX, baselineDist } = require('./variants');
const { ORDER_JSON } = require('./payloads');

const ROOT = path.join(__dirname, '..', '..');
const RESULTS_FILE = path.join(ROOT, '.tmp', 'bench-results.json');
const INTERLEAVE_FILE = path.join(ROOT, '.tmp', 'bench-interleaved.json');
const PROF_DIR = path.join(ROOT, '.tmp', 'bench-prof');
/** The build the rows load (variants.js reads the same variable). */
const DIST_USED = process.env.BENCH_DIST ? path.resolve(process.env.BENCH_DIST) : path.join(ROOT, 'dist');

/** The Node.js of the gateway rows: BENCH_NODE (a path, or a pinned line installed on first use), else this process's. */
const GATEWAY_NODE = resolveGatewayNode(process.env.BENCH_NODE);

function resolveGatewayNode(value) {
  if (!value) return { path: process.execPath, version: process.version };
  const executable = /^\d+$/.test(value) ? path.join(require('../../scripts/node-lines').install(value), 'node') : path.resolve(value);
  const run = spawnSync(executable, ['--version'], { encoding: 'utf8' });
  const version = (run.stdout || '').trim();
  if (run.status !== 0 || !/^v\d/.test(version)) throw new Error(`BENCH_NODE: ${executable} does not run as Node.js (${run.error ? run.error.message : (run.stderr || '').trim()})`);
  return { path: executable, version };
}

function envNumber(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got "${raw}"`);
  return n;
}

function envList(name) {
  const raw = process.env[name];
  if (!raw) return undefined;
  return raw.split(',').map((s) => s.trim()).filter(Boolean);
}

const settings = {
  duration: envNumber('BENCH_DURATION', 10),
  warmup: envNumber('BENCH_WARMUP', 2),
  connections: Math.round(envNumber('BENCH_CONNECTIONS', 50)),
  pipelining: 1,
  /** Requests per second in all (BENCH_RATE), or undefined: as fast as the gateway answers. */
  rate: process.env.BENCH_RATE ? envNumber('BENCH_RATE', 0) : undefined,
  method: 'GET',
  path: REQUEST_PATH,
};

/** The requests a row sends, in order: one, or the requests of a screen (see variants.js). */
function requestsOf(variant) {
  const request = variant.request || { method: settings.method, path: settings.path };
  return (Array.isArray(request) ? request : [request]).map((r) => ({ method: r.method || 'GET', path: r.path, headers: r.headers || {}, body: r.body }));
}

/** What one unit of a row's throughput is. */
function unitOf(variant) {
  return variant.unit || (requestsOf(variant).length > 1 ? 'screen' : 'req');
}

/** Verification failures (wrong answers, upstream counts): reported, and the run exits 1. */
const failures = [];

const rounds = Math.round(envNumber('BENCH_ROUNDS', 1));
const waitQuietSeconds = process.env.BENCH_WAIT_QUIET ? envNumber('BENCH_WAIT_QUIET', 0) : 0;
const only = envList('BENCH_ONLY');
const profiled = new Set(envList('BENCH_CPU_PROF') || []);
const known = new Set(variants.map((v) => v.name));
for (const name of [...(only || []), ...profiled]) {
  if (!known.has(name)) {
    console.error(`Unknown row "${name}" in BENCH_ONLY/BENCH_CPU_PROF. Known rows: ${[...known].join(', ')}`);
    if (name.endsWith(BASELINE_SUFFIX) && !baselineDist) console.error(`"${BASELINE_SUFFIX}" rows need BENCH_BASELINE_DIST=/path/to/another/dist.`);
    process.exit(2);
  }
}
const selected = only ? variants.filter((v) => only.includes(v.name)) : variants;
const interleaveSlices = process.env.BENCH_INTERLEAVE ? Math.round(envNumber('BENCH_INTERLEAVE', 0)) : 0;
const sliceSeconds = envNumber('BENCH_SLICE', 2);
if (interleaveSlices) {
  // In BENCH_ONLY's order: the first row is the one the others are compared with.
  const named = (only || []).map((name) => variants.find((v) => v.name === name));
  if (named.length < 2 || named.some((v) => v.gateway === false)) {
    console.error('BENCH_INTERLEAVE compares gateway rows: name two or more in BENCH_ONLY, the reference first (e.g. BENCH_ONLY=frontdoor-gateway,frontdoor-observed).');
    process.exit(2);
  }
  selected.splice(0, selected.length, ...named);
}

// ---------------------------------------------------------------------------------------------------------
// Children: tracked so that they are killed whatever happens.

const { track, killAll } = childTracker('bench');

/** Whether `taskset -c <core>` can be used here (present, permitted, and the core exists). */
function tasksetWorks() {
  if (process.platform !== 'linux' || os.cpus().length < 2) return false;
  const probe = spawnSync('taskset', ['-c', '1', 'true'], { stdio: 'ignore' });
  return probe.status === 0;
}
const PINNING = tasksetWorks();

function pinSelf(core) {
  if (!PINNING) return false;
  // -a: every thread of this process (libuv pool, V8 helpers), not only the main one.
  return spawnSync('taskset', ['-a', '-p', '-c', String(core), String(process.pid)], { stdio: 'ignore' }).status === 0;
}

/** Per-core busy and idle clock ticks from /proc/stat (Linux), or null elsewhere. */
function readCpuTicks() {
  let text;
  try { text = fs.readFileSync('/proc/stat', 'utf8'); } catch { return null; }
  const cores = {};
  for (const line of text.split('\n')) {
    const m = line.match(/^(cpu\d*)\s+(.*)$/);
    if (!m) continue;
    // user nice system idle iowait irq softirq steal
    const [user, nice, system, idle, iowait, irq, softirq, steal = 0] = m[2].trim().split(/\s+/).map(Number);
    cores[m[1]] = { busy: user + nice + system + irq + softirq, idle: idle + iowait, steal };
  }
  return cores;
}

/** Share of wall time (0..1) each core spent busy / stolen between two readCpuTicks() samples. */
function cpuShares(before, after) {
  if (!before || !after) return null;
  const out = {};
  for (const core of Object.keys(after)) {
    if (!before[core]) continue;
    const busy = after[core].busy - before[core].busy;
    const idle = after[core].idle - before[core].idle;
    const steal = after[core].steal - before[core].steal;
    const all = busy + idle + steal;
    out[core] = all > 0 ? { busy: busy / all, steal: steal / all } : null;
  }
  return out;
}

/** How busy the machine is with anything, sampled over `ms` (share of all cores, 0..1). */
async function machineBusy(ms) {
  const before = readCpuTicks();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const shares = cpuShares(before, readCpuTicks());
  return shares && shares.cpu ? shares.cpu.busy : null;
}

/** Starts `node <script> ...args` (pinned to `core` when possible) with an IPC channel. */
function startChild(script, args, { core, nodeArgs = [], env = process.env, node = process.execPath }) {
  const nodeArgv = [...nodeArgs, path.join(__dirname, script), ...args];
  const options = { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env };
  const child = PINNING
    ? spawn('taskset', ['-c', String(core), node, ...nodeArgv], options)
    : spawn(node, nodeArgv, options);
  return track(child);
}

/** Sends `msg` (unless null) and resolves with the child's next message of type `type`. */
function ask(child, msg, type, timeoutMs = 10_000) {
  return askChild(child, msg, type, { name: child.spawnargs.slice(-3).join(' '), timeoutMs });
}

/** Asks a gateway child to close (so a CPU profile gets written), then kills it if it lingers. */
async function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try { child.send({ cmd: 'close' }); } catch { /* channel closed */ }
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

/**
 * A throwaway redis-server on a free loopback port (no persistence), pinned with the upstream; null when
 * redis-server is not installed.
 */
async function startRedis() {
  if (spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status !== 0) return null;
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  const child = PINNING
    ? spawn('taskset', ['-c', '1', 'redis-server', ...args], { stdio: 'ignore' })
    : spawn('redis-server', args, { stdio: 'ignore' });
  track(child);
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline) {
    if (await redisPong(port)) return { url: `redis://127.0.0.1:${port}`, child };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`redis-server did not answer on port ${port} within 5 s`);
}

// ---------------------------------------------------------------------------------------------------------
// Load.

/** One request over a keep-alive connection (so the answer's `Connection` header is the server's own choice). */
function send(port, { method = 'GET', path: urlPath, headers = {}, body }) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, headers: body ? { ...headers, 'content-length': String(body.length) } : headers, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.setTimeout(5_000, () => req.destroy(new Error(`${method} ${urlPath} timed out`)));
    req.on('error', reject);
    req.end(body);
  }).finally(() => agent.destroy());
}

const get = (port, urlPath) => send(port, { path: urlPath });

/**
 * Sends a row's requests once (after `prime` rounds whose answers are not checked) and throws unless every
 * answer is the one the row expects (by default: 200 with the upstream's 223-byte order). Resolves with the
 * first request's answer.
 */
async function probeRow(variant, port) {
  const requests = requestsOf(variant);
  for (let i = 0; i < (variant.prime || 0); i++) for (const request of requests) await send(port, request);
  let first;
  for (const request of requests) {
    const res = await send(port, request);
    const wrong = variant.expect
      ? variant.expect(res)
      : res.status !== 200 || res.body.length !== ORDER_JSON.length ? `answered ${res.status} with ${res.body.length} bytes, expected 200 with 223` : undefined;
    if (wrong) throw new Error(`${variant.name}: ${request.method} ${request.path} ${wrong}`);
    first = first || res;
  }
  return first;
}

/**
 * What is wrong with the upstream's request count for `completed` client requests, if anything. Every load period
 * ends with up to one request per connection cut off by the load generator, which the upstream may still get.
 */
function upstreamCheck(variant, upstreamRequests, completed, periods) {
  const [min, max] = variant.upstreamPerRequest || [1, 1];
  const low = min * completed * 0.95;
  const high = max * (completed * 1.05 + settings.connections * periods) + 10;
  if (upstreamRequests >= low && upstreamRequests <= high) return undefined;
  return `the upstream received ${upstreamRequests} requests for ${completed} completed (${completed ? (upstreamRequests / completed).toFixed(3) : '–'} per request), expected ${min === max ? min : `${min}–${max}`} per request (a misconfigured row, or a machine so slow that requests cut off at the end of a load period outnumber the slack)`;
}

/**
 * Starts a row's gateway child and waits for it to listen: `{ child, port }`, or `{ skipped }` with the reason
 * when the build of an `optional` row throws (a feature this build does not have yet).
 */
async function startGateway(variant, upstreamPort, env, nodeArgs = []) {
  const child = startChild('gateway.js', [variant.name, String(upstreamPort)], { core: 0, nodeArgs, env, node: GATEWAY_NODE.path });
  let buildError;
  const onMessage = (m) => {
    if (m && m.type === 'build-failed') buildError = m.message;
  };
  child.on('message', onMessage);
  try {
    const { port } = await ask(child, null, 'listening', 15_000);
    return { child, port };
  } catch (err) {
    // The message is sent before the child exits, but its exit may be seen first.
    if (buildError === undefined) await new Promise((resolve) => setTimeout(resolve, 200));
    if (buildError === undefined) throw err;
    if (variant.optional) return { skipped: buildError };
    throw new Error(`${variant.name}: the row's build threw: ${buildError}`);
  } finally {
    child.off('message', onMessage);
  }
}

/** Fetches the row's `stats()` from its gateway and runs its `verifyStats`; returns the stats (or undefined). */
async function rowStats(variant, child, requests) {
  const { stats, error } = await ask(child, { cmd: 'row-stats' }, 'row-stats');
  if (error) throw new Error(`${variant.name}: stats() threw: ${error}`);
  if (stats === undefined) return undefined;
  const wrong = variant.verifyStats ? variant.verifyStats(stats, { requests }) : undefined;
  if (wrong) failures.push(`${variant.name}: ${wrong}`);
  return stats;
}

/** Response times of 2xx answers in ms, at full precision (autocannon's own histogram rounds to 1 ms). */
class Latencies {
  constructor() { this.values = new Float64Array(1 << 16); this.n = 0; }
  add(ms) {
    if (this.n === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.n++] = ms;
  }
  summary() {
    const v = this.values.subarray(0, this.n).sort();
    const at = (q) => (v.length ? v[Math.min(v.length - 1, Math.ceil(q * v.length) - 1)] : null);
    let sum = 0;
    for (let i = 0; i < v.length; i++) sum += v[i];
    return { count: v.length, mean: v.length ? sum / v.length : null, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: v.length ? v[v.length - 1] : null };
  }
}

/**
 * Runs autocannon with the row's request(s) for `duration` seconds; resolves with its result, the latencies
 * (added to `latencies`: of 2xx answers, or of whole screens) and the units done: requests, or for a screen row
 * (several requests, sent in order on each connection) the screens whose requests all answered 2xx, timed as the
 * sum of their requests' response times.
 */
async function load(port, duration, variant, latencies = new Latencies()) {
  const requests = requestsOf(variant);
  const [first] = requests;
  const options = { url: `http://127.0.0.1:${port}${first.path}`, connections: settings.connections, pipelining: settings.pipelining, duration, timeout: 10 };
  if (settings.rate) options.overallRate = settings.rate;
  if (requests.length === 1) Object.assign(options, { method: first.method, headers: first.headers, body: first.body });
  else options.requests = requests.map(({ method, path: p, headers, body }) => ({ method, path: p, headers, body }));
  const instance = autocannon(options);
  let screens = 0;
  if (requests.length === 1) {
    instance.on('response', (client, statusCode, resBytes, responseTime) => {
      if (statusCode >= 200 && statusCode < 300) latencies.add(responseTime);
    });
  } else {
    const progress = new Map();
    instance.on('response', (client, statusCode, resBytes, responseTime) => {
      let screen = progress.get(client);
      if (!screen) progress.set(client, (screen = { n: 0, ms: 0, ok: true }));
      screen.n++;
      screen.ms += responseTime;
      if (statusCode < 200 || statusCode >= 300) screen.ok = false;
      if (screen.n === requests.length) {
        if (screen.ok) {
          latencies.add(screen.ms);
          screens++;
        }
        screen.n = 0;
        screen.ms = 0;
        screen.ok = true;
      }
    });
  }
  const result = await instance;
  return { result, latencies, units: requests.length === 1 ? result.requests.total : screens };
}

// ---------------------------------------------------------------------------------------------------------
// One row.

async function runRow(variant, upstream, upstreamPort, env) {
  let gw = null;
  let port = upstreamPort;
  try {
    if (variant.gateway !== false) {
      const nodeArgs = profiled.has(variant.name)
        ? ['--cpu-prof', '--cpu-prof-dir', PROF_DIR, '--cpu-prof-name', `${variant.name}.cpuprofile`]
        : [];
      if (nodeArgs.length) fs.mkdirSync(PROF_DIR, { recursive: true });
      const started = await startGateway(variant, upstreamPort, env, nodeArgs);
      if (started.skipped) {
        console.log(`  ${variant.name.padEnd(20)} skipped: ${started.skipped}`);
        return null;
      }
      ({ child: gw, port } = started);
    }
    // Footprint before any request: what loading the modules and building the app cost.
    const idle = gw ? await ask(gw, { cmd: 'rss' }, 'rss') : null;

    // A request that goes through must come back whole; requests outside the route table must still
    // reach the app (when the row says so).
    const probe = await probeRow(variant, port);
    // http-proxy passes the upstream's `Connection: close` through when its agent does not keep alive, so the
    // client reconnects for every request. autocannon's latency is not meaningful then: on each reconnect it
    // queues one more request than it can be answered for, and times responses against ever older starts.
    const closesClientConnections = /\bclose\b/i.test(probe.headers.connection || '');
    const check = variant.check;
    if (check) {
      const r = await get(port, check.path);
      if (r.status !== check.status) throw new Error(`${variant.name}: GET ${check.path} answered ${r.status}, expected ${check.status}`);
    }

    if (waitQuietSeconds > 0) {
      const until = Date.now() + waitQuietSeconds * 1000;
      let busy = await machineBusy(1000);
      while (busy !== null && busy > 0.05 && Date.now() < until) busy = await machineBusy(1000);
    }
    process.stdout.write(`  ${variant.name.padEnd(20)} warm-up ${settings.warmup}s`);
    await load(port, settings.warmup, variant);
    await settledStats(upstream);

    await ask(upstream, { cmd: 'reset' }, 'reset');
    if (gw) await ask(gw, { cmd: 'rss-reset' }, 'rss-reset');

    process.stdout.write(`, measuring ${settings.duration}s`);
    const ticksBefore = readCpuTicks();
    const selfCpuBefore = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    // Connections are counted from 1 s into the run: autocannon drops its in-flight requests when the warm-up
    // ends, and a gateway that aborts the upstream work of clients that leave (frontdoor does;
    // http-proxy-middleware lets it finish) refills those pooled sockets as the next run starts.
    const markDelay = Math.min(1000, (settings.duration * 1000) / 4);
    // Settles to an error instead of rejecting while the load runs (an unhandled rejection would end the bench).
    const mark = new Promise((resolve) => setTimeout(resolve, markDelay)).then(() => ask(upstream, { cmd: 'mark' }, 'mark')).catch((err) => err);
    const { result, latencies, units } = await load(port, settings.duration, variant);
    const latency = latencies.summary();
    const marked = await mark;
    if (marked instanceof Error) throw marked;
    const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const selfCpu = process.cpuUsage(selfCpuBefore);
    const shares = cpuShares(ticksBefore, readCpuTicks());

    const mem = gw ? await ask(gw, { cmd: 'rss' }, 'rss') : null;
    const up = await settledStats(upstream);
    const stats = gw ? await rowStats(variant, gw, result.requests.total) : undefined;
    process.stdout.write(' done\n');

    const unit = unitOf(variant);
    const screenSize = requestsOf(variant).length;
    // Units: requests, or screens for a screen row (its latency is already a screen's).
    const total = screenSize > 1 ? units : result.requests.total;
    const upstreamWrong = upstreamCheck(variant, up.requests, result.requests.total, 1);
    if (upstreamWrong) failures.push(`${variant.name}: ${upstreamWrong}`);
    // The gateway should be the bottleneck: close to 100 % of core 0. Whatever else ran on either core is
    // interference (another process on the machine), which makes the row slower than it is. Kernel work done
    // outside our processes' accounting (softirqs) shows up there too, so only a clear excess is flagged.
    const pinnedShares = PINNING && shares && shares.cpu0 && shares.cpu1;
    const cpu = {
      gatewayCore: gw && mem ? mem.cpuMicros / 1000 / wallMs : null,
      upstreamCore: up.cpuMicros / 1000 / wallMs,
      loadGeneratorCore: (selfCpu.user + selfCpu.system) / 1000 / wallMs,
      core0Busy: pinnedShares ? shares.cpu0.busy : null,
      core1Busy: pinnedShares ? shares.cpu1.busy : null,
      steal: shares && shares.cpu ? shares.cpu.steal : null,
    };
    cpu.otherOnCore0 = pinnedShares ? Math.max(0, cpu.core0Busy - (cpu.gatewayCore || 0)) : null;
    cpu.otherOnCore1 = pinnedShares ? Math.max(0, cpu.core1Busy - cpu.upstreamCore - cpu.loadGeneratorCore) : null;
    const row = {
      variant: variant.name,
      description: variant.description,
      unit,
      reqPerSec: screenSize > 1 ? units / settings.duration : result.requests.mean,
      totalRequests: total,
      upstreamPerRequest: result.requests.total > 0 ? up.requests / result.requests.total : null,
      stats,
      latencyMs: latency,
      latencyValid: !closesClientConnections,
      closesClientConnections,
      // Little's law: what the mean latency must be with every connection always waiting on one response.
      littleMeanLatencyMs: result.requests.mean > 0 ? (settings.connections * 1000) / result.requests.mean : null,
      autocannonLatencyMs: { mean: result.latency.mean, p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max },
      gatewayIdleRssMB: idle ? idle.rss / 1048576 : null,
      gatewayRssMB: mem ? mem.rss / 1048576 : null,
      gatewayPeakRssMB: mem ? mem.peakRss / 1048576 : null,
      upstream: { connectionsOpened: up.connectionsSinceMark, requests: up.requestsSinceMark, wrongPath: up.wrongPath, spanExports: up.exports },
      upstreamConnectionsPer1000: up.requestsSinceMark > 0 ? (up.connectionsSinceMark * 1000) / up.requestsSinceMark : null,
      cpu,
      // The gateway's CPU time per request: steadier than req/s when the machine's speed drifts.
      gatewayCpuMicrosPerRequest: gw && mem && total > 0 ? mem.cpuMicros / total : null,
      errors: result.errors,
      timeouts: result.timeouts,
      non2xx: result.non2xx,
    };
    const problems = [];
    if (row.errors || row.timeouts || row.non2xx || up.wrongPath) {
      problems.push(`errors=${row.errors} timeouts=${row.timeouts} non2xx=${row.non2xx} upstreamWrongPath=${up.wrongPath}`);
    }
    if (row.non2xx || up.wrongPath) failures.push(`${variant.name}: non2xx=${row.non2xx} upstreamWrongPath=${up.wrongPath}`);
    if (upstreamWrong) problems.push(upstreamWrong);
    if (cpu.otherOnCore0 !== null && cpu.otherOnCore0 > 0.05) {
      problems.push(`other processes used ${(cpu.otherOnCore0 * 100).toFixed(0)} % of the gateway's core: the machine was not quiet`);
    }
    if (cpu.otherOnCore1 !== null && cpu.otherOnCore1 > 0.1) {
      problems.push(`other processes used ${(cpu.otherOnCore1 * 100).toFixed(0)} % of the load generator's core: the machine was not quiet`);
    }
    if (profiled.has(variant.name)) problems.push('ran under --cpu-prof, so slower than it is');
    if (cpu.steal !== null && cpu.steal > 0.05) problems.push(`hypervisor steal ${(cpu.steal * 100).toFixed(0)} %`);
    if (problems.length) row.warning = problems.join('; ');
    return row;
  } finally {
    if (gw) await stopChild(gw);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Interleaved comparison (BENCH_INTERLEAVE).

/**
 * Starts every row's gateway (all on core 0; only the loaded one is busy), checks and warms each, then
 * loads them in turn for `slices` rounds of `sliceSeconds`, alternating the order. Returns per-row totals
 * and, for each slice round, each row's units (requests or screens), CPU time and upstream requests.
 */
async function runInterleaved(rows, upstream, upstreamPort, env) {
  const gateways = [];
  const skipped = [];
  try {
    for (const variant of rows) {
      const started = await startGateway(variant, upstreamPort, env);
      if (started.skipped) {
        if (variant === rows[0]) throw new Error(`${variant.name}, the reference, could not be built: ${started.skipped}`);
        console.log(`  ${variant.name.padEnd(20)} skipped: ${started.skipped}`);
        skipped.push({ variant: variant.name, reason: started.skipped });
        continue;
      }
      const { child, port } = started;
      gateways.push({ variant, child, port, requests: [], cpuMicros: [], upstreamRequests: [], completed: 0, latencies: new Latencies(), errors: 0, non2xx: 0, timeouts: 0, wrongPath: 0 });
      await probeRow(variant, port);
    }
    if (gateways.length < 2) throw new Error('fewer than two rows left to compare');
    for (const g of gateways) {
      process.stdout.write(`  ${g.variant.name.padEnd(20)} warm-up ${settings.warmup}s\n`);
      await load(g.port, settings.warmup, g.variant);
    }
    process.stdout.write(`  ${interleaveSlices} slices of ${sliceSeconds}s per row: `);
    const ticksBefore = readCpuTicks();
    for (let slice = 0; slice < interleaveSlices; slice++) {
      for (const g of slice % 2 ? [...gateways].reverse() : gateways) {
        await ask(g.child, { cmd: 'rss-reset' }, 'rss-reset');
        await ask(upstream, { cmd: 'mark' }, 'mark');
        const { result, units } = await load(g.port, sliceSeconds, g.variant, g.latencies);
        const { cpuMicros } = await ask(g.child, { cmd: 'rss' }, 'rss');
        // The requests cut off at the end of the slice are counted in this slice, not the next row's.
        const up = await settledStats(upstream);
        g.requests.push(units);
        g.cpuMicros.push(cpuMicros);
        g.upstreamRequests.push(up.requestsSinceMark);
        g.completed += result.requests.total;
        g.wrongPath += up.wrongPathSinceMark;
        g.errors += result.errors;
        g.non2xx += result.non2xx;
        g.timeouts += result.timeouts;
      }
      process.stdout.write('.');
    }
    process.stdout.write(' done\n');
    const shares = cpuShares(ticksBefore, readCpuTicks());
    for (const g of gateways) {
      const upstreamTotal = g.upstreamRequests.reduce((a, b) => a + b, 0);
      g.upstreamPerRequest = g.completed > 0 ? upstreamTotal / g.completed : null;
      g.upstreamWrong = upstreamCheck(g.variant, upstreamTotal, g.completed, interleaveSlices);
      if (g.upstreamWrong) failures.push(`${g.variant.name}: ${g.upstreamWrong}`);
      if (g.non2xx || g.wrongPath) failures.push(`${g.variant.name}: non2xx=${g.non2xx} upstreamWrongPath=${g.wrongPath}`);
      g.stats = await rowStats(g.variant, g.child, g.completed);
    }
    return { gateways, skipped, steal: shares && shares.cpu ? shares.cpu.steal : null };
  } finally {
    for (const g of gateways) await stopChild(g.child);
  }
}

/**
 * The upstream's stats once its request count has stopped moving (polled every 50 ms, for at most 3 s): a gateway
 * still working through requests the load generator cut off (a backlog, on a busy machine) keeps sending them.
 */
async function settledStats(upstream) {
  let last = await ask(upstream, { cmd: 'stats' }, 'stats');
  for (const until = Date.now() + 3_000; Date.now() < until; ) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    const now = await ask(upstream, { cmd: 'stats' }, 'stats');
    if (now.requests === last.requests) return now;
    last = now;
  }
  return last;
}

/** Quartiles of `values` (nearest rank). */
function quartiles(values) {
  const v = [...values].sort((a, b) => a - b);
  const at = (q) => v[Math.min(v.length - 1, Math.max(0, Math.ceil(q * v.length) - 1))];
  return [at(0.25), at(0.5), at(0.75)];
}

/**
 * `a`'s totals over `b`'s, the quartiles of the per-slice-round ratios (adjacent in time), and the median of the
 * per-slice-round differences in gateway CPU per unit: at a fixed BENCH_RATE, where throughput ratios say
 * nothing, the figure that is least moved by the machine's drift over the run.
 */
function compareSlices(a, b) {
  const sum = (x) => x.reduce((p, q) => p + q, 0);
  const [q1, med, q3] = quartiles(a.requests.map((n, i) => n / b.requests[i]));
  const cpuDeltas = a.requests.flatMap((n, i) => (n > 0 && b.requests[i] > 0 ? [a.cpuMicros[i] / n - b.cpuMicros[i] / b.requests[i]] : []));
  const [, cpuDeltaMedian] = cpuDeltas.length ? quartiles(cpuDeltas) : [null, null];
  return { throughput: sum(a.requests) / sum(b.requests), sliceMedian: med, sliceQ1: q1, sliceQ3: q3, cpuDeltaMedian };
}

function interleavedReport({ gateways, skipped, steal }) {
  const sum = (a) => a.reduce((x, y) => x + y, 0);
  const ref = gateways[0];
  const rows = gateways.map((g) => {
    const total = sum(g.requests);
    const latency = g.latencies.summary();
    return {
      variant: g.variant.name,
      description: g.variant.description,
      unit: unitOf(g.variant),
      requests: total,
      reqPerSec: total / (g.requests.length * sliceSeconds),
      latencyMs: latency,
      gatewayCpuMicrosPerRequest: total > 0 ? sum(g.cpuMicros) / total : null,
      upstreamPerRequest: g.upstreamPerRequest,
      vsReference: compareSlices(g, ref),
      errors: g.errors,
      non2xx: g.non2xx,
      timeouts: g.timeouts,
      upstreamWrongPath: g.wrongPath,
      upstreamCheck: g.upstreamWrong || 'ok',
      stats: g.stats,
      perSlice: g.requests.map((n, i) => ({ units: n, cpuMicros: g.cpuMicros[i], upstreamRequests: g.upstreamRequests[i] })),
    };
  });
  // Rows naming another with `versus` (the aggregate and its sequential screen): compared with it directly.
  const comparisons = [];
  for (const g of gateways) {
    const other = g.variant.versus && gateways.find((x) => x.variant.name === g.variant.versus);
    if (!other) continue;
    const mine = rows.find((r) => r.variant === g.variant.name);
    const theirs = rows.find((r) => r.variant === other.variant.name);
    comparisons.push({ variant: mine.variant, versus: theirs.variant, unit: mine.unit, ...compareSlices(g, other), p50: mine.latencyMs.p50 / theirs.latencyMs.p50, p99: mine.latencyMs.p99 / theirs.latencyMs.p99, cpuPerUnit: mine.gatewayCpuMicrosPerRequest / theirs.gatewayCpuMicrosPerRequest });
  }
  const head = ['variant', 'unit', 'units/s', 'p50 ms', 'p99 ms', 'gw µs/unit', 'Δ µs/unit', 'upstr/req', `× ${ref.variant.name}`, 'slice median', 'slice q1–q3'];
  const body = rows.map((r) => [
    r.variant + (r.errors || r.non2xx || r.timeouts || r.upstreamCheck !== 'ok' ? ' (!)' : ''),
    r.unit,
    fmt(r.reqPerSec, 0),
    fmt(r.latencyMs.p50, 2),
    fmt(r.latencyMs.p99, 2),
    fmt(r.gatewayCpuMicrosPerRequest, 0),
    r.vsReference.cpuDeltaMedian === null ? '–' : `${r.vsReference.cpuDeltaMedian >= 0 ? '+' : ''}${fmt(r.vsReference.cpuDeltaMedian, 0)}`,
    fmt(r.upstreamPerRequest, 2),
    fmt(r.vsReference.throughput, 3),
    fmt(r.vsReference.sliceMedian, 3),
    `${fmt(r.vsReference.sliceQ1, 3)}–${fmt(r.vsReference.sliceQ3, 3)}`,
  ]);
  let text = renderTable(head, body);
  if (comparisons.length) {
    const chead = ['row', 'versus', `× units`, 'slice median', 'slice q1–q3', '× p50', '× p99', '× gw µs/unit'];
    const cbody = comparisons.map((c) => [c.variant, c.versus, fmt(c.throughput, 3), fmt(c.sliceMedian, 3), `${fmt(c.sliceQ1, 3)}–${fmt(c.sliceQ3, 3)}`, fmt(c.p50, 3), fmt(c.p99, 3), fmt(c.cpuPerUnit, 3)]);
    text += `\n\n${renderTable(chead, cbody)}`;
  }
  return { rows, comparisons, skipped, steal, text };
}

// ---------------------------------------------------------------------------------------------------------
// Report.

function fmt(n, digits) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function median(values) {
  const v = values.filter((x) => x !== null && x !== undefined && !Number.isNaN(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

function range(values) {
  const v = values.filter((x) => x !== null && x !== undefined && !Number.isNaN(x));
  return v.length ? [Math.min(...v), Math.max(...v)] : null;
}

/**
 * One summary row per variant from its runs (one per round): medians, connection counts summed, and the
 * ratios to the baseline — of the medians, plus the range of the per-round ratios when there are several rounds.
 */
function summarise(runs) {
  const base = (round) => runs.find((r) => r.variant === BASELINE && r.round === round);
  const ratio = (run, pick) => {
    const b = base(run.round);
    const x = b && pick(run);
    const y = b && pick(b);
    return x !== null && x !== undefined && y ? x / y : null;
  };
  const p99 = (r) => (r.latencyValid ? r.latencyMs.p99 : null);
  const rows = [];
  for (const name of [...new Set(runs.map((r) => r.variant))]) {
    const mine = runs.filter((r) => r.variant === name);
    const connections = mine.reduce((a, r) => a + r.upstream.connectionsOpened, 0);
    const requests = mine.reduce((a, r) => a + r.upstream.requests, 0);
    rows.push({
      variant: name,
      description: mine[0].description,
      rounds: mine.length,
      unit: mine[0].unit,
      reqPerSec: median(mine.map((r) => r.reqPerSec)),
      latencyValid: mine.every((r) => r.latencyValid),
      latencyMs: { p50: median(mine.map((r) => r.latencyMs.p50)), p99: median(mine.map((r) => r.latencyMs.p99)) },
      littleMeanLatencyMs: median(mine.map((r) => r.littleMeanLatencyMs)),
      gatewayIdleRssMB: median(mine.map((r) => r.gatewayIdleRssMB)),
      gatewayRssMB: median(mine.map((r) => r.gatewayRssMB)),
      gatewayPeakRssMB: median(mine.map((r) => r.gatewayPeakRssMB)),
      upstreamConnectionsPer1000: requests > 0 ? (connections * 1000) / requests : null,
      gatewayCore: median(mine.map((r) => r.cpu.gatewayCore)),
      gatewayCpuMicrosPerRequest: median(mine.map((r) => r.gatewayCpuMicrosPerRequest)),
      perRoundRatioRange: {
        throughput: range(mine.map((r) => ratio(r, (x) => x.reqPerSec))),
        p99: range(mine.map((r) => ratio(r, p99))),
        cpuPerRequest: range(mine.map((r) => ratio(r, (x) => x.gatewayCpuMicrosPerRequest))),
      },
      warnings: mine.filter((r) => r.warning).map((r) => `round ${r.round}: ${r.warning}`),
    });
  }
  const b = rows.find((r) => r.variant === BASELINE);
  const plain = rows.find((r) => r.variant === PLAIN_ROUTE);
  for (const row of rows) {
    const div = (x, y) => (x !== null && y ? x / y : null);
    row.vsPlainRoute = plain ? { throughput: div(row.reqPerSec, plain.reqPerSec), p99: row.latencyValid && plain.latencyValid ? div(row.latencyMs.p99, plain.latencyMs.p99) : null } : null;
    row.vsBaseline = b
      ? {
          throughput: div(row.reqPerSec, b.reqPerSec),
          p99: row.latencyValid && b.latencyValid ? div(row.latencyMs.p99, b.latencyMs.p99) : null,
          rss: div(row.gatewayRssMB, b.gatewayRssMB),
          cpuPerRequest: div(row.gatewayCpuMicrosPerRequest, b.gatewayCpuMicrosPerRequest),
        }
      : null;
  }
  return rows;
}

function table(rows) {
  const withRange = (value, r) => (value === null ? '–' : fmt(value, 2) + (rounds > 1 && r ? ` (${fmt(r[0], 2)}–${fmt(r[1], 2)})` : ''));
  const head = ['variant', 'req/s', 'p50 ms', 'p99 ms', 'idle MB', 'RSS MB', 'peak MB', 'upstr conn/1k req', 'gw CPU', 'gw µs/req', '× req/s', '× p99', '× RSS', '× route req/s'];
  const body = rows.map((r) => [
    r.variant + (r.warnings.length ? ' (!)' : ''),
    fmt(r.reqPerSec, 0),
    r.latencyValid ? fmt(r.latencyMs.p50, 2) : '†',
    r.latencyValid ? fmt(r.latencyMs.p99, 2) : '†',
    fmt(r.gatewayIdleRssMB, 1),
    fmt(r.gatewayRssMB, 1),
    fmt(r.gatewayPeakRssMB, 1),
    fmt(r.upstreamConnectionsPer1000, 2),
    r.gatewayCore === null ? '–' : `${fmt(r.gatewayCore * 100, 0)} %`,
    fmt(r.gatewayCpuMicrosPerRequest, 0),
    r.vsBaseline ? withRange(r.vsBaseline.throughput, r.perRoundRatioRange.throughput) : '–',
    r.vsBaseline ? withRange(r.vsBaseline.p99, r.perRoundRatioRange.p99) : '–',
    r.vsBaseline ? withRange(r.vsBaseline.rss) : '–',
    r.vsPlainRoute ? withRange(r.vsPlainRoute.throughput) : '–',
  ]);
  return renderTable(head, body);
}

/** A plain-text table: the first column left-aligned, the others right-aligned, a rule under the head. */
function renderTable(head, body) {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

// ---------------------------------------------------------------------------------------------------------

async function main() {
  const started = Date.now();
  // Each row: start-up + warm-up + measure + shutdown; generous, but bounded.
  const budgetMs = interleaveSlices
    ? (selected.length * (settings.warmup + 15 + interleaveSlices * (sliceSeconds + 1)) + 30) * 1000
    : (rounds * selected.length * (settings.warmup + settings.duration + 15 + waitQuietSeconds) + 30) * 1000;
  const watchdog = setTimeout(() => {
    console.error(`\nbench: still running after ${Math.round(budgetMs / 1000)} s, giving up`);
    killAll();
    process.exit(1);
  }, budgetMs);
  watchdog.unref();

  const selfPinned = pinSelf(1);
  const cpus = os.cpus();
  const machine = {
    cpu: cpus[0] ? cpus[0].model.trim() : 'unknown',
    cores: cpus.length,
    node: process.version,
    gatewayNode: GATEWAY_NODE.version,
    platform: `${os.platform()} ${os.release()}`,
    totalMemMB: Math.round(os.totalmem() / 1048576),
  };
  const pinning = PINNING
    ? { gateway: 'core 0', upstream: 'core 1', loadGenerator: selfPinned ? 'core 1' : 'unpinned' }
    : { gateway: 'unpinned', upstream: 'unpinned', loadGenerator: 'unpinned', note: 'taskset unavailable or not permitted' };

  console.log(`machine: ${machine.cpu}, ${machine.cores} cores, ${machine.platform}`);
  console.log(`node: gateway rows on ${machine.gatewayNode}${GATEWAY_NODE.path === process.execPath ? '' : ` (BENCH_NODE: ${GATEWAY_NODE.path})`}, upstream and autocannon on ${machine.node}`);
  console.log(`autocannon: ${settings.connections} connections, pipelining ${settings.pipelining}${settings.rate ? `, ${settings.rate} req/s in all (BENCH_RATE)` : ''}, ${settings.method} ${settings.path}, warm-up ${settings.warmup}s, ${interleaveSlices ? `interleaved: ${interleaveSlices} slices of ${sliceSeconds}s per row` : `measured ${settings.duration}s${rounds > 1 ? `, ${rounds} rounds` : ''}`}`);
  console.log(`pinning: gateway ${pinning.gateway}, upstream ${pinning.upstream}, autocannon ${pinning.loadGenerator}${pinning.note ? ` (${pinning.note})` : ''}`);
  console.log(`rows: ${selected.map((v) => v.name).join(', ')}${baselineDist ? `\n${BASELINE_SUFFIX} rows load frontdoor from ${baselineDist}` : ''}\n`);

  const busyBefore = await machineBusy(1000);
  if (busyBefore !== null) {
    console.log(`machine busy before start: ${(busyBefore * 100).toFixed(0)} % of all cores${busyBefore > 0.1 ? ' — other processes are running; the numbers will be noisy' : ''}\n`);
  }

  // The gRPC upstream (in the same child, so on the same core) only when a row calls it.
  const upstream = startChild('upstream.js', selected.some((v) => (v.needs || []).includes('grpc')) ? ['--grpc'] : [], { core: 1 });
  const runs = [];
  let redis = null;
  try {
    const { port: upstreamPort, otlpPort, grpcPort } = await ask(upstream, null, 'listening', 10_000);
    const env = {
      ...process.env,
      ...(grpcPort ? { BENCH_GRPC_TARGET: `127.0.0.1:${grpcPort}` } : {}),
      BENCH_OTLP_URL: `http://127.0.0.1:${otlpPort}`,
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${otlpPort}/v1/traces`,
    };
    if (selected.some((v) => (v.needs || []).includes('redis'))) {
      redis = await startRedis();
      if (redis) env.BENCH_REDIS_URL = redis.url;
      else console.log('redis-server is not installed: skipping the rows that need Redis (apt-get install redis-server).\n');
    }
    const runnable = selected.filter((v) => redis || !(v.needs || []).includes('redis'));
    if (interleaveSlices) {
      if (runnable.length < selected.length) throw new Error('BENCH_INTERLEAVE: a row needs Redis, which is not installed');
      const result = interleavedReport(await runInterleaved(runnable, upstream, upstreamPort, env));
      console.log(`\nNode ${machine.gatewayNode} (gateway rows)\n${result.text}\n`);
      console.log(`units/s, latency and gw µs/unit: over all slices (a unit is a request, or a screen: see the unit column); Δ µs/unit: median over the slice rounds of the row's gateway CPU per unit minus the reference's in the same round; upstr/req: upstream requests per completed client request; × ${runnable[0].name}: total units ÷ the reference's; slice median, q1–q3: of the per-slice-round ratios.`);
      if (result.comparisons.length) console.log('versus: a row against the row it stands in for (units, latency and CPU per unit; the slice ratios of adjacent slices).');
      for (const r of result.rows) if (r.stats) console.log(`${r.variant} stats: ${JSON.stringify(r.stats)}`);
      if (result.steal !== null) console.log(`hypervisor steal during the slices: ${(result.steal * 100).toFixed(0)} %`);
      for (const r of result.rows) if (r.errors || r.non2xx || r.timeouts) console.log(`(!) ${r.variant}: errors=${r.errors} timeouts=${r.timeouts} non2xx=${r.non2xx}`);
      for (const f of failures) console.log(`(!) FAILED ${f}`);
      const busyAfter = await machineBusy(1000);
      const report = { date: new Date().toISOString(), machine, pinning, machineBusyBeforeStart: busyBefore, machineBusyAfter: busyAfter, loadAverage: os.loadavg(), autocannon: settings, interleave: { slices: interleaveSlices, sliceSeconds }, baselineDist, dist: DIST_USED, rows: result.rows, comparisons: result.comparisons, skipped: result.skipped, failures, steal: result.steal, elapsedSeconds: (Date.now() - started) / 1000 };
      fs.mkdirSync(path.dirname(INTERLEAVE_FILE), { recursive: true });
      fs.writeFileSync(INTERLEAVE_FILE, JSON.stringify(report, null, 2) + '\n');
      console.log(`\nresults: ${path.relative(process.cwd(), INTERLEAVE_FILE)} (${report.elapsedSeconds.toFixed(0)} s)`);
      clearTimeout(watchdog);
      return failures.length === 0;
    }
    for (let round = 1; round <= rounds; round++) {
      if (rounds > 1) console.log(`round ${round}/${rounds}`);
      // Alternate the order so slow drift of the machine's speed does not always favour the same rows.
      const order = round % 2 ? runnable : [...runnable].reverse();
      for (const variant of order) {
        const run = await runRow(variant, upstream, upstreamPort, env);
        if (run) runs.push({ round, ...run });
      }
    }
  } finally {
    await stopChild(upstream);
    if (redis) redis.child.kill('SIGTERM');
  }

  const rows = summarise(runs);
  console.log('');
  console.log(`Node ${machine.gatewayNode} (gateway rows)`);
  console.log(table(rows));
  console.log('');
  console.log(`idle MB: gateway resident set before its first request; RSS MB: after the measured run; peak MB: highest 100 ms sample during it.`);
  console.log(`upstr conn/1k req: TCP connections the upstream accepted from 1 s into the measured run on, per 1 000 requests it answered.`);
  console.log(`gw CPU: the gateway's CPU time ÷ wall time during the measured run (100 % = its core saturated); gw µs/req: its CPU time per request.`);
  if (rounds > 1) console.log(`${rounds} rounds: medians per row; (a–b) is the range of the per-round ratios.`);
  for (const r of rows.filter((x) => !x.latencyValid)) {
    console.log(`† ${r.variant} answers "Connection: close", so the client reconnects for every request; autocannon's latency is not meaningful then (mean ≈ connections ÷ req/s = ${fmt(r.littleMeanLatencyMs, 1)} ms).`);
  }
  console.log(rows.some((r) => r.vsBaseline) ? `× columns: ratio to ${BASELINE} in this run; × route req/s: ratio to ${PLAIN_ROUTE} (what a feature on the route costs).` : `× columns: ${BASELINE} not in this run, no ratios.`);
  for (const r of rows) for (const w of r.warnings) console.log(`(!) ${r.variant}, ${w}`);
  const screenRows = rows.filter((r) => r.unit !== 'req');
  if (screenRows.length) console.log(`counted in screens (req/s is screens/s, latency a screen's, gw µs/req per screen): ${screenRows.map((r) => r.variant).join(', ')}.`);
  for (const run of runs) if (run.stats) console.log(`${run.variant} stats (round ${run.round}): ${JSON.stringify(run.stats)}`);
  for (const f of failures) console.log(`(!) FAILED ${f}`);

  const report = {
    date: new Date().toISOString(),
    machine,
    pinning,
    machineBusyBeforeStart: busyBefore,
    autocannon: settings,
    rounds,
    baseline: BASELINE,
    baselineDist,
    dist: DIST_USED,
    failures,
    rows,
    runs,
    elapsedSeconds: (Date.now() - started) / 1000,
  };
  fs.mkdirSync(path.dirname(RESULTS_FILE), { recursive: true });
  fs.writeFileSync(RESULTS_FILE, JSON.stringify(report, null, 2) + '\n');
  console.log(`\nresults: ${path.relative(process.cwd(), RESULTS_FILE)} (${report.elapsedSeconds.toFixed(0)} s)`);
  if (profiled.size) console.log(`CPU profiles: ${path.relative(process.cwd(), PROF_DIR)}/`);
  clearTimeout(watchdog);
  return failures.length === 0;
}

main().then(
  (ok) => { if (!ok) console.error('\nbench: some rows did not get the answers they expect (see "FAILED" above)'); killAll(); process.exit(ok ? 0 : 1); },
  (err) => { console.error(`\nbench failed: ${err && err.stack ? err.stack : err}`); killAll(); process.exit(1); },
);
