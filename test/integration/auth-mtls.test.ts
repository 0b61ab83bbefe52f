import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import request from 'supertest';
import { authenticate, proxy } from '../../index';
import { expressVersions, listen } from '../helpers/app';
import { createTestPki, KeyAndCert, opensslAvailable, TestPki } from '../helpers/certs';
import { startUpstream, Upstream } from '../helpers/upstream';

const express = expressVersions[0][1]; // Express 5: the TLS layer is Node's, the same for both majors

if (!opensslAvailable) {
  console.warn('auth-mtls.test.ts: SKIPPED — the `openssl` CLI is not installed, so no test certificates can be generated.');
}
const describeWithOpenssl = opensslAvailable ? describe : describe.skip;

interface HttpsResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

describeWithOpenssl('mTLS authentication (express 5, HTTPS)', () => {
  let pki: TestPki;
  let alice: KeyAndCert;
  let bob: KeyAndCert;
  let mallory: KeyAndCert;
  let upstream: Upstream;
  let forward: ReturnType<typeof proxy>;
  let server: https.Server;
  let port: number;
  const sockets = new Set<Socket>();

  beforeAll(async () => {
    pki = createTestPki();
    alice = pki.client('alice');
    bob = pki.client('bob');
    mallory = pki.foreignClient('alice'); // same CN, untrusted CA
    upstream = await startUpstream({ name: 'internal' });
    const app = express();
    const me = (req: { user?: unknown }, res: { json(body: unknown): void }) => res.json(req.user);
    app.get('/any', authenticate({ mtls: true }), me);
    app.get('/listed', authenticate({ mtls: { consumers: { alice: { tier: 'partner', scopes: ['orders:read'] } } } }), me);
    app.get('/mapped', authenticate({ mtls: { map: (cert) => (cert.subject?.CN === 'bob' ? { id: 'bob-mapped', scopes: ['x'] } : null) } }), me);
    forward = proxy({ target: upstream.url });
    app.use('/upstream', authenticate({ mtls: true }), forward);
    server = https.createServer({ key: pki.server.key, cert: pki.server.cert, ca: pki.ca, requestCert: true, rejectUnauthorized: false }, app);
    server.on('secureConnection', (socket: Socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await forward?.close();
    for (const socket of sockets) socket.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    await upstream?.close();
    pki?.cleanup();
  });

  function get(path: string, client?: KeyAndCert): Promise<HttpsResult> {
    return new Promise((resolve, reject) => {
      const req = https.request(
        { host: '127.0.0.1', port, path, method: 'GET', ca: pki.ca, key: client?.key, cert: client?.cert, agent: false },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end();
    });
  }

  it('a client certificate from the trusted CA authenticates with consumer id = CN', async () => {
    const res = await get('/any', alice);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ id: 'alice', scheme: 'mtls', scopes: [] });
    expect(JSON.parse((await get('/any', bob)).body).id).toBe('bob');
  });

  it('a certificate from another CA (same CN) → 401 ERR_AUTH_CERT_INVALID', async () => {
    const res = await get('/any', mallory);
    expect(res.status).toBe(401);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(JSON.parse(res.body)).toMatchObject({ status: 401, code: 'ERR_AUTH_CERT_INVALID' });
    expect(res.headers['www-authenticate']).toBe('Mutual realm="api"');
  });

  it('no client certificate → 401 ERR_AUTH_MISSING', async () => {
    const res = await get('/any');
    expect(res.status).toBe(401);
    expect(JSON.parse(res.body)).toMatchObject({ status: 401, code: 'ERR_AUTH_MISSING' });
    expect(res.headers['www-authenticate']).toBe('Mutual realm="api"');
  });

  it('a consumers map admits only the listed CNs, with their tier and scopes', async () => {
    const listed = await get('/listed', alice);
    expect(listed.status).toBe(200);
    expect(JSON.parse(listed.body)).toEqual({ id: 'alice', scheme: 'mtls', tier: 'partner', scopes: ['orders:read'] });
    const unlisted = await get('/listed', bob);
    expect(unlisted.status).toBe(401);
    expect(JSON.parse(unlisted.body)).toMatchObject({ code: 'ERR_AUTH_CERT_INVALID' });
    const foreign = await get('/listed', mallory);
    expect(foreign.status).toBe(401);
    expect(JSON.parse(foreign.body)).toMatchObject({ code: 'ERR_AUTH_CERT_INVALID' });
  });

  it('a map function decides the consumer from the certificate', async () => {
    const mapped = await get('/mapped', bob);
    expect(mapped.status).toBe(200);
    expect(JSON.parse(mapped.body)).toEqual({ id: 'bob-mapped', scheme: 'mtls', scopes: ['x'] });
    expect((await get('/mapped', alice)).status).toBe(401);
  });

  it('forwards the certificate identity upstream as x-consumer-id', async () => {
    const before = upstream.requests.length;
    const res = await get('/upstream/orders', alice);
    expect(res.status).toBe(200);
    expect(upstream.requests[before].headers['x-consumer-id']).toBe('alice');
    expect((await get('/upstream/orders', mallory)).status).toBe(401);
    expect(upstream.requests.length).toBe(before + 1);
  });
});

describe('mTLS on a plain HTTP server', () => {
  it('there is no certificate to check: 401 ERR_AUTH_MISSING', async () => {
    const app = express();
    app.get('/any', authenticate({ mtls: true }), (_req, res) => {
      res.json({ ok: true });
    });
    const running = await listen(app);
    try {
      const res = await request(running.url).get('/any');
      expect(res.status).toBe(401);
      expect(res.body.code).toBe('ERR_AUTH_MISSING');
    } finally {
      await running.close();
    }
  });
});
