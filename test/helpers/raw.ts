/**
 * Raw HTTP/1.1 on a TCP socket, for what a client library would normalise or refuse: writes bytes as
 * given, reads everything the server answers, and tells whether the server closed the socket.
 */
import net from 'node:net';

export interface RawResponse {
  /** Everything the server wrote on the socket. */
  raw: string;
  /** The socket closed by itself (within the wait). */
  closed: boolean;
  statusLine: string;
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Parses an HTTP/1.1 response (de-chunking a chunked body; repeated headers joined with ", "). */
export function parseResponse(raw: string, closed: boolean): RawResponse {
  const end = raw.indexOf('\r\n\r\n');
  const head = end === -1 ? raw : raw.slice(0, end);
  let body = end === -1 ? '' : raw.slice(end + 4);
  const [statusLine, ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon === -1) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  if (headers['transfer-encoding']?.toLowerCase() === 'chunked') {
    let decoded = '';
    let rest = body;
    for (;;) {
      const lineEnd = rest.indexOf('\r\n');
      if (lineEnd === -1) break;
      const size = parseInt(rest.slice(0, lineEnd), 16);
      if (!Number.isFinite(size) || size === 0) break;
      decoded += rest.slice(lineEnd + 2, lineEnd + 2 + size);
      rest = rest.slice(lineEnd + 2 + size + 2);
    }
    body = decoded;
  } else if (headers['content-length'] !== undefined) {
    body = body.slice(0, Number(headers['content-length']));
  }
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
  return { raw, closed, statusLine, status, headers, body };
}

/**
 * Writes `chunks` on a fresh TCP connection byte for byte (a delay between chunks when given), then waits
 * for the server to close the socket: `closed` is false when it did not within `waitMs`.
 */
export function sendRaw(port: number, chunks: string | string[], options: { waitMs?: number; gapMs?: number } = {}): Promise<RawResponse> {
  const parts = Array.isArray(chunks) ? chunks : [chunks];
  const waitMs = options.waitMs ?? 2_000;
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const received: Buffer[] = [];
    let settled = false;
    const done = (closed: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(parseResponse(Buffer.concat(received).toString('latin1'), closed));
    };
    const timer = setTimeout(() => done(false), waitMs);
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.on('close', () => done(true));
    socket.on('error', (err) => {
      if (!settled && received.length === 0) {
        settled = true;
        clearTimeout(timer);
        reject(err);
      }
    });
    socket.on('connect', async () => {
      for (let i = 0; i < parts.length; i++) {
        if (i > 0 && options.gapMs) await new Promise((r) => setTimeout(r, options.gapMs));
        if (!socket.destroyed) socket.write(parts[i], 'latin1');
      }
    });
  });
}
