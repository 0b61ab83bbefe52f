/**
 * Found by the soak run: when the upstream resets an open WebSocket, the gateway sometimes keeps the client's
 * socket open for good (paused and half-closed, it never reads the client's FIN): a few sockets in twenty here.
 * `node test/soak/repro/ws-reset-leak.js` (SOAK_DIST=<build>): exit 0 when no socket is left, 1 otherwise.
 */
'use strict';

const http = require('node:http');
const path = require('node:path');
const express = require('express');
const WebSocket = require('ws');

const { gateway } = require(path.resolve(__dirname, '..', '..', '..', process.env.SOAK_DIST || 'dist'));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const held = new Set();
const wss = new WebSocket.Server({ noServer: true });
wss.on('connection', (ws) => ws.on('message', (data) => ws.send(data)));
const upstream = http.createServer((req, res) => res.end('ok'));
upstream.on('upgrade', (req, socket, head) => {
  held.add(socket);
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});

upstream.listen(0, '127.0.0.1', () => {
  const gw = gateway({ routes: [{ path: '/', ws: true, upstream: { target: `http://127.0.0.1:${upstream.address().port}`, health: { passive: false } } }] });
  const app = express();
  app.use(gw);
  const server = app.listen(0, '127.0.0.1', async () => {
    server.on('upgrade', gw.upgrade);
    for (let i = 0; i < 20; i++) {
      const ws = new WebSocket(`ws://127.0.0.1:${server.address().port}/live`);
      ws.on('error', () => undefined);
      await new Promise((resolve) => ws.on('open', resolve));
      ws.send('x'.repeat(700));
      await sleep(i % 3);
      for (const socket of held) socket.resetAndDestroy();
      held.clear();
      ws.send('y'.repeat(700), () => undefined);
      await new Promise((resolve) => ws.on('close', resolve));
    }
    await sleep(2_000);
    const open = await new Promise((resolve) => server.getConnections((_err, n) => resolve(n)));
    console.log(`20 sessions reset by the upstream, all closed by the client; gateway sockets still open 2 s later: ${open}`);
    server.close();
    upstream.close();
    await gw.close();
    process.exit(open === 0 ? 0 : 1);
  });
});
