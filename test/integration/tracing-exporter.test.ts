/**
 * The default span exporter follows the standard variables, as an app without its own exporter gets it:
 * OTLP/HTTP with protobuf unless OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL says http/json, the traces-specific
 * variable winning; an encoding frontdoor cannot send fails at setup, naming the variable. Each case runs a
 * traced gateway in a child process (OpenTelemetry's globals are per process) against a real receiver that
 * decodes both encodings.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { OtlpReceiver, startOtlpReceiver } from '../helpers/otlp-receiver';
import { startUpstream, Upstream } from '../helpers/upstream';

const CHILD = path.join(__dirname, '..', 'helpers', 'traced-gateway-child.js');

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

interface ChildResult {
  code: number;
  stdout: string;
  stderr: string;
}

function runChild(otelEnv: Record<string, string>): Promise<ChildResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, FD_UPSTREAM: upstream.url, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.url}/v1/traces` };
  for (const key of Object.keys(env)) if (key.startsWith('OTEL_') && key !== 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') delete env[key];
  Object.assign(env, otelEnv);
  return new Promise((resolve) => {
    execFile(process.execPath, [CHILD], { env, timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('default exporter', () => {
  it.each([
    ['protobuf when nothing is set', {}, 'application/x-protobuf'],
    ['JSON with OTEL_EXPORTER_OTLP_PROTOCOL=http/json', { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }, 'application/json'],
    ['JSON with OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/json', { OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json' }, 'application/json'],
    ['the traces-specific variable over the general one', { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf' }, 'application/x-protobuf'],
  ])('sends %s', async (_label, otelEnv, contentType) => {
    const before = receiver.contentTypes.length;
    const result = await runChild(otelEnv);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    const { status, requestId } = JSON.parse(result.stdout) as { status: number; requestId: string };
    expect(status).toBe(200);

    // shutdown() flushed before the child exited: the spans are here, decoded from the encoding asked for.
    const server = receiver.spans.find((span) => span.kind === 2 && span.attributes['frontdoor.request_id'] === requestId);
    expect(server).toBeDefined();
    const client = receiver.spans.find((span) => span.kind === 3 && span.parentSpanId === server?.spanId);
    expect(client?.traceId).toBe(server?.traceId);
    expect(client?.attributes['http.response.status_code']).toBe(200);
    expect(server?.resource['service.name']).toBe('frontdoor-exporter-test');
    expect(receiver.contentTypes.slice(before)).toEqual([contentType]);
  });

  it.each([
    ['grpc', { OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, /OTEL_EXPORTER_OTLP_PROTOCOL="grpc" is not supported.*exporter-trace-otlp-grpc/],
    ['an unknown encoding', { OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/xml' }, /OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http\/xml" is not supported/],
  ])('refuses %s at setup, naming the variable', async (_label, otelEnv, message) => {
    const before = receiver.exportRequests;
    const result = await runChild(otelEnv);
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/^ConfigError: /);
    expect(result.stderr).toMatch(message);
    expect(receiver.exportRequests).toBe(before);
  });
});
