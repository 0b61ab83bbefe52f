/**
 * One gateway row of the benchmark, run as a child of run.js: `node test/bench/gateway.js <variant> <upstreamPort>`.
 * Builds the variant's Express app (see variants.js), listens on an ephemeral loopback port and talks to the
 * parent over IPC:
 *   → { type: 'listening', port }           once it accepts connections
 *   ← { cmd: 'rss-reset' }                  start a fresh peak-RSS window (sampled every 100 ms)
 *   ← { cmd: 'rss' }  → { type: 'rss', rss, peakRss, cpuMicros }   bytes, now and the peak since the last
 *                                          reset; CPU time (user + system, µs) used since the last reset
 *   ← { cmd: 'row-stats' } → { type: 'row-stats', stats }   what the row's stats() returns (undefined without one)
 *   ← { cmd: 'close' } → { type: 'closed' }  then exits 0 (so `node --cpu-prof` can write its profile)
 * When the row's build throws (an option this build does not know), it sends { type: 'build-failed', message }
 * and exits 3.
 * It exits by itself when the parent goes away.
 */
'use strict';

const { variants } = require('./variants');

const [name, upstreamPort] = process.argv.slice(2);
const variant = variants.find((v) => v.name === name);
if (!variant || !variant.build) {
  console.error(`gateway.js: unknown gateway variant "${name}". Known: ${variants.filter((v) => v.build).map((v) => v.name).join(', ')}`);
  process.exit(2);
}
if (!/^\d+$/.test(upstreamPort || '')) {
  console.error('usage: node test/bench/gateway.js <variant> <upstreamPort>');
  process.exit(2);
}

const services = { redisUrl: process.env.BENCH_REDIS_URL, otlpUrl: process.env.BENCH_OTLP_URL, grpcTarget: process.env.BENCH_GRPC_TARGET };
let built;
try {
  built = variant.build(`http://127.0.0.1:${upstreamPort}`, services);
} catch (err) {
  const message = err && err.message ? err.message : String(err);
  console.error(`gateway.js (${name}): build failed: ${message}`);
  process.send({ type: 'build-failed', message }, () => process.exit(3));
  return;
}
const { app, close, stats } = built;

let peakRss = 0;
let cpuAtReset = process.cpuUsage();
const sampler = setInterval(() => {
  const rss = process.memoryUsage.rss();
  if (rss > peakRss) peakRss = rss;
}, 100);
sampler.unref();

const server = app.listen(0, '127.0.0.1', () => {
  process.send({ type: 'listening', port: server.address().port, pid: process.pid });
});
// Like the upstream: keep benchmark connections open across the warm-up/measure gap.
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;

let closing = false;
async function shutdown(code) {
  if (closing) return;
  closing = true;
  clearInterval(sampler);
  const timer = setTimeout(() => process.exit(code), 3_000);
  timer.unref();
  try {
    server.closeAllConnections();
    await Promise.all([new Promise((resolve) => server.close(resolve)), close()]);
  } catch (err) {
    console.error(`gateway.js (${name}): close failed:`, err);
  }
  if (process.connected) process.send({ type: 'closed' }, () => process.exit(code));
  else process.exit(code);
}

process.on('message', (msg) => {
  if (!msg || typeof msg !== 'object') return;
  if (msg.cmd === 'rss-reset') {
    peakRss = process.memoryUsage.rss();
    cpuAtReset = process.cpuUsage();
    process.send({ type: 'rss-reset' });
  } else if (msg.cmd === 'rss') {
    const rss = process.memoryUsage().rss;
    if (rss > peakRss) peakRss = rss;
    const cpu = process.cpuUsage(cpuAtReset);
    process.send({ type: 'rss', rss, peakRss, cpuMicros: cpu.user + cpu.system });
  } else if (msg.cmd === 'row-stats') {
    try {
      process.send({ type: 'row-stats', stats: stats ? stats() : undefined });
    } catch (err) {
      process.send({ type: 'row-stats', error: err && err.message ? err.message : String(err) });
    }
  } else if (msg.cmd === 'close') {
    void shutdown(0);
  }
});
process.on('disconnect', () => { void shutdown(0); });
