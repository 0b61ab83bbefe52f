/**
 * https upstreams with a private CA and mutual TLS: the upstream only accepts clients with a
 * certificate from its CA. proxy()/gateway() with `tls: { ca, cert, key }` reach it and present the
 * client certificate; without the client certificate, or without trusting the private CA, the
 * request fails as a 502 problem and the upstream's handler never runs. The PKI is generated at test
 * time with the `openssl` CLI into a temp dir (test/helpers/certs.ts).
 */
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import request from 'supertest';
import { proxy } from '../../index';
import type { TlsOptions } from '../../index';
import { createTestPki, KeyAndCert, opensslAvailable, TestPki } from '../helpers/certs';
import { expressVersions, listen, RunningApp } from '../helpers/app';
import { gatewayApp } from '../helpers/gateway-app';

if (!opensslAvailable) {
  console.warn('https-upstream.test.ts: SKIPPED — the `openssl` CLI is not available (`openssl version` failed), so no test PKI can be generated.');
}
const describeWithOpenssl = opensslAvailable ? describe : describe.skip;

interface HttpsUpstream {
  url: string;
  /** Requests the handler answered: path and the client certificate's subject CN. */
  seen: Array<{ url: string; clientCn: string | undefined }>;
  close(): Promise<void>;
}

/** An mTLS upstream: server cert for 127.0.0.1, requires a client cert signed by the test CA. */
async function startHttpsUpstream(pki: TestPki): Promise<HttpsUpstream> {
  const seen: HttpsUpstream['seen'] = [];
  const server = https.createServer(
    { key: pki.server.key, cert: pki.server.cert, ca: pki.ca, requestCert: true, rejectUnauthorized: true },
    (req, res) => {
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      const clientCn = peer && peer.subject ? String(peer.subject.CN) : undefined;
      seen.push({ url: req.url ?? '', clientCn });
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ url: req.url, clientCn, authorized: (req.socket as TLSSocket).authorized }));
      });
    },
  );
  const sockets = new Set<Socket>();
  server.on('secureConnection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

describeWithOpenssl.each(expressVersions)('https upstream with a private CA and mTLS (%s)', (_label, express) => {
  let pki: TestPki;
  let client: KeyAndCert;
  let foreign: KeyAndCert;
  let upstream: HttpsUpstream;

  beforeAll(async () => {
    pki = createTestPki();
    client = pki.client('frontdoor-gateway');
    foreign = pki.foreignClient('intruder');
    upstream = await startHttpsUpstream(pki);
  });
  afterAll(async () => {
    await upstream?.close();
    pki?.cleanup();
  });

  /** Mounts a proxy with the given tls options on a fresh app, runs `fn`, closes everything. */
  async function withProxy(tls: TlsOptions | undefined, fn: (app: RunningApp, p: ReturnType<typeof proxy>) => Promise<void>): Promise<void> {
    const p = proxy({ target: upstream.url, tls, health: { passive: false } });
    const server = express();
    server.use('/secure', p);
    const app = await listen(server);
    try {
      await fn(app, p);
    } finally {
      await p.close();
      await app.close();
    }
  }

  it('forwards over TLS presenting the client certificate; the upstream sees its subject CN', async () => {
    await withProxy({ ca: pki.ca, cert: client.cert, key: client.key }, async (app) => {
      const before = upstream.seen.length;
      const res = await request(app.url).get('/secure/orders/7?x=1').expect(200);
      expect(res.body).toEqual({ url: '/secure/orders/7?x=1', clientCn: 'frontdoor-gateway', authorized: true });
      // A second request (pooled TLS connection) still carries the identity.
      const again = await request(app.url).post('/secure/orders').send({ a: 1 }).expect(200);
      expect(again.body.clientCn).toBe('frontdoor-gateway');
      expect(upstream.seen.slice(before).map((s) => s.clientCn)).toEqual(['frontdoor-gateway', 'frontdoor-gateway']);
    });
  });

  it('without the client certificate the upstream refuses the connection: 502 problem+json', async () => {
    await withProxy({ ca: pki.ca }, async (app) => {
      const before = upstream.seen.length;
      const res = await request(app.url).get('/secure/orders/7').expect(502);
      expect(res.headers['content-type']).toContain('application/problem+json');
      expect(res.body.status).toBe(502);
      expect(['ERR_UPSTREAM_UNAVAILABLE', 'ERR_UPSTREAM_RESET']).toContain(res.body.code);
      expect(res.body.requestId).toBe(res.headers['x-request-id']);
      expect(upstream.seen.length).toBe(before);
    });
  });

  it('with a client certificate from a CA the upstream does not trust: 502', async () => {
    await withProxy({ ca: pki.ca, cert: foreign.cert, key: foreign.key }, async (app) => {
      const before = upstream.seen.length;
      const res = await request(app.url).get('/secure/orders/7').expect(502);
      expect(['ERR_UPSTREAM_UNAVAILABLE', 'ERR_UPSTREAM_RESET']).toContain(res.body.code);
      expect(upstream.seen.length).toBe(before);
    });
  });

  it('without the private CA the upstream certificate is not trusted: 502 ERR_UPSTREAM_UNAVAILABLE', async () => {
    await withProxy({ cert: client.cert, key: client.key }, async (app) => {
      const before = upstream.seen.length;
      const res = await request(app.url).get('/secure/orders/7').expect(502);
      expect(res.headers['content-type']).toContain('application/problem+json');
      expect(res.body).toMatchObject({ status: 502, code: 'ERR_UPSTREAM_UNAVAILABLE' });
      // The problem never leaks TLS internals or the upstream address.
      expect(JSON.stringify(res.body)).not.toContain('127.0.0.1');
      expect(upstream.seen.length).toBe(before);
    });
  });

  it('trusting a different CA is not enough either: 502', async () => {
    await withProxy({ ca: pki.otherCa, cert: client.cert, key: client.key }, async (app) => {
      const before = upstream.seen.length;
      await request(app.url).get('/secure/orders/7').expect(502);
      expect(upstream.seen.length).toBe(before);
    });
  });

  it('a gateway route with upstream.tls reaches the mTLS upstream', async () => {
    const app = await gatewayApp({ routes: [{ path: '/api', upstream: { target: upstream.url, tls: { ca: pki.ca, cert: client.cert, key: client.key } }, stripPath: true }] }, { express });
    try {
      const res = await request(app.url).get('/api/items?q=1').expect(200);
      expect(res.body).toEqual({ url: '/items?q=1', clientCn: 'frontdoor-gateway', authorized: true });
    } finally {
      await app.close();
    }
  });

  it('active health checks use the same TLS settings: the target stays up', async () => {
    const p = proxy({ target: upstream.url, tls: { ca: pki.ca, cert: client.cert, key: client.key }, health: { active: { interval: '100ms' } } });
    const events: string[] = [];
    p.pool.on('eject', () => events.push('eject'));
    try {
      const deadline = Date.now() + 2_000;
      while (!upstream.seen.some((s) => s.url === '/health') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const check = upstream.seen.find((s) => s.url === '/health');
      expect(check?.clientCn).toBe('frontdoor-gateway');
      await new Promise((r) => setTimeout(r, 250));
      expect(p.pool.targets[0].activeDown).toBe(false);
      expect(events).toEqual([]);
    } finally {
      await p.close();
    }
  });
});
