/**
 * A real JWKS endpoint for tests, on an ephemeral 127.0.0.1 port: `startJwks()` holds a signing key,
 * signs tokens with it and rotates it; `startJwksServer(keys)` only serves the keys it is given.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { JWK, JWTPayload } from 'jose';
import { track, untrack } from './registry';
import { AsymmetricAlgorithm, createKeyPair, KeyPair, signToken, SignTokenOptions } from './tokens';

/** Where the document is served. */
export const JWKS_PATH = '/.well-known/jwks.json';

/** `'ok'` serves the keys; `'error'` answers 500; `'hang'` accepts the request and never answers. */
export type JwksMode = 'ok' | 'error' | 'hang';

export interface JwksServer {
  /** Full URL of the JWKS document (what `auth.jwt.jwksUri` takes). */
  jwksUri: string;
  port: number;
  /** JWKS documents served so far. */
  readonly fetches: number;
  /** Replaces the served keys. */
  setKeys(keys: JWK[]): void;
  /** `status` is what `'error'` answers with (default 500). */
  setMode(mode: JwksMode, status?: number): void;
  close(): Promise<void>;
}

/** Serves `{ keys }` at `/.well-known/jwks.json` (404 elsewhere), counting fetches. */
export async function startJwksServer(initialKeys: JWK[]): Promise<JwksServer> {
  let keys = initialKeys;
  let fetches = 0;
  let mode: JwksMode = 'ok';
  let errorStatus = 500;
  let closed = false;
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === JWKS_PATH) {
      fetches += 1;
      if (mode === 'hang') return; // the socket is destroyed by close()
      if (mode === 'error') {
        res.writeHead(errorStatus, { 'content-type': 'text/plain' });
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
  const jwks: JwksServer = {
    jwksUri: `http://127.0.0.1:${port}${JWKS_PATH}`,
    port,
    get fetches() {
      return fetches;
    },
    setKeys(next: JWK[]) {
      keys = next;
    },
    setMode(next: JwksMode, status = 500) {
      mode = next;
      errorStatus = status;
    },
    close() {
      if (closed) return Promise.resolve();
      closed = true;
      untrack(jwks);
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
    },
  };
  track(jwks);
  return jwks;
}

export interface StartJwksOptions {
  /** The signing algorithm of its keys. Defaults to `'RS256'`. */
  algorithm?: AsymmetricAlgorithm;
  /** Added as `iss` to the tokens `sign()` makes (unless the claims have one). Defaults to none. */
  issuer?: string;
  /** Added as `aud` to the tokens `sign()` makes (unless the claims have one). Defaults to none. */
  audience?: string | string[];
}

export interface RotateOptions {
  /** Keep serving the previous keys next to the new one, as identity providers do while old tokens expire. Defaults to true; false retires them at once. */
  keepPrevious?: boolean;
}

/** A JWKS endpoint with a signing key: what an identity provider looks like to the gateway. */
export interface Jwks {
  /** URL of the JWKS document: `auth: { jwt: { jwksUri: jwks.url, algorithms: ['RS256'] } }`. */
  readonly url: string;
  /** The key `sign()` uses now. */
  readonly key: KeyPair;
  /** The public keys served now. */
  readonly keys: JWK[];
  /** JWKS documents served so far (the gateway caches them). */
  readonly fetches: number;
  /** Signs `claims` with the current key (its `kid` in the header). Options as signToken()'s, less the key. */
  sign(claims: JWTPayload, options?: Pick<SignTokenOptions, 'expiresIn' | 'header'>): Promise<string>;
  /** Makes a new current key (a new `kid`) and serves it; resolves with it. */
  rotate(options?: RotateOptions): Promise<KeyPair>;
  /** The endpoint fails: `'status:500'` (any status) or `'hang'`, until `recover()`. */
  fail(mode: 'hang' | `status:${number}`): void;
  recover(): void;
  close(): Promise<void>;
}

/**
 * Starts a JWKS endpoint with one key of `algorithm` (default RS256).
 *
 * @example
 * const idp = await startJwks();
 * const gw = gateway({ routes: [{ path: '/api', upstream: orders.url, auth: { jwt: { jwksUri: idp.url, algorithms: ['RS256'] } } }] });
 * const token = await idp.sign({ sub: 'alice' });
 * await idp.rotate();                 // new kid: the gateway fetches the document again
 */
export async function startJwks(options: StartJwksOptions = {}): Promise<Jwks> {
  const algorithm = options.algorithm ?? 'RS256';
  let key = await createKeyPair(algorithm);
  let published: KeyPair[] = [key];
  const server = await startJwksServer([key.jwk]);
  const jwks: Jwks = {
    url: server.jwksUri,
    get key() {
      return key;
    },
    get keys() {
      return published.map((pair) => pair.jwk);
    },
    get fetches() {
      return server.fetches;
    },
    sign(claims: JWTPayload, signOptions: Pick<SignTokenOptions, 'expiresIn' | 'header'> = {}) {
      const full: JWTPayload = { ...(options.issuer !== undefined ? { iss: options.issuer } : {}), ...(options.audience !== undefined ? { aud: options.audience } : {}), ...claims };
      return signToken(full, { privateKey: key.privateKey, algorithm: key.alg, kid: key.kid, ...signOptions });
    },
    async rotate(rotateOptions: RotateOptions = {}) {
      const next = await createKeyPair(algorithm);
      published = rotateOptions.keepPrevious === false ? [next] : [...published, next];
      key = next;
      server.setKeys(published.map((pair) => pair.jwk));
      return next;
    },
    fail(mode: 'hang' | `status:${number}`) {
      if (mode === 'hang') server.setMode('hang');
      else if (/^status:[1-5]\d\d$/.test(mode)) server.setMode('error', Number(mode.slice(7)));
      else throw new TypeError(`jwks.fail(): unknown failure ${JSON.stringify(mode)}. Use 'hang' or 'status:500' (any status).`);
    },
    recover() {
      server.setMode('ok');
    },
    close: () => server.close(),
  };
  return jwks;
}
