/**
 * A gateway in a process of its own, so a test can read the memory of the gateway alone: the test process
 * also holds the client, the upstream and jest, whose garbage would count in its own RSS.
 * argv: the gateway() options as JSON, and the Express package to mount it on ('express' or 'express4').
 * Sends `{ port }` on IPC once listening; answers `'memory'` with `{ rss, maxRss }` in bytes (maxRss: the
 * process's peak RSS so far, as the kernel counts it, so no short peak escapes sampling). Exits when the
 * parent disconnects. Runs against dist/ (built by `npm test`).
 */
'use strict';

const { gateway } = require('../../dist');

const options = JSON.parse(process.argv[2]);
const express = require(process.argv[3] ?? 'express');

const gw = gateway(options);
const app = express();
app.use(gw);
const server = app.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));

process.on('message', (message) => {
  if (message === 'memory') process.send({ rss: process.memoryUsage.rss(), maxRss: process.resourceUsage().maxRSS * 1024 });
});
process.on('disconnect', () => {
  server.closeAllConnections();
  server.close();
  gw.close().then(() => process.exit(0));
});
