/**
 * WebSocket upgrades through gateway() and proxy() on real servers: a `ws` upstream, a real Express app
 * whose HTTP server hands its 'upgrade' events to the gateway, and a `ws` client. Messages flow both
 * ways; the upstream sees the route's path, a request id and X-Forwarded-For; upgrades for routes
 * without `ws: true` are left to the app's other 'upgrade' listeners.
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import WebSocket from 'ws';
import { getContext, proxy } from '../../index';
import { expressVersions, listen } from '../helpers/app';
import { GatewayApp, gatewayApp } from '../helpers/gateway-app';
import { closedPort, startUpstream, Upstream } from '../helpers/upstream';
import { settle } from '../helpers/wait';
import { closeClient, opened, rawUpgrade, startWsUpstream, WsUpstream } from '../helpers/websocket';

/** Collects a client's messages; `next()` resolves with the next one (or one already received). */
function messageQueue(ws: WebSocket): { next(): Promise<string> } {
  const received: string[] = [];
  const waiting: Array<(message: string) => void> = [];
  ws.on('message', (data) => {
    const message = data.toString();
    const waiter = waiting.shift();
    if (waiter) waiter(message);
    else received.push(message);
  });
  return {
    next: () => {
      const ready = received.shift();
      if (ready !== undefined) return Promise.resolve(ready);
      return new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no message within 3 s')), 3_000);
        waiting.push((message) => {
          clearTimeout(timer);
          resolve(message);
        });
      });
    },
  };
}

/** Resolves with how a handshake ended: opened, or the error / unexpected HTTP response it met. */
function handshakeOutcome(ws: WebSocket): Promise<{ opened: boolean; status?: number; error?: string }> {
  return new Promise((resolve) => {
    ws.once('open', () => resolve({ opened: true }));
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      resolve({ opened: false, status: res.statusCode });
      ws.terminate();
    });
    ws.once('error', (err) => resolve({ opened: false, error: err.message }));
  });
}

