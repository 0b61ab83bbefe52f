/**
 * One gateway instance of the soak run, a child of run.js (started with --expose-gc, on SOAK_NODE's Node when
 * given). Loads frontdoor from SOAK_DIST (default ./dist), builds an Express app with gateway({ routes }) in
 * front of the flapping upstream, rate limits and a cache in the shared Redis, and listens on a loopback port.
 *   ← { cmd: 'start', config }   config: { upstreamPort, redisUrl, jwtPublicPem, apiKeyDigest }
 *   → { type: 'listening', port, node }
 *   ← { cmd: 'sample' } → { type: 'sample', ... }   memory after a full GC, event-loop delay since the last
 *                          sample, open connections, active resources by type, error counts
 *   ← { cmd: 'close' }  → { type: 'closed' }, then exits 0
 * Uncaught exceptions, unhandled rejections and process warnings are counted (and logged), never fatal here, so
 * the run can report them. It exits by itself when the parent goes away.
 */
'use strict';

const net = require('node:net');
const path = require('node:path');
const { monitorEventLoopDelay } = require('node:perf_hooks');
const v8 = require('node:v8');
const { UPSTREAM_LIMITS } = require('./schedule');

const ROOT = path.join(__dirname, '..', '..');
const DIST = process.env.SOAK_DIST ? path.resolve(ROOT, process.env.SOAK_DIST) : path.join(ROOT, 'dist');
const express = require('express');
const { gateway } = require(DIST);

const faults = { uncaughtExceptions: 0, unhandledRejections: 0, warnings: 0, messages: [] };
function note(kind, err) {
  faults[kind]++;
  const text = `${kind}: ${err && err.stack ? err.stack : String(err)}`;
  if (faults.messages.length < 10) faults.messages.push(text.slice(0, 2_000));
  console.error(`soak gateway ${process.pid}: ${text}`);
}
process.on('uncaughtException', (err) => note('uncaughtExceptions', err));
process.on('unhandledRejection', (err) => note('unhandledRejections', err));
process.on('warning', (warning) => note('warnings', warning));

/** The route table: every kind of traffic the load generator sends has its route. */
function routesFor({ redisUrl, jwtPublicPem, apiKeyDigest }) {
  const jwt = { secret: jwtPublicPem, algorithms: ['RS256'] };
  return [
    { path: '/anon', upstream: 'svc' },
    { path: '/jwt', upstream: 'svc', auth: { jwt } },
    { path: '/key', upstream: 'svc', auth: { apiKey: { keys: { [apiKeyDigest]: { id: 'acme', tier: 'pro', scopes: [] } } } } },
    // Shared by both instances in Redis; fails closed (503) while Redis is down.
    { path: '/limited', upstream: 'svc', rateLimit: { limit: 50, window: '5s', redis: redisUrl, onStoreError: 'deny' } },
    // Never reached, so it only counts; fails open (the default) while Redis is down.
    { path: '/counted', upstream: 'svc', rateLimit: { limit: 1_000_000, window: '1m', redis: redisUrl } },
    { path: '/cached', upstream: 'svc', cache: { ttl: '2s', redis: redisUrl } },
    { path: '/upload', methods: ['POST'], upstream: 'svc', bodyLimit: '1mb' },
    { path: '/ws', upstream: 'svc', ws: true, auth: { jwt } },
  ];
}

let gw;
let server;
let ports = { upstream: 0, redis: 0 };

/** Requests not finished yet, so a sample can name those open far longer than any timeout allows. */
const open = new Map();
let nextId = 0;
function trackOpen(req, res, next) {
  const id = nextId++;
  open.set(id, { started: Date.now(), method: req.method, url: req.url, id: req.headers['x-soak-id'], res });
  res.once('close', () => open.delete(id));
  next();
}

/** Up to five requests open for more than 3 s (the route timeout is 1 s): what each has done so far. */
function stuckRequests() {
  const now = Date.now();
  const stuck = [];
  for (const r of open.values()) {
    if (now - r.started > 3_000) stuck.push(r);
  }
  return {
    count: stuck.length,
    examples: stuck.slice(0, 5).map((r) => ({
      id: r.id, method: r.method, url: r.url, ageMs: now - r.started,
      headersSent: r.res.headersSent, finished: r.res.writableFinished, socketDestroyed: r.res.socket ? r.res.socket.destroyed : null,
    })),
  };
}
const eld = monitorEventLoopDelay({ resolution: 10 });

