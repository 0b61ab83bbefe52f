/**
 * A traced gateway in a process of its own, as an app starts it: setupTelemetry() with the default exporter
 * (configured only by the OTEL_* variables it is given), one gateway route to FD_UPSTREAM, one request
 * through it, then a flushing shutdown. Prints `{ status, requestId }` as JSON and exits 0; exits 3 with the
 * error message on stderr when setupTelemetry() refuses its configuration.
 * Run by test/integration/tracing-exporter.test.ts against dist/ (built by `npm test`).
 */
'use strict';

const http = require('node:http');
const express = require('express');
const { gateway, setupTelemetry } = require('../../dist');

let telemetry;
try {
  telemetry = setupTelemetry({ serviceName: 'frontdoor-exporter-test' });
} catch (err) {
  process.stderr.write(`${err.name}: ${err.message}`);
  process.exit(3);
}
const gw = gateway({ trace: true, routes: [{ path: '/api/orders', upstream: process.env.FD_UPSTREAM }] });
const app = express();
app.use(gw);
const server = app.listen(0, '127.0.0.1', () => {
  http.get({ host: '127.0.0.1', port: server.address().port, path: '/api/orders/1', agent: false }, (res) => {
    res.resume();
    res.on('end', async () => {
      server.close();
      await gw.close();
      await telemetry.shutdown();
      process.stdout.write(JSON.stringify({ status: res.statusCode, requestId: res.headers['x-request-id'] }));
      process.exit(0);
    });
  });
});
