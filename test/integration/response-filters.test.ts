/**
 * Response filters (the "shape the response" phase): header filters edit a streamed answer; a filter that
 * asks for the body gets it whole, up to its limit, and what it returns is sent with a correct length; an
 * answer over the limit streams through unchanged.
 */
import { createHash } from 'node:crypto';
import type { RequestHandler } from 'express';
import { addResponseFilter } from '../../index';
import { rawRequest } from '../helpers/app';
import { GatewayApp, gatewayApp } from '../helpers/gateway-app';
import { startUpstream, Upstream } from '../helpers/upstream';

const BIG = Buffer.alloc(256 * 1024, 'x');

describe('response filters', () => {
  let upstream: Upstream;
  let app: GatewayApp;

  beforeAll(async () => {
    upstream = await startUpstream({
      handler: (req, res) => {
        if (req.url === '/api/chunked') {
          // No Content-Length: the limit is found while reading.
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          for (let i = 0; i < 8; i++) res.write(BIG.subarray(i * 32 * 1024, (i + 1) * 32 * 1024));
          res.end();
          return;
        }
        if (req.url === '/api/big') {
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BIG.length });
          res.end(BIG);
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json', server: 'orders/1.2', 'x-internal': 'secret' });
        res.end(JSON.stringify({ id: 7, internalNote: 'do not show' }));
      },
    });
    const filters: RequestHandler = (req, _res, next) => {
      const path = req.url; // inside the mount; Express restores req.url when next() leaves it
      addResponseFilter(req, {
        headers(response) {
          delete response.headers.server;
          delete response.headers['x-internal'];
          response.headers['x-filtered'] = 'yes';
          if (path.startsWith('/gone')) response.status = 410;
        },
      });
      if (!path.startsWith('/raw')) {
        addResponseFilter(req, {
          buffer: {
            maxBytes: 64 * 1024,
            body(body) {
              const { internalNote: _dropped, ...rest } = JSON.parse(body.toString('utf8'));
              return Buffer.from(JSON.stringify({ ...rest, shaped: true }));
            },
          },
        });
      }
      next();
    };
    app = await gatewayApp({ routes: [{ path: '/api', upstream: upstream.url }] }, { before: (server) => server.use('/api', filters) });
  });
  afterAll(async () => {
    await app.close();
    await upstream.close();
  });

  it('edits the status and headers of a streamed answer', async () => {
    const res = await rawRequest(app.port, { path: '/api/raw/7' });
    expect(res.status).toBe(200);
    expect(res.headers['x-filtered']).toBe('yes');
    expect(res.headers.server).toBeUndefined();
    expect(res.headers['x-internal']).toBeUndefined();
    expect(JSON.parse(res.body)).toEqual({ id: 7, internalNote: 'do not show' });
    const gone = await rawRequest(app.port, { path: '/api/raw/gone' });
    expect(gone.status).toBe(200); // the status filter only applies under /gone
  });

  it('gives a body filter the whole body and sends what it returns, with its length', async () => {
    const res = await rawRequest(app.port, { path: '/api/orders/7' });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ id: 7, shaped: true });
    expect(Number(res.headers['content-length'])).toBe(Buffer.byteLength(res.body));
    expect(res.headers['x-filtered']).toBe('yes');
  });

  it('changes the status when a header filter says so', async () => {
    const res = await rawRequest(app.port, { path: '/api/gone' });
    expect(res.status).toBe(410);
  });

  it.each(['/api/big', '/api/chunked'])('streams an answer over the body limit through unchanged (%s)', async (path) => {
    const res = await rawRequest(app.port, { path });
    expect(res.status).toBe(200);
    expect(res.body.length).toBe(BIG.length);
    expect(createHash('sha256').update(res.body).digest('hex')).toBe(createHash('sha256').update(BIG.toString('utf8')).digest('hex'));
  });
});