function start(config) {
  ports = { upstream: config.upstreamPort, redis: Number(new URL(config.redisUrl).port) };
  const upstreams = {
    svc: {
      target: `http://127.0.0.1:${config.upstreamPort}`,
      timeout: UPSTREAM_LIMITS.timeout,
      connectTimeout: '1s',
      health: { passive: UPSTREAM_LIMITS.passive },
    },
  };
  try {
    gw = gateway({ upstreams, routes: routesFor(config) });
  } catch (err) {
    process.send({ type: 'build-failed', message: err && err.message ? err.message : String(err) }, () => process.exit(3));
    return;
  }
  const app = express();
  app.use(trackOpen);
  app.use(gw);
  server = app.listen(0, '127.0.0.1', () => {
    eld.enable();
    process.send({ type: 'listening', port: server.address().port, pid: process.pid, node: process.version });
  });
  // Longer than any idle gap of the load generator's keep-alive sockets: no close races mid-run.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.on('upgrade', gw.upgrade);
}

/**
 * The open TCP sockets by peer: clients (`in`), the upstream, Redis; with `detail`, what each non-Redis one is
 * doing (for a socket left open after the load, the state tells which path forgot it).
 */
function socketsByPeer(detail) {
  const byPeer = { in: 0, upstream: 0, redis: 0, other: 0 };
  const described = [];
  const own = server.address().port;
  for (const handle of process._getActiveHandles()) {
    if (!(handle instanceof net.Socket) || handle.remotePort === undefined) continue;
    const peer = handle.localPort === own ? 'in' : handle.remotePort === ports.upstream ? 'upstream' : handle.remotePort === ports.redis ? 'redis' : 'other';
    byPeer[peer]++;
    if (detail && peer !== 'redis' && described.length < 10) {
      const message = handle._httpMessage;
      described.push({
        peer, remotePort: handle.remotePort, localPort: handle.localPort, bytesRead: handle.bytesRead, bytesWritten: handle.bytesWritten,
        paused: handle.isPaused(), readableFlowing: handle.readableFlowing, writable: handle.writable, readableEnded: handle.readableEnded,
        parser: Boolean(handle.parser), httpMessage: message ? { finished: message.finished, headersSent: message.headersSent, path: message.path, method: message.method } : undefined,
      });
    }
  }
  return detail ? { ...byPeer, described } : byPeer;
}

function sample(detail) {
  const loop = { p99: eld.percentile(99) / 1e6, max: eld.max / 1e6, mean: eld.mean / 1e6 };
  eld.reset();
  global.gc();
  const { rss, heapUsed, heapTotal, external, arrayBuffers } = process.memoryUsage();
  // Committed size per V8 heap space: tells a young generation that grew (V8's sizing) from old objects kept.
  const spaces = {};
  for (const space of v8.getHeapSpaceStatistics()) spaces[space.space_name.replace(/_space$/, '')] = { size: space.space_size, used: space.space_used_size };
  const resources = {};
  for (const type of process.getActiveResourcesInfo()) resources[type] = (resources[type] || 0) + 1;
  server.getConnections((err, connections) => {
    process.send({
      type: 'sample',
      memory: { rss, heapUsed, heapTotal, external, arrayBuffers },
      spaces,
      loop,
      connections: err ? -1 : connections,
      sockets: resources.TCPSocketWrap || 0,
      handles: Object.values(resources).reduce((a, b) => a + b, 0),
      resources,
      byPeer: socketsByPeer(detail),
      stuck: stuckRequests(),
      faults: { ...faults, messages: faults.messages.slice() },
    });
  });
}

let closing = false;
async function shutdown() {
  if (closing) return;
  closing = true;
  const timer = setTimeout(() => process.exit(0), 3_000);
  timer.unref();
  try {
    eld.disable();
    if (server) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    if (gw) await gw.close();
  } catch (err) {
    console.error('soak gateway: close failed:', err);
  }
  if (process.connected) process.send({ type: 'closed' }, () => process.exit(0));
  else process.exit(0);
}

process.on('message', (msg) => {
  if (!msg || typeof msg !== 'object') return;
  if (msg.cmd === 'start') start(msg.config);
  else if (msg.cmd === 'sample') sample(msg.detail === true);
  else if (msg.cmd === 'close') void shutdown();
});
process.on('disconnect', () => { void shutdown(); });
