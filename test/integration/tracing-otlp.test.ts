/**
 * End-to-end tracing over real OTLP/HTTP: setupTelemetry() exports to a real receiver; the gateway
 * continues the caller's W3C trace (SERVER span), adds a CLIENT span per upstream attempt and hands the
 * upstream a `traceparent` whose parent is that CLIENT span. Malformed trace headers start a new trace
 * and never reach the upstream; gateway decisions (retry, ejection, auth failure, rate limit, errors)
 * are span events. One telemetry setup for the whole file: OpenTelemetry globals are process-wide.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { setupTelemetry } from '../../index';
import type { Telemetry } from '../../index';
import { rawRequest } from '../helpers/app';
import { GatewayApp, gatewayApp } from '../helpers/gateway-app';
import { ReceivedSpan, SpanKindCode, startOtlpReceiver, OtlpReceiver, StatusCodeValue, useNodeHttpUnderJest } from '../helpers/otlp-receiver';
import { closedPort, ReceivedRequest, startUpstream, Upstream } from '../helpers/upstream';
import { until } from '../helpers/wait';

const API_KEY = 'tracing-test-key-0123456789';
const hex = (bytes: number) => randomBytes(bytes).toString('hex');
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

let receiver: OtlpReceiver;
let telemetry: Telemetry;
let exporterAgent: http.Agent;
let upstream: Upstream;
let hanging: Upstream;
let deadUrl: string;
let app: GatewayApp;

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  const exporter = new OTLPTraceExporter({ url: `${receiver.url}/v1/traces` });
  exporterAgent = useNodeHttpUnderJest(exporter);
  telemetry = setupTelemetry({
    serviceName: 'frontdoor-otlp-test',
    exporter,
    exportInterval: '50ms',
    logger: { warn: () => undefined, error: () => undefined },
  });
  upstream = await startUpstream({ name: 'orders' });
  // Never answers on its own: for the client that gives up.
  hanging = await startUpstream({ name: 'hanging', handler: () => undefined });
  deadUrl = `http://127.0.0.1:${await closedPort()}`;
  app = await gatewayApp({
    trace: true,
    routes: [
      { name: 'orders', path: '/api/orders', upstream: upstream.url },
      { name: 'orders-v2', path: '/v2/orders', upstream: upstream.url, rewrite: { '^/v2/orders': '/internal/orders' } },
      // The dead target first: round robin sends the first request to it, passive health ejects it at once.
      { name: 'pooled', path: '/api/pooled', upstream: { targets: [deadUrl, upstream.url], retries: 2, health: { passive: { failures: 1, cooldown: '1m' } } } },
      { name: 'secure', path: '/api/secure', upstream: upstream.url, auth: { apiKey: { keys: { [API_KEY]: { id: 'consumer-1' } } } } },
      { name: 'limited', path: '/api/limited', upstream: upstream.url, rateLimit: { limit: 1 } },
      { name: 'down', path: '/api/down', upstream: { target: deadUrl, retries: 0 } },
      { name: 'hanging', path: '/api/hanging', upstream: hanging.url },
    ],
  });
});

afterAll(async () => {
  await app.close();
  await upstream.close();
  await hanging.close();
  await telemetry.shutdown();
  exporterAgent.destroy();
  await receiver.close();
});

/** Sends a request with a fresh request id (used to find its SERVER span) and the given headers. */
async function send(path: string, headers: Record<string, string | string[]> = {}) {
  const requestId = `rid-${randomUUID()}`;
  const res = await rawRequest(app.port, { path, headers: { 'x-request-id': requestId, 'user-agent': 'otlp-e2e/1.0', ...headers } });
  return { ...res, requestId };
}

