/**
 * HTTP answers on an upgrade's socket. Node hands an `Upgrade:` request to 'upgrade' listeners with a bare
 * socket and no response object; these helpers give it one, so route policies answer a refused upgrade
 * exactly as they answer a request (401/403/429 problem+json, then close), and an upgrade no route takes
 * is served as the plain HTTP/1.1 request it also is (RFC 9110 §7.8 lets a server ignore `Upgrade`).
 */
import { IncomingMessage, ServerResponse } from 'node:http';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { GatewayError } from './errors';
import { sendProblem } from './problem';

/** Default idle limit of a socket served this way, when its server sets no `requestTimeout`. */
const IDLE_TIMEOUT_MS = 300_000;

/**
 * A response written to the upgrade's socket; the socket is closed once it is sent (the HTTP parser is gone,
 * so no further request can follow on it). `release()` hands the socket back untouched, for the proxy.
 */
export function upgradeResponse(req: IncomingMessage, socket: Duplex): { res: ServerResponse; release(): void } {
  const res = new ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket as Socket);
  const close = () => socket.end();
  res.once('finish', close);
  return {
    res,
    release() {
      res.off('finish', close);
      res.detachSocket(socket as Socket);
    },
  };
}

/** Answers an upgrade with a problem document on its socket, then closes it. */
export function refuseUpgrade(req: IncomingMessage, socket: Duplex, err: unknown): void {
  socket.on('error', () => undefined);
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  sendProblem(req, upgradeResponse(req, socket).res, err);
}

/** The HTTP server a socket was accepted by, if any. */
export function serverOf(socket: Duplex): Server | undefined {
  return (socket as { server?: Server }).server;
}

/**
 * Serves an upgrade request nobody takes as a plain request: the server's 'request' listeners (the app,
 * with the gateway in it) answer it, then the socket closes. Node has already ended the upgrade request's
 * own stream (it leaves the body on the socket), so the app gets a fresh request with the same line and
 * headers, and a body read up to its Content-Length. A chunked body cannot be framed without the parser
 * and is refused with 400.
 */
export function serveUpgradeAsHttp(req: IncomingMessage, socket: Duplex, head: Buffer): void {
  socket.on('error', () => undefined);
  const server = serverOf(socket);
  if (!server) return refuseUpgrade(req, socket, new GatewayError('ERR_BAD_REQUEST_BODY', { detail: 'This upgrade is not accepted.' }));
  if (req.headers['transfer-encoding'] !== undefined) {
    return refuseUpgrade(req, socket, new GatewayError('ERR_BAD_REQUEST_BODY', { detail: 'An Upgrade request with a chunked body is not accepted; send it without Upgrade.' }));
  }
  const idle = server.requestTimeout > 0 ? server.requestTimeout : IDLE_TIMEOUT_MS;
  (socket as Socket).setTimeout(idle, () => socket.destroy());
  const request = new IncomingMessage(socket as Socket);
  request.method = req.method;
  request.url = req.url;
  request.httpVersionMajor = req.httpVersionMajor;
  request.httpVersionMinor = req.httpVersionMinor;
  request.httpVersion = req.httpVersion;
  request.headers = req.headers;
  request.rawHeaders = req.rawHeaders;
  const { res } = upgradeResponse(request, socket);
  let remaining = Number(req.headers['content-length'] ?? 0) || 0;
  const feed = (chunk: Buffer) => {
    const part = chunk.subarray(0, remaining);
    remaining -= part.length;
    if (part.length) request.push(part);
    if (remaining === 0) {
      socket.off('data', feed);
      request.complete = true;
      request.push(null);
    }
  };
  if (remaining > 0) {
    if (head.length) feed(head);
    if (remaining > 0) socket.on('data', feed);
  } else {
    request.complete = true;
    request.push(null);
  }
  server.emit('request', request, res);
}
