/**
 * Request and response bodies through gateway() in real Express apps: bodies already read by a body
 * parser are re-sent intact with a correct Content-Length, untouched bodies are streamed byte for byte,
 * and 200 MB transfers go through both ways without being buffered.
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { problemHandler } from '../../index';
import { expressVersions, rawRequest } from '../helpers/app';
import { GatewayApp, gatewayApp } from '../helpers/gateway-app';
import { GatewayProcess, startGatewayProcess } from '../helpers/gateway-process';
import { startUpstream, Upstream } from '../helpers/upstream';

const MB = 1024 * 1024;
/**
 * Large transfers, and what the gateway may hold meanwhile: a gateway that buffered would hold all of it. One
 * that streams holds spent 64 KiB chunks until V8 collects them, a plateau whatever the size (Node 20 about
 * 30 MB; Node 24 50-75 MB, and no more for 1 GB than for 100 MB): half the transfer tells the two apart on every line.
 */
const LARGE = 200 * MB;
const LARGE_BOUND = LARGE / 2;
const CHUNK = 64 * 1024;

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** Produces `total` bytes in fresh 64 KiB chunks, never holding more than the stream's buffer. */
function generated(total: number): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= total) {
        this.push(null);
        return;
      }
      const size = Math.min(CHUNK, total - sent);
      const chunk = Buffer.allocUnsafe(size).fill(sent & 0xff);
      sent += size;
      this.push(chunk);
    },
  });
}

/**
 * How far the gateway's process grew while `work` ran: its peak RSS (the kernel's high-water mark, so no short
 * peak escapes) over its RSS before. The gateway runs alone in that process, so neither the client's and the
 * upstream's buffers nor jest's count.
 */
async function measurePeakRssGrowth<T>(gateway: GatewayProcess, work: () => Promise<T>): Promise<{ result: T; growth: number }> {
  const before = await gateway.memory();
  const result = await work();
  const after = await gateway.memory();
  return { result, growth: after.maxRss - before.rss };
}

function postJson(port: number, path: string, body: string | Buffer, headers: Record<string, string> = {}) {
  return rawRequest(port, {
    method: 'POST',
    path,
    headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...headers },
    body,
  });
}

