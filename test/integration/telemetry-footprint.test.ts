/**
 * setupTelemetry() starts only what its configuration uses (issue 20): traces, exported by the one OTLP
 * exporter the variables choose. NodeSDK, which it used to start, required every exporter it knows at import
 * (gRPC, Zipkin, OTLP metrics and logs, Prometheus: ~45 MB of memory) and started OTLP metrics and logs
 * pipelines besides, which exported whatever the app's libraries recorded through the global API.
 * What NodeSDK did for traces still holds: the resource (detectors, OTEL_RESOURCE_ATTRIBUTES, service.name),
 * OTEL_PROPAGATORS, OTEL_SDK_DISABLED. Each case runs a traced gateway in a child process (OpenTelemetry's
 * globals and the module cache are per process) against a real OTLP receiver and a real upstream.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { OtlpReceiver, ReceivedSpan, startOtlpReceiver } from '../helpers/otlp-receiver';
import { ReceivedRequest, startUpstream, Upstream } from '../helpers/upstream';

const CHILD = path.join(__dirname, '..', 'helpers', 'traced-gateway-child.js');
/** Exporters, propagators and SDK parts that only other configurations (or other signals) need. */
const NEVER_BY_DEFAULT = [
  '@opentelemetry/sdk-node',
  '@opentelemetry/sdk-logs',
  '@opentelemetry/instrumentation',
  '@opentelemetry/exporter-prometheus',
  '@opentelemetry/exporter-zipkin',
  '@opentelemetry/propagator-b3',
  '@opentelemetry/propagator-jaeger',
];
/**
 * Growth of the resident set across setupTelemetry() (after a full collection on both sides). Measured on
 * Node 20 and 24: 1.4–2.9 MB with the trace SDK alone, 44–48 MB with NodeSDK; the bound sits far from both.
 */
const RSS_GROWTH_BOUND = 20 * 2 ** 20;

let receiver: OtlpReceiver;
let upstream: Upstream;

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  upstream = await startUpstream({ name: 'orders' });
});

afterAll(async () => {
  await receiver?.close();
  await upstream?.close();
});

interface ChildOutput {
  status: number;
  requestId: string;
  reused: boolean;
  packages: string[];
  memory: Record<'before' | 'afterSetup' | 'after', { rss: number; heapUsed: number }>;
}

/** Runs the child with only the given OTEL_* variables (all OTLP signals pointed at the receiver). */
function runChild(env: Record<string, string>): Promise<ChildOutput> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, FD_UPSTREAM: upstream.url };
  for (const key of Object.keys(childEnv)) if (key.startsWith('OTEL_')) delete childEnv[key];
  Object.assign(childEnv, { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url }, env);
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--expose-gc', CHILD], { env: childEnv, timeout: 20_000 }, (err, stdout, stderr) => {
      if (err || stderr) reject(new Error(`child failed: ${err?.message ?? ''}\n${stderr}`));
      else resolve(JSON.parse(stdout) as ChildOutput);
    });
  });
}

const exporters = (packages: string[]) => packages.filter((name) => name.startsWith('@opentelemetry/exporter-') || name.startsWith('@grpc/'));
const serverSpanOf = (requestId: string) => (spans: ReceivedSpan[]) => spans.find((s) => s.kind === 2 && s.attributes['frontdoor.request_id'] === requestId);
function upstreamRequest(requestId: string): ReceivedRequest {
  const found = upstream.requests.find((r) => r.headers['x-request-id'] === requestId);
  if (!found) throw new Error(`the upstream never received ${requestId}`);
  return found;
}

