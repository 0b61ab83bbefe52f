/**
 * Faults in the middle of a proxied exchange: an upstream dying mid-body must abort the client's
 * response at once (not leave it waiting), a client going away must abort the upstream request, and a
 * malformed or dropped upstream response is a 502 that leaves the gateway serving.
 */
import http from 'node:http';
import { expressVersions, ExpressFactory, rawRequest } from '../helpers/app';
import { GatewayApp, gatewayApp } from '../helpers/gateway-app';
import { echo, startRawUpstream, startUpstream, Upstream } from '../helpers/upstream';

/** How the client's response ended: completely, or cut off (and how long after its headers). */
interface ClientOutcome {
  status: number;
  bytes: number;
  complete: boolean;
  aborted: boolean;
  errored: boolean;
  /** ms from the response headers to the end of the exchange; Infinity if it never ended. */
  endedAfterMs: number;
}

/** GETs through a raw http.request; gives up (as "never ended") after `guardMs`. */
function getOutcome(port: number, path: string, guardMs = 3000): Promise<ClientOutcome> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      const headersAt = Date.now();
      let bytes = 0;
      let aborted = false;
      let errored = false;
      let settled = false;
      const settle = (endedAfterMs: number) => {
        if (settled) return;
        settled = true;
        clearTimeout(guard);
        resolve({ status: res.statusCode ?? 0, bytes, complete: res.complete, aborted, errored, endedAfterMs });
      };
      const guard = setTimeout(() => {
        settle(Infinity);
        req.destroy();
      }, guardMs);
      res.on('data', (chunk: Buffer) => (bytes += chunk.length));
      res.on('aborted', () => (aborted = true));
      res.on('error', () => (errored = true));
      res.on('close', () => settle(Date.now() - headersAt));
    });
    req.on('error', (err) => reject(err));
    req.end();
  });
}

/** An upstream that sends headers and part of the body, then destroys its socket; other paths echo. */
function dyingUpstream(framing: 'content-length' | 'chunked'): Promise<Upstream> {
  const normal = echo('dying');
  return startUpstream({
    name: 'dying',
    handler: (req, res, body) => {
      if (!req.url?.startsWith('/files/die')) return normal(req, res, body);
      const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/octet-stream' };
      if (framing === 'content-length') headers['content-length'] = String(100_000);
      res.writeHead(200, headers);
      res.write(Buffer.alloc(10_000, 0x61));
      setTimeout(() => res.socket?.destroy(), 50);
    },
  });
}

async function expectMidBodyDeathAbortsClient(express: ExpressFactory, framing: 'content-length' | 'chunked'): Promise<void> {
  const upstream = await dyingUpstream(framing);
  const app = await gatewayApp({ routes: [{ path: '/files', upstream: upstream.url }] }, { express });
  try {
    const outcome = await getOutcome(app.port, '/files/die');
    expect(outcome.status).toBe(200);
    expect(outcome.complete).toBe(false);
    expect(outcome.bytes).toBeLessThan(100_000);
    expect(outcome.aborted || outcome.errored).toBe(true);
    // Cut off at once, not left hanging until some timeout.
    expect(outcome.endedAfterMs).toBeLessThan(1000);

    const next = await rawRequest(app.port, { path: '/files/ok' });
    expect(next.status).toBe(200);
    expect(JSON.parse(next.body)).toMatchObject({ upstream: 'dying', url: '/files/ok' });
  } finally {
    await app.close();
    await upstream.close();
  }
}

describe('an upstream dying mid-body (express 5)', () => {
  const express = expressVersions[0][1];

  it('aborts the client response promptly when the Content-Length body is cut off, and keeps serving', async () => {
    await expectMidBodyDeathAbortsClient(express, 'content-length');
  });

  it('aborts the client response promptly when the chunked body is cut off, and keeps serving', async () => {
    await expectMidBodyDeathAbortsClient(express, 'chunked');
  });
});

describe('an upstream dying mid-body (express 4)', () => {
  it('aborts the client response promptly when the Content-Length body is cut off, and keeps serving', async () => {
    await expectMidBodyDeathAbortsClient(expressVersions[1][1], 'content-length');
  });
});

