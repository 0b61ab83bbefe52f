/**
 * WebSocket test parts: a real `ws` upstream on an ephemeral 127.0.0.1 port that records its handshakes,
 * and a raw handshake that returns the whole HTTP answer (status, headers, body) and whether the socket closed.
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer } from 'ws';

export interface WsUpstream {
  url: string;
  /** Handshake requests that became WebSockets: their path and headers. */
  handshakes: Array<{ url: string; headers: http.IncomingHttpHeaders }>;
  close(): Promise<void>;
}

/** A `ws` server that greets every connection with `hello`. Plain HTTP requests get 426. */
export async function startWsUpstream(): Promise<WsUpstream> {
  const server = http.createServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' });
    res.end('websocket only');
  });
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  const wss = new WebSocketServer({ server });
  const upstream: WsUpstream = {
    url: '',
    handshakes: [],
    close: async () => {
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  wss.on('connection', (ws, req) => {
    upstream.handshakes.push({ url: req.url ?? '', headers: req.headers });
    ws.send('hello');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  upstream.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return upstream;
}

export interface RawUpgradeAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

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
    const parse = (): RawUpgradeAnswer => {
      const end = received.indexOf('\r\n\r\n');
      const [statusLine, ...lines] = received.slice(0, end === -1 ? received.length : end).split('\r\n');
      const parsed: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        if (colon > 0) parsed[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      return { status: Number(statusLine.split(' ')[1]), headers: parsed, body: end === -1 ? '' : received.slice(end + 4) };
    };
    socket.setEncoding('latin1');
    socket.on('connect', () => {
      const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}`);
      socket.write([`GET ${path} HTTP/1.1`, `Host: 127.0.0.1:${port}`, 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', ...extra, '', ''].join('\r\n'));
    });
    socket.on('data', (chunk: string) => {
      received += chunk;
      if (received.startsWith('HTTP/1.1 101') && received.includes('\r\n\r\n')) {
        clearTimeout(timer);
        socket.destroy();
        resolve(parse());
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      if (received) resolve(parse());
      else reject(new Error('closed without an answer'));
    });
  });
}
