/**
 * Found by the soak run: a WebSocket handshake that is an ejected target's one trial request and succeeds never
 * reports its success to the pool, so the trial slot stays taken and the target stays ejected: every later
 * request of every route on that upstream gets 503 ERR_NO_HEALTHY_UPSTREAM, for good.
 * `node test/soak/repro/ws-trial.js` (SOAK_DIST=<build> to load another build): exit 0 when the target
 * recovers, 1 when it does not.
 */
'use strict';

const http = require('node:http');
const path = require('node:path');
const express = require('express');
const WebSocket = require('ws');

const { gateway } = require(path.resolve(__dirname, '..', '..', '..', process.env.SOAK_DIST || 'dist'));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const wss = new WebSocket.Server({ noServer: true });
const upstream = http.createServer((req, res) => res.end('ok'));
upstream.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, () => undefined));

upstream.listen(0, '127.0.0.1', () => {
  const port = upstream.address().port;
  const gw = gateway({ routes: [{ path: '/', ws: true, upstream: { target: `http://127.0.0.1:${port}`, health: { passive: { failures: 1, cooldown: '500ms', maxCooldown: '1s' } } } }] });
  const app = express();
  app.use(gw);
  const server = app.listen(0, '127.0.0.1', async () => {
    server.on('upgrade', gw.upgrade);
    const get = () => new Promise((resolve) => http.get({ host: '127.0.0.1', port: server.address().port, path: '/x', agent: false }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); }));
    upstream.close();
    await sleep(50);
    const refused = await get(); // ejects the target (failures: 1)
    upstream.listen(port, '127.0.0.1');
    await sleep(700); // past the cooldown: the next pick is the trial
    const ws = new WebSocket(`ws://127.0.0.1:${server.address().port}/live`);
    await new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject); });
    await sleep(1_200);
    const after = await get();
    console.log(`refused: ${refused}; WebSocket trial opened; GET 1.2 s later: ${after} (${after === 200 ? 'recovered' : 'still ejected: BUG'})`);
    ws.terminate();
    server.close();
    upstream.close();
    await gw.close();
    process.exit(after === 200 ? 0 : 1);
  });
});
