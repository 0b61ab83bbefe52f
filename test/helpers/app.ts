/**
 * Builds real Express (4 and 5) and connect apps listening on ephemeral 127.0.0.1 ports.
 * Integration suites run once per Express major: `describe.each(expressVersions)`.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import express5 from 'express';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const express4 = require('express4') as typeof express5;

export type ExpressFactory = typeof express5;

/** [label, express] pairs for `describe.each`. */
export const expressVersions: Array<[string, ExpressFactory]> = [
  ['express 5', express5],
  ['express 4', express4],
];

export interface RunningApp {
  url: string;
  port: number;
  server: http.Server;
  close(): Promise<void>;
}

/** Listens on an ephemeral port; `close()` also destroys kept-alive client sockets. */
export async function listen(handler: http.RequestListener): Promise<RunningApp> {
  const server = http.createServer(handler);
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A raw HTTP request (no client-side URL normalisation), for path and header edge cases. */
export function rawRequest(
  port: number,
  options: { method?: string; path: string; headers?: Record<string, string | string[]>; body?: string | Buffer },
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: options.method ?? 'GET', path: options.path, headers: options.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}
