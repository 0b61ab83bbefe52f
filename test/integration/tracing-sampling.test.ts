/**
 * Sampling with setupTelemetry()'s provider: trace() settles the requests its sampler turns down without
 * the SDK's span start. The decisions must be the SDK sampler's own, the upstream must still get a trace
 * context it can continue (same trace, sampled flag off), and once another provider takes over, its
 * decisions apply. One telemetry setup for the whole file: OpenTelemetry globals are process-wide.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { context as otelContext, propagation, ROOT_CONTEXT, SamplingDecision, SpanContext, SpanKind, trace as otelTrace } from '@opentelemetry/api';
import { InMemorySpanExporter, TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace';
import { setupTelemetry } from '../../index';
import type { Telemetry } from '../../index';
import { rawRequest } from '../helpers/app';
import { GatewayApp, gatewayApp } from '../helpers/gateway-app';
import { closedPort, startUpstream, Upstream } from '../helpers/upstream';

const RATIO = 0.25;
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const ratioSampler = new TraceIdRatioBasedSampler(RATIO);
const sampledByRatio = (traceId: string) => ratioSampler.shouldSample(ROOT_CONTEXT, traceId).decision === SamplingDecision.RECORD_AND_SAMPLED;

let exporter: InMemorySpanExporter;
let telemetry: Telemetry;
let upstream: Upstream;
let app: GatewayApp;
/** What the rate limit's key function (user code on a proxied route) saw as the active span, per request id. */
const seenByKeyFunction = new Map<string, SpanContext | undefined>();
/** The spans the key function started with the app's tracer, once there is one. */
let appTracer: ReturnType<typeof otelTrace.getTracer> | undefined;

beforeAll(async () => {
  exporter = new InMemorySpanExporter();
  telemetry = setupTelemetry({ serviceName: 'frontdoor-sampling-test', sampleRatio: RATIO, exporter, exportInterval: '50ms', logger: { warn: () => undefined, error: () => undefined } });
  upstream = await startUpstream({ name: 'orders' });
  const dead = `http://127.0.0.1:${await closedPort()}`;
  const keyFunction = (req: { headers: Record<string, unknown> }) => {
    seenByKeyFunction.set(String(req.headers['x-request-id']), otelTrace.getSpanContext(otelContext.active()));
    appTracer?.startSpan('rate-limit-key').end();
    return 'everyone';
  };
  app = await gatewayApp(
    {
      trace: true,
      routes: [
        { name: 'orders', path: '/api/orders', upstream: upstream.url },
        { name: 'keyed', path: '/api/keyed', upstream: upstream.url, rateLimit: { limit: 1e6, key: keyFunction } },
        { name: 'legacy', path: '/legacy', app: true },
        { name: 'moved', path: '/moved', upstream: { target: dead, retries: 0 }, fallback: { on: ['unavailable'] } },
      ],
    },
    {
      // The app's own handlers: what they see as the active trace context, and what they would send on.
      after: (server) =>
        server.use((req, res) => {
          const carrier: Record<string, string> = {};
          propagation.inject(otelContext.active(), carrier);
          res.json({ active: otelTrace.getSpanContext(otelContext.active()) ?? null, traceparent: carrier.traceparent ?? null });
        }),
    },
  );
});

afterAll(async () => {
  await app.close();
  await upstream.close();
  await telemetry.shutdown();
});

/** Sends one request; returns the trace context the upstream received (the gateway's, not the caller's). */
function send(headers: Record<string, string> = {}) {
  return sendTo('/api/orders/1', headers);
}

async function sendTo(path: string, headers: Record<string, string> = {}) {
  const requestId = `rid-${randomUUID()}`;
  const res = await rawRequest(app.port, { path, headers: { 'x-request-id': requestId, ...headers } });
  expect(res.status).toBe(200);
  const received = upstream.requests.find((r) => r.headers['x-request-id'] === requestId);
  const match = TRACEPARENT.exec(String(received?.headers.traceparent));
  if (!match) throw new Error(`the upstream got no version-00 traceparent: ${JSON.stringify(received?.headers.traceparent)}`);
  return { requestId, traceId: match[1], parentId: match[2], sampled: match[3] === '01', tracestate: received?.headers.tracestate };
}

async function exportedSpans() {
  // The batch processor exports every 50 ms; forceFlush hands over what is still queued.
  await (otelTrace.getTracerProvider() as unknown as { getDelegate(): { forceFlush(): Promise<void> } }).getDelegate().forceFlush();
  return exporter.getFinishedSpans();
}

async function exportedServerSpans() {
  return (await exportedSpans()).filter((span) => span.kind === SpanKind.SERVER);
}