/** Waits until the SERVER span of `requestId` and at least `clients` CLIENT children arrived. */
async function spansOf(requestId: string, clients: number): Promise<{ server: ReceivedSpan; clients: ReceivedSpan[] }> {
  const find = (spans: ReceivedSpan[]) => spans.find((s) => s.kind === SpanKindCode.SERVER && s.attributes['frontdoor.request_id'] === requestId);
  const children = (spans: ReceivedSpan[], server: ReceivedSpan) => spans.filter((s) => s.traceId === server.traceId && s.parentSpanId === server.spanId);
  const spans = await receiver.waitForSpans((all) => {
    const server = find(all);
    return server !== undefined && children(all, server).length >= clients;
  });
  const server = find(spans) as ReceivedSpan;
  const clientSpans = children(spans, server).sort((a, b) => (BigInt(a.startTimeUnixNano) < BigInt(b.startTimeUnixNano) ? -1 : 1));
  return { server, clients: clientSpans };
}

function receivedBy(requestId: string): ReceivedRequest {
  const found = upstream.requests.find((r) => r.headers['x-request-id'] === requestId);
  if (!found) throw new Error(`upstream never received request ${requestId}`);
  return found;
}

function parseTraceparent(value: unknown): { traceId: string; parentId: string; flags: string } {
  expect(typeof value).toBe('string');
  const match = TRACEPARENT.exec(value as string);
  if (!match) throw new Error(`not a version-00 traceparent: ${JSON.stringify(value)}`);
  return { traceId: match[1], parentId: match[2], flags: match[3] };
}

describe('trace continuation (express 5)', () => {
  it('continues the caller trace: SERVER span under the caller, CLIENT span under SERVER, upstream parented on the CLIENT span', async () => {
    const traceId = hex(16);
    const callerSpanId = hex(8);
    const res = await send('/api/orders/7?expand=items', { traceparent: `00-${traceId}-${callerSpanId}-01` });
    expect(res.status).toBe(200);

    const { server, clients } = await spansOf(res.requestId, 1);
    expect(server.traceId).toBe(traceId);
    expect(server.parentSpanId).toBe(callerSpanId);
    expect(clients).toHaveLength(1);
    const [client] = clients;
    expect(client.kind).toBe(SpanKindCode.CLIENT);
    expect(client.traceId).toBe(traceId);
    expect(client.parentSpanId).toBe(server.spanId);

    // The upstream got the gateway's own traceparent: same trace, parent = the CLIENT span.
    const forwarded = parseTraceparent(receivedBy(res.requestId).headers.traceparent);
    expect(forwarded).toEqual({ traceId, parentId: client.spanId, flags: '01' });
    expect(forwarded.parentId).not.toBe(callerSpanId);
  });

  it('records the stable HTTP semantic-convention attributes on the SERVER and CLIENT spans', async () => {
    const res = await send('/api/orders/7?expand=items');
    expect(res.status).toBe(200);
    const { server, clients } = await spansOf(res.requestId, 1);

    expect(server.name).toBe('GET orders');
    expect(server.kind).toBe(SpanKindCode.SERVER);
    expect(server.scope).toBe('frontdoor');
    expect(server.resource['service.name']).toBe('frontdoor-otlp-test');
    expect(server.attributes).toMatchObject({
      'http.request.method': 'GET',
      'url.path': '/api/orders/7',
      'url.scheme': 'http',
      'client.address': '127.0.0.1',
      'user_agent.original': 'otlp-e2e/1.0',
      'frontdoor.request_id': res.requestId,
      'http.route': 'orders',
      'http.response.status_code': 200,
    });
    expect(server.attributes['error.type']).toBeUndefined();
    expect(server.status.code).not.toBe(StatusCodeValue.ERROR);
    // No query in url.path (it may carry secrets).
    expect(JSON.stringify(server.attributes)).not.toContain('expand=items');

    const [client] = clients;
    expect(client.name).toBe('GET');
    expect(client.attributes).toMatchObject({
      'http.request.method': 'GET',
      'url.full': `${upstream.url}/api/orders/7?expand=items`,
      'server.address': '127.0.0.1',
      'server.port': upstream.port,
      'http.response.status_code': 200,
    });
    expect(client.attributes['http.request.resend_count']).toBeUndefined();
    expect(client.attributes['error.type']).toBeUndefined();
  });

  it('puts the URL actually requested upstream in url.full when the route rewrites the path', async () => {
    const res = await send('/v2/orders/9?x=1');
    expect(res.status).toBe(200);
    const received = receivedBy(res.requestId);
    expect(received.url).toBe('/internal/orders/9?x=1');
    const { server, clients } = await spansOf(res.requestId, 1);
    expect(server.attributes['url.path']).toBe('/v2/orders/9');
    expect(clients[0].attributes['url.full']).toBe(`${upstream.url}${received.url}`);
  });

  it('continues tracestate and baggage to the upstream', async () => {
    const traceId = hex(16);
    const res = await send('/api/orders/1', {
      traceparent: `00-${traceId}-${hex(8)}-01`,
      tracestate: 'vendor1=abc,vendor2=xyz',
      baggage: 'userId=alice,tenant=acme',
    });
    expect(res.status).toBe(200);
    const headers = receivedBy(res.requestId).headers;
    expect(parseTraceparent(headers.traceparent).traceId).toBe(traceId);
    expect(headers.tracestate).toBe('vendor1=abc,vendor2=xyz');
    const entries = String(headers.baggage).split(',').map((entry) => entry.trim()).sort();
    expect(entries).toEqual(['tenant=acme', 'userId=alice']);
    const { server } = await spansOf(res.requestId, 1);
    expect(server.traceState).toBe('vendor1=abc,vendor2=xyz');
  });

  it("follows the caller's sampling decision: an unsampled trace is propagated but not exported", async () => {
    const traceId = hex(16);
    const callerSpanId = hex(8);
    const unsampled = await send('/api/orders/2', { traceparent: `00-${traceId}-${callerSpanId}-00` });
    expect(unsampled.status).toBe(200);
    const forwarded = parseTraceparent(receivedBy(unsampled.requestId).headers.traceparent);
    expect(forwarded.traceId).toBe(traceId);
    expect(forwarded.flags).toBe('00');
    // Parented on the gateway's own (unrecorded) span, not passed through as the caller sent it.
    expect(forwarded.parentId).toMatch(/^[0-9a-f]{16}$/);
    expect(forwarded.parentId).not.toBe(callerSpanId);
    expect(forwarded.parentId).not.toBe('0'.repeat(16));
    // A sampled request sent afterwards is exported; by then nothing of the unsampled trace was.
    const marker = await send('/api/orders/3');
    await spansOf(marker.requestId, 1);
    expect(receiver.spans.filter((s) => s.traceId === traceId)).toEqual([]);
  });
});