describe.each(expressVersions)('WebSocket upgrades through gateway() (%s)', (_label, express) => {
  let wsUpstream: WsUpstream;
  let httpUpstream: Upstream;
  let app: GatewayApp;
  /** Upgrades nobody proxied: the app's own fallback listener sees them after the gateway. */
  const unclaimed: string[] = [];

  beforeAll(async () => {
    wsUpstream = await startWsUpstream();
    httpUpstream = await startUpstream({ name: 'api' });
    const down = await closedPort();
    app = await gatewayApp(
      {
        routes: [
          { path: '/live', upstream: wsUpstream.url, ws: true },
          { path: '/stripped-live', upstream: wsUpstream.url, ws: true, stripPath: true },
          { path: '/v2/live', upstream: wsUpstream.url, ws: true, rewrite: { '^/v2/live': '/internal/live' } },
          { path: '/dead-live', upstream: `http://127.0.0.1:${down}`, ws: true },
          { path: '/api', upstream: httpUpstream.url },
        ],
      },
      { express, upgrade: true },
    );
    // The app's own listener after the gateway's: an upgrade the gateway took has its route in the
    // request context (or was already answered); every other one is the app's, which refuses
    // (destroys) what it does not serve.
    app.server.on('upgrade', (req: http.IncomingMessage, socket: Duplex) => {
      if (getContext(req).route !== undefined || socket.writableEnded || socket.destroyed) return;
      unclaimed.push(req.url ?? '');
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      socket.destroy();
    });
  });
  afterAll(async () => {
    await app.close();
    await wsUpstream.close();
    await httpUpstream.close();
  });

  it('proxies a ws: true route: messages echo both ways over the upgraded connection', async () => {
    const client = new WebSocket(`ws://127.0.0.1:${app.port}/live/feed`);
    const messages = messageQueue(client);
    try {
      await opened(client);
      expect(await messages.next()).toBe('hello from upstream');
      client.send('ping 1');
      expect(await messages.next()).toBe('echo:ping 1');
      client.send('ping 2');
      expect(await messages.next()).toBe('echo:ping 2');
      const binary = Buffer.from([0, 1, 2, 255]);
      const echoed = new Promise<Buffer>((resolve) => client.once('message', (data) => resolve(data as Buffer)));
      client.send(binary);
      expect(Buffer.compare(await echoed, binary)).toBe(0);
    } finally {
      await closeClient(client);
    }
  });

  it('forwards the handshake with the route path, an X-Request-Id and X-Forwarded-For', async () => {
    const before = wsUpstream.handshakes.length;
    const client = new WebSocket(`ws://127.0.0.1:${app.port}/live/feed?room=7`, { headers: { 'x-request-id': 'ws-handshake-1' } });
    try {
      await opened(client);
      expect(wsUpstream.handshakes.length).toBe(before + 1);
      const handshake = wsUpstream.handshakes[before];
      expect(handshake.url).toBe('/live/feed?room=7');
      expect(handshake.headers['x-request-id']).toBe('ws-handshake-1');
      expect(handshake.headers['x-forwarded-for']).toBe('127.0.0.1');
      expect(handshake.headers.upgrade?.toLowerCase()).toBe('websocket');
    } finally {
      await closeClient(client);
    }
  });

  it('generates a request id for the upstream when the client sends none', async () => {
    const before = wsUpstream.handshakes.length;
    const client = new WebSocket(`ws://127.0.0.1:${app.port}/live/feed`);
    try {
      await opened(client);
      const id = wsUpstream.handshakes[before].headers['x-request-id'];
      expect(typeof id).toBe('string');
      expect(id).toMatch(/^[0-9a-f-]{36}$/i);
    } finally {
      await closeClient(client);
    }
  });

  it('leaves an upgrade for a route without ws: true to the other listeners (upstream untouched)', async () => {
    const wsConnectionsBefore = wsUpstream.connections;
    const httpConnectionsBefore = httpUpstream.connections;
    const unclaimedBefore = unclaimed.length;
    const client = new WebSocket(`ws://127.0.0.1:${app.port}/api/socket`);
    const outcome = await handshakeOutcome(client);
    await closeClient(client);
    await settle(); // a connection the gateway might have started would be accepted by now
    expect(outcome.opened).toBe(false);
    expect(outcome.status).toBe(404); // the app's fallback answered, not the gateway
    expect(unclaimed.slice(unclaimedBefore)).toEqual(['/api/socket']);
    expect(httpUpstream.connections).toBe(httpConnectionsBefore);
    expect(wsUpstream.connections).toBe(wsConnectionsBefore);
  });

  it('leaves an upgrade for a path no route matches to the other listeners', async () => {
    const wsConnectionsBefore = wsUpstream.connections;
    const unclaimedBefore = unclaimed.length;
    const client = new WebSocket(`ws://127.0.0.1:${app.port}/elsewhere`);
    const outcome = await handshakeOutcome(client);
    await closeClient(client);
    await settle();
    expect(outcome).toMatchObject({ opened: false, status: 404 });
    expect(unclaimed.slice(unclaimedBefore)).toEqual(['/elsewhere']);
    expect(wsUpstream.connections).toBe(wsConnectionsBefore);
  });

  it('applies stripPath and rewrite to the forwarded handshake path', async () => {
    const before = wsUpstream.handshakes.length;
    const stripped = new WebSocket(`ws://127.0.0.1:${app.port}/stripped-live/feed?a=1`);
    const rewritten = new WebSocket(`ws://127.0.0.1:${app.port}/v2/live/feed?b=2`);
    try {
      await Promise.all([opened(stripped), opened(rewritten)]);
      expect(wsUpstream.handshakes.slice(before).map((h) => h.url).sort()).toEqual(['/feed?a=1', '/internal/live/feed?b=2']);
    } finally {
      await closeClient(stripped);
      await closeClient(rewritten);
    }
  });

  it('answers the handshake with 502 when the ws route\'s upstream is down', async () => {
    const client = new WebSocket(`ws://127.0.0.1:${app.port}/dead-live/feed`);
    const outcome = await handshakeOutcome(client);
    await closeClient(client);
    expect(outcome).toEqual({ opened: false, status: 502 });
  });

  it('refuses a handshake with dot segments on a ws route with 400, without contacting the upstream', async () => {
    const before = wsUpstream.connections;
    // A raw handshake: WHATWG URL parsing in a client would resolve the dot segments before sending.
    const { statusLine } = await rawUpgrade(app.port, '/live/x/%2e%2e/feed');
    await settle();
    expect(statusLine).toMatch(/^HTTP\/1\.1 400 /);
    expect(wsUpstream.connections).toBe(before);
  });

  it('still serves plain HTTP on the same server for the other route', async () => {
    const res = await fetch(`${app.url}/api/orders/1`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ upstream: 'api', url: '/api/orders/1' });
  });
});

describe('WebSocket upgrades through proxy() alone', () => {
  it('proxies upgrades with ws: true via server.on("upgrade", p.upgrade)', async () => {
    const wsUpstream = await startWsUpstream();
    const p = proxy({ target: wsUpstream.url, ws: true });
    const app = await listen((req, res) => p(req, res, () => {
      res.statusCode = 404;
      res.end();
    }));
    app.server.on('upgrade', p.upgrade);
    const port = app.port;
    const client = new WebSocket(`ws://127.0.0.1:${port}/stream/1?x=2`);
    const messages = messageQueue(client);
    try {
      await opened(client);
      expect(await messages.next()).toBe('hello from upstream');
      client.send('over the plain proxy');
      expect(await messages.next()).toBe('echo:over the plain proxy');
      expect(wsUpstream.handshakes.at(-1)?.url).toBe('/stream/1?x=2');
      expect(wsUpstream.handshakes.at(-1)?.headers['x-forwarded-for']).toBe('127.0.0.1');
      expect(wsUpstream.handshakes.at(-1)?.headers['x-request-id']).toEqual(expect.any(String));
    } finally {
      await closeClient(client);
      await p.close();
      await app.close();
      await wsUpstream.close();
    }
  });

  it('refuses upgrades when ws is not enabled, without contacting the upstream', async () => {
    const wsUpstream = await startWsUpstream();
    const p = proxy({ target: wsUpstream.url });
    const app = await listen((req, res) => p(req, res));
    app.server.on('upgrade', p.upgrade);
    const port = app.port;
    const client = new WebSocket(`ws://127.0.0.1:${port}/stream`);
    try {
      const outcome = await handshakeOutcome(client);
      expect(outcome.opened).toBe(false);
      expect(wsUpstream.connections).toBe(0);
    } finally {
      await closeClient(client);
      await p.close();
      await app.close();
      await wsUpstream.close();
    }
  });
});
