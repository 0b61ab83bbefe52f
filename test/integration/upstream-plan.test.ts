/**
 * The upstream request is built from a plan, not by editing the client's request: after the gateway or
 * proxy() has forwarded (or failed to forward) a request, the app's own handlers see the request exactly
 * as the client sent it — path, query and headers — which fall-through and fallback to the monolith need.
 */
import express from 'express';
import type { IncomingHttpHeaders } from 'node:http';
import { gateway, getContext, proxy } from '../../index';
import { listen, rawRequest, RunningApp } from '../helpers/app';
import { closedPort, startUpstream, Upstream } from '../helpers/upstream';

describe('the client request stays as sent', () => {
  let upstream: Upstream;
  beforeAll(async () => {
    upstream = await startUpstream();
  });
  afterAll(() => upstream.close());

  /** An app whose error handler records what it sees of the request after the gateway gave up on it. */
  async function appAfter(middleware: express.RequestHandler): Promise<{ app: RunningApp; seen: Array<{ url: string; headers: IncomingHttpHeaders }> }> {
    const seen: Array<{ url: string; headers: IncomingHttpHeaders }> = [];
    const server = express();
    server.use(middleware);
    server.use((err: unknown, req: express.Request, res: express.Response, _next: express.NextFunction) => {
      seen.push({ url: req.url, headers: { ...req.headers } });
      res.status(599).end();
    });
    return { app: await listen(server), seen };
  }

  it('gateway(): the error handler after a failed forward sees the client path, query and headers', async () => {
    const gw = gateway({ onError: 'next', routes: [{ path: '/api', upstream: { target: `http://127.0.0.1:${await closedPort()}`, retries: 0 }, stripPath: true, rewrite: { '^/x': '/y' } }] });
    const { app, seen } = await appAfter(gw);
    try {
      const res = await rawRequest(app.port, { path: '/api//x?a=1&b=2', headers: { Connection: 'x-hop', 'X-Hop': '1', 'X-Consumer-Id': 'forged', TE: 'trailers' } });
      expect(res.status).toBe(599);
      expect(seen).toHaveLength(1);
      expect(seen[0].url).toBe('/api//x?a=1&b=2');
      expect(seen[0].headers).toMatchObject({ connection: 'x-hop', 'x-hop': '1', 'x-consumer-id': 'forged', te: 'trailers' });
      // No header was added to the client's request either: the request id lives in the context.
      expect(seen[0].headers['x-request-id']).toBeUndefined();
      expect(seen[0].headers['x-forwarded-for']).toBeUndefined();
    } finally {
      await app.close();
      await gw.close();
    }
  });

  it('proxy(): the upstream gets the planned request while the app keeps the client one', async () => {
    const forward = proxy({ target: upstream.url, onError: 'next' });
    const server = express();
    let after: { url: string; headers: IncomingHttpHeaders } | undefined;
    server.use('/api', (req, res, next) => {
      res.on('finish', () => {
        after = { url: req.url, headers: { ...req.headers } };
      });
      forward(req, res, next);
    });
    const app = await listen(server);
    try {
      const res = await rawRequest(app.port, { path: '/api/orders?x=1', headers: { Connection: 'x-hop', 'X-Hop': '1', 'X-Consumer-Id': 'forged' } });
      expect(res.status).toBe(200);
      const received = upstream.requests[upstream.requests.length - 1];
      expect(received.url).toBe('/api/orders?x=1');
      expect(received.headers['x-hop']).toBeUndefined();
      expect(received.headers['x-consumer-id']).toBeUndefined();
      expect(typeof received.headers['x-request-id']).toBe('string');
      expect(after?.url).toBe('/orders?x=1'); // Express's view inside the mount, untouched by the proxy
      expect(after?.headers).toMatchObject({ 'x-hop': '1', 'x-consumer-id': 'forged' });
      expect(after?.headers['x-request-id']).toBeUndefined();
    } finally {
      await app.close();
      await forward.close();
    }
  });

  it('getContext() has no side effects on the request', async () => {
    const server = express();
    let headers: IncomingHttpHeaders | undefined;
    server.get('/ctx', (req, res) => {
      const context = getContext(req, res);
      headers = { ...req.headers };
      res.json({ requestId: context.requestId });
    });
    const app = await listen(server);
    try {
      const res = await rawRequest(app.port, { path: '/ctx' });
      expect(JSON.parse(res.body).requestId).toBe(res.headers['x-request-id']);
      expect(headers?.['x-request-id']).toBeUndefined();
    } finally {
      await app.close();
    }
  });
});
