/**
 * Real upstream HTTP servers on ephemeral 127.0.0.1 ports that record what they received, slow ones, and
 * raw TCP "upstreams" that answer garbage or reset the connection.
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface Upstream {
  /** `http://127.0.0.1:PORT` */
  url: string;
  port: number;
  server: http.Server;
  /** Requests received, in order (body collected unless `countOnly`). */
  requests: ReceivedRequest[];
  /** TCP connections accepted so far. */
  connections: number;
  close(): Promise<void>;
}

export type UpstreamHandler = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void;

export interface StartUpstreamOptions {
  /** Answers the request; defaults to a JSON echo of method, url, headers and body length. */
  handler?: UpstreamHandler;
  /** Bind to a known port (restart on the same port). Defaults to an ephemeral port. */
  port?: number;
  /** Do not buffer request bodies (for large uploads): `body` is empty and only the length is counted. */
  streaming?: boolean;
  /** Name echoed in the `x-upstream` response header and the echo body, to tell instances apart. */
  name?: string;
}

/** Default handler: echoes what was received as JSON. */
export const echo = (name: string): UpstreamHandler => (req, res, body) => {
  const payload = JSON.stringify({ upstream: name, method: req.method, url: req.url, headers: req.headers, bodyLength: body.length, body: body.toString('utf8') });
  res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': name });
  res.end(payload);
};

export async function startUpstream(options: StartUpstreamOptions = {}): Promise<Upstream> {
  const name = options.name ?? 'upstream';
  const handler = options.handler ?? echo(name);
  const requests: ReceivedRequest[] = [];
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    let length = 0;
    req.on('data', (chunk: Buffer) => {
      length += chunk.length;
      if (!options.streaming) chunks.push(chunk);
    });
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: options.streaming ? Buffer.alloc(0) : body });
      (req as { receivedLength?: number }).receivedLength = length;
      handler(req, res, body);
    });
  });
  const upstream: Upstream = {
    url: '',
    port: 0,
    server,
    requests,
    connections: 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
  server.on('connection', (socket: Socket) => {
    upstream.connections += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  upstream.port = (server.address() as AddressInfo).port;
  upstream.url = `http://127.0.0.1:${upstream.port}`;
  return upstream;
}

/** A port that was free a moment ago and has nothing listening: connections are refused. */
export async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** An upstream that answers `late` only after `delayMs` (the timer is dropped if the connection goes first). */
export function startSlowUpstream(name: string, delayMs: number): Promise<Upstream> {
  return startUpstream({
    name,
    handler: (_req, res) => {
      const timer = setTimeout(() => {
        res.writeHead(200, { 'x-upstream': name });
        res.end('late');
      }, delayMs);
      res.on('close', () => clearTimeout(timer));
    },
  });
}

export interface RawUpstream {
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** TCP connections accepted so far. */
  readonly connections: number;
  close(): Promise<void>;
}

/**
 * A raw TCP "upstream": reads the start of each request, then answers it with `reply` as is (garbage,
 * say) and closes, or, when `reply` is null, destroys the connection without answering.
 */
export async function startRawUpstream(reply: string | null): Promise<RawUpstream> {
  const sockets = new Set<net.Socket>();
  const state = { connections: 0 };
  const server = net.createServer((socket) => {
    state.connections += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.once('data', () => {
      if (reply === null) socket.destroy();
      else socket.end(reply);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    get connections() {
      return state.connections;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A raw TCP "upstream" that reads the start of each request and destroys the connection without answering. */
export function startResettingUpstream(): Promise<RawUpstream> {
  return startRawUpstream(null);
}
