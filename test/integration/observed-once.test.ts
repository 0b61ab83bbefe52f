/**
 * A request is observed once (adoption issue, item 5): with app-wide trace(), metrics() and accessLog() and
 * a gateway that has its own, one request writes one log line and counts once.
 */
import pino from 'pino';
import { Writable } from 'node:stream';
import { accessLog, metrics, metricsHandler, MetricsRegistry } from '../../index';
import { rawRequest } from '../helpers/app';
import { gatewayApp } from '../helpers/gateway-app';
import { startUpstream, Upstream } from '../helpers/upstream';

describe('observed once', () => {
  let upstream: Upstream;
  beforeAll(async () => {
    upstream = await startUpstream();
  });
  afterAll(() => upstream.close());

  it('writes one access-log line and counts one request when app and gateway both observe', async () => {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        callback();
      },
    });
    const logger = pino({}, stream);
    const registry = new MetricsRegistry();
    const app = await gatewayApp(
      { routes: [{ path: '/api', upstream: upstream.url, name: 'api' }], metrics: { registry }, accessLog: { logger } },
      {
        before: (server) => server.use(metrics({ registry }), accessLog({ logger })),
        after: (server) => server.get('/metrics', metricsHandler(registry)),
      },
    );
    try {
      expect((await rawRequest(app.port, { path: '/api/orders' })).status).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(lines).toHaveLength(1);
      const scrape = (await rawRequest(app.port, { path: '/metrics' })).body;
      const counts = scrape.split('\n').filter((line) => line.startsWith('http_server_request_duration_seconds_count'));
      const total = counts.reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
      expect(total).toBe(1);
    } finally {
      await app.close();
    }
  });
});
