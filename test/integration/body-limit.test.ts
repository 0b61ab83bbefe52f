/**
 * bodyLimit(): 413 problem+json on a declared size over the limit before anything is forwarded, and on a
 * chunked body as soon as the streamed count passes it, with the upstream's request aborted (it never gets a
 * complete body); bodies at the limit pass; the gateway-wide default; mistakes fail at construction.
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import express from 'express';
import { ConfigError, gateway, proxy } from '../../index';
import type { Gateway, GatewayOptions, ProxyMiddleware } from '../../index';
import { bodyLimit, bodyLimitSchema, LINGER } from '../../middleware/body-limit';
import { listen, rawRequest, RunningApp } from '../helpers/app';
import { expectProblem } from '../helpers/problem';
import { parseResponse, RawResponse } from '../helpers/raw';
import { hmacSecret } from '../helpers/tokens';
import { settle, sleep, waitFor } from '../helpers/wait';

const LIMIT = 1000;

/** What the upstream saw of one request: bytes, and whether the body ended or the request was cut off. */
interface Seen {
  url: string;
  received: number;
  ended: boolean;
  aborted: boolean;
}

/** An upstream recording how far each request body got; it answers once a body ends. */
async function startRecordingUpstream(): Promise<{ url: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const entry: Seen = { url: req.url ?? '', received: 0, ended: false, aborted: false };
    seen.push(entry);
    req.on('data', (chunk: Buffer) => {
      entry.received += chunk.length;
    });
    req.on('end', () => {
      entry.ended = true;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ received: entry.received }));
    });
    req.on('close', () => {
      if (!entry.ended) entry.aborted = true;
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A chunked upload written piece by piece, whose answer may come before it ends. */
function chunkedUpload(port: number, path: string, headers: Record<string, string> = {}) {
  const req = http.request({ host: '127.0.0.1', port, method: 'POST', path, agent: false, headers: { 'content-type': 'application/octet-stream', ...headers } });
  req.on('error', () => undefined); // the gateway may close the connection while we still send
  const response = new Promise<Answer>((resolve) => {
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
  });
  req.flushHeaders();
  return { write: (bytes: number) => req.write(Buffer.alloc(bytes, 'x')), end: () => req.end(), destroy: () => req.destroy(), response };
}

/** How a raw upload past the limit ended: the answer read (if any), the socket error met, and when. */
interface RawUpload {
  answer: RawResponse;
  error?: string;
  /** Body bytes the client wrote. */
  written: number;
  /** ms from the first byte of the answer to the socket's close (undefined without an answer). */
  closedAfterAnswer?: number;
}

/**
 * A client that goes on sending its body after the limit, as uploaders do (they read the answer when they are
 * done writing, or between writes): `chunk` bytes every `gapMs` (0: as fast as the socket takes them) while
 * `writeMs` lasts, reading nothing meanwhile when `readLate`, then reads and closes its side; the (chunked) body
 * ends after `writeMs` when `end`, otherwise it never does (a client that would stream forever).
 */
function uploadPastTheLimit(
  port: number,
  path: string,
  options: { chunked: boolean; writeMs: number; gapMs: number; chunk: number; readLate: boolean; end: boolean },
): Promise<RawUpload> {
  return new Promise((resolve) => {
    // Half-open allowed: the gateway's FIN after its 413 does not end the client's side; the client ends it when done.
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const received: Buffer[] = [];
    let error: string | undefined;
    let written = 0;
    let answeredAt: number | undefined;
    if (options.readLate) socket.pause();
    socket.on('data', (chunk: Buffer) => {
      answeredAt ??= Date.now();
      received.push(chunk);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => (error ??= err.code ?? err.message));
    socket.on('close', () =>
      resolve({ answer: parseResponse(Buffer.concat(received).toString('latin1'), true), error, written, closedAfterAnswer: answeredAt === undefined ? undefined : Date.now() - answeredAt }),
    );
    const frame = (bytes: Buffer) => (options.chunked ? Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`), bytes, Buffer.from('\r\n')]) : bytes);
    socket.on('connect', async () => {
      const length = options.chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${100 * 1024 * 1024}`;
      socket.write(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n${length}\r\n\r\n`);
      const chunk = Buffer.alloc(options.chunk, 'x');
      const started = Date.now();
      while (!socket.destroyed && socket.writable && Date.now() - started < options.writeMs) {
        written += chunk.length;
        const flushed = socket.write(frame(chunk));
        if (options.gapMs > 0) await sleep(options.gapMs);
        else if (!flushed) await new Promise((resolve) => socket.once('drain', resolve).once('close', resolve));
      }
      if (options.end && socket.writable && options.chunked) socket.write('0\r\n\r\n');
      socket.resume();
      if (socket.writable) socket.end();
    });
  });
}

const secret = hmacSecret();

describe('bodyLimit()', () => {
  let upstream: Awaited<ReturnType<typeof startRecordingUpstream>>;
  let app: RunningApp;
  let gw: Gateway;
  let alone: ProxyMiddleware;
  /** Bodies that ended for the app's handler after the gateway had answered them (it must hear no more). */
  let lateEnds = 0;

  beforeAll(async () => {
    upstream = await startRecordingUpstream();
    gw = gateway({
      bodyLimit: '4kb',
      routes: [
        { path: '/route', upstream: upstream.url, bodyLimit: LIMIT },
        { path: '/object', upstream: upstream.url, bodyLimit: { max: '1000b' } },
        { path: '/default', upstream: upstream.url },
        { path: '/unlimited', upstream: upstream.url, bodyLimit: false },
        { path: '/private', upstream: upstream.url, bodyLimit: LIMIT, auth: { jwt: { secret, algorithms: ['HS256'] } } },
        { path: '/monolith', app: true, bodyLimit: LIMIT },
      ],
    } as GatewayOptions);
    alone = proxy({ target: upstream.url });
    const server = express();
    server.use(gw);
    server.use('/alone', bodyLimit({ max: LIMIT }), alone);
    server.use('/parsed', express.json({ limit: '1mb' }), bodyLimit('1kb'), (req, res) => res.json({ parsed: true }));
    // The app's own handler reading the body itself (a route handed back to the app, or one mounted by hand).
    const readItAll = (req: express.Request, res: express.Response) => {
      let received = 0;
      req.on('data', (chunk: Buffer) => (received += chunk.length));
      req.on('end', () => {
        if (res.headersSent) lateEnds += 1;
        else res.json({ received });
      });
    };
    server.post('/monolith', readItAll);
    server.use('/handler', bodyLimit(LIMIT), readItAll);
    app = await listen(server);
  });
  afterAll(async () => {
    await app.close();
    await gw.close();
    await alone.close();
    await upstream.close();
  });

  const post = (path: string, size: number, headers: Record<string, string> = {}) =>
    rawRequest(app.port, { method: 'POST', path, headers: { 'content-type': 'application/octet-stream', ...headers }, body: Buffer.alloc(size, 'x') });

  describe.each([
    ['as a route option', '/route'],
    ['as a route option { max }', '/object'],
    ['alone, in front of proxy()', '/alone'],
  ])('%s', (_label, path) => {
    it('refuses a declared size over the limit with 413, before anything reaches the upstream', async () => {
      const before = upstream.seen.length;
      const res = await post(path, LIMIT + 1);
      expectProblem(res, 413, 'ERR_BODY_TOO_LARGE'); 
      expect(res.headers.connection).toBe('close');
      await settle();
      expect(upstream.seen.length).toBe(before);
    });

    it('lets a body of exactly the limit through, declared or chunked', async () => {
      const declared = await post(path, LIMIT);
      expect(declared.status).toBe(200);
      expect(JSON.parse(declared.body)).toEqual({ received: LIMIT });
      const upload = chunkedUpload(app.port, path);
      upload.write(400);
      upload.write(600);
      upload.end();
      const chunked = await upload.response;
      expect(chunked.status).toBe(200);
      expect(JSON.parse(chunked.body)).toEqual({ received: LIMIT });
    });

    it('refuses a chunked body once the streamed count passes the limit, and aborts the upstream request', async () => {
      const before = upstream.seen.length;
      const upload = chunkedUpload(app.port, path);
      upload.write(600);
      // The first part streams through to the upstream: nothing is buffered.
      await waitFor(() => upstream.seen.length === before + 1 && upstream.seen[before].received === 600);
      upload.write(600);
      const res = await upload.response;
      upload.destroy();
      expectProblem(res, 413, 'ERR_BODY_TOO_LARGE'); 
      const seen = upstream.seen[before];
      await waitFor(() => seen.aborted);
      expect(seen.ended).toBe(false);
      expect(seen.received).toBeLessThanOrEqual(LIMIT);
    });
  });

  it('applies the gateway-wide default to routes without their own; false turns it off', async () => {
    expectProblem(await post('/default', 4 * 1024 + 1), 413, 'ERR_BODY_TOO_LARGE');
    expect((await post('/default', 4 * 1024)).status).toBe(200);
    expect((await post('/route', 2000)).status).toBe(413); // its own, smaller limit
    expect((await post('/unlimited', 64 * 1024)).status).toBe(200);
  });

  it('refuses before authentication: a huge body costs no credential check', async () => {
    expectProblem(await post('/private', LIMIT + 1), 413, 'ERR_BODY_TOO_LARGE');
    expectProblem(await post('/private', 10), 401, 'ERR_AUTH_MISSING');
  });

  it('counts a body that a body parser already read', async () => {
    const send = (body: string) => rawRequest(app.port, { method: 'POST', path: '/parsed', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, body });
    expect((await send(JSON.stringify({ a: 'x'.repeat(100) }))).status).toBe(200);
    expectProblem(await send(JSON.stringify({ a: 'x'.repeat(2000) })), 413, 'ERR_BODY_TOO_LARGE');
  });

  it.each([
    ['a route handed back to the app', '/monolith'],
    ['alone, in front of a handler reading the body', '/handler'],
  ])('refuses a chunked body read by the app itself: %s', async (_label, path) => {
    const upload = chunkedUpload(app.port, path);
    upload.write(600);
    await settle();
    upload.write(600);
    const res = await upload.response;
    upload.destroy();
    expectProblem(res, 413, 'ERR_BODY_TOO_LARGE');
    const fits = chunkedUpload(app.port, path);
    fits.write(500);
    fits.write(500);
    fits.end();
    const ok = await fits.response;
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toEqual({ received: 1000 });
  });

  describe('a client still sending its body when the 413 comes (RFC 9112 §9.6)', () => {
    // Before the 413 path read the rest of the body, this client got EPIPE and never saw the 413: the gateway
    // closed the socket with the body still arriving, and its TCP stack answered those bytes with a reset.
    it.each([
      ['a declared size, through the proxy', '/route', false],
      ['a chunked body, through the proxy', '/route', true],
      ['a chunked body, through proxy() alone', '/alone', true],
      ['a chunked body, to the app\'s own handler', '/handler', true],
    ])('reads its 413: %s', async (_label, path, chunked) => {
      const upload = await uploadPastTheLimit(app.port, path, { chunked, writeMs: 200, gapMs: 5, chunk: 16 * 1024, readLate: true, end: false });
      expect(upload.error).toBeUndefined();
      expectProblem({ status: upload.answer.status, headers: upload.answer.headers, body: upload.answer.body }, 413, 'ERR_BODY_TOO_LARGE');
      expect(upload.answer.headers.connection).toBe('close');
    });

    it('the app\'s own handler hears nothing of the body after the 413, not even its end', async () => {
      const before = lateEnds;
      const upload = await uploadPastTheLimit(app.port, '/handler', { chunked: true, writeMs: 50, gapMs: 5, chunk: 600, readLate: false, end: true });
      expect(upload.answer.status).toBe(413);
      // The body ended within the linger: the connection closed then, well before LINGER.ms.
      expect(upload.closedAfterAnswer).toBeLessThan(LINGER.ms / 2);
      await settle();
      expect(lateEnds).toBe(before);
    });

    it('is bounded in time: a client that never stops sending is closed LINGER.ms after its 413', async () => {
      const upload = await uploadPastTheLimit(app.port, '/route', { chunked: true, writeMs: 3 * LINGER.ms, gapMs: 10, chunk: 1024, readLate: false, end: false });
      expect(upload.answer.status).toBe(413);
      expect(upload.closedAfterAnswer).toBeGreaterThanOrEqual(LINGER.ms - 50);
      expect(upload.closedAfterAnswer).toBeLessThan(LINGER.ms + 1_000);
    });

    it('is bounded in bytes: a client sending fast is closed once LINGER.bytes were dropped, before LINGER.ms', async () => {
      const upload = await uploadPastTheLimit(app.port, '/route', { chunked: false, writeMs: 3 * LINGER.ms, gapMs: 0, chunk: 64 * 1024, readLate: false, end: false });
      expect(upload.answer.status).toBe(413);
      expect(upload.closedAfterAnswer).toBeLessThan(LINGER.ms - 200);
      // At least LINGER.bytes went by (more: the count is looked at every LINGER.checkMs).
      expect(upload.written).toBeGreaterThanOrEqual(LINGER.bytes);
    });
  });

  it('keeps serving after refusals', async () => {
    const res = await post('/route', 10);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ received: 10 });
  });
});

describe('bodyLimit() construction', () => {
  it.each([
    ['lots', /"bodyLimit" must be a size/],
    [-1, /"bodyLimit" must be a size/],
    [1.5, /"bodyLimit" must be a size/],
    [{ max: 'plenty' }, /"max" must be a size/],
    [{ maxx: '1mb' }, /Did you mean "max"/],
    [{}, /"max"/],
  ])('refuses %j', (options, message) => {
    expect(() => bodyLimit(options as never)).toThrow(ConfigError);
    expect(() => bodyLimit(options as never)).toThrow(message);
  });

  it('names the route option, and the gateway option once however many routes inherit it', () => {
    expect(() => gateway({ routes: [{ path: '/a', upstream: 'http://127.0.0.1:1', bodyLimit: 'huge' }] } as GatewayOptions)).toThrow(/"routes\[0\]\.bodyLimit" must be a size/);
    expect(() => gateway({ routes: [{ path: '/a', upstream: 'http://127.0.0.1:1', bodyLimit: { max: '1kb', onError: 'next' } }] } as GatewayOptions)).toThrow(/"routes\[0\]\.bodyLimit\.onError" cannot be set inside a route/);
    try {
      gateway({ bodyLimit: 'huge', routes: [{ path: '/a', upstream: 'http://127.0.0.1:1' }, { path: '/b', upstream: 'http://127.0.0.1:1' }] } as GatewayOptions);
      throw new Error('expected a ConfigError');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).issues.map((issue) => issue.path)).toEqual(['bodyLimit']);
    }
  });

  it('has a schema for config files that reads the same forms', () => {
    expect(bodyLimitSchema().parse('1kb')).toBe(1024);
    expect(bodyLimitSchema().parse(false)).toBe(false);
    expect(bodyLimitSchema().parse({ max: '2kb' })).toEqual({ max: 2048, onError: 'respond' });
    expect(bodyLimitSchema().safeParse('huge').success).toBe(false);
    expect(bodyLimitSchema().safeParse(true).success).toBe(false);
  });
});
