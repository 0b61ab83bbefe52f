/**
 * A real JWKS endpoint on an ephemeral 127.0.0.1 port: serves `{ keys }` at `/.well-known/jwks.json`,
 * counts how often it was fetched, and can rotate its keys while running.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { JWK } from 'jose';

export interface JwksServer {
  /** Full URL of the JWKS document. */
  jwksUri: string;
  port: number;
  /** Number of JWKS documents served so far. */
  readonly fetches: number;
  /** Replaces the served keys (key rotation). */
  setKeys(keys: JWK[]): void;
  /** `'ok'` serves the keys; `'error'` answers 500; `'hang'` accepts the request and never answers. */
  setMode(mode: JwksMode): void;
  close(): Promise<void>;
}

export type JwksMode = 'ok' | 'error' | 'hang';

export const JWKS_PATH = '/.well-known/jwks.json';

export async function startJwksServer(initialKeys: JWK[]): Promise<JwksServer> {
  let keys = initialKeys;
  let fetches = 0;
  let mode: JwksMode = 'ok';
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === JWKS_PATH) {
      fetches += 1;
      if (mode === 'hang') return; // the socket is destroyed by close()
      if (mode === 'error') {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end('identity provider is down');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys }));
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found');
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    jwksUri: `http://127.0.0.1:${port}${JWKS_PATH}`,
    port,
    get fetches() {
      return fetches;
    },
    setKeys(next: JWK[]) {
      keys = next;
    },
    setMode(next: JwksMode) {
      mode = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
