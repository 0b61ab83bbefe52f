/**
 * A real upstream for tests: an HTTP server on an ephemeral 127.0.0.1 port that records what it received
 * (method, path, headers, body, as they arrived), answers with an echo, a handler or a canned reply, and
 * fails on demand (refused connections, resets, hangs, error statuses, slow answers).
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import ms from 'ms';
import { track, untrack } from './registry';

/** A request as the upstream received it. */
export interface ReceivedRequest {
  method: string;
  /** The request target as received, query included: `/api/orders?page=2`. */
  url: string;
  /** The path without the query: `/api/orders`. */
  path: string;
  /** Header names are lower-case, as Node gives them. */
  headers: http.IncomingHttpHeaders;
  /** The body bytes (empty for an upstream started with `streaming: true`). */
  body: Buffer;
}

/**
 * How the upstream fails, for the next `times` requests (or until `recover()`):
 * - `'refuse'`: nothing listens on the port any more, open connections are dropped (a crashed instance);
 * - `'reset'`: the request is read, then the connection is destroyed without an answer;
 * - `'hang'`: the request is read and never answered;
 * - `'status:503'` (any status): answers that status with a short text body;
 * - `'slow:500ms'` (any duration, `'2s'`): answers as usual, that much later.
 */
export type FailureMode = 'refuse' | 'reset' | 'hang' | `status:${number}` | `slow:${string}`;

export interface FailOptions {
  /** How many requests fail; later ones are answered as usual. Defaults to every request until `recover()`. Not for `'refuse'`: refused connections cannot be counted. */
  times?: number;
}

export interface Upstream {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  readonly port: number;
  readonly server: http.Server;
  /** Requests received, in order. */
  readonly requests: ReceivedRequest[];
  /** TCP connections accepted so far. */
  readonly connections: number;
  /**
   * Fails the next `times` requests (default: all, until `recover()`), then answers as usual again. A
   * later call replaces the current failure. Resolves once the failure is in place (`'refuse'` closes the listener).
   */
  fail(mode: FailureMode, options?: FailOptions): Promise<void>;
  /** Ends a failure: answers as usual again (`'refuse'`: listens again on the same port). */
  recover(): Promise<void>;
  /** Answers every request with this status, body (an object is sent as JSON) and headers, instead of the handler. */
  reply(status: number, body?: unknown, headers?: http.OutgoingHttpHeaders): void;
  /** Back to the state it started in: no failure, no canned reply, no recorded requests. */
  reset(): Promise<void>;
  close(): Promise<void>;
}

/** Answers a request; `body` is the request body, already read. */
export type UpstreamHandler = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void;

export interface StartUpstreamOptions {
  /** Answers the request. Defaults to a JSON echo: `{ upstream, method, url, headers, bodyLength, body }`. */
  handler?: UpstreamHandler;
  /** Name echoed in the `x-upstream` response header and the echo body, to tell instances apart. Defaults to `'upstream'`. */
  name?: string;
  /** Listen on this port (to restart an instance on its old port). Defaults to an ephemeral port. */
  port?: number;
  /** Do not keep request bodies (large uploads): `body` is recorded empty, only the length is counted. Defaults to false. */
  streaming?: boolean;
}

/** The default handler: echoes what was received as JSON, with the upstream's name. */
export const echo = (name: string): UpstreamHandler => (req, res, body) => {
  const payload = JSON.stringify({ upstream: name, method: req.method, url: req.url, headers: req.headers, bodyLength: body.length, body: body.toString('utf8') });
  res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': name });
  res.end(payload);
};

interface Failure {
  mode: FailureMode;
  remaining: number;
  /** For `slow:…`, the delay in ms. */
  delayMs: number;
  /** For `status:…`, the status. */
  status: number;
}

/**
 * Starts a recording upstream on 127.0.0.1 (an ephemeral port unless `port` is given).
 *
 * @example
 * const orders = await startUpstream();                    // echoes the request as JSON
 * const users = await startUpstream((req, res) => res.end('[]'));
 * await orders.fail('status:503', { times: 1 });
 */
