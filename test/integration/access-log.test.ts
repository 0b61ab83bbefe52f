/**
 * Access log through pino into a captured stream: one JSON line per request with request id, trace id,
 * method, route, path, status, duration, upstream, consumer, error code and byte counts; credentials
 * redacted when headers are logged (the secret strings never reach the output); the query string left
 * out unless asked for; a request the client abandoned logged with `aborted: true`.
 */
import http from 'node:http';
import express from 'express';
import pino from 'pino';
import { accessLog, gateway } from '../../index';
import { listen, rawRequest, RunningApp } from '../helpers/app';
import { captureStream, linesFor } from '../helpers/logs';
import { closedPort, startUpstream, Upstream } from '../helpers/upstream';
import { until } from '../helpers/wait';

const API_KEY = 'access-log-api-key-5f1e2d3c4b';
const BEARER = 'eyJhbGciOiJIUzI1NiJ9.bearer-secret-payload.sig';
const COOKIE_SECRET = 'sess-cookie-secret-81c2';
const PROXY_AUTH = 'Basic cHJveHk6cHJveHktc2VjcmV0';

describe('access log (express 5)', () => {
  let upstream: Upstream;
  let hanging: Upstream;
  let deadUrl: string;
  let gw: ReturnType<typeof gateway>;
  let gwQuery: ReturnType<typeof gateway>;
  let app: RunningApp;
  const main = captureStream();
  const withQuery = captureStream();

  beforeAll(async () => {
    upstream = await startUpstream({ name: 'orders' });
    // Never answers on its own: for the client that gives up.
    hanging = await startUpstream({ name: 'hanging', handler: () => undefined });
    deadUrl = `http://127.0.0.1:${await closedPort()}`;
    gw = gateway({
      trace: true,
      accessLog: { logger: pino({}, main.stream), headers: true },
      routes: [
        { name: 'orders', path: '/api/orders', upstream: upstream.url },
        { name: 'secure', path: '/api/secure', upstream: upstream.url, auth: { apiKey: { keys: { [API_KEY]: { id: 'consumer-7' } } } } },
        { name: 'hanging', path: '/api/hanging', upstream: hanging.url },
        { name: 'down', path: '/api/down', upstream: { target: deadUrl, retries: 0 } },
      ],
    });
    gwQuery = gateway({
      accessLog: { logger: pino({}, withQuery.stream), headers: true, query: true, redact: ['req.headers["x-session"]'] },
      routes: [{ name: 'orders-q', path: '/q/orders', upstream: upstream.url }],
    });
    const server = express();
    server.use(gw);
    server.use(gwQuery);
    app = await listen(server);
  });

  afterAll(async () => {
    await gw.close();
    await gwQuery.close();
    await app.close();
    await upstream.close();
    await hanging.close();
  });

  it('writes one JSON line per request with the documented fields', async () => {
    const ids = ['log-a', 'log-b', 'log-c'];
    for (const id of ids) expect((await rawRequest(app.port, { path: `/api/orders/${id}`, headers: { 'x-request-id': id } })).status).toBe(200);
    const res = await rawRequest(app.port, { path: '/api/orders/7', headers: { 'x-request-id': 'log-fields' } });
    expect(res.status).toBe(200);

    const [line, ...extra] = await linesFor(main, 'log-fields');
    expect(extra).toEqual([]);
    expect(line).toMatchObject({
      level: 30,
      msg: 'request',
      requestId: 'log-fields',
      method: 'GET',
      route: 'orders',
      path: '/api/orders/7',
      status: 200,
      upstream: upstream.url,
    });
    expect(line.aborted).toBeUndefined();
    expect(line.error).toBeUndefined();
    expect(typeof line.time).toBe('number');
    expect(typeof line.durationMs).toBe('number');
    expect(line.durationMs as number).toBeGreaterThanOrEqual(0);
    // What went to the client: headers plus body.
    expect(line.bytesOut as number).toBeGreaterThan(Buffer.byteLength(res.body));
    for (const id of ids) expect(await linesFor(main, id)).toHaveLength(1);
  });

  it('carries the trace id the upstream saw, so logs join traces', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const res = await rawRequest(app.port, { path: '/api/orders/t', headers: { 'x-request-id': 'log-trace', traceparent: `00-${traceId}-00f067aa0ba902b7-01` } });
    expect(res.status).toBe(200);
    const forwarded = upstream.requests.find((r) => r.headers['x-request-id'] === 'log-trace');
    expect(String(forwarded?.headers.traceparent).split('-')[1]).toBe(traceId);
    const [line] = await linesFor(main, 'log-trace');
    expect(line.traceId).toBe(traceId);
  });

  it('counts the request body in bytesIn', async () => {
    const body = JSON.stringify({ item: 'book', qty: 2 });
    const res = await rawRequest(app.port, { method: 'POST', path: '/api/orders', headers: { 'x-request-id': 'log-post', 'content-type': 'application/json' }, body });
    expect(res.status).toBe(200);
    const [line] = await linesFor(main, 'log-post');
    expect(line).toMatchObject({ method: 'POST', status: 200, bytesIn: Buffer.byteLength(body) });
  });

  it('redacts authorization, cookie, x-api-key and proxy-authorization; the secrets never reach the output', async () => {
    const res = await rawRequest(app.port, {
      path: '/api/secure/1',
      headers: {
        'x-request-id': 'log-secrets',
        authorization: `Bearer ${BEARER}`,
        cookie: `session=${COOKIE_SECRET}`,
        'x-api-key': API_KEY,
        'proxy-authorization': PROXY_AUTH,
        'x-trace-note': 'visible',
        'user-agent': 'access-log-test/1.0',
      },
    });
    expect(res.status).toBe(200);
    const [line] = await linesFor(main, 'log-secrets');
    const headers = (line.req as { headers: Record<string, string> }).headers;
    expect(headers).toMatchObject({
      authorization: '[redacted]',
      cookie: '[redacted]',
      'x-api-key': '[redacted]',
      'proxy-authorization': '[redacted]',
      // Other headers as the client sent them.
      'x-trace-note': 'visible',
      'user-agent': 'access-log-test/1.0',
      'x-request-id': 'log-secrets',
    });
    const output = main.text();
    for (const secret of [BEARER, COOKIE_SECRET, API_KEY, PROXY_AUTH, 'cHJveHk6']) expect(output).not.toContain(secret);
  });

  it('logs the consumer id after authentication, and the error code (no consumer) when it fails', async () => {
    const ok = await rawRequest(app.port, { path: '/api/secure/2', headers: { 'x-request-id': 'log-consumer', 'x-api-key': API_KEY } });
    expect(ok.status).toBe(200);
    const [okLine] = await linesFor(main, 'log-consumer');
    expect(okLine).toMatchObject({ route: 'secure', status: 200, consumer: 'consumer-7' });

    const wrongKey = 'wrong-key-but-long-enough-1234';
    const denied = await rawRequest(app.port, { path: '/api/secure/3', headers: { 'x-request-id': 'log-denied', 'x-api-key': wrongKey } });
    expect(denied.status).toBe(401);
    const [deniedLine] = await linesFor(main, 'log-denied');
    expect(deniedLine).toMatchObject({ route: 'secure', status: 401, error: 'ERR_AUTH_KEY_INVALID' });
    expect(deniedLine.consumer).toBeUndefined();
    expect(deniedLine.upstream).toBeUndefined();
    expect(main.text()).not.toContain(wrongKey);
  });

  it('logs the gateway error code of a failed upstream', async () => {
    const res = await rawRequest(app.port, { path: '/api/down', headers: { 'x-request-id': 'log-down' } });
    expect(res.status).toBe(502);
    const [line] = await linesFor(main, 'log-down');
    expect(line).toMatchObject({ route: 'down', status: 502, error: 'ERR_UPSTREAM_UNAVAILABLE', upstream: deadUrl });
  });

  it('logs a request the gateway refused for its path (400 ERR_BAD_PATH): traversal attempts leave a trace', async () => {
    const before = upstream.requests.length;
    const res = await rawRequest(app.port, { path: '/api/orders/%2e%2e/admin', headers: { 'x-request-id': 'log-badpath' } });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).code).toBe('ERR_BAD_PATH');
    expect(upstream.requests.length).toBe(before);
    const lines = await linesFor(main, 'log-badpath');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ route: 'orders', status: 400, error: 'ERR_BAD_PATH' });
  });

  it('leaves the query string out by default and keeps it with query: true', async () => {
    const res = await rawRequest(app.port, { path: '/api/orders/9?token=query-secret-123&x=1', headers: { 'x-request-id': 'log-noquery' } });
    expect(res.status).toBe(200);
    const [line] = await linesFor(main, 'log-noquery');
    expect(line.path).toBe('/api/orders/9');
    expect(main.text()).not.toContain('query-secret-123');

    const withQ = await rawRequest(app.port, { path: '/q/orders/9?x=1&y=2', headers: { 'x-request-id': 'log-query' } });
    expect(withQ.status).toBe(200);
    const [qLine] = await linesFor(withQuery, 'log-query');
    expect(qLine).toMatchObject({ route: 'orders-q', path: '/q/orders/9?x=1&y=2' });
  });

  it('applies configured redact paths on top of the built-in ones', async () => {
    const res = await rawRequest(app.port, { path: '/q/orders/1', headers: { 'x-request-id': 'log-redact', 'x-session': 'custom-session-secret', 'x-api-key': API_KEY } });
    expect(res.status).toBe(200);
    const [line] = await linesFor(withQuery, 'log-redact');
    expect((line.req as { headers: Record<string, string> }).headers).toMatchObject({ 'x-session': '[redacted]', 'x-api-key': '[redacted]' });
    expect(withQuery.text()).not.toContain('custom-session-secret');
    expect(withQuery.text()).not.toContain(API_KEY);
  });

  it('logs a request the client abandoned with aborted: true and no status', async () => {
    const before = hanging.requests.length;
    const req = http.request({ host: '127.0.0.1', port: app.port, path: '/api/hanging/1', headers: { 'x-request-id': 'log-aborted' }, agent: false });
    req.on('error', () => undefined);
    req.end();
    // Give up once the upstream has the request (the gateway is waiting on it).
    await until(() => hanging.requests.length !== before, 3_000);
    expect(hanging.requests.length).toBe(before + 1);
    req.destroy();

    const [line, ...extra] = await linesFor(main, 'log-aborted');
    expect(extra).toEqual([]);
    expect(line).toMatchObject({ requestId: 'log-aborted', route: 'hanging', aborted: true, upstream: hanging.url });
    expect(line.status).toBeUndefined();
  });

  it('refuses sync together with a logger of one’s own: its destination is the user’s to choose', () => {
    expect(() => accessLog({ logger: pino({}, main.stream), sync: true })).toThrow(/"sync" applies to the default logger only; with "logger", set your logger's destination instead/);
    expect(() => gateway({ accessLog: { logger: pino({}, main.stream), sync: false }, routes: [] })).toThrow(/"accessLog\.sync" applies to the default logger only/);
  });
});
