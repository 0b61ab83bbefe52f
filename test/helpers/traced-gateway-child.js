/**
 * A traced gateway in a process of its own, as an app starts it: setupTelemetry() with the default exporter
 * (configured only by the OTEL_* variables it is given), one gateway route to FD_UPSTREAM, one request
 * through it, then a flushing shutdown. Prints JSON and exits 0; exits 3 with the error message on stderr
 * when setupTelemetry() refuses its configuration. The JSON has the response's `status` and `requestId`,
 * `reused`, the OpenTelemetry and gRPC packages the process loaded (`packages`, from require.cache), and its
 * memory before and after setupTelemetry() and after the request (`memory`, bytes; garbage-collected first
 * when run with --expose-gc).
 * FD_APP_METRIC=1 also records a counter through the global metrics API, as a library of the app would.
 * Run by test/integration/tracing-exporter.test.ts and telemetry-footprint.test.ts against dist/ (built by
 * `npm test`; FD_DIST points at another build).
 */
'use strict';

const http = require('node:http');
const path = require('node:path');
const express = require('express');
const { gateway, setupTelemetry } = require(process.env.FD_DIST ? path.resolve(process.env.FD_DIST) : '../../dist');

/** Resident set and heap after a full collection (when gc is exposed). */
function memory() {
  for (let i = 0; i < 3; i++) global.gc?.();
  const { rss, heapUsed } = process.memoryUsage();
  return { rss, heapUsed };
}

/** Package names (`@scope/name`) of the modules loaded from node_modules whose scope is @opentelemetry or @grpc. */
function loadedPackages() {
  const names = new Set();
  for (const file of Object.keys(require.cache)) {
    const match = /[\\/]node_modules[\\/](@(?:opentelemetry|grpc)[\\/][^\\/]+)[\\/](?!.*[\\/]node_modules[\\/])/.exec(file);
    if (match) names.add(match[1].replace('\\', '/'));
  }
  return [...names].sort();
}

const before = memory();
let telemetry;
try {
  telemetry = setupTelemetry({ serviceName: 'frontdoor-exporter-test' });
} catch (err) {
  process.stderr.write(`${err.name}: ${err.message}`);
  process.exit(3);
}
const afterSetup = memory();
if (process.env.FD_APP_METRIC) require('@opentelemetry/api').metrics.getMeter('app').createCounter('app_orders').add(1);
const gw = gateway({ trace: true, routes: [{ path: '/api/orders', upstream: process.env.FD_UPSTREAM }] });
const app = express();
app.use(gw);
const server = app.listen(0, '127.0.0.1', () => {
  // FD_REQUEST_HEADERS: JSON of headers the request carries (an incoming trace context, say).
  const headers = process.env.FD_REQUEST_HEADERS ? JSON.parse(process.env.FD_REQUEST_HEADERS) : {};
  http.get({ host: '127.0.0.1', port: server.address().port, path: '/api/orders/1', agent: false, headers }, (res) => {
    res.resume();
    res.on('end', async () => {
      server.close();
      await gw.close();
      const after = memory();
      await telemetry.shutdown();
      process.stdout.write(
        JSON.stringify({ status: res.statusCode, requestId: res.headers['x-request-id'], reused: telemetry.reused, packages: loadedPackages(), memory: { before, afterSetup, after } }),
      );
      process.exit(0);
    });
  });
});
