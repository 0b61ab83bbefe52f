/**
 * Upstreams for the suites. The recording upstream is the published kit's (frontdoor-gateway/testing), so
 * the suites test what users get; what stays here is internal: slow upstreams and raw TCP "upstreams"
 * that answer garbage or reset the connection.
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { startUpstream } from '../../lib/testing/upstream';
import type { Upstream } from '../../lib/testing/upstream';

export { startUpstream, closedPort, echo } from '../../lib/testing/upstream';
export type { Upstream, UpstreamHandler, StartUpstreamOptions, ReceivedRequest } from '../../lib/testing/upstream';

/** An upstream that answers `late` only after `delayMs` (the timer is dropped if the connection goes first). */
export function startSlowUpstream(name: string, delayMs: number): Promise<Upstream> {
  return startUpstream({
    name,
    handler: (_req: http.IncomingMessage, res: http.ServerResponse) => {
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