describe('what setupTelemetry() starts', () => {
  it('by default: traces over OTLP/protobuf only — one exporter loaded, no metrics or logs pipeline, a few MB', async () => {
    const before = { contentTypes: receiver.contentTypes.length, other: receiver.otherRequests.length };
    // An app library records a metric through the global API; with a 50 ms export interval a metrics
    // pipeline, had one been started, would export it (and again when shut down).
    const out = await runChild({ FD_APP_METRIC: '1', OTEL_METRIC_EXPORT_INTERVAL: '50', OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=footprint' });
    expect(out).toMatchObject({ status: 200, reused: false });

    expect(exporters(out.packages)).toEqual(['@opentelemetry/exporter-trace-otlp-proto']);
    expect(out.packages).toEqual(expect.arrayContaining(['@opentelemetry/sdk-trace', '@opentelemetry/context-async-hooks', '@opentelemetry/resources']));
    expect(out.packages.filter((name) => NEVER_BY_DEFAULT.includes(name))).toEqual([]);
    expect(out.memory.afterSetup.rss - out.memory.before.rss).toBeLessThan(RSS_GROWTH_BOUND);

    // The traces pipeline works, with NodeSDK's resource, and is the only thing that reached the collector.
    const spans = await receiver.waitForSpans((all) => serverSpanOf(out.requestId)(all) !== undefined);
    const server = serverSpanOf(out.requestId)(spans) as ReceivedSpan;
    expect(server.resource).toMatchObject({ 'service.name': 'frontdoor-exporter-test', 'deployment.environment.name': 'footprint', 'telemetry.sdk.language': 'nodejs' });
    expect(typeof server.resource['process.pid']).toBe('number');
    expect(typeof server.resource['host.name']).toBe('string');
    expect(receiver.contentTypes.slice(before.contentTypes)).toEqual(['application/x-protobuf']);
    expect(receiver.otherRequests.slice(before.other)).toEqual([]);
    // W3C Trace Context to the upstream, continuing the SERVER span's trace.
    expect(upstreamRequest(out.requestId).headers.traceparent).toMatch(new RegExp(`^00-${server.traceId}-[0-9a-f]{16}-01$`));
  });

  it('with OTEL_EXPORTER_OTLP_PROTOCOL=http/json: the JSON exporter only', async () => {
    const before = receiver.contentTypes.length;
    const out = await runChild({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' });
    expect(out.status).toBe(200);
    expect(exporters(out.packages)).toEqual(['@opentelemetry/exporter-trace-otlp-http']);
    await receiver.waitForSpans((all) => serverSpanOf(out.requestId)(all) !== undefined);
    expect(receiver.contentTypes.slice(before)).toEqual(['application/json']);
  });

  it('with OTEL_PROPAGATORS=b3: B3 to the upstream, and the B3 propagator is loaded only then', async () => {
    const out = await runChild({ OTEL_PROPAGATORS: 'b3' });
    expect(out.status).toBe(200);
    expect(out.packages).toContain('@opentelemetry/propagator-b3');
    expect(out.packages).not.toContain('@opentelemetry/propagator-jaeger');
    const spans = await receiver.waitForSpans((all) => serverSpanOf(out.requestId)(all) !== undefined);
    const server = serverSpanOf(out.requestId)(spans) as ReceivedSpan;
    const headers = upstreamRequest(out.requestId).headers;
    expect(headers.b3).toMatch(new RegExp(`^${server.traceId}-[0-9a-f]{16}-1$`));
    expect(headers.traceparent).toBeUndefined();
  });

  it('with OTEL_PROPAGATORS=b3: an incoming B3 context is continued, and the upstream gets the gateway\'s own B3, not the one sent', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const parentSpanId = '00f067aa0ba902b7';
    const out = await runChild({ OTEL_PROPAGATORS: 'b3', FD_REQUEST_HEADERS: JSON.stringify({ b3: `${traceId}-${parentSpanId}-1` }) });
    expect(out.status).toBe(200);
    const spans = await receiver.waitForSpans((all) => serverSpanOf(out.requestId)(all) !== undefined);
    const server = serverSpanOf(out.requestId)(spans) as ReceivedSpan;
    expect(server.traceId).toBe(traceId);
    expect(server.parentSpanId).toBe(parentSpanId);
    const b3 = upstreamRequest(out.requestId).headers.b3 as string;
    expect(b3).toMatch(new RegExp(`^${traceId}-[0-9a-f]{16}-1$`));
    expect(b3).not.toContain(parentSpanId);
  });

  it('with OTEL_SDK_DISABLED=true: nothing is started, loaded or exported; the gateway still serves', async () => {
    const before = receiver.exportRequests;
    const out = await runChild({ OTEL_SDK_DISABLED: 'true' });
    expect(out).toMatchObject({ status: 200, reused: false });
    expect(exporters(out.packages)).toEqual([]);
    expect(out.packages).not.toContain('@opentelemetry/sdk-trace');
    expect(receiver.exportRequests).toBe(before);
  });
});
