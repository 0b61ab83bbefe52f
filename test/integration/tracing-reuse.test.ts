/**
 * An app that already set up OpenTelemetry keeps its own pipeline: setupTelemetry() detects the
 * registered tracer provider, returns `reused: true` and starts nothing; frontdoor's SERVER and CLIENT
 * spans land in the app's exporter, under the app's resource, and the app's own spans nest under the
 * request's SERVER span. Separate file from the "own SDK" suites: OpenTelemetry globals are process-wide.
 */
import { SpanKind, trace as otelTrace } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { NodeTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, ReadableSpan } from '@opentelemetry/sdk-trace-node';
import { setupTelemetry, trace } from '../../index';
import type { Telemetry } from '../../index';
import { rawRequest } from '../helpers/app';
import { GatewayApp, gatewayApp } from '../helpers/gateway-app';
import { startUpstream, Upstream } from '../helpers/upstream';

let appExporter: InMemorySpanExporter;
let provider: NodeTracerProvider;
let telemetry: Telemetry;
let upstream: Upstream;
let app: GatewayApp;

beforeAll(async () => {
  // The app's own setup, done before frontdoor is involved.
  appExporter = new InMemorySpanExporter();
  provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'shop-app' }),
    spanProcessors: [new SimpleSpanProcessor(appExporter)],
  });
  provider.register();

  // Its options are ignored too: at sampleRatio 0 nothing would be recorded, but the app's sampler (always on) decides.
  telemetry = setupTelemetry({ serviceName: 'frontdoor-would-be-ignored', sampleRatio: 0 });
  upstream = await startUpstream({ name: 'orders' });
  const appTracer = otelTrace.getTracer('shop-app');
  app = await gatewayApp(
    { trace: true, routes: [{ name: 'orders', path: '/api/orders', upstream: upstream.url }] },
    {
      after: (server) =>
        server.get('/local/:id', trace(), (_req, res) => {
          // The app's own instrumentation, using whatever span is active.
          appTracer.startActiveSpan('load-order', (span) => {
            span.end();
            res.json({ local: true });
          });
        }),
    },
  );
});

afterAll(async () => {
  await app.close();
  await upstream.close();
  await telemetry.shutdown();
  await provider.shutdown();
});

async function finishedSpans(predicate: (spans: ReadableSpan[]) => boolean): Promise<ReadableSpan[]> {
  const deadline = Date.now() + 3_000;
  while (!predicate(appExporter.getFinishedSpans())) {
    if (Date.now() > deadline) throw new Error(`spans not recorded in time; have: ${appExporter.getFinishedSpans().map((s) => s.name).join(', ') || 'none'}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return appExporter.getFinishedSpans();
}

const serverSpanOf = (spans: ReadableSpan[], requestId: string) => spans.find((s) => s.kind === SpanKind.SERVER && s.attributes['frontdoor.request_id'] === requestId);

describe('reusing the app’s tracer provider (express 5)', () => {
  it('setupTelemetry() reports reused: true and its shutdown() leaves the app’s provider running', async () => {
    expect(telemetry.reused).toBe(true);
    await expect(telemetry.shutdown()).resolves.toBeUndefined();

    const res = await rawRequest(app.port, { path: '/api/orders/1', headers: { 'x-request-id': 'reuse-after-shutdown' } });
    expect(res.status).toBe(200);
    const spans = await finishedSpans((all) => serverSpanOf(all, 'reuse-after-shutdown') !== undefined);
    expect(serverSpanOf(spans, 'reuse-after-shutdown')?.name).toBe('GET orders');
  });

  it('records the gateway’s SERVER and CLIENT spans in the app’s exporter, under the app’s resource', async () => {
    const traceId = 'b7ad6b7169203331b7ad6b7169203331';
    const callerSpanId = '1234567890abcdef';
    const res = await rawRequest(app.port, { path: '/api/orders/2', headers: { 'x-request-id': 'reuse-proxied', traceparent: `00-${traceId}-${callerSpanId}-01` } });
    expect(res.status).toBe(200);

    const spans = await finishedSpans((all) => {
      const server = serverSpanOf(all, 'reuse-proxied');
      return server !== undefined && all.some((s) => s.kind === SpanKind.CLIENT && s.parentSpanContext?.spanId === server.spanContext().spanId);
    });
    const server = serverSpanOf(spans, 'reuse-proxied') as ReadableSpan;
    const client = spans.find((s) => s.kind === SpanKind.CLIENT && s.parentSpanContext?.spanId === server.spanContext().spanId) as ReadableSpan;

    expect(server.spanContext().traceId).toBe(traceId);
    expect(server.parentSpanContext?.spanId).toBe(callerSpanId);
    expect(server.instrumentationScope.name).toBe('frontdoor');
    expect(server.resource.attributes['service.name']).toBe('shop-app');
    expect(server.attributes).toMatchObject({ 'http.route': 'orders', 'http.response.status_code': 200 });
    expect(client.spanContext().traceId).toBe(traceId);
    expect(client.attributes).toMatchObject({ 'server.port': upstream.port, 'http.response.status_code': 200 });

    const forwarded = upstream.requests.find((r) => r.headers['x-request-id'] === 'reuse-proxied');
    expect(forwarded?.headers.traceparent).toBe(`00-${traceId}-${client.spanContext().spanId}-01`);
  });

  it('nests the app’s own spans under the request’s SERVER span (trace() on an app route)', async () => {
    const res = await rawRequest(app.port, { path: '/local/42', headers: { 'x-request-id': 'reuse-local' } });
    expect(res.status).toBe(200);
    const spans = await finishedSpans((all) => serverSpanOf(all, 'reuse-local') !== undefined && all.some((s) => s.name === 'load-order'));
    const server = serverSpanOf(spans, 'reuse-local') as ReadableSpan;
    // Named after the Express route template, never the raw path.
    expect(server.name).toBe('GET /local/:id');
    expect(server.attributes['http.route']).toBe('/local/:id');
    const own = spans.filter((s) => s.name === 'load-order' && s.spanContext().traceId === server.spanContext().traceId);
    expect(own).toHaveLength(1);
    expect(own[0].parentSpanContext?.spanId).toBe(server.spanContext().spanId);
  });
});
