/**
 * telemetry.shutdown() is bounded (issue 20): with a collector that accepts and never answers and an exporter
 * whose own timeout is long, shutdown still resolves by `shutdownTimeout`, so a pod's termination grace period
 * is not spent waiting on a dead collector. The spans left are dropped, with one warning.
 */
import type { Agent } from 'node:http';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { setupTelemetry } from '../../index';
import { rawRequest } from '../helpers/app';
import { gatewayApp } from '../helpers/gateway-app';
import { startOtlpReceiver, useNodeHttpUnderJest } from '../helpers/otlp-receiver';
import { closedPort, startUpstream } from '../helpers/upstream';

it('shutdown() resolves within shutdownTimeout while the collector hangs, instead of the exporter’s 30 s', async () => {
  const receiver = await startOtlpReceiver({ port: await closedPort(), mode: 'hang' });
  // The exporter would wait 30 s for the hanging collector; an export interval longer than the test keeps
  // every span queued until shutdown flushes it.
  const exporter = new OTLPTraceExporter({ url: `${receiver.url}/v1/traces`, timeoutMillis: 30_000 });
  const agent: Agent = useNodeHttpUnderJest(exporter);
  const warnings: string[] = [];
  const telemetry = setupTelemetry({ serviceName: 'frontdoor-shutdown-test', exporter, exportInterval: '1m', shutdownTimeout: '300ms', logger: { warn: (message: string) => warnings.push(message), error: () => undefined } });
  const upstream = await startUpstream({ name: 'orders' });
  const app = await gatewayApp({ trace: true, routes: [{ path: '/api/orders', upstream: upstream.url }] });
  try {
    expect((await rawRequest(app.port, { path: '/api/orders/1' })).status).toBe(200);
    const started = performance.now();
    await telemetry.shutdown();
    const elapsed = performance.now() - started;
    // Bounded by the option, not by the exporter's timeout (a generous ceiling for a loaded machine).
    expect(elapsed).toBeLessThan(5_000);
    expect(warnings.join('\n')).toMatch(/gave up flushing spans after 300 ms/);
    expect(receiver.exportRequests).toBeGreaterThan(0);
  } finally {
    await app.close();
    await upstream.close();
    // The abandoned export is still waiting on the collector: answer it (not retryable) so the exporter
    // settles now rather than retrying for its 30 s after the test.
    receiver.answerHanging();
    await exporter.shutdown();
    await receiver.close();
    agent.destroy();
  }
});