describe('a client that goes away (express 5)', () => {
  const express5 = expressVersions[0][1];
  let upstream: Upstream;
  let app: GatewayApp;
  /** Per slow request: resolves when the upstream's response closes, with whether it had finished. */
  let upstreamClosed: Promise<{ finished: boolean; at: number }>;
  let upstreamStarted: Promise<void>;

  beforeAll(async () => {
    const normal = echo('slow');
    let markStarted: () => void = () => undefined;
    let markClosed: (v: { finished: boolean; at: number }) => void = () => undefined;
    const reset = () => {
      upstreamStarted = new Promise<void>((resolve) => (markStarted = resolve));
      upstreamClosed = new Promise((resolve) => (markClosed = resolve));
    };
    reset();
    upstream = await startUpstream({
      name: 'slow',
      handler: (req, res, body) => {
        if (!req.url?.startsWith('/work/slow')) return normal(req, res, body);
        // Would answer after 2 s; the test expects the gateway to give up on it long before.
        const timer = setTimeout(() => res.end('done'), 2000);
        res.on('close', () => {
          clearTimeout(timer);
          markClosed({ finished: res.writableFinished, at: Date.now() });
          reset();
        });
        markStarted();
      },
    });
    app = await gatewayApp({ routes: [{ path: '/work', upstream: upstream.url }] }, { express: express5 });
  });
  afterAll(async () => {
    await app.close();
    await upstream.close();
  });

  it('aborts the upstream request promptly when the client disconnects before the answer', async () => {
    const closed = upstreamClosed;
    const req = http.request({ host: '127.0.0.1', port: app.port, path: '/work/slow', agent: false });
    req.on('error', () => undefined);
    req.end();
    await upstreamStarted;
    const abortedAt = Date.now();
    req.destroy();
    const result = await Promise.race([closed, new Promise<'still open'>((resolve) => setTimeout(() => resolve('still open'), 1500).unref())]);
    expect(result).not.toBe('still open');
    if (result === 'still open') return;
    expect(result.finished).toBe(false);
    expect(result.at - abortedAt).toBeLessThan(1000);

    const next = await rawRequest(app.port, { path: '/work/quick' });
    expect(next.status).toBe(200);
    expect(JSON.parse(next.body)).toMatchObject({ upstream: 'slow', url: '/work/quick' });
  });
});

describe('malformed and dropped upstream responses (express 5)', () => {
  const express = expressVersions[0][1];

  it('answers a malformed upstream response with 502 problem+json and keeps serving', async () => {
    const garbage = await startRawUpstream('garbage\r\n\r\n');
    const healthy = await startUpstream({ name: 'healthy' });
    const app = await gatewayApp(
      {
        routes: [
          { path: '/broken', upstream: garbage.url },
          { path: '/fine', upstream: healthy.url },
        ],
      },
      { express },
    );
    try {
      const res = await rawRequest(app.port, { path: '/broken/x', headers: { 'x-request-id': 'garbage-1' } });
      expect(res.status).toBe(502);
      expect(res.headers['content-type']).toContain('application/problem+json');
      const body = JSON.parse(res.body);
      expect(body).toMatchObject({ status: 502, requestId: 'garbage-1' });
      expect(body.code).toMatch(/^ERR_UPSTREAM_/);
      expect(garbage.connections).toBeGreaterThanOrEqual(1);

      const again = await rawRequest(app.port, { path: '/broken/y' });
      expect(again.status).toBe(502);
      const fine = await rawRequest(app.port, { path: '/fine/z' });
      expect(fine.status).toBe(200);
      expect(JSON.parse(fine.body)).toMatchObject({ upstream: 'healthy', url: '/fine/z' });
    } finally {
      await app.close();
      await garbage.close();
      await healthy.close();
    }
  });

  it('answers an upstream that drops the connection without a response with 502 ERR_UPSTREAM_RESET', async () => {
    const dropper = await startRawUpstream(null);
    const app = await gatewayApp({ routes: [{ path: '/drop', upstream: dropper.url }] }, { express });
    try {
      const res = await rawRequest(app.port, {
        method: 'POST',
        path: '/drop/x',
        headers: { 'content-type': 'application/json', 'content-length': '2' },
        body: '{}',
      });
      expect(res.status).toBe(502);
      expect(res.headers['content-type']).toContain('application/problem+json');
      expect(JSON.parse(res.body)).toMatchObject({ status: 502, code: 'ERR_UPSTREAM_RESET', requestId: res.headers['x-request-id'] });
      // A POST is never re-sent.
      expect(dropper.connections).toBe(1);
    } finally {
      await app.close();
      await dropper.close();
    }
  });
});
