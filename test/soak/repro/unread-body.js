/**
 * Found by the soak run: a streamed upload whose upstream answers part of a response and resets while the body is
 * still coming gets a 502, but the rest of its body is left unread on the keep-alive connection: the next request
 * on that connection is never answered, and the gateway keeps the socket after the client has closed it.
 * `node test/soak/repro/unread-body.js` (SOAK_DIST=<build>): exit 0 when the next request is answered and the
 * socket released, 1 otherwise.
 */
'use strict';

const http = require('node:http');
const path = require('node:path');
const express = require('express');

const { gateway } = require(path.resolve(__dirname, '..', '..', '..', process.env.SOAK_DIST || 'dist'));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const upstream = http.createServer((req, res) => {
  if (req.method !== 'POST') return res.end('ok');
  // Headers and half a body without reading the upload, then a TCP reset.
  res.writeHead(200, { 'Content-Length': '100' });
  res.write('x'.repeat(50), () => req.socket.resetAndDestroy());
});

upstream.listen(0, '127.0.0.1', () => {
  const gw = gateway({ routes: [{ path: '/', upstream: { target: `http://127.0.0.1:${upstream.address().port}`, health: { passive: false } } }] });
  const app = express();
  app.use(gw);
  const server = app.listen(0, '127.0.0.1', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const send = (method, size) => new Promise((resolve) => {
      const req = http.request({ host: '127.0.0.1', port: server.address().port, method, path: '/x', agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(String(res.statusCode)));
        res.on('close', () => { if (!res.complete) resolve('aborted'); });
      });
      req.setTimeout(3_000, () => { resolve('no answer in 3 s'); req.destroy(); });
      req.on('error', (err) => resolve(err.code));
      let left = size;
      const chunk = Buffer.alloc(16 * 1024);
      const pump = () => {
        while (left > 0) {
          left -= chunk.length;
          if (!req.write(chunk)) return req.once('drain', pump);
        }
        req.end();
      };
      pump();
    });
    const upload = await send('POST', 300_000);
    const next = await send('GET', 0);
    agent.destroy();
    await sleep(1_000);
    const open = await new Promise((resolve) => server.getConnections((_err, n) => resolve(n)));
    console.log(`upload: ${upload}; next request on the connection: ${next}; gateway sockets 1 s after the client closed: ${open}`);
    server.close();
    upstream.close();
    await gw.close();
    process.exit(next === '200' && open === 0 ? 0 : 1);
  });
});