describe.each(expressVersions)('bodies read by body parsers before gateway() (%s)', (_label, express) => {
  let upstream: Upstream;
  let app: GatewayApp;

  beforeAll(async () => {
    upstream = await startUpstream({ name: 'echo' });
    app = await gatewayApp(
      { routes: [{ path: '/api', upstream: upstream.url }] },
      {
        express,
        before: (server) => {
          server.use(express.json());
          server.use(express.urlencoded({ extended: false }));
          server.use(express.text());
          server.use(express.raw({ type: 'application/vnd.blob' }));
        },
        after: (server) => server.use(problemHandler()),
      },
    );
  });
  afterAll(async () => {
    await app.close();
    await upstream.close();
  });
  beforeEach(() => {
    upstream.requests.length = 0;
  });

  /** The one request the upstream received: its body, and Content-Length equal to the body's byte length. */
  const received = () => {
    expect(upstream.requests).toHaveLength(1);
    const request = upstream.requests[0];
    expect(request.headers['content-length']).toBe(String(request.body.length));
    expect(request.headers['transfer-encoding']).toBeUndefined();
    return request;
  };

  it('re-sends a JSON body parsed by express.json() intact with a correct Content-Length', async () => {
    const sent = { id: 7, items: [{ sku: 'A-1', qty: 2 }, { sku: 'B-2', qty: 1 }], note: null, paid: false };
    const res = await postJson(app.port, '/api/orders', JSON.stringify(sent));
    expect(res.status).toBe(200);
    const request = received();
    expect(request.method).toBe('POST');
    expect(JSON.parse(request.body.toString('utf8'))).toEqual(sent);
    expect(request.headers['content-type']).toBe('application/json');
  });

  it('re-sends an empty JSON object', async () => {
    const res = await postJson(app.port, '/api/orders', '{}');
    expect(res.status).toBe(200);
    const request = received();
    expect(request.body.toString('utf8')).toBe('{}');
    expect(request.headers['content-length']).toBe('2');
  });

  it('re-sends unicode JSON with Content-Length counted in bytes, not characters', async () => {
    const sent = { name: 'Zoë Ångström', greeting: '日本語 😀', emoji: '👩‍👩‍👧' };
    const text = JSON.stringify(sent);
    expect(Buffer.byteLength(text)).toBeGreaterThan(text.length);
    const res = await postJson(app.port, '/api/orders', text, { 'content-type': 'application/json; charset=utf-8' });
    expect(res.status).toBe(200);
    const request = received();
    expect(JSON.parse(request.body.toString('utf8'))).toEqual(sent);
    expect(Number(request.headers['content-length'])).toBe(Buffer.byteLength(JSON.stringify(sent)));
  });

  it('forwards a gzip-encoded JSON body, inflated by express.json(), as plain JSON without Content-Encoding', async () => {
    const sent = { compressed: true, payload: 'x'.repeat(2000) };
    const res = await postJson(app.port, '/api/orders', gzipSync(JSON.stringify(sent)), { 'content-encoding': 'gzip' });
    expect(res.status).toBe(200);
    const request = received();
    expect(request.headers['content-encoding']).toBeUndefined();
    expect(JSON.parse(request.body.toString('utf8'))).toEqual(sent);
  });

  it('re-sends a urlencoded form parsed by express.urlencoded({ extended: false })', async () => {
    const form = 'name=Zo%C3%AB+A&tag=x&tag=y&empty=&sym=a%26b%3Dc';
    const res = await rawRequest(app.port, {
      method: 'POST',
      path: '/api/forms',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(form.length) },
      body: form,
    });
    expect(res.status).toBe(200);
    const request = received();
    const params = new URLSearchParams(request.body.toString('utf8'));
    expect(params.get('name')).toBe('Zoë A');
    expect(params.getAll('tag')).toEqual(['x', 'y']);
    expect(params.get('empty')).toBe('');
    expect(params.get('sym')).toBe('a&b=c');
    expect([...params.keys()].sort()).toEqual(['empty', 'name', 'sym', 'tag', 'tag']);
  });

  it('re-sends a text body parsed by express.text()', async () => {
    const text = 'line one\nligne deux — ünïcödé\n';
    const res = await rawRequest(app.port, {
      method: 'PUT',
      path: '/api/notes/1',
      headers: { 'content-type': 'text/plain; charset=utf-8', 'content-length': String(Buffer.byteLength(text)) },
      body: text,
    });
    expect(res.status).toBe(200);
    expect(received().body.toString('utf8')).toBe(text);
  });

  it('re-sends a binary body read by express.raw() byte for byte', async () => {
    const blob = randomBytes(64 * 1024);
    const res = await rawRequest(app.port, {
      method: 'POST',
      path: '/api/blobs',
      headers: { 'content-type': 'application/vnd.blob', 'content-length': String(blob.length) },
      body: blob,
    });
    expect(res.status).toBe(200);
    expect(sha256(received().body)).toBe(sha256(blob));
  });

  it('re-sends a chunked JSON upload (no Content-Length from the client) with a Content-Length', async () => {
    const sent = { chunked: true, n: [1, 2, 3] };
    const res = await rawRequest(app.port, {
      method: 'POST',
      path: '/api/orders',
      headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      body: JSON.stringify(sent),
    });
    expect(res.status).toBe(200);
    expect(JSON.parse(received().body.toString('utf8'))).toEqual(sent);
  });

  it('answers malformed JSON with 400 problem+json ERR_BAD_REQUEST_BODY (problemHandler) and forwards nothing', async () => {
    const res = await postJson(app.port, '/api/orders', '{"id": 7,', { 'x-request-id': 'bad-json-1' });
    expect(res.status).toBe(400);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(JSON.parse(res.body)).toMatchObject({ status: 400, code: 'ERR_BAD_REQUEST_BODY', requestId: 'bad-json-1' });
    expect(res.headers['x-request-id']).toBe('bad-json-1');
    expect(upstream.requests).toEqual([]);
  });
});

describe.each(expressVersions)('malformed JSON without problemHandler (%s)', (_label, express) => {
  it("answers 400 from Express's own error handler and forwards nothing", async () => {
    const upstream = await startUpstream({ name: 'echo' });
    const app = await gatewayApp({ routes: [{ path: '/api', upstream: upstream.url }] }, { express, before: (server) => server.use(express.json()) });
    try {
      const res = await postJson(app.port, '/api/orders', '{not json');
      expect(res.status).toBe(400);
      expect(upstream.requests).toEqual([]);
      expect(upstream.connections).toBe(0);
    } finally {
      await app.close();
      await upstream.close();
    }
  });
});

