/**
 * WebSocket test parts: a real `ws` upstream on an ephemeral 127.0.0.1 port that records its handshakes
 * and plain requests, a raw handshake (request bytes, and one sent that returns the whole HTTP answer),
 * and the `ws` client's open and close as promises.
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { parseResponse, RawResponse } from './raw';

export interface WsUpstream {
  url: string;
  /** TCP connections accepted by the upstream's HTTP server. */
  connections: number;
  /** Handshake requests that became WebSockets: their path and headers. */
  handshakes: Array<{ url: string; headers: http.IncomingHttpHeaders }>;
  /** Plain HTTP requests (answered 426): their path and headers. */
  plain: Array<{ url: string; headers: http.IncomingHttpHeaders }>;
  close(): Promise<void>;
}

/**
 * A `ws` server that greets every connection with `hello from upstream` and echoes every message back
 * (text prefixed with `echo:`, binary as it came). Plain HTTP requests are recorded and get 426.
 */
export async function startWsUpstream(): Promise<WsUpstream> {
  const plain: WsUpstream['plain'] = [];
  const server = http.createServer((req, res) => {
    plain.push({ url: req.url ?? '', headers: req.headers });
    res.writeHead(426, { 'content-type': 'text/plain' });
    res.end('websocket only');
  });
  const sockets = new Set<Socket>();
  const wss = new WebSocketServer({ server });
  const upstream: WsUpstream = {
    url: '',
    connections: 0,
    handshakes: [],
    plain,
    close: async () => {
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  server.on('connection', (socket: Socket) => {
    upstream.connections += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  wss.on('connection', (ws, req) => {
    upstream.handshakes.push({ url: req.url ?? '', headers: req.headers });
    ws.send('hello from upstream');
    ws.on('message', (data, isBinary) => ws.send(isBinary ? data : `echo:${data.toString()}`, { binary: isBinary }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  upstream.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return upstream;
}

/** A WebSocket handshake request, byte for byte, with extra header lines. */
export function handshakeRequest(path: string, headers: Record<string, string> = {}, host = '127.0.0.1'): string {
  return [
    `GET ${path} HTTP/1.1`,
    `Host: ${host}`,
    'Connection: Upgrade',
    'Upgrade: websocket',
    'Sec-WebSocket-Version: 13',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
    '',
    '',
  ].join('\r\n');
}

/** The answer to a raw handshake; `closed` is true when the server closed the socket (every answer but 101). */
export type RawUpgradeAnswer = RawResponse;

/**
 * Sends a WebSocket handshake byte for byte and resolves with the answer: for 101 as soon as its headers
 * arrived (the socket is then closed by us), otherwise once the server closed the socket (within 3 s).
 */
export function rawUpgrade(port: number, path: string, headers: Record<string, string> = {}): Promise<RawUpgradeAnswer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let received = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`socket still open after 3 s: ${JSON.stringify(received)}`));
    }, 3_000);
    socket.setEncoding('latin1');
    socket.on('connect', () => socket.write(handshakeRequest(path, headers, `127.0.0.1:${port}`)));
    socket.on('data', (chunk: string) => {
      received += chunk;
      if (received.startsWith('HTTP/1.1 101') && received.includes('\r\n\r\n')) {
        clearTimeout(timer);
        socket.destroy();
        resolve(parseResponse(received, false));
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      if (received) resolve(parseResponse(received, true));
      else reject(new Error('closed without an answer'));
    });
  });
}

/** Resolves when the client's handshake succeeded (101), rejects with the status it got otherwise. */
export function opened(ws: WebSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      reject(new Error(`handshake answered ${res.statusCode}`));
    });
    ws.once('error', reject);
  });
}

/** Closes a client (terminating one still connecting) and resolves once it is closed. */
export function closeClient(ws: WebSocket): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
  return new Promise((resolve) => {
    ws.once('close', () => resolve());
    if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
    else ws.close();
  });
}
