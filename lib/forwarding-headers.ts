/**
 * Request headers as the upstream should see them: hop-by-hop headers removed, X-Forwarded-* set
 * according to Express's `trust proxy` (never taken blindly from an untrusted client).
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1) and their relatives. `Transfer-Encoding` is not listed: Node
 * re-frames the body on the next hop itself and needs the header to know the body is chunked.
 * `Expect` is answered by the gateway's own server (100-continue) and must not be repeated upstream.
 */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'proxy-authenticate', 'te', 'trailer', 'upgrade', 'expect'];


/** Decides whether the peer at `address`, `hop` steps from the gateway, is a trusted proxy. */
export type TrustFunction = (address: string, hop: number) => boolean;

export interface ForwardingOptions {
  /** The request is a WebSocket upgrade: keep `Connection: upgrade` and `Upgrade`. */
  websocket: boolean;
  /** Set X-Forwarded-For/Proto/Host. */
  xForwarded: boolean;
}

type AppLike = { get?: (name: string) => unknown };

/**
 * Express compiles `trust proxy` into this function; connect apps have none and trust nobody. A request
 * Express never saw (a WebSocket upgrade) has no `req.app`: the app is then the Express app serving the
 * socket's server, so upgrades follow the same `trust proxy` as requests.
 */
export function trustFunctionOf(req: IncomingMessage): TrustFunction {
  const app = (req as { app?: AppLike }).app ?? expressAppOf(req);
  const fn = typeof app?.get === 'function' ? app.get('trust proxy fn') : undefined;
  return typeof fn === 'function' ? (fn as TrustFunction) : () => false;
}

function expressAppOf(req: IncomingMessage): AppLike | undefined {
  const server = (req.socket as { server?: { listeners?: (event: string) => unknown[] } }).server;
  const listeners = typeof server?.listeners === 'function' ? server.listeners('request') : [];
  return listeners.find((listener): listener is AppLike => typeof (listener as AppLike).get === 'function' && typeof (listener as { handle?: unknown }).handle === 'function');
}

/**
 * The client's headers as the upstream should receive them, as a new object: the client's request is
 * left as it was sent (the app's own handlers may still see it).
 */
export function forwardHeaders(req: IncomingMessage, options: ForwardingOptions): IncomingHttpHeaders {
  const headers: IncomingHttpHeaders = { ...req.headers };
  const connection = headers.connection;
  for (const name of HOP_BY_HOP) {
    if (options.websocket && (name === 'connection' || name === 'upgrade')) continue;
    if (headers[name] !== undefined) delete headers[name];
  }
  if (connection) {
    // Headers the client named in Connection are hop-by-hop too, whatever their name.
    for (const token of connection.split(',')) {
      const name = token.trim().toLowerCase();
      if (!name || (options.websocket && (name === 'upgrade' || name === 'connection'))) continue;
      if (name === 'host' || name === 'content-length' || name === 'transfer-encoding') continue;
      delete headers[name];
    }
  }
  if (options.xForwarded) setForwardedFor(req, headers);
  return headers;
}

function setForwardedFor(req: IncomingMessage, headers: IncomingHttpHeaders): void {
  const remote = req.socket.remoteAddress ?? '';
  const trusted = remote !== '' && trustFunctionOf(req)(remote, 0);
  const encrypted = Boolean((req.socket as TLSSocket).encrypted);
  if (trusted) {
    const prior = headers['x-forwarded-for'];
    headers['x-forwarded-for'] = prior ? `${prior}, ${remote}` : remote;
    if (!headers['x-forwarded-proto']) headers['x-forwarded-proto'] = encrypted ? 'https' : 'http';
    if (!headers['x-forwarded-host'] && headers.host) headers['x-forwarded-host'] = headers.host;
  } else {
    // An untrusted client may have sent any of these: replace them with what the gateway saw.
    headers['x-forwarded-for'] = remote;
    headers['x-forwarded-proto'] = encrypted ? 'https' : 'http';
    if (headers.host) headers['x-forwarded-host'] = headers.host;
    else delete headers['x-forwarded-host'];
    delete headers.forwarded;
  }
}

/** Removes the upstream hop's own headers from its response before they are copied to the client. */
export function scrubResponseHeaders(headers: IncomingMessage['headers']): void {
  const connection = headers.connection;
  if (connection) {
    for (const token of connection.split(',')) {
      const name = token.trim().toLowerCase();
      if (name && name !== 'close' && name !== 'keep-alive' && name !== 'content-length' && name !== 'transfer-encoding') delete headers[name];
    }
  }
  // The same list as for requests: `Proxy-Authorization`, `TE` and `Expect` mean nothing in a response, and
  // must not carry an upstream's credentials to clients.
  for (const name of HOP_BY_HOP) if (headers[name] !== undefined) delete headers[name];
}
