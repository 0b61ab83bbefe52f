/**
 * The soak run's upstream, a child of run.js: a plain node:http server on 127.0.0.1 that flaps on command.
 *   GET <any path>     200, a 2 KB JSON document naming the path (Content-Length set, so a cut body shows)
 *   POST /upload       reads the streamed body and answers { bytes } with the count it received
 *   upgrade /ws        a WebSocket echo (the `ws` package)
 * Modes, set over IPC with { cmd: 'mode', mode } (answered { type: 'mode', mode }):
 *   ok       as above
 *   refuse   the listener is closed and every open socket (keep-alive and WebSocket) destroyed: connections are
 *            refused until the next mode, which listens again on the same port
 *   hang     requests and handshakes are accepted and never answered; held sockets are destroyed when the mode
 *            ends (the stuck process restarted)
 *   reset    every other request is reset (TCP RST) before any answer, the others after their headers and half of
 *            their body; handshakes are reset
 * { cmd: 'close-idle' } closes idle keep-alive connections (what a keepAliveTimeout would do later), so the
 * gateway's pool can be compared with its baseline. { cmd: 'stats' } → { type: 'stats', ... } counters.
 * It exits by itself when the parent goes away.
 */
'use strict';

const http = require('node:http');
const { WebSocketServer } = require('ws');

const BODY_PAD = 'x'.repeat(2_000);
const sockets = new Set();
const held = new Set();
const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => undefined);
});

let mode = 'ok';
let port = 0;
let resetTurn = 0;
const stats = { requests: 0, uploads: 0, uploadBytes: 0, upgrades: 0, held: 0, resetBefore: 0, resetMidBody: 0, refusedPeriods: 0 };

function answer(req) {
  const body = Buffer.from(JSON.stringify({ path: req.url, pad: BODY_PAD }));
  return { body, headers: { 'Content-Type': 'application/json', 'Content-Length': String(body.length) } };
}

function reset(socket) {
  if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
  else socket.destroy();
}

const server = http.createServer((req, res) => {
  stats.requests++;
  if (mode === 'hang') {
    stats.held++;
    held.add(req.socket);
    return;
  }
  if (mode === 'reset') {
    if (resetTurn++ % 2 === 0) {
      stats.resetBefore++;
      return reset(req.socket);
    }
    stats.resetMidBody++;
    const { body, headers } = answer(req);
    req.resume();
    res.writeHead(200, headers);
    res.write(body.subarray(0, body.length >> 1), () => reset(req.socket));
    return;
  }
  if (req.method === 'POST' && req.url === '/upload') {
    stats.uploads++;
    let bytes = 0;
    req.on('data', (chunk) => { bytes += chunk.length; });
    req.on('end', () => {
      stats.uploadBytes += bytes;
      const body = JSON.stringify({ bytes });
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)) });
      res.end(body);
    });
    return;
  }
  req.resume();
  const { body, headers } = answer(req);
  res.writeHead(200, headers);
  res.end(body);
});
// Longer than any idle gap of the load: the gateway's pooled sockets are never closed under it mid-run.
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;
server.on('connection', (socket) => {
  sockets.add(socket);
  socket.on('close', () => { sockets.delete(socket); held.delete(socket); });
});
server.on('clientError', (_err, socket) => socket.destroy());
server.on('upgrade', (req, socket, head) => {
  stats.upgrades++;
  socket.on('error', () => undefined);
  if (mode === 'hang') { held.add(socket); return; }
  if (mode === 'reset' || !req.url.startsWith('/ws')) return reset(socket);
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});

function listen(onListening) {
  const deadline = Date.now() + 5_000;
  const attempt = () => {
    server.once('error', onError);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', onError);
      port = server.address().port;
      onListening();
    });
  };
  const onError = (err) => {
    if (err.code === 'EADDRINUSE' && Date.now() < deadline) setTimeout(attempt, 100);
    else process.send({ type: 'error', message: `upstream could not listen again on ${port}: ${err.message}` });
  };
  attempt();
}

function setMode(next, done) {
  const previous = mode;
  mode = next;
  if (previous === 'hang') {
    for (const socket of held) socket.destroy();
    held.clear();
  }
  if (next === 'refuse' && previous !== 'refuse') {
    stats.refusedPeriods++;
    server.close();
    for (const socket of sockets) socket.destroy();
    done();
  } else if (previous === 'refuse' && next !== 'refuse') {
    listen(done);
  } else done();
}

process.on('message', (msg) => {
  if (!msg || typeof msg !== 'object') return;
  if (msg.cmd === 'mode') setMode(msg.mode, () => process.send({ type: 'mode', mode }));
  else if (msg.cmd === 'close-idle') {
    server.closeIdleConnections();
    process.send({ type: 'closed-idle' });
  } else if (msg.cmd === 'stats') process.send({ type: 'stats', ...stats, sockets: sockets.size });
});
process.on('disconnect', () => process.exit(0));

listen(() => process.send({ type: 'listening', port }));