describe.each(expressVersions)('untouched bodies are streamed (%s)', (label, express) => {
  let upstream: Upstream;
  /** A gateway process of its own per large transfer, so one test's peak is not the next one's baseline. */
  let app: GatewayProcess | undefined;
  const startGateway = async () => {
    const routes = [{ path: '/upload', upstream: upstream.url }, { path: '/download', upstream: upstream.url }];
    app = await startGatewayProcess({ routes }, label === 'express 4' ? 'express4' : 'express');
    return app;
  };
  /** Bytes the large-transfer upstream counted, per request. */
  let counted: number[] = [];

  beforeAll(async () => {
    upstream = await startUpstream({
      name: 'big',
      streaming: true,
      handler: (req, res) => {
        if (req.url?.startsWith('/download/')) {
          const size = Number(req.url.split('/')[2]);
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size) });
          generated(size).pipe(res);
          return;
        }
        const length = (req as { receivedLength?: number }).receivedLength ?? -1;
        counted.push(length);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ received: length }));
      },
    });
  });
  afterAll(async () => {
    await upstream.close();
  });
  beforeEach(() => {
    counted = [];
    upstream.requests.length = 0;
  });
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it('streams a 1 MB octet-stream body byte-identical when no body parser ran', async () => {
    // The large-transfer upstream only counts bytes; a buffering one keeps what arrived so it can be hashed.
    const buffering = await startUpstream({ name: 'hash' });
    const hashApp = await gatewayApp({ routes: [{ path: '/upload', upstream: buffering.url }] }, { express });
    try {
      const blob = randomBytes(MB);
      const res = await rawRequest(hashApp.port, {
        method: 'POST',
        path: '/upload/blob',
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(blob.length) },
        body: blob,
      });
      expect(res.status).toBe(200);
      expect(buffering.requests).toHaveLength(1);
      const request = buffering.requests[0];
      expect(request.body.length).toBe(MB);
      expect(sha256(request.body)).toBe(sha256(blob));
      expect(request.headers['content-length']).toBe(String(MB));
      expect(request.headers['content-type']).toBe('application/octet-stream');
    } finally {
      await hashApp.close();
      await buffering.close();
    }
  });

  /** POSTs `size` generated bytes to the gateway, streaming; resolves with the response. */
  const upload = (gateway: GatewayProcess, size: number) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: gateway.port,
          method: 'POST',
          path: '/upload/big',
          agent: false,
          headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      generated(size).pipe(req);
    });

  /** GETs `size` bytes from the upstream through the gateway, counting and discarding them. */
  const download = (gateway: GatewayProcess, size: number) =>
    new Promise<{ status: number; length: string | undefined; bytes: number }>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: gateway.port, path: `/download/${size}`, agent: false }, (res) => {
        let bytes = 0;
        res.on('data', (c: Buffer) => (bytes += c.length));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, length: res.headers['content-length'], bytes }));
        res.on('error', reject);
      });
      req.on('error', reject);
    });

  it('uploads 200 MB through the gateway without buffering it', async () => {
    const gateway = await startGateway();
    // Warm up (JIT, socket and heap sizing) so the baseline is a process that has streamed before.
    expect((await upload(gateway, 10 * MB)).status).toBe(200);
    counted = [];
    const { result, growth } = await measurePeakRssGrowth(gateway, () => upload(gateway, LARGE));
    expect(result.status).toBe(200);
    expect(JSON.parse(result.body).received).toBe(LARGE);
    expect(counted).toEqual([LARGE]);
    expect(growth).toBeLessThan(LARGE_BOUND);
  }, 30_000);

  it('downloads 200 MB through the gateway without buffering it', async () => {
    const gateway = await startGateway();
    expect((await download(gateway, 10 * MB)).bytes).toBe(10 * MB);
    const { result, growth } = await measurePeakRssGrowth(gateway, () => download(gateway, LARGE));
    expect(result.status).toBe(200);
    expect(result.length).toBe(String(LARGE));
    expect(result.bytes).toBe(LARGE);
    expect(growth).toBeLessThan(LARGE_BOUND);
  }, 30_000);
});