describe('new traces at sampleRatio 0.25', () => {
  it("samples exactly the trace ids the SDK's ratio sampler accepts, and records only those", async () => {
    const sent: Array<Awaited<ReturnType<typeof send>>> = [];
    for (let i = 0; i < 200; i++) sent.push(await send());

    // Every request got a trace of its own, continued upstream from a real (non-zero) span id.
    expect(new Set(sent.map((s) => s.traceId)).size).toBe(sent.length);
    for (const s of sent) expect(s.parentId).not.toBe('0'.repeat(16));
    // The decision is the SDK's, trace by trace: the same traces are sampled as TraceIdRatioBased(0.25) would.
    for (const s of sent) expect({ traceId: s.traceId, sampled: s.sampled }).toEqual({ traceId: s.traceId, sampled: sampledByRatio(s.traceId) });
    const sampled = sent.filter((s) => s.sampled);
    expect(sampled.length).toBeGreaterThan(20);
    expect(sampled.length).toBeLessThan(90);

    // Recorded: one SERVER span per sampled request, on the trace id the decision was taken on, and nothing else.
    const spans = await exportedServerSpans();
    const mine = spans.filter((span) => sent.some((s) => s.requestId === span.attributes['frontdoor.request_id']));
    expect(mine.map((span) => span.spanContext().traceId).sort()).toEqual(sampled.map((s) => s.traceId).sort());
    for (const span of mine) {
      const request = sent.find((s) => s.requestId === span.attributes['frontdoor.request_id']);
      expect(span.spanContext().traceId).toBe(request?.traceId);
      expect(span.attributes['client.address']).toBe('127.0.0.1');
    }
  });

  it("follows a caller's sampled flag even for a trace id the ratio would turn down", async () => {
    let traceId = randomBytes(16).toString('hex');
    while (sampledByRatio(traceId)) traceId = randomBytes(16).toString('hex');
    const callerSpanId = randomBytes(8).toString('hex');
    const { requestId, ...forwarded } = await send({ traceparent: `00-${traceId}-${callerSpanId}-01`, tracestate: 'vendor=1' });
    expect(forwarded).toMatchObject({ traceId, sampled: true, tracestate: 'vendor=1' });
    const server = (await exportedServerSpans()).find((span) => span.attributes['frontdoor.request_id'] === requestId);
    expect(server?.spanContext().traceId).toBe(traceId);
    expect(server?.parentSpanContext?.spanId).toBe(callerSpanId);
  });

  it("follows a caller's unsampled flag even for a trace id the ratio would accept, keeping its tracestate", async () => {
    let traceId = randomBytes(16).toString('hex');
    while (!sampledByRatio(traceId)) traceId = randomBytes(16).toString('hex');
    const callerSpanId = randomBytes(8).toString('hex');
    const { requestId, ...forwarded } = await send({ traceparent: `00-${traceId}-${callerSpanId}-00`, tracestate: 'vendor=2' });
    expect(forwarded).toMatchObject({ traceId, sampled: false, tracestate: 'vendor=2' });
    expect(forwarded.parentId).not.toBe(callerSpanId);
    expect((await exportedServerSpans()).some((span) => span.attributes['frontdoor.request_id'] === requestId)).toBe(false);
  });
});

describe("the request's span is active where the app's own code runs", () => {
  const appSees = async (path: string, traceparent: string) => {
    const requestId = `rid-${randomUUID()}`;
    const res = await rawRequest(app.port, { path, headers: { 'x-request-id': requestId, traceparent } });
    expect(res.status).toBe(200);
    return { requestId, ...(JSON.parse(res.body) as { active: SpanContext | null; traceparent: string | null }) };
  };

  it.each([
    ['an app: true hand-off', '/legacy/report'],
    ['a fallback to the app', '/moved/7'],
  ])('%s: the app continues the trace under the SERVER span, sampled or not', async (_label, path) => {
    const callerSpanId = randomBytes(8).toString('hex');
    const sampledTrace = randomBytes(16).toString('hex');
    const sampled = await appSees(path, `00-${sampledTrace}-${callerSpanId}-01`);
    const server = (await exportedServerSpans()).find((span) => span.attributes['frontdoor.request_id'] === sampled.requestId);
    expect(server).toBeDefined();
    expect(sampled.active).toMatchObject({ traceId: sampledTrace, spanId: server?.spanContext().spanId });
    expect(sampled.traceparent).toBe(`00-${sampledTrace}-${server?.spanContext().spanId}-01`);

    const unsampledTrace = randomBytes(16).toString('hex');
    const unsampled = await appSees(path, `00-${unsampledTrace}-${callerSpanId}-00`);
    expect(unsampled.active?.traceId).toBe(unsampledTrace);
    expect(unsampled.active?.spanId).not.toBe(callerSpanId);
    expect(unsampled.traceparent).toBe(`00-${unsampledTrace}-${unsampled.active?.spanId}-00`);
  });
});

describe('once something else takes a tracer from the provider', () => {
  it("every traced request runs with its span active: the other tracer's spans nest under it, even on a proxied route", async () => {
    appTracer = otelTrace.getTracer('shop-app');
    const traceId = randomBytes(16).toString('hex');
    const { requestId } = await sendTo('/api/keyed/1', { traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` });
    const spans = await exportedSpans();
    const server = spans.find((span) => span.kind === SpanKind.SERVER && span.attributes['frontdoor.request_id'] === requestId);
    const keySpan = spans.find((span) => span.name === 'rate-limit-key' && span.spanContext().traceId === traceId);
    expect(seenByKeyFunction.get(requestId)).toMatchObject({ traceId, spanId: server?.spanContext().spanId });
    expect(keySpan?.parentSpanContext?.spanId).toBe(server?.spanContext().spanId);
  });
});