describe('malformed traceparent starts a new trace and is never forwarded (express 5)', () => {
  const T = 'a3ce929d0e0e47364bf92f3577b34da6';
  const S = '00f067aa0ba902b7';
  const cases: Array<[string, string | string[]]> = [
    ['trace id too short', `00-${T.slice(1)}-${S}-01`],
    ['trace id too long', `00-${T}0-${S}-01`],
    ['span id too short', `00-${T}-${S.slice(1)}-01`],
    ['flags too long', `00-${T}-${S}-011`],
    ['all-zero trace id', `00-${'0'.repeat(32)}-${S}-01`],
    ['all-zero span id', `00-${T}-${'0'.repeat(16)}-01`],
    ['version ff', `ff-${T}-${S}-01`],
    ['extra field on version 00', `00-${T}-${S}-01-extra`],
    ['longer than 256 characters', `01-${T}-${S}-01-${'a'.repeat(256)}`],
    ['uppercase hex', `00-${T.toUpperCase()}-${S}-01`],
    ['non-hex characters', `00-${T.slice(0, 31)}g-${S}-01`],
    ['duplicated header', [`00-${T}-${S}-01`, `00-${hex(16)}-${hex(8)}-01`]],
  ];

  it.each(cases)('%s', async (_label, malformed) => {
    const res = await send('/api/orders/5', { traceparent: malformed, tracestate: 'vendor1=abc' });
    expect(res.status).toBe(200);
    const { server, clients } = await spansOf(res.requestId, 1);
    // A new trace: not the caller's trace id, no parent.
    const offered = [malformed].flat();
    for (const value of offered) expect(value.toLowerCase()).not.toContain(server.traceId);
    expect(server.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(server.traceId).not.toBe('0'.repeat(32));
    expect(server.parentSpanId).toBeUndefined();

    const headers = receivedBy(res.requestId).headers;
    for (const value of offered) expect(headers.traceparent).not.toBe(value);
    expect(parseTraceparent(headers.traceparent)).toEqual({ traceId: server.traceId, parentId: clients[0].spanId, flags: '01' });
    // tracestate without a valid traceparent is meaningless: dropped.
    expect(headers.tracestate).toBeUndefined();
  });
});

describe('requests without a traceparent (express 5)', () => {
  it('start a new trace and drop a tracestate sent alone', async () => {
    const res = await send('/api/orders/6', { tracestate: 'vendor1=abc' });
    expect(res.status).toBe(200);
    const { server, clients } = await spansOf(res.requestId, 1);
    expect(server.parentSpanId).toBeUndefined();
    expect(server.traceState).toBeUndefined();
    const headers = receivedBy(res.requestId).headers;
    expect(parseTraceparent(headers.traceparent)).toEqual({ traceId: server.traceId, parentId: clients[0].spanId, flags: '01' });
    expect(headers.tracestate).toBeUndefined();
  });

  it('still continue a baggage sent alone', async () => {
    const res = await send('/api/orders/7', { baggage: 'tenant=acme' });
    expect(res.status).toBe(200);
    const { server } = await spansOf(res.requestId, 1);
    expect(server.parentSpanId).toBeUndefined();
    expect(receivedBy(res.requestId).headers.baggage).toBe('tenant=acme');
  });
});

describe('gateway decisions as span events (express 5)', () => {
  it('records the retry and the ejection when a dead target is in the pool, with one CLIENT span per attempt', async () => {
    // Round robin may start on either target: send until a request hit the dead one (at most two).
    let hit: { server: ReceivedSpan; clients: ReceivedSpan[]; status: number } | undefined;
    for (let i = 0; i < 2 && !hit; i++) {
      const res = await send('/api/pooled/1');
      expect(res.status).toBe(200);
      const spans = await spansOf(res.requestId, 1);
      if (spans.server.events.some((e) => e.name === 'frontdoor.retry')) hit = { ...(await spansOf(res.requestId, 2)), status: res.status };
    }
    expect(hit).toBeDefined();
    const { server, clients } = hit as NonNullable<typeof hit>;
    // Targets are named by their configured URL, as in metrics and logs.
    const deadHref = deadUrl;
    const liveHref = upstream.url;

    const ejected = server.events.find((e) => e.name === 'frontdoor.upstream.ejected');
    expect(ejected?.attributes['frontdoor.upstream']).toBe(deadHref);
    const retry = server.events.find((e) => e.name === 'frontdoor.retry');
    expect(retry?.attributes).toMatchObject({ 'frontdoor.upstream': liveHref, 'error.type': 'ECONNREFUSED' });

    expect(clients).toHaveLength(2);
    const [first, second] = clients;
    expect(first.attributes).toMatchObject({ 'server.port': Number(new URL(deadUrl).port), 'error.type': 'ECONNREFUSED' });
    expect(first.status.code).toBe(StatusCodeValue.ERROR);
    expect(second.attributes).toMatchObject({ 'server.port': upstream.port, 'http.request.resend_count': 1, 'http.response.status_code': 200 });
    expect(second.status.code).not.toBe(StatusCodeValue.ERROR);
    // The retried request made it through: the SERVER span is a success.
    expect(server.attributes['http.response.status_code']).toBe(200);
    expect(server.attributes['error.type']).toBeUndefined();
  });

  it('records an auth failure event with the error code, and nothing goes upstream', async () => {
    const before = upstream.requests.length;
    const wrong = await send('/api/secure/1', { 'x-api-key': 'not-the-right-key-000000' });
    expect(wrong.status).toBe(401);
    const missing = await send('/api/secure/1');
    expect(missing.status).toBe(401);
    expect(upstream.requests.length).toBe(before);

    for (const [res, code] of [[wrong, 'ERR_AUTH_KEY_INVALID'], [missing, 'ERR_AUTH_MISSING']] as const) {
      const { server, clients } = await spansOf(res.requestId, 0);
      expect(clients).toEqual([]);
      const failure = server.events.find((e) => e.name === 'frontdoor.auth.failure');
      expect(failure?.attributes['frontdoor.error.code']).toBe(code);
      expect(server.attributes['http.response.status_code']).toBe(401);
      // 4xx is the client's error: not an error of the SERVER span (semantic conventions).
      expect(server.attributes['error.type']).toBeUndefined();
      expect(server.status.code).not.toBe(StatusCodeValue.ERROR);
      expect(JSON.stringify(server)).not.toContain('not-the-right-key');
    }

    const ok = await send('/api/secure/1', { 'x-api-key': API_KEY });
    expect(ok.status).toBe(200);
    const { server } = await spansOf(ok.requestId, 1);
    expect(server.events.map((e) => e.name)).not.toContain('frontdoor.auth.failure');
  });

  it('records a rate-limit rejection event', async () => {
    const first = await send('/api/limited');
    const second = await send('/api/limited');
    expect([first.status, second.status]).toEqual([200, 429]);
    const { server } = await spansOf(second.requestId, 0);
    const rejected = server.events.find((e) => e.name === 'frontdoor.rate_limit.rejected');
    expect(rejected?.attributes['frontdoor.error.code']).toBe('ERR_RATE_LIMITED');
    expect(server.attributes['http.route']).toBe('limited');
    const accepted = await spansOf(first.requestId, 1);
    expect(accepted.server.events.map((e) => e.name)).not.toContain('frontdoor.rate_limit.rejected');
  });

  it('marks a 502 SERVER span as an error with the frontdoor error code as error.type', async () => {
    const res = await send('/api/down/1');
    expect(res.status).toBe(502);
    expect(JSON.parse(res.body).code).toBe('ERR_UPSTREAM_UNAVAILABLE');
    const { server, clients } = await spansOf(res.requestId, 1);
    expect(server.name).toBe('GET down');
    expect(server.attributes).toMatchObject({ 'http.response.status_code': 502, 'error.type': 'ERR_UPSTREAM_UNAVAILABLE', 'http.route': 'down' });
    expect(server.status.code).toBe(StatusCodeValue.ERROR);
    expect(server.events.find((e) => e.name === 'frontdoor.error')?.attributes['frontdoor.error.code']).toBe('ERR_UPSTREAM_UNAVAILABLE');
    expect(clients).toHaveLength(1);
    expect(clients[0].attributes['error.type']).toBe('ECONNREFUSED');
    expect(clients[0].attributes['http.response.status_code']).toBeUndefined();
    expect(clients[0].status.code).toBe(StatusCodeValue.ERROR);
  });

  it('marks the SERVER span of a request the client abandoned with error.type client_closed', async () => {
    const before = hanging.requests.length;
    const requestId = `rid-${randomUUID()}`;
    const req = http.request({ host: '127.0.0.1', port: app.port, path: '/api/hanging/1', headers: { 'x-request-id': requestId }, agent: false });
    req.on('error', () => undefined);
    req.end();
    await until(() => hanging.requests.length !== before, 3_000);
    expect(hanging.requests.length).toBe(before + 1);
    req.destroy();

    const { server, clients } = await spansOf(requestId, 1);
    expect(server.attributes['error.type']).toBe('client_closed');
    expect(server.attributes['http.route']).toBe('hanging');
    expect(clients[0].attributes['error.type']).toBe('client_closed');
  });
});