export async function startUpstream(handlerOrOptions: UpstreamHandler | StartUpstreamOptions = {}): Promise<Upstream> {
  const options: StartUpstreamOptions = typeof handlerOrOptions === 'function' ? { handler: handlerOrOptions } : handlerOrOptions;
  const name = options.name ?? 'upstream';
  const handler = options.handler ?? echo(name);
  const requests: ReceivedRequest[] = [];
  const sockets = new Set<Socket>();
  let failure: Failure | undefined;
  let canned: { status: number; body: Buffer; headers: http.OutgoingHttpHeaders } | undefined;
  let connections = 0;
  let port = options.port ?? 0;
  let listening = false;
  let closed = false;

  function answer(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): void {
    if (canned) {
      res.writeHead(canned.status, canned.headers);
      res.end(canned.body);
    } else {
      handler(req, res, body);
    }
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    let length = 0;
    req.on('data', (chunk: Buffer) => {
      length += chunk.length;
      if (!options.streaming) chunks.push(chunk);
    });
    req.on('end', () => {
      const body = options.streaming ? Buffer.alloc(0) : Buffer.concat(chunks);
      const url = req.url ?? '';
      const query = url.indexOf('?');
      requests.push({ method: req.method ?? '', url, path: query === -1 ? url : url.slice(0, query), headers: req.headers, body });
      (req as { receivedLength?: number }).receivedLength = length;
      const current = failure && failure.remaining > 0 ? failure : undefined;
      if (!current) return answer(req, res, body);
      current.remaining -= 1;
      if (current.mode === 'reset') {
        req.socket.destroy();
      } else if (current.mode === 'hang') {
        // Never answered; close() destroys the socket.
      } else if (current.mode.startsWith('status:')) {
        res.writeHead(current.status, { 'content-type': 'text/plain; charset=utf-8', 'x-upstream': name });
        res.end(`${name} failed on purpose (${current.mode})`);
      } else {
        const timer = setTimeout(() => answer(req, res, body), current.delayMs);
        res.on('close', () => clearTimeout(timer));
      }
    });
  });
  server.on('connection', (socket: Socket) => {
    connections += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  async function listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    port = (server.address() as AddressInfo).port;
    listening = true;
  }

  /** Stops listening and drops every open connection (keep-alive ones too: a client pool must notice). */
  function stopListening(): Promise<void> {
    if (!listening) return Promise.resolve();
    listening = false;
    return new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const socket of sockets) socket.destroy();
    });
  }

  const upstream: Upstream = {
    get url() {
      return `http://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    server,
    requests,
    get connections() {
      return connections;
    },
    async fail(mode: FailureMode, failOptions: FailOptions = {}) {
      const parsed = parseFailure(mode, failOptions);
      if (mode === 'refuse') {
        failure = undefined;
        await stopListening();
        return;
      }
      if (!listening && !closed) await listen();
      failure = parsed;
    },
    async recover() {
      failure = undefined;
      if (!listening && !closed) await listen();
    },
    reply(status: number, body?: unknown, headers: http.OutgoingHttpHeaders = {}) {
      if (!Number.isInteger(status) || status < 100 || status > 599) throw new TypeError(`upstream.reply(): the status must be an HTTP status (100–599); received ${String(status)}.`);
      const json = body !== undefined && !Buffer.isBuffer(body) && typeof body !== 'string';
      const bytes = body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(body) ? body : Buffer.from(json ? JSON.stringify(body) : (body as string));
      const type = json ? 'application/json' : Buffer.isBuffer(body) ? 'application/octet-stream' : 'text/plain; charset=utf-8';
      const names = Object.keys(headers).map((header) => header.toLowerCase());
      canned = { status, body: bytes, headers: { ...(body !== undefined && !names.includes('content-type') ? { 'content-type': type } : {}), 'x-upstream': name, ...headers } };
    },
    async reset() {
      canned = undefined;
      requests.length = 0;
      await upstream.recover();
    },
    async close() {
      if (closed) return;
      closed = true;
      untrack(upstream);
      await stopListening();
    },
  };
  await listen();
  track(upstream);
  return upstream;
}

function parseFailure(mode: FailureMode, options: FailOptions): Failure {
  const times = options.times ?? Infinity;
  if (times !== Infinity && (!Number.isInteger(times) || times < 1)) throw new TypeError(`upstream.fail(): "times" must be a whole number of requests, at least 1; received ${String(options.times)}.`);
  if (mode === 'refuse') {
    if (options.times !== undefined) throw new TypeError("upstream.fail('refuse') takes no \"times\": nothing listens, so refused connections cannot be counted. Call upstream.recover() to listen again.");
    return { mode, remaining: Infinity, delayMs: 0, status: 0 };
  }
  if (mode === 'reset' || mode === 'hang') return { mode, remaining: times, delayMs: 0, status: 0 };
  const status = /^status:(\d{3})$/.exec(mode);
  if (status && Number(status[1]) >= 100 && Number(status[1]) <= 599) return { mode, remaining: times, delayMs: 0, status: Number(status[1]) };
  const slow = /^slow:(.+)$/.exec(String(mode));
  const delayMs = slow ? (/^\d+$/.test(slow[1]) ? Number(slow[1]) : ms(slow[1] as ms.StringValue)) : NaN;
  if (slow && Number.isFinite(delayMs) && delayMs >= 0) return { mode, remaining: times, delayMs, status: 0 };
  throw new TypeError(`upstream.fail(): unknown failure ${JSON.stringify(mode)}. Use 'refuse', 'reset', 'hang', 'status:503' (any status) or 'slow:500ms' (any duration).`);
}

/** A port on 127.0.0.1 that was free a moment ago and has nothing listening: connections to it are refused. */
export async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
