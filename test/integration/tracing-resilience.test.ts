/**
 * A broken trace collector never hurts the traffic: with the collector's port closed, answering 503, or
 * accepting and never answering, requests through a traced gateway still succeed promptly, the operator
 * gets at most one warning a minute, shutdown() resolves and nothing is left as an unhandled rejection.
 * The phases run in order against one telemetry setup (OpenTelemetry globals are process-wide): the
 * exporter always points at the same port, where first nothing listens, then a 503 receiver, then a
 * hanging one.
 */
import type { Agent } from 'node:http';
import vm from 'node:vm';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { setupTelemetry } from '../../index';
import type { Telemetry } from '../../index';
import { rawRequest } from '../helpers/app';
import { GatewayApp, gatewayApp } from '../helpers/gateway-app';
import { OtlpReceiver, startOtlpReceiver, useNodeHttpUnderJest } from '../helpers/otlp-receiver';
import { closedPort, startUpstream, Upstream } from '../helpers/upstream';
import { sleep, until } from '../helpers/wait';

const BURST = 40;
const CONCURRENCY = 8;
/** Far above a healthy local round trip; a request stuck behind span export would blow it. */
const PROMPT_MS = 1_000;

// jest's sandbox has its own `process` object; rejections are reported on the real one.
const realProcess = vm.runInThisContext('process') as NodeJS.Process;
const rejections: unknown[] = [];
const onRejection = (reason: unknown) => rejections.push(reason);

const warnings: string[] = [];
const errors: string[] = [];
let collectorPort: number;
let receiver: OtlpReceiver | undefined;
let exporterAgent: Agent;
let telemetry: Telemetry;
let upstream: Upstream;
let app: GatewayApp;

beforeAll(async () => {
  realProcess.on('unhandledRejection', onRejection);
  collectorPort = await closedPort();
  // A short export timeout keeps the hanging phase and shutdown quick; nothing else is tuned.
  const exporter = new OTLPTraceExporter({ url: `http://127.0.0.1:${collectorPort}/v1/traces`, timeoutMillis: 1_000 });
  exporterAgent = useNodeHttpUnderJest(exporter);
  telemetry = setupTelemetry({
    serviceName: 'frontdoor-resilience-test',
    exporter,
    exportInterval: '50ms',
    logger: { warn: (message: string) => warnings.push(message), error: (message: string) => errors.push(message) },
  });
  expect(telemetry.reused).toBe(false);
  upstream = await startUpstream({ name: 'orders' });
  app = await gatewayApp({ trace: true, routes: [{ name: 'orders', path: '/api/orders', upstream: upstream.url }] });
});

afterAll(async () => {
  await telemetry.shutdown();
  await app.close();
  await upstream.close();
  await receiver?.close();
  exporterAgent.destroy();
  realProcess.off('unhandledRejection', onRejection);
});

/** Sends `BURST` traced requests (bounded concurrency); returns each one's status and duration. */
async function burst(phase: string): Promise<Array<{ status: number; ms: number; traceparent: unknown }>> {
  const results: Array<{ status: number; ms: number; traceparent: unknown }> = [];
  let next = 0;
  const worker = async () => {
    while (next < BURST) {
      const i = next++;
      const requestId = `${phase}-${i}`;
      const started = performance.now();
      const res = await rawRequest(app.port, { path: `/api/orders/${i}`, headers: { 'x-request-id': requestId } });
      const ms = performance.now() - started;
      const received = upstream.requests.find((r) => r.headers['x-request-id'] === requestId);
      results.push({ status: res.status, ms, traceparent: received?.headers.traceparent });
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return results;
}

function expectServedPromptly(results: Awaited<ReturnType<typeof burst>>): void {
  expect(results).toHaveLength(BURST);
  expect(results.map((r) => r.status)).toEqual(Array(BURST).fill(200));
  expect(Math.max(...results.map((r) => r.ms))).toBeLessThan(PROMPT_MS);
  // Still traced: every upstream request carried the gateway's traceparent.
  for (const r of results) expect(r.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
}

describe('a broken trace collector (express 5)', () => {
  it('collector port closed: requests succeed promptly and the failure is reported once', async () => {
    expectServedPromptly(await burst('closed'));
    // A second burst keeps exports failing: still one warning.
    await until(() => warnings.length > 0, 5_000);
    expectServedPromptly(await burst('closed-again'));
    await sleep(300);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/export/i);
  });

  it('collector answering 503: requests succeed promptly, no new warning within the minute', async () => {
    receiver = await startOtlpReceiver({ port: collectorPort, mode: 'unavailable' });
    expectServedPromptly(await burst('unavailable'));
    // The exporter really reached the broken collector (and was refused).
    await receiver.waitForExportRequests(1);
    expectServedPromptly(await burst('unavailable-again'));
    expect(receiver.spans).toEqual([]);
    expect(warnings).toHaveLength(1);
  });

  it('collector hanging: requests succeed promptly while exports hang, no new warning within the minute', async () => {
    const active = receiver as OtlpReceiver;
    active.mode = 'hang';
    const before = active.exportRequests;
    expectServedPromptly(await burst('hanging'));
    await active.waitForExportRequests(before + 1);
    await until(() => active.hanging > 0, 2_000);
    expect(active.hanging).toBeGreaterThan(0);
    // Requests keep flowing while an export is stuck on the collector.
    expectServedPromptly(await burst('hanging-again'));
    expect(active.spans).toEqual([]);
    expect(warnings.length).toBeLessThanOrEqual(1);
  });

  it('shutdown() resolves while the collector hangs, the gateway keeps serving, and nothing rejected unhandled', async () => {
    expectServedPromptly(await burst('before-shutdown'));
    await expect(telemetry.shutdown()).resolves.toBeUndefined();
    // Idempotent: a second call resolves too.
    await expect(telemetry.shutdown()).resolves.toBeUndefined();
    const after = await rawRequest(app.port, { path: '/api/orders/after-shutdown' });
    expect(after.status).toBe(200);
    expect(warnings.length).toBeLessThanOrEqual(1);
    expect(errors).toEqual([]);
    // Give late export callbacks (timeouts, retries) a moment to settle before checking.
    await sleep(200);
    expect(rejections).toEqual([]);
  });
});
